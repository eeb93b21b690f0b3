"""The simulator reads order and account requests exactly as ibapi and ib_async write them."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from ib_async.client import Client as AsyncClient
from ib_async.contract import ComboLeg as AsyncComboLeg
from ib_async.contract import Contract as AsyncContract
from ib_async.objects import ExecutionFilter as AsyncExecutionFilter
from ib_async.order import LimitOrder as AsyncLimitOrder
from ib_async.order import MarketOrder as AsyncMarketOrder
from ib_async.wrapper import Wrapper as AsyncWrapper
from ibapi.contract import ComboLeg, Contract
from ibapi.execution import ExecutionFilter
from ibapi.order import Order
from ibapi.order_cancel import OrderCancel
from ibapi.tag_value import TagValue

from ibkr_connector.simulator._order_wire import (
    parse_account_summary,
    parse_account_updates,
    parse_account_updates_multi,
    parse_cancel_order,
    parse_executions_request,
    parse_place_order,
)
from ibkr_connector.simulator._requests import (
    ComboLegSpec,
    ContractSpec,
    RequestFieldError,
    parse_req_contract_details,
    parse_req_mkt_data,
    parse_req_tick_by_tick,
)

from .test_requests import encode

IBAPI_VERSIONS = [157, 176, 178, 187, 192, 200]


def option() -> Contract:
    c = Contract()
    c.conId, c.symbol, c.secType = 1002, "SPY", "OPT"
    c.lastTradeDateOrContractMonth, c.strike, c.right, c.multiplier = "20250620", 500.0, "C", "100"
    c.exchange, c.currency, c.tradingClass = "SMART", "USD", "SPY"
    return c


def stock() -> Contract:
    c = Contract()
    c.symbol, c.secType, c.exchange, c.currency = "SPY", "STK", "SMART", "USD"
    return c


def vertical() -> Contract:
    c = Contract()
    c.symbol, c.secType, c.exchange, c.currency = "SPY", "BAG", "SMART", "USD"
    legs = []
    for con_id, action in ((111, "BUY"), (222, "SELL")):
        leg = ComboLeg()
        leg.conId, leg.ratio, leg.action, leg.exchange = con_id, 1, action, "SMART"
        legs.append(leg)
    c.comboLegs = legs
    return c


def lmt(action: str, qty: float, price: float) -> Order:
    o = Order()
    o.action, o.totalQuantity, o.orderType, o.lmtPrice = action, Decimal(qty), "LMT", price
    return o


@pytest.mark.parametrize("version", IBAPI_VERSIONS)
def test_a_stock_limit_order_is_read_at_every_version(version: int) -> None:
    msg_id, fields = encode(version, lambda c: c.placeOrder(10, stock(), lmt("BUY", 100, 501.25)))
    request = parse_place_order(fields, version)
    assert msg_id == 3
    assert (request.order_id, request.contract.symbol, request.contract.sec_type) == (
        10, "SPY", "STK")
    assert (request.action, request.total_quantity, request.order_type) == (
        "BUY", Decimal(100), "LMT")
    assert request.lmt_price == 501.25 and request.aux_price is None
    assert request.transmit and not request.what_if


@pytest.mark.parametrize("version", IBAPI_VERSIONS)
def test_a_what_if_option_market_order_is_read(version: int) -> None:
    order = Order()
    order.action, order.totalQuantity, order.orderType, order.whatIf = "SELL", 1, "MKT", True
    _, fields = encode(version, lambda c: c.placeOrder(12, option(), order))
    request = parse_place_order(fields, version)
    assert request.contract.con_id == 1002 and request.contract.strike == 500.0
    assert request.contract.right == "C" and request.contract.expiry == "20250620"
    assert request.what_if and request.lmt_price is None


@pytest.mark.parametrize("version", IBAPI_VERSIONS)
def test_a_bag_with_leg_prices_and_routing_params_is_read(version: int) -> None:
    order = lmt("BUY", 2, 1.05)
    order.smartComboRoutingParams = [TagValue("NonGuaranteed", "1")]
    _, fields = encode(version, lambda c: c.placeOrder(11, vertical(), order))
    request = parse_place_order(fields, version)
    assert request.contract.combo_legs == (ComboLegSpec(111, 1, "BUY", "SMART", 0),
                                           ComboLegSpec(222, 1, "SELL", "SMART", 0))
    assert request.smart_combo_routing == (("NonGuaranteed", "1"),)
    assert request.lmt_price == 1.05 and not request.what_if


def test_optional_blocks_before_what_if_are_skipped() -> None:
    order = lmt("BUY", 1, 2.0)
    order.algoStrategy, order.algoParams = "Adaptive", [TagValue("adaptivePriority", "Normal")]
    order.hedgeType, order.hedgeParam = "D", "0.5"
    order.whatIf = True
    _, fields = encode(200, lambda c: c.placeOrder(13, option(), order))
    assert parse_place_order(fields, 200).what_if


def _async_fields(version: int, call: Callable[[AsyncClient], Any]) -> tuple[str, ...]:
    client = AsyncClient(AsyncWrapper(None))  # type: ignore[arg-type]
    sent: list[str] = []
    client.connState = AsyncClient.CONNECTED
    client._serverVersion = version
    client.sendMsg = sent.append  # type: ignore[method-assign]
    call(client)
    (message,) = sent
    return tuple(message.split("\0")[1:-1])


def test_ib_async_orders_are_read_at_178() -> None:
    contract = AsyncContract(conId=756733, symbol="SPY", secType="STK", exchange="SMART",
                             currency="USD")
    fields = _async_fields(178, lambda c: c.placeOrder(6, contract, AsyncLimitOrder(
        "BUY", 100, 501.25)))
    request = parse_place_order(fields, 178)
    assert (request.order_id, request.contract.con_id, request.lmt_price) == (6, 756733, 501.25)
    bag = AsyncContract(symbol="SPY", secType="BAG", exchange="SMART", currency="USD",
                        comboLegs=[AsyncComboLeg(111, 1, "BUY", "SMART"),
                                   AsyncComboLeg(222, 1, "SELL", "SMART")])
    what_if = AsyncMarketOrder("SELL", 1, whatIf=True)
    fields = _async_fields(178, lambda c: c.placeOrder(7, bag, what_if))
    request = parse_place_order(fields, 178)
    assert [leg.con_id for leg in request.contract.combo_legs] == [111, 222]
    assert request.what_if and request.total_quantity == Decimal(1)


#: What ``option()`` is, read off any request: the same record whichever request carries it.
OPTION_SPEC = ContractSpec(1002, "SPY", "OPT", "20250620", 500.0, "C", "100", "SMART", "",
                           "USD", "", "SPY")
STOCK_SPEC = ContractSpec(0, "SPY", "STK", exchange="SMART", currency="USD")


@pytest.mark.parametrize("version", IBAPI_VERSIONS)
@pytest.mark.parametrize(("contract", "expected"), [(option, OPTION_SPEC),
                                                    (stock, STOCK_SPEC)])
def test_every_request_carrying_a_contract_reads_it_the_same_way(
        version: int, contract: Callable[[], Contract], expected: ContractSpec) -> None:
    mkt = encode(version, lambda c: c.reqMktData(1, contract(), "", False, False, []))[1]
    details = encode(version, lambda c: c.reqContractDetails(2, contract()))[1]
    ticks = encode(version, lambda c: c.reqTickByTickData(3, contract(), "BidAsk", 0, False))[1]
    order = encode(version, lambda c: c.placeOrder(4, contract(), lmt("BUY", 1, 1.5)))[1]
    assert [parse_req_mkt_data(mkt).contract, parse_req_contract_details(details).contract,
            parse_req_tick_by_tick(ticks).contract,
            parse_place_order(order, version).contract] == [expected] * 4


def test_ib_async_contracts_read_the_same_in_market_data_and_orders() -> None:
    """ib_async writes a stock's strike as ``0.0`` and unset numbers as ``""``."""
    contract = AsyncContract(conId=756733, symbol="SPY", secType="STK", exchange="SMART",
                             currency="USD")
    mkt = _async_fields(178, lambda c: c.reqMktData(1, contract, "", False, False, []))
    order = _async_fields(178, lambda c: c.placeOrder(2, contract, AsyncLimitOrder(
        "BUY", 1, 1.5)))
    expected = ContractSpec(756733, "SPY", "STK", exchange="SMART", currency="USD")
    assert parse_req_mkt_data(mkt).contract == expected
    assert parse_place_order(order, 178).contract == expected


