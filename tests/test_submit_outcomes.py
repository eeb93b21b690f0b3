"""Every order intent submitted through the runtime gets the outcome of its submit."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import trio
import trio.testing
from ibapi.contract import Contract
from ibapi.order import Order

from ibkr_connector.actors.audit import read_audit_records
from ibkr_connector.config import IBKRConfig, WatchdogConfig
from ibkr_connector.protocol.requests import CancelOrder, PlaceOrder
from ibkr_connector.runtime import open_runtime
from ibkr_connector.simulator import TwsSimulator
from ibkr_connector.supervisor import CallTimeout


def _option() -> Contract:
    c = Contract()
    c.symbol, c.secType, c.exchange, c.currency = "SPY", "STK", "SMART", "USD"
    return c


def _order() -> Order:
    o = Order()
    o.action, o.totalQuantity, o.orderType, o.lmtPrice = "BUY", Decimal(1), "LMT", 1.0
    return o


def _outcomes(path: Path) -> dict[int, str]:
    records = list(read_audit_records(path))
    intents = {r.seq: r.fields["order_id"] for r in records if r.kind.endswith("_intent")}
    return {intents[r.fields["intent_seq"]]: r.fields["outcome"]
            for r in records if r.kind == "order_outcome"}


async def test_a_written_order_and_cancel_each_get_the_outcome_written(
    sim: TwsSimulator, tmp_path: Path, io_clock: trio.testing.MockClock
) -> None:
    trail = tmp_path / "a.jsonl"
    config = IBKRConfig(port=sim.port, watchdog=WatchdogConfig(health_check_interval=30.0))
    async with open_runtime(config, audit_path=trail, connect=True) as runtime:
        ids = await runtime.allocate_order_ids(1)
        await runtime.submit(PlaceOrder(ids.start, _option(), _order()))
        await runtime.submit(CancelOrder(ids.start))
    kinds = [r.kind for r in read_audit_records(trail) if r.kind != "order_status"]
    assert kinds.count("order_outcome") == 2
    assert _outcomes(trail) == {ids.start: "written"}


async def test_an_order_that_timed_out_before_the_wire_is_recorded_abandoned(
    sim: TwsSimulator, tmp_path: Path, io_clock: trio.testing.MockClock
) -> None:
    trail = tmp_path / "a.jsonl"
    config = IBKRConfig(port=sim.port, request_timeout=2.0,
                        watchdog=WatchdogConfig(health_check_interval=30.0))
    async with open_runtime(config, audit_path=trail, connect=True) as runtime:
        ids = await runtime.allocate_order_ids(1)
        await runtime.disconnect()
        with pytest.raises(CallTimeout):
            await runtime.submit(PlaceOrder(ids.start, _option(), _order()))
    assert _outcomes(trail) == {ids.start: "abandoned"}
    assert not [m for m in sim.received if m.msg_id == 3]
