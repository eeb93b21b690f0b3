"""Order faults through the fault API, the control socket and `ibkr-connector fault order`;
and order traffic that crosses connections (other clients, partial fills, global cancel)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
import trio
from ibapi.order_cancel import OrderCancel

from ibkr_connector.simulator import SimulatorConfig, TwsSimulator, open_simulator
from ibkr_connector.simulator._control import (
    ControlError,
    OrderFault,
    encode_command,
    execute,
    parse_command,
    serve_control,
)
from ibkr_connector.simulator._order_desk import OrderDesk
from ibkr_connector.simulator._orders import OrderEngine

from .order_wrapper import OrderTestClient
from .test_control import control_path, parse_cli  # noqa: F401 - the fixture
from .test_orders_engine import PinnedMarket
from .test_orders_socket import SPY, clients, connect, contract_of, is_, order  # noqa: F401
from .test_requests import encode

START = 1_750_000_000.0


@pytest.fixture
async def sim() -> AsyncIterator[TwsSimulator]:
    async with open_simulator(SimulatorConfig(start_time=START)) as simulator:
        yield simulator


@pytest.mark.parametrize("fault", [OrderFault("drop_ack"), OrderFault("delay_ack", 0.5),
                                   OrderFault("reject", reason="No trading permissions")])
def test_order_faults_round_trip_through_json(fault: OrderFault) -> None:
    assert parse_command(encode_command(fault)) == fault


@pytest.mark.parametrize(("line", "complaint"), [
    (b'{"command": "order", "action": "explode"}', "'action' must be one of"),
    (b'{"command": "order", "action": "delay_ack"}', "'seconds' must be a number"),
    (b'{"command": "order", "action": "reject", "reason": 5}', "'reason' must be a string"),
])
def test_bad_order_faults_are_explained(line: bytes, complaint: str) -> None:
    with pytest.raises(ControlError, match=complaint):
        parse_command(line)


async def test_a_delayed_ack_arrives_after_the_delay(
        sim: TwsSimulator, clients: list[OrderTestClient]) -> None:  # noqa: F811
    client, oid = await connect(sim, clients)
    answer = await execute(sim, OrderFault("delay_ack", 0.4))
    assert answer["ok"]
    stock = contract_of(sim.market.instrument(SPY))  # type: ignore[arg-type]
    sent = time.monotonic()
    await client.call(client.client.placeOrder, oid, stock, order("BUY", 1, "LMT", 100.0))
    await client.wait_for("orderStatus", is_(oid, "Submitted"))
    assert time.monotonic() - sent >= 0.35
    assert sim.orders.order(1, oid) is not None  # IB had it all along
    await execute(sim, OrderFault("delay_ack", 0.0))
    sent = time.monotonic()
    await client.call(client.client.cancelOrder, oid, OrderCancel())
    await client.wait_for("orderStatus", is_(oid, "Cancelled"))
    assert time.monotonic() - sent < 0.35


async def test_fault_order_reject_from_the_command_line(
        sim: TwsSimulator, clients: list[OrderTestClient],  # noqa: F811
        control_path: str) -> None:  # noqa: F811
    async with trio.open_nursery() as nursery:
        await nursery.start(serve_control, sim, control_path)
        args = parse_cli("fault", "--control", control_path, "order", "reject", "--reason",
                         "Not enough margin")
        assert await trio.to_thread.run_sync(args.func, args) == 0
        nursery.cancel_scope.cancel()
    client, oid = await connect(sim, clients)
    stock = contract_of(sim.market.instrument(SPY))  # type: ignore[arg-type]
    await client.call(client.client.placeOrder, oid, stock, order("BUY", 1))
    _, code, text, _ = await client.wait_for("error", lambda a: a[0] == oid)
    assert (code, text) == (201, "Order rejected - reason:Not enough margin")


async def test_partial_fills_and_other_clients_see_positions_change(
        clients: list[OrderTestClient]) -> None:  # noqa: F811
    config = SimulatorConfig(start_time=START, partial_fill_quantity=2)
    async with open_simulator(config) as sim:
        trader, oid = await connect(sim, clients, client_id=1)
        watcher, _ = await connect(sim, clients, client_id=2)
        await watcher.call(watcher.client.reqPositions)
        await watcher.wait_for("positionEnd")
        stock = contract_of(sim.market.instrument(SPY))  # type: ignore[arg-type]
        await trader.call(trader.client.placeOrder, oid, stock, order("BUY", 5))
        await trader.wait_for("orderStatus", is_(oid, "Filled"))
        fills = [args[2].shares for name, args in trader.drain() if name == "execDetails"]
        assert fills == [Decimal(2), Decimal(2), Decimal(1)]
        sizes = [(await watcher.wait_for("position"))[2] for _ in range(3)]
        assert sizes == [Decimal(2), Decimal(4), Decimal(5)]


async def test_all_open_orders_and_global_cancel_span_clients(
        sim: TwsSimulator, clients: list[OrderTestClient]) -> None:  # noqa: F811
    first, oid1 = await connect(sim, clients, client_id=1)
    second, _ = await connect(sim, clients, client_id=2)
    stock = contract_of(sim.market.instrument(SPY))  # type: ignore[arg-type]
    await first.call(first.client.placeOrder, oid1, stock, order("BUY", 1, "LMT", 100.0))
    await first.wait_for("orderStatus", is_(oid1, "Submitted"))
    await second.call(second.client.reqOpenOrders)
    await second.wait_for("openOrderEnd")
    assert not any(name == "openOrder" for name, _ in second.drain())
    await second.call(second.client.reqAllOpenOrders)
    _, _, seen, _ = await second.wait_for("openOrder")
    assert (seen.orderId, seen.clientId) == (oid1, 1)
    await second.call(second.client.cancelOrder, oid1, OrderCancel())
    await second.wait_for("error", lambda a: a[:2] == (oid1, 10147))
    await second.call(second.client.reqGlobalCancel, OrderCancel())
    await first.wait_for("orderStatus", is_(oid1, "Cancelled"))
    await first.call(first.client.reqCompletedOrders, False)
    await first.wait_for("completedOrdersEnd")
    assert [args[2].status for name, args in first.drain() if name == "completedOrder"] == [
        "Cancelled"]


def test_a_fill_never_overtakes_a_delayed_ack() -> None:
    market = PinnedMarket()
    desk = OrderDesk(OrderEngine(market, ["DU1"]), lambda now: START + now)
    desk.ack_delay = 1.0
    market.pin(SPY, 500.00, 500.02)
    _, fields = encode(200, lambda c: c.placeOrder(5, contract_of(
        market.instrument(SPY)), order("BUY", 1, "LMT", 499.0)))  # type: ignore[arg-type]
    assert desk.handle(3, fields, 1, 200, now=0.0).frames == ()
    market.pin(SPY, 498.00, 498.02)
    desk.tick(0.2)
    assert desk.due(0.5) == []
    delivered = [type(n.message).__name__ for n in desk.due(1.0)]
    assert delivered == ["OpenOrderMsg", "OrderStatusMsg", "OpenOrderMsg", "OrderStatusMsg",
                         "ExecDetailsMsg", "OpenOrderMsg", "OrderStatusMsg", "CommissionMsg"]
