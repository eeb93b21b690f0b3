"""Orders through the runtime: stocks, vertical spreads, modify, cancel, whatIf, bad input
and TWS's rejections, against the simulator over real sockets (the unmodified ibapi client)."""

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
from ibkr_connector.actors.market_data_messages import UnknownContract
from ibkr_connector.actors.orders_messages import (
    InvalidOrder,
    OrderFilled,
    OrderNotModifiable,
    OrderRejected,
)
from ibkr_connector.config import IBKRConfig, WatchdogConfig
from ibkr_connector.contracts import Stock
from ibkr_connector.runtime import Runtime, open_runtime
from ibkr_connector.simulator import SimulatorConfig, TwsSimulator, open_simulator
from ibkr_connector.trade import RejectedOrder, TradeStatus


@pytest.fixture
async def sim() -> AsyncIterator[TwsSimulator]:
    async with open_simulator(SimulatorConfig(start_time=1_750_000_000.0)) as simulator:
        yield simulator


@asynccontextmanager
async def runtime_for(sim: TwsSimulator, tmp_path: Path) -> AsyncIterator[Runtime]:
    config = IBKRConfig(port=sim.port, request_timeout=20.0,
                        watchdog=WatchdogConfig(health_check_interval=30.0))
    async with open_runtime(config, audit_path=tmp_path / "audit.jsonl",
                            connect=True) as runtime:
        yield runtime


def spread_strikes(sim: TwsSimulator) -> tuple[str, float, float]:
    """An expiry and two listed call strikes near the money."""
    expiry = sim.market.chains("SPY")[0].expiries[0]
    spot = round(sim.market.spot(SPY))
    return expiry, float(spot), float(spot + 5)


async def test_a_stock_market_order_fills_and_books_a_position(
    sim: TwsSimulator, tmp_path: Path, io_clock: trio.testing.MockClock
) -> None:
    async with runtime_for(sim, tmp_path) as runtime:
        with runtime.events(OrderFilled) as filled_events:
            trade = await runtime.place_order(Stock("SPY"), order("BUY", 10))
            with trio.fail_after(10):
                await trade.filled()
                event = await filled_events.receive()
        assert event.order_id == trade.order_id
        assert trade.status is TradeStatus.FILLED and trade.filled_quantity == 10
        assert trade.avg_fill_price is not None and trade.avg_fill_price > 0
        assert [e.status for e in trade.log][0] is TradeStatus.PENDING_SUBMIT
        await until(trade, lambda t: t.commission > 0)
        assert trade.commission > 0
        positions = await runtime.positions()
        assert [(p.con_id, p.quantity) for p in positions] == [(SPY, Decimal(10))]
        view = sim.orders.order(trade.client_id, trade.order_id)
        assert view is not None and view.status == "Filled"
        stats = await runtime.order_stats()
        assert stats.ack_latency_p50_ms is not None and stats.by_status == {"Filled": 1}


async def test_a_vertical_spread_fills_at_the_net_of_its_legs(
    sim: TwsSimulator, tmp_path: Path, io_clock: trio.testing.MockClock
) -> None:
    expiry, low, high = spread_strikes(sim)
    async with runtime_for(sim, tmp_path) as runtime:
        trade = await runtime.place_vertical_spread("SPY", expiry, "C", low, high, 2,
                                                    order_type="MKT")
        with trio.fail_after(10):
            await trade.filled()
        assert trade.contract.secType == "BAG" and [leg.action for leg in trade.legs] == [
            "BUY", "SELL"]
        assert [leg.strike for leg in trade.legs] == [low, high]
        leg_fills = [f for f in trade.fills if f.sec_type == "OPT"]
        bag_fills = [f for f in trade.fills if f.sec_type == "BAG"]
        assert len(leg_fills) == 2 and len(bag_fills) == 1
        net = sum(f.price if f.side == "BOT" else -f.price for f in leg_fills)
        assert bag_fills[0].price == pytest.approx(net)
        assert trade.avg_fill_price == pytest.approx(net)
        positions = {p.con_id: p.quantity for p in await runtime.positions()}
        assert positions == {trade.legs[0].con_id: Decimal(2), trade.legs[1].con_id: Decimal(-2)}


