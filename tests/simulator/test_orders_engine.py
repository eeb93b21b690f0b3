"""The order engine, sans-IO: lifecycles, validation, fills, positions (plain values)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import attrs
import pytest

from ibkr_connector.simulator._market import Instrument, Quote, SimMarket
from ibkr_connector.simulator._order_reports import completed_orders, executions, open_orders
from ibkr_connector.simulator._order_types import (
    CommissionMsg,
    CompletedOrderMsg,
    ErrorMsg,
    ExecDetailsMsg,
    Message,
    Notice,
    OpenOrderMsg,
    OrderStatusMsg,
)
from ibkr_connector.simulator._order_wire import ExecutionFilter, PlaceOrder
from ibkr_connector.simulator._orders import BAG_CON_ID, OrderEngine
from ibkr_connector.simulator._requests import ComboLegSpec, ContractSpec

SPY = 756733
WALL = 1_750_000_000.0
START = 1_749_800_000.0


class PinnedMarket(SimMarket):
    """The seeded market, with quotes a test can pin."""

    def __init__(self) -> None:
        super().__init__(seed=1, start=0.0, wall_start=START)
        self.pinned: dict[int, Quote] = {}

    def quote(self, con_id: int) -> Quote:
        return self.pinned.get(con_id) or super().quote(con_id)

    def pin(self, con_id: int, bid: float, ask: float) -> None:
        self.pinned[con_id] = Quote(bid, ask, ask, 10, 10, 1, 100)


@pytest.fixture
def market() -> PinnedMarket:
    return PinnedMarket()


@pytest.fixture
def engine(market: PinnedMarket) -> OrderEngine:
    return OrderEngine(market, ["DU1"])


def calls(market: PinnedMarket, strikes: tuple[float, float]) -> tuple[Instrument, Instrument]:
    expiry = market.chains("SPY")[0].expiries[0]
    found = [market.match(symbol="SPY", sec_type="OPT", expiry=expiry, strike=k, right="C")[0]
             for k in strikes]
    return found[0], found[1]


def order(order_id: int, contract: ContractSpec, action: str = "BUY", qty: int = 1,
          order_type: str = "LMT", price: float | None = None, **more: Any) -> PlaceOrder:
    return PlaceOrder(order_id=order_id, contract=contract, action=action,
                      total_quantity=Decimal(qty), order_type=order_type, lmt_price=price,
                      aux_price=None, **more)


def stock() -> ContractSpec:
    return ContractSpec(SPY, "SPY", "STK", exchange="SMART", currency="USD")


def vertical(long: Instrument, short: Instrument) -> ContractSpec:
    return ContractSpec(0, "SPY", "BAG", exchange="SMART", currency="USD", combo_legs=(
        ComboLegSpec(long.con_id, 1, "BUY", "SMART"), ComboLegSpec(short.con_id, 1, "SELL",
                                                                   "SMART")))


def kinds(notices: list[Notice]) -> list[str]:
    out = []
    for n in notices:
        m: Message = n.message
        if isinstance(m, OpenOrderMsg | OrderStatusMsg):
            out.append(f"{type(m).__name__[:-3]}:{m.order.status}")
        elif isinstance(m, ErrorMsg):
            out.append(f"error:{m.code}")
        else:
            out.append(type(m).__name__[:-3])
    return out


def test_a_resting_limit_order_is_acknowledged_then_fills_when_the_market_crosses(
        engine: OrderEngine, market: PinnedMarket) -> None:
    market.pin(SPY, 500.00, 500.02)
    notices = engine.place(1, order(5, stock(), qty=100, price=499.50), WALL)
    assert kinds(notices) == ["OpenOrder:PreSubmitted", "OrderStatus:PreSubmitted",
                              "OpenOrder:Submitted", "OrderStatus:Submitted"]
    assert engine.advance(WALL + 1) == []
    market.pin(SPY, 499.40, 499.45)
    notices = engine.advance(WALL + 2)
    assert kinds(notices) == ["ExecDetails", "OpenOrder:Filled", "OrderStatus:Filled",
                              "Commission"]
    fill = notices[0].message
    assert isinstance(fill, ExecDetailsMsg)
    assert (fill.req_id, fill.fill.price, fill.fill.side, fill.fill.shares) == (
        -1, 499.45, "BOT", Decimal(100))
    holding = engine.ledger.holding("DU1", SPY)
    assert holding is not None and holding.quantity == 100
    assert holding.avg_cost == pytest.approx(499.46)  # commission included, as at IB
    assert not engine.working()


def test_a_market_order_fills_at_once_at_the_far_side(engine: OrderEngine,
                                                      market: PinnedMarket) -> None:
    market.pin(SPY, 500.00, 500.02)
    notices = engine.place(1, order(5, stock(), "SELL", 10, "MKT"), WALL)
    assert kinds(notices)[-4:] == ["ExecDetails", "OpenOrder:Filled", "OrderStatus:Filled",
                                   "Commission"]
    status = [n.message for n in notices if isinstance(n.message, OrderStatusMsg)][-1]
    assert status.order.avg_fill_price == 500.00 and status.order.remaining == 0
    commission = notices[-1].message
    assert isinstance(commission, CommissionMsg) and commission.fill.commission == 1.0


def test_a_vertical_fills_at_the_net_of_its_legs_with_an_execution_per_leg_and_the_bag(
        engine: OrderEngine, market: PinnedMarket) -> None:
    long, short = calls(market, (500.0, 505.0))
    market.pin(long.con_id, 5.00, 5.10)
    market.pin(short.con_id, 2.50, 2.60)
    rests = engine.place(1, order(7, vertical(long, short), qty=2, price=2.50), WALL)
    assert kinds(rests)[-1] == "OrderStatus:Submitted"
    market.pin(long.con_id, 4.90, 5.00)
    notices = engine.advance(WALL + 1)
    executions = [n.message.fill for n in notices if isinstance(n.message, ExecDetailsMsg)]
    assert [(f.contract.con_id, f.side, f.shares, f.price) for f in executions] == [
        (long.con_id, "BOT", Decimal(2), 5.00), (short.con_id, "SLD", Decimal(2), 2.50),
        (BAG_CON_ID, "BOT", Decimal(2), 2.50)]
    assert len({f.exec_id for f in executions}) == 3
    assert sum(isinstance(n.message, CommissionMsg) for n in notices) == 3
    long_pos = engine.ledger.holding("DU1", long.con_id)
    short_pos = engine.ledger.holding("DU1", short.con_id)
    assert long_pos is not None and short_pos is not None
    assert (long_pos.quantity, short_pos.quantity) == (2, -2)
    assert long_pos.avg_cost == pytest.approx(500.65)  # multiplier and commission included


def test_partial_fills_come_one_step_at_a_time(market: PinnedMarket) -> None:
    engine = OrderEngine(market, ["DU1"], partial_fill_quantity=Decimal(1))
    market.pin(SPY, 500.00, 500.02)
    first = engine.place(1, order(3, stock(), qty=3, order_type="MKT"), WALL)
    assert kinds(first)[-3:] == ["ExecDetails", "OrderStatus:Submitted", "Commission"]
    second = engine.advance(WALL + 1)
    third = engine.advance(WALL + 2)
    statuses = [n.message.order for n in second + third if isinstance(n.message,
                                                                      OrderStatusMsg)]
    assert [(s.status, s.filled, s.remaining) for s in statuses] == [
        ("Submitted", 2, 1), ("Filled", 3, 0)]
    cumulative = [n.message.fill.cum_qty for n in first + second + third
                  if isinstance(n.message, ExecDetailsMsg)]
    assert cumulative == [1, 2, 3]


@pytest.mark.parametrize(("request_", "code"), [
    (order(5, ContractSpec(999, "XYZ", "STK"), price=1.0), 200),
    (order(5, stock(), price=500.005), 110),
    (order(0, stock(), price=500.0), 10149),
    (order(5, ContractSpec(0, "SPY", "BAG"), price=1.0), 321),
])
def test_a_refused_placement_is_one_error_and_no_order(engine: OrderEngine,
                                                       request_: PlaceOrder, code: int) -> None:
    notices = engine.place(1, request_, WALL)
    assert kinds(notices) == [f"error:{code}"]
    assert engine.orders() == []


def test_an_id_not_above_every_used_id_is_a_duplicate(engine: OrderEngine) -> None:
    engine.place(1, order(10, stock(), price=400.0), WALL)
    engine.cancel(1, 10, WALL)
    assert kinds(engine.place(1, order(9, stock(), price=400.0), WALL)) == ["error:103"]
    assert kinds(engine.place(1, order(10, stock(), price=400.0), WALL)) == ["error:103"]
    assert engine.next_order_id(1) == 11 and engine.next_order_id(2) == 1
    assert kinds(engine.place(2, order(10, stock(), price=400.0), WALL))[-1] == (
        "OrderStatus:Submitted")


def test_a_riskless_combo_is_rejected_and_inactive(engine: OrderEngine,
                                                   market: PinnedMarket) -> None:
    long, _ = calls(market, (500.0, 505.0))
    notices = engine.place(1, order(4, vertical(long, long), price=0.5), WALL)
    assert kinds(notices) == ["OpenOrder:PreSubmitted", "OrderStatus:PreSubmitted",
                              "error:201", "OpenOrder:Inactive", "OrderStatus:Inactive"]
    error = notices[2].message
    assert isinstance(error, ErrorMsg) and "Riskless combination" in error.text


def test_the_next_order_can_be_rejected_with_a_given_reason(engine: OrderEngine) -> None:
    engine.reject_next = "Margin too low"
    rejected = engine.place(1, order(4, stock(), price=400.0), WALL)
    assert [m.message.text for m in rejected if isinstance(m.message, ErrorMsg)] == [
        "Order rejected - reason:Margin too low"]
    assert kinds(engine.place(1, order(5, stock(), price=400.0), WALL))[-1] == (
        "OrderStatus:Submitted")


def test_cancel_confirms_and_only_the_owner_may_cancel(engine: OrderEngine) -> None:
    engine.place(1, order(4, stock(), price=400.0), WALL)
    assert kinds(engine.cancel(2, 4, WALL)) == ["error:10147"]
    assert kinds(engine.cancel(1, 99, WALL)) == ["error:10147"]
    assert kinds(engine.cancel(1, 4, WALL)) == ["OrderStatus:PendingCancel",
                                                "OrderStatus:Cancelled", "error:202"]
    assert kinds(engine.cancel(1, 4, WALL)) == ["error:10148"]


def test_modify_updates_the_working_order_and_refuses_what_tws_refuses(
        engine: OrderEngine, market: PinnedMarket) -> None:
    market.pin(SPY, 500.00, 500.02)
    engine.place(1, order(4, stock(), qty=5, price=400.0), WALL)
    notices = engine.place(1, order(4, stock(), qty=7, price=401.0), WALL)
    assert kinds(notices) == ["OpenOrder:Submitted", "OrderStatus:Submitted"]
    modified = notices[0].message
    assert isinstance(modified, OpenOrderMsg)
    assert (modified.order.terms.lmt_price, modified.order.remaining) == (401.0, 7)
    assert kinds(engine.place(1, order(4, stock(), "SELL", price=401.0), WALL)) == [
        "error:105"]
    assert kinds(engine.place(1, order(4, stock(), qty=7, price=500.02), WALL))[-1] == (
        "Commission")
    assert kinds(engine.place(1, order(4, stock(), qty=7, price=500.02), WALL)) == [
        "error:104"]


def test_what_if_answers_margin_and_commission_and_places_nothing(
        engine: OrderEngine, market: PinnedMarket) -> None:
    long, short = calls(market, (500.0, 505.0))
    market.pin(short.con_id, 2.50, 2.60)
    notices = engine.place(1, order(6, vertical(long, short), "BUY", 2, "MKT", what_if=True),
                           WALL)
    [answer] = [n.message for n in notices]
    assert isinstance(answer, OpenOrderMsg) and answer.what_if is not None
    assert answer.order.status == "PreSubmitted" and answer.order.terms.what_if
    # The long leg is paid in full; the short leg margins its market value (mid 2.55).
    assert answer.what_if.init_change == pytest.approx(2 * 100 * 2.55)
    assert answer.what_if.commission == 2 * 0.65 * 2
    assert engine.orders() == [] and engine.fills() == []
    assert engine.next_order_id(1) == 7


def test_reports_filter_by_client_and_execution_fields(engine: OrderEngine,
                                                       market: PinnedMarket) -> None:
    market.pin(SPY, 500.00, 500.02)
    engine.place(1, order(1, stock(), qty=1, order_type="MKT"), WALL)
    engine.place(1, order(2, stock(), "SELL", 1, "MKT"), WALL + 60)
    engine.place(2, order(1, stock(), qty=1, price=400.0), WALL)
    mine = executions(engine.fills(), 1, 9, ExecutionFilter())
    assert kinds(mine) == ["ExecDetails", "Commission", "ExecDetails", "Commission",
                           "ExecDetailsEnd"]
    sells = executions(engine.fills(), 1, 9, ExecutionFilter(side="SELL"))
    assert len(sells) == 3
    later = executions(engine.fills(), 1, 9,
                       ExecutionFilter(time="20250615-15:07:00"))
    assert all(not isinstance(n.message, ExecDetailsMsg) or n.message.fill.timestamp
               >= 1749999999 for n in later)
    assert kinds(executions(engine.fills(), 2, 9, ExecutionFilter())) == ["ExecDetailsEnd"]
    assert kinds(open_orders(engine.orders(), 1)) == ["OpenOrderEnd"]
    assert kinds(open_orders(engine.orders(), 1, all_clients=True)) == [
        "OpenOrder:Submitted", "OrderStatus:Submitted", "OpenOrderEnd"]
    completed = [n.message for n in completed_orders(engine.orders(), 1)
                 if isinstance(n.message, CompletedOrderMsg)]
    assert [m.order.status for m in completed] == ["Filled", "Filled"]
    holding = engine.ledger.holding("DU1", SPY)
    assert holding is not None and holding.quantity == 0 and holding.realized == pytest.approx(
        (500.00 - 500.02) - 1.0 - 1.0)


def test_order_views_are_frozen_snapshots(engine: OrderEngine) -> None:
    engine.place(1, order(4, stock(), price=400.0), WALL)
    before = engine.order(1, 4)
    engine.cancel(1, 4, WALL)
    assert before is not None and before.status == "Submitted"
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        before.status = "Filled"  # type: ignore[misc]
