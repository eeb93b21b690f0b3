"""The order book with plain values: executions once, positions, unknown delivery settled
only by TWS's complete answer, rejections and cancels, read-only orders of other clients."""

from __future__ import annotations

from decimal import Decimal

import pytest
import trio
import trio.testing
from ibapi.contract import ComboLeg, Contract
from ibapi.execution import Execution
from ibapi.order import Order
from ibapi.order_state import OrderState

from ibkr_connector.actors.order_book import OrderBook
from ibkr_connector.actors.orders_messages import FillReceived, InvalidOrder, OrderRejected
from ibkr_connector.actors.vertical_spread import check_order, check_tick
from ibkr_connector.protocol import codes
from ibkr_connector.protocol import events as ev
from ibkr_connector.trade import Trade, TradeStatus

ME = 1


def stock(con_id: int = 10) -> Contract:
    c = Contract()
    c.conId, c.symbol, c.secType = con_id, "SPY", "STK"
    return c


def order(qty: int = 10, client_id: int = ME) -> Order:
    o = Order()
    o.action, o.totalQuantity, o.orderType, o.clientId = "BUY", Decimal(qty), "MKT", client_id
    return o


def book_with(order_id: int = 5) -> tuple[OrderBook, Trade]:
    book = OrderBook(client_id=ME)
    trade = Trade(order_id, ME, stock(), order(), remaining=Decimal(10))
    book.add(trade, 0.0)
    return book, trade


def execution(exec_id: str, order_id: int = 5, side: str = "BOT", shares: int = 4,
              price: float = 100.0, contract: Contract | None = None) -> ev.ExecDetails:
    e = Execution()
    e.execId, e.orderId, e.clientId, e.acctNumber = exec_id, order_id, ME, "DU1"
    e.side, e.shares, e.price, e.time = side, Decimal(shares), price, "20260101 10:00:00 UTC"
    return ev.ExecDetails(-1, contract or stock(), e)


def open_order(order_id: int, status: str, client_id: int = ME,
               contract: Contract | None = None) -> ev.OpenOrder:
    state = OrderState()
    state.status = status
    return ev.OpenOrder(order_id, contract or stock(), order(client_id=client_id), state)


def test_an_execution_seen_twice_counts_once() -> None:
    book, trade = book_with()
    first = book.on_execution(execution("e1"), 0.0)
    again = book.on_execution(execution("e1"), 0.0)
    assert [type(e) for e in first] == [FillReceived] and again == []
    assert len(trade.fills) == 1
    assert [(p.con_id, p.quantity) for p in book.positions()] == [(10, Decimal(4))]


def test_positions_are_the_net_of_leg_executions_never_the_combo_s_own() -> None:
    book, _ = book_with()
    bag = Contract()
    bag.conId, bag.symbol, bag.secType = 28812380, "SPY", "BAG"
    book.on_execution(execution("leg1", contract=stock(1), side="BOT", shares=2, price=3.0), 0.0)
    book.on_execution(execution("leg2", contract=stock(2), side="SLD", shares=2, price=1.0), 0.0)
    book.on_execution(execution("bag", contract=bag, side="BOT", shares=2, price=2.0), 0.0)
    assert {p.con_id: p.quantity for p in book.positions()} == {1: 2, 2: -2}


def test_average_price_follows_additions_and_resets_through_zero() -> None:
    book, _ = book_with()
    book.on_execution(execution("a", shares=2, price=10.0), 0.0)
    book.on_execution(execution("b", shares=2, price=20.0), 0.0)
    assert book.positions()[0].avg_price == pytest.approx(15.0)
    book.on_execution(execution("c", side="SLD", shares=6, price=30.0), 0.0)
    assert book.positions()[0].quantity == -2 and book.positions()[0].avg_price == 30.0


def test_a_commission_report_before_its_execution_is_kept_for_it() -> None:
    book, trade = book_with()
    book.on_commission("e1", 1.25)
    book.on_execution(execution("e1"), 0.0)
    book.on_commission("e2", 0.5)
    book.on_execution(execution("e2"), 0.0)
    assert trade.commission == pytest.approx(1.75)


