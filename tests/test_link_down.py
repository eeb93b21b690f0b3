"""1100: TWS lost its link to IB. The socket stays, outbound traffic is held (never written)
until 1101/1102, and `status` says ``link-down``."""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing
from helpers import spy_stock

from ibkr_connector.actors.connection import LinkLost, LinkRestored
from ibkr_connector.config import IBKRConfig
from ibkr_connector.protocol.requests import ReqMktData
from ibkr_connector.runtime import open_runtime
from ibkr_connector.simulator import TwsSimulator

_REQ_MKT_DATA = 1


def _market_data_requests(quiet_sim: TwsSimulator) -> int:
    return sum(1 for m in quiet_sim.received if m.msg_id == _REQ_MKT_DATA)


async def test_a_submit_during_link_down_is_written_only_after_the_link_is_back(
    quiet_sim: TwsSimulator, tmp_path: Path, io_clock: trio.testing.MockClock
) -> None:
    async with open_runtime(IBKRConfig(port=quiet_sim.port), audit_path=tmp_path / "a.jsonl",
                            connect=True) as rt:
        events = rt.events((LinkLost, LinkRestored))
        await quiet_sim.send_error(1100)
        with trio.fail_after(10):
            assert isinstance(await events.receive(), LinkLost)
        written = trio.Event()

        async def submit() -> None:
            await rt.submit(ReqMktData(7, spy_stock()))
            written.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(submit)
            await trio.sleep(5.0)
            assert not written.is_set()
            assert _market_data_requests(quiet_sim) == 0  # held, not written
            report = await rt.status_report()
            assert report["state"] == "link-down"
            assert not await rt.is_connected()
            await quiet_sim.send_error(1102)
            with trio.fail_after(10):
                await written.wait()
        assert _market_data_requests(quiet_sim) == 1
        assert (await rt.status_report())["state"] == "connected"
