"""Order, execution, position and account frames decode in ibapi and ib_async alike."""

from __future__ import annotations

import datetime
import logging
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from ib_async.decoder import Decoder as AsyncDecoder
from ibapi import comm

from ibkr_connector.simulator._order_messages import encode_message
from ibkr_connector.simulator._order_types import (
    AccountSummaryMsg,
    AccountUpdateMultiEndMsg,
    AccountUpdateMultiMsg,
    AccountValueMsg,
    CommissionMsg,
    CompletedOrderMsg,
    ExecDetailsMsg,
    Fill,
    MarginImpact,
    Message,
    OpenOrderMsg,
    OrderStatusMsg,
    OrderView,
    PortfolioMsg,
    PositionMsg,
)
from ibkr_connector.simulator._order_wire import PlaceOrder
from ibkr_connector.simulator._requests import ComboLegSpec, ContractSpec

from .order_wrapper import decode_exactly

IBAPI_VERSIONS = [157, 158, 170, 176, 178, 187, 193, 195, 200]
ASYNC_VERSIONS = [157, 170, 176, 178]

OPTION = ContractSpec(700000010, "SPY", "OPT", "20250620", 500.0, "C", "100", "SMART", "",
                      "USD", "SPY   250620C00500000", "SPY")
BAG = ContractSpec(28812380, "SPY", "BAG", exchange="SMART", currency="USD",
                   combo_legs=(ComboLegSpec(111, 1, "BUY", "SMART"),
                               ComboLegSpec(222, 1, "SELL", "SMART")))


def view(contract: ContractSpec, status: str = "Submitted", **terms: Any) -> OrderView:
    request = PlaceOrder(order_id=7, contract=contract, action="BUY",
                         total_quantity=Decimal(2), order_type="LMT", lmt_price=1.05,
                         aux_price=None, **terms)
    return OrderView(3, 7, 1000000123, "DU1", contract, request, status, Decimal(1),
                     Decimal(1), 1.04, 1.04, "20250101 10:00:00 UTC", status)


IMPACT = MarginImpact(1000.0, 800.0, 100000.0, 500.0, 400.0, -1.3, 1500.0, 1200.0,
                      99998.7, 1.3, 1.3, 1.3)
FILL = Fill("0000e0d5.00000001.01.01", 7, 3, 1000000123, OPTION, "20250101 10:00:00 UTC",
            "DU1", "BOT", Decimal(1), 1.04, Decimal(1), 1.04, "ref", 0.65)


def frame_fields(data: bytes) -> list[str]:
    _, text, rest = comm.read_msg(data)
    assert not rest
    return [f.decode() for f in comm.read_fields(text)]


@pytest.mark.parametrize("version", IBAPI_VERSIONS)
def test_open_orders_decode_in_ibapi_with_every_field_read(version: int) -> None:
    for order in (view(OPTION), view(BAG, leg_prices=(1.0, None),
                                     smart_combo_routing=(("NonGuaranteed", "1"),))):
        [(name, args)] = decode_exactly(encode_message(OpenOrderMsg(order), version, 0),
                                        version)
        order_id, contract, decoded, state = args
        assert name == "openOrder" and order_id == 7
        assert (decoded.clientId, decoded.permId, decoded.lmtPrice) == (3, 1000000123, 1.05)
        assert (state.status, decoded.whatIf) == ("Submitted", False)
        assert contract.secType == order.contract.sec_type
    assert [leg.conId for leg in contract.comboLegs] == [111, 222]
    assert decoded.smartComboRoutingParams[0].tag == "NonGuaranteed"


@pytest.mark.parametrize("version", IBAPI_VERSIONS)
def test_a_what_if_answer_carries_margins_and_commission(version: int) -> None:
    data = encode_message(OpenOrderMsg(view(OPTION, "PreSubmitted", what_if=True), IMPACT),
                          version, 0)
    [(_, (_, _, order, state))] = decode_exactly(data, version)
    assert order.whatIf and state.status == "PreSubmitted"
    assert float(state.initMarginChange) == 500.0 and float(state.initMarginAfter) == 1500.0
    assert state.commissionAndFees == 1.3


