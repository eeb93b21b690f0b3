"""The simulator reads requests exactly as the unmodified EClient writes them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from ibapi.client import EClient
from ibapi.contract import ComboLeg, Contract, DeltaNeutralContract
from ibapi.execution import ExecutionFilter
from ibapi.order import Order
from ibapi.order_cancel import OrderCancel
from ibapi.scanner import ScannerSubscription
from ibapi.wrapper import EWrapper

from ibkr_connector.simulator._requests import (
    KNOWN_REQUESTS,
    parse_req_mkt_data,
    request_id_of,
)

RID = 4242
VERSIONS = [176, 187, 200]


class _Capture:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def isConnected(self) -> bool:
        return True

    def sendMsg(self, data: bytes) -> int:
        self.sent.append(data)
        return len(data)


def encode(version: int, call: Callable[[EClient], Any]) -> tuple[int, tuple[str, ...]]:
    """Message id and fields of the one message ``call`` makes EClient write."""
    client = EClient(EWrapper())
    client.conn = _Capture()
    client.connState = EClient.CONNECTED
    client.serverVersion_ = version
    client.clientId = 0
    call(client)
    (data,) = client.conn.sent
    fields = data[4:].decode().split("\0")[:-1]
    return int(fields[0]), tuple(fields[1:])


def stock() -> Contract:
    contract = Contract()
    contract.symbol, contract.secType = "SPY", "STK"
    contract.exchange, contract.currency = "SMART", "USD"
    return contract


def order() -> Order:
    o = Order()
    o.action, o.totalQuantity, o.orderType = "BUY", 1, "MKT"
    return o


WITH_ID: dict[str, Callable[[EClient], Any]] = {
    "reqMktData": lambda c: c.reqMktData(RID, stock(), "", False, False, []),
    "cancelMktData": lambda c: c.cancelMktData(RID),
    "placeOrder": lambda c: c.placeOrder(RID, stock(), order()),
    "cancelOrder": lambda c: c.cancelOrder(RID, OrderCancel()),
    "reqContractDetails": lambda c: c.reqContractDetails(RID, stock()),
    "reqMktDepth": lambda c: c.reqMktDepth(RID, stock(), 5, False, []),
    "cancelMktDepth": lambda c: c.cancelMktDepth(RID, False),
    "reqHistoricalData": lambda c: c.reqHistoricalData(
        RID, stock(), "", "1 D", "1 min", "TRADES", 1, 1, False, []),
    "cancelHistoricalData": lambda c: c.cancelHistoricalData(RID),
    "reqSecDefOptParams": lambda c: c.reqSecDefOptParams(RID, "SPY", "", "STK", 756733),
    "reqTickByTickData": lambda c: c.reqTickByTickData(RID, stock(), "Last", 0, False),
    "cancelTickByTickData": lambda c: c.cancelTickByTickData(RID),
    "reqAccountSummary": lambda c: c.reqAccountSummary(RID, "All", "NetLiquidation"),
    "cancelAccountSummary": lambda c: c.cancelAccountSummary(RID),
    "reqPositionsMulti": lambda c: c.reqPositionsMulti(RID, "DU1", ""),
    "reqExecutions": lambda c: c.reqExecutions(RID, ExecutionFilter()),
    "reqRealTimeBars": lambda c: c.reqRealTimeBars(RID, stock(), 5, "TRADES", True, []),
    "reqHeadTimeStamp": lambda c: c.reqHeadTimeStamp(RID, stock(), "TRADES", 1, 1),
    "reqPnL": lambda c: c.reqPnL(RID, "DU1", ""),
    "reqMatchingSymbols": lambda c: c.reqMatchingSymbols(RID, "SP"),
    "calculateImpliedVolatility": lambda c: c.calculateImpliedVolatility(
        RID, stock(), 1.0, 100.0, []),
    "reqScannerSubscription": lambda c: c.reqScannerSubscription(
        RID, ScannerSubscription(), [], []),
    "exerciseOptions": lambda c: c.exerciseOptions(RID, stock(), 1, 1, "DU1", 0, "", "", False),
}

WITHOUT_ID: dict[str, Callable[[EClient], Any]] = {
    "reqCurrentTime": lambda c: c.reqCurrentTime(),
    "reqIds": lambda c: c.reqIds(7),
    "reqPositions": lambda c: c.reqPositions(),
    "reqOpenOrders": lambda c: c.reqOpenOrders(),
    "reqAccountUpdates": lambda c: c.reqAccountUpdates(True, "DU1"),
    "reqMarketDataType": lambda c: c.reqMarketDataType(3),
    "reqGlobalCancel": lambda c: c.reqGlobalCancel(OrderCancel()),
}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", sorted(WITH_ID))
def test_request_id_is_found_where_eclient_writes_it(name: str, version: int) -> None:
    msg_id, fields = encode(version, WITH_ID[name])
    assert msg_id in KNOWN_REQUESTS
    assert request_id_of(msg_id, fields, version) == RID


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", sorted(WITHOUT_ID))
def test_requests_without_an_id_report_minus_one(name: str, version: int) -> None:
    msg_id, fields = encode(version, WITHOUT_ID[name])
    assert msg_id in KNOWN_REQUESTS
    assert request_id_of(msg_id, fields, version) == -1


def test_unreadable_request_id_reports_minus_one() -> None:
    assert request_id_of(2, ("2", "x"), 200) == -1
    assert request_id_of(2, ("2",), 200) == -1


def _bag() -> Contract:
    contract = stock()
    contract.secType = "BAG"
    for conid, action in ((111, "BUY"), (222, "SELL")):
        leg = ComboLeg()
        leg.conId, leg.ratio, leg.action, leg.exchange = conid, 1, action, "SMART"
        contract.comboLegs.append(leg)
    return contract


def _delta_neutral() -> Contract:
    contract = stock()
    contract.deltaNeutralContract = DeltaNeutralContract()
    contract.deltaNeutralContract.conId = 9
    return contract


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("contract", "ticks", "snapshot"), [
    (stock(), "", False), (stock(), "100,101,106", True), (_bag(), "233", False),
    (_delta_neutral(), "", True)])
def test_req_mkt_data_is_parsed_as_eclient_writes_it(version: int, contract: Contract,
                                                     ticks: str, snapshot: bool) -> None:
    msg_id, fields = encode(version, lambda c: c.reqMktData(RID, contract, ticks, snapshot,
                                                              False, []))
    assert msg_id == 1
    request = parse_req_mkt_data(fields)
    assert (request.req_id, request.symbol, request.sec_type, request.generic_ticks,
            request.snapshot) == (RID, "SPY", contract.secType, ticks, snapshot)
