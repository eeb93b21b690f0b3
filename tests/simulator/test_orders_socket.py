"""Orders over real sockets, driven by the unmodified ibapi EClient (sv 200)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
import trio
from ibapi.contract import ComboLeg, Contract
from ibapi.execution import ExecutionFilter
from ibapi.order import Order
from ibapi.order_cancel import OrderCancel

from ibkr_connector.simulator import SimulatorConfig, TwsSimulator, open_simulator
from ibkr_connector.simulator._market import Instrument

from .order_wrapper import OrderTestClient

SPY = 756733


@pytest.fixture
async def sim() -> AsyncIterator[TwsSimulator]:
    async with open_simulator(SimulatorConfig(start_time=1_750_000_000.0)) as simulator:
        yield simulator


async def connect(sim: TwsSimulator, made: list[OrderTestClient],
                  client_id: int = 1) -> tuple[OrderTestClient, int]:
    client = OrderTestClient()
    made.append(client)
    await client.connect(sim.port, client_id)
    (next_id,) = await client.wait_for("nextValidId")
    return client, next_id


@pytest.fixture
async def clients() -> AsyncIterator[list[OrderTestClient]]:
    made: list[OrderTestClient] = []
    yield made
    for client in made:
        await client.close()


def contract_of(inst: Instrument) -> Contract:
    c = Contract()
    c.conId, c.symbol, c.secType, c.exchange, c.currency = (
        inst.con_id, inst.symbol, inst.sec_type, "SMART", "USD")
    return c


def order(action: str, qty: int, order_type: str = "MKT", price: float | None = None,
          what_if: bool = False) -> Order:
    o = Order()
    o.action, o.totalQuantity, o.orderType, o.whatIf = action, Decimal(qty), order_type, what_if
    if price is not None:
        o.lmtPrice = price
    return o


def option_pair(sim: TwsSimulator) -> tuple[Instrument, Instrument]:
    expiry = sim.market.chains("SPY")[0].expiries[0]
    spot = round(sim.market.spot(SPY))
    return tuple(sim.market.match(symbol="SPY", sec_type="OPT", expiry=expiry, strike=k,
                                  right="C")[0] for k in (spot, spot + 5))  # type: ignore[return-value]


def is_(order_id: int, status: str | None = None) -> Any:
    return lambda args: args[0] == order_id and (status is None or args[1] == status)


@pytest.mark.parametrize("version", [200, 178, 157])
async def test_a_stock_limit_order_through_the_ask_fills_with_commission(
        version: int, clients: list[OrderTestClient]) -> None:
    config = SimulatorConfig(start_time=1_750_000_000.0, server_version=version)
    async with open_simulator(config) as sim:
        await _stock_order_fills(sim, clients)


async def _stock_order_fills(sim: TwsSimulator, clients: list[OrderTestClient]) -> None:
    client, oid = await connect(sim, clients)
    price = round(sim.market.quote(SPY).ask + 1.0, 2)
    stock = contract_of(sim.market.instrument(SPY))  # type: ignore[arg-type]
    await client.call(client.client.placeOrder, oid, stock, order("BUY", 100, "LMT", price))
    _, contract, placed, state = await client.wait_for("openOrder")
    assert (contract.conId, placed.clientId, state.status) == (SPY, 1, "PreSubmitted")
    await client.wait_for("orderStatus", is_(oid, "Submitted"))
    _, _, execution = await client.wait_for("execDetails")
    filled = await client.wait_for("orderStatus", is_(oid, "Filled"))
    (report,) = await client.wait_for("commissionAndFeesReport")
    assert execution.orderId == oid and execution.shares == Decimal(100)
    assert execution.permId == placed.permId and execution.price <= price
    assert filled[2:4] == (Decimal(100), Decimal(0)) and filled[4] == execution.price
    assert report.execId == execution.execId and report.commissionAndFees == 1.0


async def test_an_option_market_order_and_a_vertical_spread_fill_with_per_leg_executions(
        sim: TwsSimulator, clients: list[OrderTestClient]) -> None:
    client, oid = await connect(sim, clients)
    long, short = option_pair(sim)
    await client.call(client.client.placeOrder, oid, contract_of(long), order("BUY", 1))
    await client.wait_for("orderStatus", is_(oid, "Filled"))
    bag = Contract()
    bag.symbol, bag.secType, bag.exchange, bag.currency = "SPY", "BAG", "SMART", "USD"
    bag.comboLegs = []
    for inst, action in ((long, "BUY"), (short, "SELL")):
        leg = ComboLeg()
        leg.conId, leg.ratio, leg.action, leg.exchange = inst.con_id, 1, action, "SMART"
        bag.comboLegs.append(leg)
    net = sim.market.quote(long.con_id).ask - sim.market.quote(short.con_id).bid
    await client.call(client.client.placeOrder, oid + 1, bag,
                      order("BUY", 2, "LMT", round(net + 0.5, 2)))
    _, status, *_ = await client.wait_for("orderStatus", is_(oid + 1, "Filled"))
    executions = [await client.wait_for("execDetails", lambda a: a[2].orderId == oid + 1)
                  for _ in range(3)]
    legs = {c.conId: (e.side, e.shares) for _, c, e in executions}
    assert legs[long.con_id] == ("BOT", Decimal(2)) and legs[short.con_id] == ("SLD", Decimal(2))
    assert {c.secType for _, c, _ in executions} == {"OPT", "BAG"}
    await client.call(client.client.reqPositions)
    await client.wait_for("positionEnd")
    positions = {args[1].conId: args[2] for name, args in client.drain() if name == "position"}
    assert positions == {long.con_id: Decimal(3), short.con_id: Decimal(-2)}


async def test_cancel_modify_and_what_if(sim: TwsSimulator,
                                         clients: list[OrderTestClient]) -> None:
    client, oid = await connect(sim, clients)
    stock = contract_of(sim.market.instrument(SPY))  # type: ignore[arg-type]
    await client.call(client.client.placeOrder, oid, stock, order("BUY", 10, "LMT", 100.0))
    await client.wait_for("orderStatus", is_(oid, "Submitted"))
    await client.call(client.client.placeOrder, oid, stock, order("BUY", 20, "LMT", 101.0))
    _, _, modified, _ = await client.wait_for("openOrder",
                                              lambda a: a[2].lmtPrice == 101.0)
    assert modified.totalQuantity == Decimal(20)
    await client.call(client.client.cancelOrder, oid, OrderCancel())
    await client.wait_for("orderStatus", is_(oid, "Cancelled"))
    await client.wait_for("error", lambda a: a[:2] == (oid, 202))
    await client.call(client.client.cancelOrder, oid + 50, OrderCancel())
    await client.wait_for("error", lambda a: a[:2] == (oid + 50, 10147))
    await client.call(client.client.placeOrder, oid + 1, stock, order("SELL", 10, what_if=True))
    _, _, preview, state = await client.wait_for("openOrder", lambda a: a[0] == oid + 1)
    assert preview.whatIf and float(state.initMarginChange) > 0
    assert state.commissionAndFees == 1.0
    await client.call(client.client.placeOrder, oid + 1, stock, order("BUY", 1, "LMT", 1.001))
    await client.wait_for("error", lambda a: a[:2] == (oid + 1, 103))
    assert not any(name == "orderStatus" and args[0] == oid + 1 for name, args in client.drain())
    assert sim.orders.order(1, oid + 1) is None


async def test_orders_survive_a_reconnect_and_a_restart(sim: TwsSimulator,
                                                        clients: list[OrderTestClient]) -> None:
    client, oid = await connect(sim, clients, client_id=3)
    stock = contract_of(sim.market.instrument(SPY))  # type: ignore[arg-type]
    await client.call(client.client.placeOrder, oid, stock, order("BUY", 10, "LMT", 100.0))
    await client.wait_for("orderStatus", is_(oid, "Submitted"))
    await client.close()
    await sim.refuse_for(0.2)
    await sim.wait_for_clients(0)
    while not sim.listening:  # the simulated TWS restarts after 0.2 s
        await trio.sleep(0.05)
    again, next_id = await connect(sim, clients, client_id=3)
    assert next_id == oid + 1
    _, _, pushed, state = await again.wait_for("openOrder")
    assert (pushed.orderId, pushed.clientId, state.status) == (oid, 3, "Submitted")
    await again.call(again.client.cancelOrder, oid, OrderCancel())
    await again.wait_for("orderStatus", is_(oid, "Cancelled"))


async def test_a_dropped_ack_leaves_the_order_at_ib_for_reconciliation(
        sim: TwsSimulator, clients: list[OrderTestClient]) -> None:
    client, oid = await connect(sim, clients, client_id=4)
    sim.drop_next_order_ack()
    stock = contract_of(sim.market.instrument(SPY))  # type: ignore[arg-type]
    await client.call(client.client.placeOrder, oid, stock, order("BUY", 5))
    await client.wait_for("connectionClosed")
    assert not any(name in ("openOrder", "orderStatus") for name, _ in client.drain())
    await client.close()
    await sim.wait_for_clients(0)
    again, next_id = await connect(sim, clients, client_id=4)
    assert next_id == oid + 1
    await again.call(again.client.reqExecutions, 7, ExecutionFilter())
    _, _, execution = await again.wait_for("execDetails")
    await again.wait_for("execDetailsEnd")
    assert (execution.orderId, execution.shares) == (oid, Decimal(5))


async def test_an_injected_rejection_is_201_then_inactive(
        sim: TwsSimulator, clients: list[OrderTestClient]) -> None:
    client, oid = await connect(sim, clients)
    sim.reject_next_order()
    stock = contract_of(sim.market.instrument(SPY))  # type: ignore[arg-type]
    await client.call(client.client.placeOrder, oid, stock, order("BUY", 5))
    _, code, text, _ = await client.wait_for("error", lambda a: a[0] == oid)
    assert code == 201 and text.endswith("Riskless combination orders are not allowed")
    await client.wait_for("orderStatus", is_(oid, "Inactive"))


async def test_account_updates_and_summary_complete(sim: TwsSimulator,
                                                    clients: list[OrderTestClient]) -> None:
    client, _ = await connect(sim, clients)
    await client.call(client.client.reqAccountUpdates, True, "")
    (account,) = await client.wait_for("accountDownloadEnd")
    values = {args[0]: args[1] for name, args in client.drain() if name == "updateAccountValue"}
    assert account == "DU1234567" and float(values["NetLiquidation"]) == 1_000_000.0
    await client.call(client.client.reqAccountSummary, 9, "All", "NetLiquidation,BuyingPower")
    await client.wait_for("accountSummaryEnd")
    tags = [args[2] for name, args in client.drain() if name == "accountSummary"]
    assert tags == ["NetLiquidation", "BuyingPower"]