def test_unknown_delivery_waits_for_the_complete_answer_then_is_not_placed() -> None:
    book, trade = book_with()
    book.delivery_unknown(trade, 1.0)
    assert trade.status is TradeStatus.UNKNOWN
    book.begin_reconciliation()
    book.abandon_reconciliation()  # the link dropped mid-round: nothing is settled
    assert trade.status is TradeStatus.UNKNOWN and book.unresolved
    book.begin_reconciliation()
    adopted, not_placed = book.finish_reconciliation(2.0)
    assert adopted == [] and not_placed == [trade] and trade.status is TradeStatus.NOT_PLACED
    # TWS's word still wins over our conclusion
    book.on_status(ev.OrderStatus(5, "Submitted", Decimal(0), Decimal(10), 0.0, 1, 0, 0.0,
                                  ME, "", 0.0), 3.0)
    assert trade.status is TradeStatus.SUBMITTED


def test_unknown_delivery_that_tws_lists_is_adopted() -> None:
    book, trade = book_with()
    book.delivery_unknown(trade, 1.0)
    book.begin_reconciliation()
    book.on_open_order(open_order(5, "Submitted"), 2.0)
    adopted, not_placed = book.finish_reconciliation(3.0)
    assert adopted == [trade] and not_placed == [] and trade.status is TradeStatus.SUBMITTED


def test_a_written_order_without_an_answer_is_settled_by_reconciliation() -> None:
    book, trade = book_with()
    book.begin_reconciliation()
    assert book.finish_reconciliation(1.0) == ([], [trade])


def test_other_clients_orders_are_adopted_read_only_and_spreads_keep_their_legs() -> None:
    book = OrderBook(client_id=ME)
    bag = Contract()
    bag.secType, bag.comboLegs = "BAG", []
    for con_id, action in ((1, "BUY"), (2, "SELL")):
        leg = ComboLeg()
        leg.conId, leg.action, leg.ratio = con_id, action, 1
        bag.comboLegs.append(leg)
    book.on_open_order(open_order(7, "Submitted", client_id=2, contract=bag), 0.0)
    book.on_open_order(open_order(7, "Submitted", client_id=ME), 0.0)
    theirs, mine = book.trades[(2, 7)], book.trades[(ME, 7)]
    assert theirs.read_only and not mine.read_only
    assert [(leg.con_id, leg.action) for leg in theirs.legs] == [(1, "BUY"), (2, "SELL")]


def test_a_201_rejects_with_tws_reason_and_a_202_cancels() -> None:
    book, trade = book_with()
    events = book.on_error(5, codes.classify(201), "Order rejected - reason:no", 1.0)
    rejected = [e for e in events if isinstance(e, OrderRejected)]
    assert rejected and rejected[0].tws_reason.endswith("no")
    assert trade.status is TradeStatus.INACTIVE and trade.rejection is not None
    other, second = book_with(6)
    other.on_status(ev.OrderStatus(6, "Submitted", Decimal(0), Decimal(10), 0.0, 1, 0, 0.0,
                                   ME, "", 0.0), 1.0)
    other.on_error(6, codes.classify(202), "cancelled", 2.0)
    assert second.status is TradeStatus.CANCELLED and second.rejection is None


def test_a_refused_modification_leaves_the_live_order_alone() -> None:
    book, trade = book_with()
    book.on_status(ev.OrderStatus(5, "Submitted", Decimal(0), Decimal(10), 0.0, 1, 0, 0.0,
                                  ME, "", 0.0), 1.0)
    events = book.on_error(5, codes.classify(110), "tick", 2.0)
    assert [type(e) for e in events] == [OrderRejected]
    assert trade.status is TradeStatus.SUBMITTED and trade.rejection is None