@pytest.mark.parametrize("version", IBAPI_VERSIONS)
def test_statuses_fills_and_positions_decode_in_ibapi(version: int) -> None:
    messages: list[Message] = [
        OrderStatusMsg(view(OPTION)), ExecDetailsMsg(-1, FILL), CommissionMsg(FILL),
        CompletedOrderMsg(view(BAG, "Filled")), PositionMsg("DU1", OPTION, Decimal(-2), 104.0),
        PortfolioMsg(OPTION, Decimal(-2), 1.1, -220.0, 104.0, -12.0, 0.0, "DU1"),
        AccountValueMsg("NetLiquidation", "100000.00", "USD", "DU1"),
        AccountSummaryMsg(9, "DU1", "BuyingPower", "4000.00", "USD"),
        AccountUpdateMultiMsg(4, "DU1", "", "NetLiquidation", "1.00", "USD"),
        AccountUpdateMultiEndMsg(4),
    ]
    data = b"".join(encode_message(m, version, 0) for m in messages)
    calls = dict(decode_exactly(data, version))
    status = calls["orderStatus"]
    assert status[:5] == (7, "Submitted", Decimal(1), Decimal(1), 1.04) and status[8] == 3
    _, contract, execution = calls["execDetails"]
    assert (execution.execId, execution.permId, execution.side) == (FILL.exec_id, 1000000123,
                                                                     "BOT")
    assert contract.conId == OPTION.con_id
    assert calls["commissionAndFeesReport"][0].commissionAndFees == 0.65
    _, completed, completed_state = calls["completedOrder"]
    assert (completed.permId, completed_state.status) == (1000000123, "Filled")
    assert calls["position"][2] == Decimal(-2) and calls["updatePortfolio"][1] == Decimal(-2)
    assert calls["accountSummary"][3] == "4000.00"
    assert calls["accountUpdateMultiEnd"] == (4,)


class _AsyncRecorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.ib = SimpleNamespace(TimezoneTWS=None)
        self.defaultTimezone = datetime.UTC

    def __getattr__(self, name: str) -> Any:
        return lambda *args: self.calls.append((name, args))


def async_decode(messages: list[Message], version: int) -> dict[str, tuple[Any, ...]]:
    recorder = _AsyncRecorder()
    decoder = AsyncDecoder(recorder, version)  # type: ignore[arg-type]
    for message in messages:
        decoder.interpret(frame_fields(encode_message(message, version, 0)))
    return dict(recorder.calls)


@pytest.mark.parametrize("version", ASYNC_VERSIONS)
def test_every_frame_decodes_in_ib_async(version: int, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, "ib_async")
    calls = async_decode([
        OpenOrderMsg(view(BAG, leg_prices=(1.0, None))),
        OpenOrderMsg(view(OPTION, "PreSubmitted", what_if=True), IMPACT),
        OrderStatusMsg(view(OPTION)), ExecDetailsMsg(-1, FILL), CommissionMsg(FILL),
        CompletedOrderMsg(view(OPTION, "Cancelled")),
        PositionMsg("DU1", OPTION, Decimal(-2), 104.0),
        PortfolioMsg(OPTION, Decimal(-2), 1.1, -220.0, 104.0, -12.0, 0.0, "DU1"),
        AccountValueMsg("NetLiquidation", "100000.00", "USD", "DU1"),
    ], version)
    assert not caplog.records, [r.getMessage() for r in caplog.records]
    _, contract, order, state = calls["openOrder"]
    assert order.whatIf and float(state.initMarginChange) == 500.0
    assert calls["orderStatus"][1] == "Submitted"
    assert calls["execDetails"][2].permId == 1000000123
    assert calls["commissionReport"][0].commission == 0.65
    assert calls["completedOrder"][2].status == "Cancelled"
    assert calls["position"][2] == -2.0 and calls["updatePortfolio"][1] == -2.0
    assert calls["updateAccountValue"] == ("NetLiquidation", "100000.00", "USD", "DU1")