@pytest.mark.parametrize("version", IBAPI_VERSIONS)
def test_cancel_order_is_read_at_every_version(version: int) -> None:
    _, fields = encode(version, lambda c: c.cancelOrder(42, OrderCancel()))
    assert parse_cancel_order(fields, version).order_id == 42


def test_ib_async_cancel_order_is_read() -> None:
    fields = _async_fields(178, lambda c: c.cancelOrder(42, ""))
    assert parse_cancel_order(fields, 178).order_id == 42


@pytest.mark.parametrize("version", [157, 178, 200])
def test_execution_filter_is_read(version: int) -> None:
    flt = ExecutionFilter()
    flt.clientId, flt.symbol, flt.side = 7, "SPY", "BUY"
    _, fields = encode(version, lambda c: c.reqExecutions(5001, flt))
    request = parse_executions_request(fields, version)
    assert request.req_id == 5001
    assert (request.filter.client_id, request.filter.symbol, request.filter.side) == (
        7, "SPY", "BUY")


def test_ib_async_execution_request_is_read() -> None:
    fields = _async_fields(178, lambda c: c.reqExecutions(2, AsyncExecutionFilter()))
    assert parse_executions_request(fields, 178).req_id == 2


def test_account_requests_are_read() -> None:
    _, fields = encode(200, lambda c: c.reqAccountUpdates(True, "DU1"))
    assert (parse_account_updates(fields).subscribe, parse_account_updates(fields).account) == (
        True, "DU1")
    _, fields = encode(200, lambda c: c.reqAccountSummary(9, "All", "NetLiquidation,BuyingPower"))
    summary = parse_account_summary(fields)
    assert (summary.req_id, summary.tags) == (9, ("NetLiquidation", "BuyingPower"))
    _, fields = encode(200, lambda c: c.reqAccountUpdatesMulti(3, "DU1", "", True))
    assert parse_account_updates_multi(fields).req_id == 3


def test_a_truncated_place_order_is_a_field_error() -> None:
    _, fields = encode(200, lambda c: c.placeOrder(10, stock(), lmt("BUY", 1, 1.0)))
    with pytest.raises(RequestFieldError):
        parse_place_order(fields[:40], 200)
