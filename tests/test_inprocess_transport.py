"""The in-process transport: the whole runtime and the simulated TWS in one Trio loop.

No socket, no thread: ibapi's EClient still encodes every request and the reader's own
framing and decoding (fast path or ibapi's Decoder) read every reply, so the runtime behaves
as over loopback, on a MockClock that jumps the moment the loop is idle.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
import trio.testing
from order_helpers import PLACE_ORDER, order, until

from ibkr_connector.config import IBKRConfig, WatchdogConfig
from ibkr_connector.contracts import Stock
from ibkr_connector.protocol._inprocess import in_process
from ibkr_connector.runtime import Runtime, open_runtime
from ibkr_connector.simulator import SimulatorConfig
from ibkr_connector.simulator._inprocess import InProcessTws, open_inprocess_tws
from ibkr_connector.trade import TradeStatus


@pytest.fixture
def clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


@asynccontextmanager
async def _world(path: Path) -> AsyncIterator[tuple[InProcessTws, Runtime]]:
    config = IBKRConfig(connection_timeout=5, request_timeout=5, watchdog=WatchdogConfig(
        reconnect_initial_delay=0.05, reconnect_max_delay=0.5, reconnect_jitter=0.0))
    async with open_inprocess_tws(SimulatorConfig(seed=7, start_time=1_750_000_000.0)) as tws:
        async with open_runtime(config, audit_path=path / "audit.jsonl", connect=True,
                                transport=in_process(tws)) as runtime:
            yield tws, runtime


async def _reconnected(runtime: Runtime, count: int) -> None:
    with trio.fail_after(120):
        while (status := (await runtime.status()).connection).reconnects < count or (
                status.state.value != "connected"):
            await trio.sleep(0.1)


async def test_an_order_fills_over_the_in_process_transport_without_a_thread(
    clock: trio.testing.MockClock, tmp_path: Path,
) -> None:
    before = set(threading.enumerate())  # earlier tests may leave Trio's cached workers
    async with _world(tmp_path) as (tws, runtime):
        trade = await runtime.place_order(Stock("SPY"), order("BUY", 3))
        await until(trade, lambda t: t.status is TradeStatus.FILLED)
        assert set(threading.enumerate()) <= before  # no session thread, no worker thread
        assert [m.msg_id for m in tws.received].count(PLACE_ORDER) == 1
        assert {p.quantity for p in await runtime.positions()} == {3}


async def test_faults_of_the_simulator_reach_the_runtime_in_process(
    clock: trio.testing.MockClock, tmp_path: Path,
) -> None:
    async with _world(tmp_path) as (tws, runtime):
        await tws.drop_all()
        await _reconnected(runtime, 1)
        await tws.send_malformed(kind="garbage")
        await _reconnected(runtime, 2)
        started = trio.current_time()
        await tws.refuse_for(60)
        await _reconnected(runtime, 3)
        assert trio.current_time() - started >= 60
        status = await runtime.status()
        assert status.connection.server_version == tws.config.server_version