def test_ack_latency_is_measured_from_placement_to_first_answer() -> None:
    book, _ = book_with()
    book.on_status(ev.OrderStatus(5, "Submitted", Decimal(0), Decimal(10), 0.0, 1, 0, 0.0,
                                  ME, "", 0.0), 0.004)
    stats = book.stats()
    assert stats.ack_latency_p50_ms == pytest.approx(4.0) and stats.by_status == {
        "Submitted": 1}


def test_order_checks_refuse_what_tws_would() -> None:
    o = order()
    o.orderType = "LMT"
    with pytest.raises(InvalidOrder):
        check_order(o)  # no price
    o.lmtPrice = 1.003
    with pytest.raises(InvalidOrder):
        check_order(o, 0.01)
    o.lmtPrice = 1.05
    check_order(o, 0.05)
    with pytest.raises(InvalidOrder):
        check_tick(1.07, 0.05)
    o.totalQuantity = Decimal(0)
    with pytest.raises(InvalidOrder):
        check_order(o)


def test_an_older_status_never_takes_back_a_fill() -> None:
    book, trade = book_with()
    for filled in (4, 0, 2):
        book.on_status(ev.OrderStatus(5, "Submitted", Decimal(filled), Decimal(10 - filled),
                                      1.0, 1, 0, 0.0, ME, "", 0.0), 1.0)
    assert trade.filled_quantity == 4 and trade.remaining == 6


def test_a_completed_order_ends_a_live_one_but_never_fills_it() -> None:
    book, trade = book_with()
    book.on_status(ev.OrderStatus(5, "Submitted", Decimal(0), Decimal(10), 0.0, 77, 0, 0.0,
                                  ME, "", 0.0), 1.0)
    assert book.on_completed_order(77, "Filled", 2.0) == []
    assert trade.status is TradeStatus.SUBMITTED  # quantities come with the executions
    book.on_completed_order(77, "Cancelled", 3.0)
    assert trade.status is TradeStatus.CANCELLED



async def test_updates_go_on_until_every_fill_has_its_commission(
    autojump_clock: trio.testing.MockClock,
) -> None:
    book, trade = book_with()
    seen: list[tuple[str, float]] = []

    async def watch() -> None:
        async for t in trade.updates():
            seen.append((t.status.value, t.commission))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch)
        await trio.testing.wait_all_tasks_blocked()
        book.on_execution(execution("e1", shares=10), 0.0)
        book.on_status(ev.OrderStatus(5, "Filled", Decimal(10), Decimal(0), 100.0, 1, 0,
                                      100.0, ME, "", 0.0), 0.0)
        await trio.testing.wait_all_tasks_blocked()
        assert trade.is_done and trade.commissions_pending
        book.on_commission("e1", 1.0)  # after the Filled status, as TWS sends it
    assert seen[-1] == ("Filled", 1.0)
    assert not trade.commissions_pending


def _at(exec_id: str, time: str, order_id: int = 5) -> ev.ExecDetails:
    event = execution(exec_id, order_id)
    event.execution.time = time
    return event


def test_executions_are_asked_again_from_the_last_one_seen_before_the_link_dropped() -> None:
    book, _trade = book_with()
    book.on_execution(_at("e1", "20260101 10:00:00 UTC"), 0.0)
    assert book.exec_complete_until == "20260101 10:00:00 UTC"
    book.link_lost()
    # After the reconnect a later order fills live, before reconciliation has asked TWS:
    # a fill made while the link was down (or of an order whose ack was lost) can be
    # older than this one, so the window must not move past the drop.
    book.on_execution(_at("e2", "20260101 10:05:00 UTC", order_id=6), 0.0)
    assert book.exec_complete_until == "20260101 10:00:00 UTC"
    book.begin_reconciliation()
    book.finish_reconciliation(1.0)  # TWS's answers were complete: the gap is closed
    assert book.exec_complete_until == "20260101 10:05:00 UTC"
    book.on_execution(_at("e3", "20260101 10:06:00 UTC", order_id=6), 0.0)
    assert book.exec_complete_until == "20260101 10:06:00 UTC"
