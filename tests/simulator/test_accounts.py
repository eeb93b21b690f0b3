"""Simulated accounts: the ledger (plain values) and the account requests over sockets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from ibkr_connector.simulator import SimulatorConfig, TwsSimulator, open_simulator
from ibkr_connector.simulator._accounts import Ledger, margin_requirement
from ibkr_connector.simulator._order_types import ErrorMsg
from ibkr_connector.simulator._order_wire import PlaceOrder
from ibkr_connector.simulator._orders import OrderEngine
from ibkr_connector.simulator._requests import ContractSpec

from .order_wrapper import OrderTestClient
from .test_orders_engine import PinnedMarket
from .test_orders_socket import SPY, clients, connect, contract_of, is_, order  # noqa: F401

STOCK = ContractSpec(SPY, "SPY", "STK")
OPTION = ContractSpec(700000001, "SPY", "OPT", "20250620", 500.0, "C", "100")


def test_opening_averages_cost_with_commission_and_closing_realizes_pnl() -> None:
    ledger = Ledger(["DU1"], 10_000.0)
    ledger.apply("DU1", STOCK, 1.0, True, Decimal(10), 100.0, 1.0)
    ledger.apply("DU1", STOCK, 1.0, True, Decimal(10), 110.0, 1.0)
    holding = ledger.holding("DU1", SPY)
    assert holding is not None and holding.avg_cost == pytest.approx(105.1)
    _, realized = ledger.apply("DU1", STOCK, 1.0, False, Decimal(5), 120.0, 1.0)
    assert realized == pytest.approx(5 * (120.0 - 105.1) - 1.0)
    assert holding.quantity == 15 and holding.avg_cost == pytest.approx(105.1)
    assert ledger.cash("DU1") == pytest.approx(10_000.0 - 1000 - 1100 + 600 - 3.0)


def test_a_sale_beyond_the_position_flips_it_at_the_sale_price() -> None:
    ledger = Ledger(["DU1"], 10_000.0)
    ledger.apply("DU1", OPTION, 100.0, True, Decimal(1), 2.0, 0.65)
    holding, realized = ledger.apply("DU1", OPTION, 100.0, False, Decimal(3), 2.5, 1.95)
    assert holding.quantity == -2 and holding.avg_cost == 250.0
    assert realized == pytest.approx(250.0 - 200.65 - 1.95)


def test_account_values_mark_positions_to_the_market() -> None:
    ledger = Ledger(["DU1"], 10_000.0)
    ledger.apply("DU1", OPTION, 100.0, False, Decimal(2), 3.0, 0.0)
    values = ledger.values("DU1", lambda con_id: 4.0)
    assert values["TotalCashValue"] == 10_600.0
    assert values["GrossPositionValue"] == 800.0
    assert values["NetLiquidation"] == 9_800.0
    assert values["UnrealizedPnL"] == -200.0
    assert values["InitMarginReq"] == margin_requirement("OPT", -2, 4.0, 100.0) == 800.0
    assert values["AvailableFunds"] == 9_000.0


@pytest.fixture
async def sim() -> AsyncIterator[TwsSimulator]:
    async with open_simulator(SimulatorConfig(start_time=1_750_000_000.0,
                                              accounts=("DU1", "DU2"))) as simulator:
        yield simulator


async def test_account_updates_push_the_portfolio_after_a_fill_until_unsubscribed(
        sim: TwsSimulator, clients: list[OrderTestClient]) -> None:  # noqa: F811
    client, oid = await connect(sim, clients)
    await client.call(client.client.reqAccountUpdates, True, "DU1")
    assert await client.wait_for("accountDownloadEnd") == ("DU1",)
    updates = client.drain()
    assert [args[0] for name, args in updates if name == "updateAccountValue"][:3] == [
        "AccountCode", "NetLiquidation", "TotalCashValue"]
    assert any(name == "updateAccountTime" for name, _ in updates)
    stock = contract_of(sim.market.instrument(SPY))  # type: ignore[arg-type]
    await client.call(client.client.placeOrder, oid, stock, order("BUY", 10))
    contract, position, price, value, avg_cost, *_, account = await client.wait_for(
        "updatePortfolio")
    assert (contract.conId, position, account) == (SPY, Decimal(10), "DU1")
    assert value == pytest.approx(10 * price, abs=0.01) and avg_cost > 0
    await client.call(client.client.reqAccountUpdates, False, "DU1")
    await client.call(client.client.placeOrder, oid + 1, stock, order("SELL", 10))
    await client.wait_for("orderStatus", is_(oid + 1, "Filled"))
    assert not any(name == "updatePortfolio" for name, _ in client.drain())


async def test_summary_and_multi_updates_cover_every_account(
        sim: TwsSimulator, clients: list[OrderTestClient]) -> None:  # noqa: F811
    client, _ = await connect(sim, clients)
    await client.call(client.client.reqAccountSummary, 4, "All",
                      "AccountType,NetLiquidation,NoSuchTag")
    await client.wait_for("accountSummaryEnd")
    rows = [args[1:4] for name, args in client.drain() if name == "accountSummary"]
    assert rows == [("DU1", "AccountType", "INDIVIDUAL"), ("DU1", "NetLiquidation", "1000000.00"),
                    ("DU2", "AccountType", "INDIVIDUAL"), ("DU2", "NetLiquidation", "1000000.00")]
    await client.call(client.client.reqAccountUpdatesMulti, 5, "DU2", "", True)
    assert await client.wait_for("accountUpdateMultiEnd") == (5,)
    accounts = {args[1] for name, args in client.drain() if name == "accountUpdateMulti"}
    assert accounts == {"DU2"}


def test_an_order_goes_to_the_account_it_names_and_an_index_is_not_tradable(
        ) -> None:


    engine = OrderEngine(PinnedMarket(), ["DU1", "DU2"])
    engine.place(1, PlaceOrder(1, STOCK, "BUY", Decimal(1), "MKT", None, None,
                               account="DU2"), 1_750_000_000.0)
    assert engine.ledger.holding("DU2", SPY) is not None
    assert engine.ledger.holding("DU1", SPY) is None
    notices = engine.place(1, PlaceOrder(2, ContractSpec(416904, "SPX", "IND"), "BUY",
                                         Decimal(1), "MKT", None, None), 1_750_000_000.0)
    errors = [n.message for n in notices if isinstance(n.message, ErrorMsg)]
    assert [e.code for e in errors] == [201] and "not tradable" in errors[0].text
    view = engine.order(1, 2)
    assert view is not None and view.status == "Inactive"
