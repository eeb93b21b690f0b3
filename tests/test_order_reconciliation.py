"""Reconciliation over real sockets: a lost ack, fills while the link was down, a restart of
the orders actor, other clients' orders, and never an order id on the wire twice."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path

import pytest
import trio
import trio.testing
from order_helpers import SPY, order, placed, until

from ibkr_connector.actors.audit import read_audit_records
from ibkr_connector.actors.orders_messages import NotOurOrder
from ibkr_connector.config import IBKRConfig, WatchdogConfig
from ibkr_connector.contracts import Stock
from ibkr_connector.runtime import Runtime, open_runtime
from ibkr_connector.simulator import SimulatorConfig, TwsSimulator, open_simulator
from ibkr_connector.trade import TradeStatus


@pytest.fixture
async def sim() -> AsyncIterator[TwsSimulator]:
    config = SimulatorConfig(start_time=1_750_000_000.0, partial_fill_quantity=2)
    async with open_simulator(config) as simulator:
        yield simulator


@asynccontextmanager
async def runtime_for(sim: TwsSimulator, path: Path, client_id: int = 1
                      ) -> AsyncIterator[Runtime]:
    config = IBKRConfig(port=sim.port, client_id=client_id, request_timeout=20.0,
                        watchdog=WatchdogConfig(health_check_interval=30.0))
    async with open_runtime(config, audit_path=path, connect=True) as runtime:
        await runtime.keep_connected()
        yield runtime


def sim_fills(sim: TwsSimulator, order_id: int) -> list[str]:
    return sorted(f.exec_id for f in sim.orders.fills() if f.order_id == order_id)


async def test_a_lost_ack_is_resolved_from_tws_and_the_order_is_not_sent_again(
    sim: TwsSimulator, tmp_path: Path, io_clock: trio.testing.MockClock
) -> None:
    async with runtime_for(sim, tmp_path / "audit.jsonl") as runtime:
        sim.drop_next_order_ack()
        trade = await runtime.place_order(Stock("SPY"), order("BUY", 4))
        with trio.fail_after(60):
            await trade.filled()
        assert placed(sim) == [trade.order_id]
        assert sorted(f.exec_id for f in trade.fills) == sim_fills(sim, trade.order_id)
        assert [(p.con_id, p.quantity) for p in await runtime.positions()] == [(SPY, 4)]


async def test_fills_made_while_the_link_was_down_are_recovered_once(
    sim: TwsSimulator, tmp_path: Path, io_clock: trio.testing.MockClock
) -> None:
    async with runtime_for(sim, tmp_path / "audit.jsonl") as runtime:
        trade = await runtime.place_order(Stock("SPY"), order("BUY", 10))
        await until(trade, lambda t: bool(t.fills))
        await sim.refuse_for(5.0)  # TWS restarts; IB goes on filling the order
        with trio.fail_after(60):
            await trade.filled()
        assert sorted(f.exec_id for f in trade.fills) == sim_fills(sim, trade.order_id)
        assert len(sim_fills(sim, trade.order_id)) == 5  # 2 at a time
        report = await runtime.reconcile_orders()  # a round seeing them all again adds none
        assert report.new_executions == 0
        assert sum(f.shares for f in trade.fills) == 10
        assert [(p.con_id, p.quantity) for p in await runtime.positions()] == [(SPY, 10)]
        assert placed(sim) == [trade.order_id]


async def test_a_restart_of_the_orders_actor_keeps_the_book(
    sim: TwsSimulator, tmp_path: Path, io_clock: trio.testing.MockClock
) -> None:
    async with runtime_for(sim, tmp_path / "audit.jsonl") as runtime:
        filled = await runtime.place_order(Stock("SPY"), order("BUY", 2))
        with trio.fail_after(10):
            await filled.filled()
        resting = await runtime.place_order(
            Stock("SPY"), order("BUY", 1, "LMT", round(sim.market.spot(SPY) * 0.5, 2)))
        await until(resting, lambda t: t.status is TradeStatus.SUBMITTED)
        await runtime.restart("orders")
        trades = await runtime.trades()
        assert filled in trades and resting in trades
        assert [(p.con_id, p.quantity) for p in await runtime.positions()] == [(SPY, 2)]
        await runtime.cancel(resting)  # the restarted actor still drives it
        with trio.fail_after(10):
            await resting.done()
        assert resting.status is TradeStatus.CANCELLED
        assert placed(sim) == [filled.order_id, resting.order_id]


async def test_other_clients_orders_appear_read_only(
    sim: TwsSimulator, tmp_path: Path, io_clock: trio.testing.MockClock
) -> None:
    async with runtime_for(sim, tmp_path / "a.jsonl") as mine, \
            runtime_for(sim, tmp_path / "b.jsonl", client_id=2) as theirs:
        price = round(sim.market.spot(SPY) * 0.5, 2)
        their_trade = await theirs.place_order(Stock("SPY"), order("BUY", 1, "LMT", price))
        await until(their_trade, lambda t: t.status is TradeStatus.SUBMITTED)
        report = await mine.reconcile_orders()
        assert report.open_orders == 1
        (seen,) = await mine.trades()
        assert seen.read_only and seen.client_id == 2 and seen.order_id == their_trade.order_id
        with pytest.raises(NotOurOrder):
            await mine.cancel(seen)
        assert sim.orders.order(2, their_trade.order_id).status == "Submitted"  # type: ignore[union-attr]


async def test_every_intent_is_in_the_trail_before_its_order_reached_the_wire(
    sim: TwsSimulator, tmp_path: Path, io_clock: trio.testing.MockClock
) -> None:
    path = tmp_path / "audit.jsonl"
    async with runtime_for(sim, path) as runtime:
        trade = await runtime.place_order(Stock("SPY"), order("BUY", 1))
        with trio.fail_after(10):
            await trade.filled()
    records = list(read_audit_records(path))
    intent = next(r for r in records if r.kind == "order_intent")
    outcome = next(r for r in records if r.kind == "order_outcome")
    assert intent.fields["order_id"] == trade.order_id
    assert outcome.fields["intent_seq"] == intent.seq and outcome.fields["outcome"] == "written"
    assert intent.seq < outcome.seq
    assert Decimal(intent.fields["quantity"]) == 1


async def test_an_order_cancelled_at_ib_while_the_link_was_down_ends_cancelled(
    sim: TwsSimulator, tmp_path: Path, io_clock: trio.testing.MockClock
) -> None:
    async with runtime_for(sim, tmp_path / "audit.jsonl") as runtime:
        trade = await runtime.place_order(
            Stock("SPY"), order("BUY", 1, "LMT", round(sim.market.spot(SPY) * 0.5, 2)))
        await until(trade, lambda t: t.status is TradeStatus.SUBMITTED)
        await sim.refuse_for(5.0)
        sim.orders.cancel(trade.client_id, trade.order_id, sim.market.wall_time())
        await until(trade, lambda t: t.is_done, timeout=60)
        assert trade.status is TradeStatus.CANCELLED
        assert placed(sim) == [trade.order_id]