async def test_a_resting_order_is_modified_under_its_id_then_cancelled(
    sim: TwsSimulator, tmp_path: Path, io_clock: trio.testing.MockClock
) -> None:
    async with runtime_for(sim, tmp_path) as runtime:
        spot = sim.market.spot(SPY)
        far = round(spot * 0.5, 2)
        trade = await runtime.place_order(Stock("SPY"), order("BUY", 5, "LMT", far))
        await until(trade, lambda t: t.status is TradeStatus.SUBMITTED)
        await runtime.modify(trade, limit_price=round(far + 0.01, 2), quantity=7)
        with trio.fail_after(10):
            while (view := sim.orders.order(trade.client_id, trade.order_id)) is None or (
                    view.terms.total_quantity != 7):
                await trio.sleep(0.05)
        assert view.terms.lmt_price == pytest.approx(far + 0.01)
        await runtime.cancel(trade)
        with trio.fail_after(10):
            await trade.done()
        assert trade.status is TradeStatus.CANCELLED
        assert placed(sim) == [trade.order_id, trade.order_id]  # one id, place + modify
        with pytest.raises(OrderNotModifiable):
            await runtime.modify(trade, limit_price=far)
        kinds = [r.kind for r in read_audit_records(tmp_path / "audit.jsonl")]
        assert kinds.count("order_intent") == 2 and kinds.count("cancel_intent") == 1


async def test_what_if_returns_margins_and_places_nothing(
    sim: TwsSimulator, tmp_path: Path, io_clock: trio.testing.MockClock
) -> None:
    expiry, low, high = spread_strikes(sim)
    async with runtime_for(sim, tmp_path) as runtime:
        impact = await runtime.what_if(Stock("SPY"), order("BUY", 100))
        assert impact.init_margin_change is not None and impact.init_margin_change > 0
        assert impact.commission is not None and impact.commission > 0
        spread = await runtime.what_if_vertical_spread("SPY", expiry, "C", low, high, 1,
                                                       limit_price=1.0)
        assert spread.init_margin_after is not None
        assert sim.orders.orders() == []
        assert await runtime.trades() == ()


@pytest.mark.parametrize(("args", "error"), [
    (dict(long_strike=0.5, short_strike=None), UnknownContract),  # strike not listed
    (dict(expiry="20010119"), UnknownContract),  # expiry not listed
    (dict(short_strike="same"), InvalidOrder),
    (dict(quantity=0), InvalidOrder),
    (dict(limit_price=None), InvalidOrder),  # LMT without a price
    (dict(limit_price=1.003), InvalidOrder),  # off the tick
    (dict(right="X"), InvalidOrder),
])
async def test_bad_spread_input_is_a_typed_error_before_the_wire(
    sim: TwsSimulator, tmp_path: Path, io_clock: trio.testing.MockClock,
    args: dict[str, object], error: type[Exception],
) -> None:
    expiry, low, high = spread_strikes(sim)
    call: dict[str, object] = dict(symbol="SPY", expiry=expiry, right="C", long_strike=low,
                                   short_strike=high, quantity=1, limit_price=1.0)
    call.update(args)
    if call["short_strike"] is None:
        call["short_strike"] = high
    if call["short_strike"] == "same":
        call["short_strike"] = call["long_strike"]
    async with runtime_for(sim, tmp_path) as runtime:
        with pytest.raises(error):
            await runtime.place_vertical_spread(**call)  # type: ignore[arg-type]
        assert placed(sim) == []


async def test_a_tws_rejection_reaches_the_trade_with_its_reason(
    sim: TwsSimulator, tmp_path: Path, io_clock: trio.testing.MockClock
) -> None:
    async with runtime_for(sim, tmp_path) as runtime:
        sim.reject_next_order("Riskless combination orders are not allowed")
        with runtime.events(OrderRejected) as rejections:
            trade = await runtime.place_order(Stock("SPY"), order("BUY", 1))
            with trio.fail_after(10), pytest.raises(RejectedOrder) as caught:
                await trade.filled()
            event = await rejections.receive()
        assert caught.value.code == 201 and "Riskless" in caught.value.tws_reason
        assert event.code == 201 and "Riskless" in event.tws_reason
        assert "Riskless" not in repr(event)  # TWS's text stays out of logs
        assert trade.status is TradeStatus.INACTIVE
