"""326 (client id in use), end to end: the runtime moves to the next client id when
``client_id_retries`` allows, and otherwise stops with a clear error instead of
reconnecting on the same refused id for ever (the watchdog used to retry it with backoff)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio
import trio.testing

from ibkr_connector.actors.connection import ConnectionActor
from ibkr_connector.config import IBKRConfig
from ibkr_connector.runtime import Runtime, open_runtime
from ibkr_connector.simulator import TwsSimulator

_START_API = 71


def _attempts(sim: TwsSimulator, client_id: int) -> int:
    return sum(1 for m in sim.received if m.msg_id == _START_API and m.client_id == client_id)


@asynccontextmanager
async def holding(sim: TwsSimulator, client_id: int) -> AsyncIterator[None]:
    """Another API client connected with *client_id* (an old instance, say)."""
    holder = ConnectionActor(IBKRConfig(port=sim.port, client_id=client_id), lambda _: None)
    async with trio.open_nursery() as nursery:
        holder.attach(nursery)
        await holder.connect()
        try:
            yield
        finally:
            await holder.shutdown()
            nursery.cancel_scope.cancel()


@asynccontextmanager
async def kept_connected(sim: TwsSimulator, tmp_path: Path,
                         **overrides: object) -> AsyncIterator[Runtime]:
    config = IBKRConfig(port=sim.port, client_id=3, **overrides)  # type: ignore[arg-type]
    async with open_runtime(config, audit_path=tmp_path / "a.jsonl") as runtime:
        await runtime.keep_connected()
        yield runtime


async def test_client_id_in_use_with_no_retries_stops_instead_of_looping(
    quiet_sim: TwsSimulator, tmp_path: Path, io_clock: trio.testing.MockClock
) -> None:
    async with holding(quiet_sim, 3), kept_connected(quiet_sim, tmp_path) as runtime:
        await trio.sleep(300.0)  # the watchdog's backoff would have tried many times
        report = await runtime.status_report()
        status = await runtime.status()
    assert _attempts(quiet_sim, 3) == 2  # the holder's, and ours once
    assert report["state"] == "disconnected"
    assert not report["reconnecting"]
    assert not status.connection.wanted
    assert "client id 3 is already in use" in str(report["last_error"])
    assert "326" in str(report["last_error"])


async def test_client_id_in_use_moves_to_the_next_id_when_allowed(
    quiet_sim: TwsSimulator, tmp_path: Path, io_clock: trio.testing.MockClock
) -> None:
    async with holding(quiet_sim, 3), \
            kept_connected(quiet_sim, tmp_path, client_id_retries=2) as runtime:
        with trio.fail_after(60):
            while not await runtime.is_connected():
                await trio.sleep(0.5)
        report = await runtime.status_report()
    assert report["client_id"] == 4
    assert _attempts(quiet_sim, 3) == 2
