"""Market-data answers of one session, sans-IO: requests as EClient writes them, answers
as ibapi's Decoder reads them, at server versions 157, 178 and 200."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from ibapi.client import EClient
from ibapi.contract import Contract

from ibkr_connector import black_scholes

from .decoding import Call
from .marketclient import decode_market
from .test_requests import encode
from .test_session import Harness, request

SPY = 756733
VERSIONS = {157: "v157..157", 178: "v157..178", 200: "v100..226"}


def connected(version: int = 200, **config: Any) -> Harness:
    harness = Harness(start_time=1767225600.0, **config)  # 2026-01-01 00:00 UTC
    harness.connect(versions=VERSIONS[version])
    return harness


def send(harness: Harness, call: Callable[[EClient], Any]) -> list[Call]:
    version = harness.session.server_version
    msg_id, fields = encode(version, call)
    return decode_market(harness.raw(request(msg_id, *fields)), version)


def updates(harness: Harness, now: float) -> list[Call]:
    harness.state.market.advance(now)
    data = b"".join(a.data for a in harness.session.market_updates())
    return decode_market(data, harness.session.server_version)


def option(strike: float = 500.0, right: str = "C", expiry: str = "20260116",
           symbol: str = "SPY") -> Contract:
    contract = Contract()
    contract.symbol, contract.secType, contract.exchange = symbol, "OPT", "SMART"
    contract.currency, contract.lastTradeDateOrContractMonth = "USD", expiry
    contract.strike, contract.right, contract.multiplier = strike, right, "100"
    return contract


def stock(symbol: str = "SPY") -> Contract:
    contract = Contract()
    contract.symbol, contract.secType = symbol, "STK"
    contract.exchange, contract.currency = "SMART", "USD"
    return contract


def named(calls: list[Call], name: str) -> list[tuple[Any, ...]]:
    return [args for call, args in calls if call == name]


@pytest.mark.parametrize("version", [157, 178, 200])
def test_option_contract_details_carry_what_option_code_relies_on(version: int) -> None:
    harness = connected(version)
    calls = send(harness, lambda c: c.reqContractDetails(5, option()))
    assert [name for name, _ in calls] == ["contractDetails", "contractDetailsEnd"]
    details = calls[0][1][1]
    assert details.contract.conId == harness.state.market.match(
        symbol="SPY", sec_type="OPT", expiry="20260116", strike=500.0, right="C")[0].con_id
    assert (details.contract.multiplier, details.contract.tradingClass, details.minTick) == (
        "100", "SPY", 0.01)
    assert details.contract.localSymbol == "SPY   260116C00500000"
    assert details.contract.lastTradeDateOrContractMonth == "20260116"
    assert (details.underConId, details.underSymbol) == (SPY, "SPY")


def test_stock_and_index_contract_details() -> None:
    harness = connected()
    [(_, (_, spy)), _] = send(harness, lambda c: c.reqContractDetails(6, stock()))
    assert (spy.contract.conId, spy.contract.secType, spy.contract.multiplier) == (
        SPY, "STK", "")
    assert spy.contract.primaryExchange == "ARCA"
    index = Contract()
    index.symbol, index.secType, index.exchange = "SPX", "IND", "CBOE"
    [(_, (_, spx)), _] = send(harness, lambda c: c.reqContractDetails(7, index))
    assert (spx.contract.conId, spx.longName) == (416904, "S&P 500 Stock Index")


def test_unknown_contract_is_200_without_an_end() -> None:
    harness = connected()
    calls = send(harness, lambda c: c.reqContractDetails(8, stock("MSFT")))
    assert [(name, args[:2]) for name, args in calls] == [("error", (8, 200))]


def test_a_listed_strike_missing_from_a_weekly_is_200() -> None:
    harness = connected()
    [chain] = [line for line in named(send(harness, lambda c: c.reqSecDefOptParams(
        9, "SPY", "", "STK", SPY)), "secDefOptParams") if line[1] == "SMART"]
    far = max(chain[6])
    assert named(send(harness, lambda c: c.reqContractDetails(10, option(far))),
                 "contractDetailsEnd") == [(10,)]
    calls = send(harness, lambda c: c.reqContractDetails(11, option(far, expiry="20260109")))
    assert [(name, args[:2]) for name, args in calls] == [("error", (11, 200))]


def test_sec_def_opt_params_lists_each_exchange_and_class_then_ends() -> None:
    calls = send(connected(), lambda c: c.reqSecDefOptParams(12, "SPX", "", "IND", 416904))
    lines = named(calls, "secDefOptParams")
    assert {(exchange, cls) for _, exchange, _, cls, *_ in lines} == {
        ("SMART", "SPX"), ("SMART", "SPXW"), ("CBOE", "SPX"), ("CBOE", "SPXW")}
    assert all(line[2] == 416904 and line[4] == "100" for line in lines)
    assert calls[-1] == ("secDefOptParamsEnd", (12,))


def test_option_ticks_and_greeks_agree_with_black_scholes() -> None:
    harness = connected()
    calls = send(harness, lambda c: c.reqMktData(20, option(), "", False, False, []))
    assert calls[0] == ("tickReqParams", (20, 0.01))
    assert ("marketDataType", (20, 1)) in calls
    prices = {args[1]: args[2] for args in named(calls, "tickPrice")}
    bid, ask = prices[1], prices[2]
    assert 0 < bid < ask
    computations = {args[1]: args for args in named(calls, "tickOptionComputation")}
    assert set(computations) == {10, 11, 12, 13}
    _, _, iv, delta, opt_price, gamma, vega, theta, und = computations[10]
    assert opt_price == bid
    years = harness.state.market.years_to_expiry(harness.state.market.match(
        symbol="SPY", sec_type="OPT", expiry="20260116", strike=500.0, right="C")[0])
    model = black_scholes.greeks("C", und, 500.0, years, iv, harness.state.market.rate)
    assert model.price == pytest.approx(bid, abs=1e-6)
    assert (delta, gamma, vega, theta) == pytest.approx(
        (model.delta, model.gamma, model.vega, model.theta))
    assert computations[13][4] == pytest.approx((bid + ask) / 2, abs=ask - bid)


def test_streaming_sends_only_what_changed() -> None:
    harness = connected()
    send(harness, lambda c: c.reqMktData(21, stock(), "", False, False, []))
    assert updates(harness, 0.0) == []
    moved = updates(harness, 60.0)
    assert named(moved, "tickPrice") and all(args[0] == 21 for _, args in moved)


def test_generic_ticks_100_101_104_106() -> None:
    calls = send(connected(), lambda c: c.reqMktData(22, stock(), "100,101,104,106", False,
                                                      False, []))
    assert {args[1] for args in named(calls, "tickSize")} >= {27, 28, 29, 30}
    generic = {args[1]: args[2] for args in named(calls, "tickGeneric")}
    assert generic[24] == pytest.approx(0.15) and 23 in generic


def test_snapshot_ends_and_refuses_generic_ticks() -> None:
    harness = connected()
    calls = send(harness, lambda c: c.reqMktData(23, option(), "", True, False, []))
    assert calls[-1] == ("tickSnapshotEnd", (23,))
    assert harness.state.live_subscriptions() == frozenset()
    calls = send(harness, lambda c: c.reqMktData(24, stock(), "100", True, False, []))
    assert [(name, args[:2]) for name, args in calls] == [("error", (24, 321))]


def test_unsubscribed_symbol_is_354_live_and_delayed_on_request() -> None:
    harness = connected(unsubscribed_symbols=("spy",))
    calls = send(harness, lambda c: c.reqMktData(25, option(), "", False, False, []))
    assert [(name, args[:2]) for name, args in calls] == [("error", (25, 354))]
    assert harness.state.live_subscriptions() == frozenset()
    send(harness, lambda c: c.reqMarketDataType(3))
    calls = send(harness, lambda c: c.reqMktData(26, option(), "", False, False, []))
    assert ("error", 26, 10167) in [(name, *args[:2]) for name, args in calls]
    assert ("marketDataType", (26, 3)) in calls
    assert {args[1] for args in named(calls, "tickPrice")} >= {66, 67, 68}
    assert {args[1] for args in named(calls, "tickOptionComputation")} == {80, 81, 82, 83}


def test_delayed_data_disabled_is_10168() -> None:
    harness = connected(unsubscribed_symbols=("SPY",), delayed_data_available=False)
    send(harness, lambda c: c.reqMarketDataType(4))
    calls = send(harness, lambda c: c.reqMktData(27, stock(), "", False, False, []))
    assert [(name, args[:2]) for name, args in calls] == [("error", (27, 10168))]


def test_option_without_its_underlying_gets_10090_and_no_live_greeks() -> None:
    harness = connected(unsubscribed_underlyings=("SPY",))
    calls = send(harness, lambda c: c.reqMktData(28, option(), "", False, False, []))
    assert ("error", 28, 10090) in [(name, *args[:2]) for name, args in calls]
    assert named(calls, "tickPrice") and not named(calls, "tickOptionComputation")
    assert harness.state.live_subscriptions() == {28}


def test_unknown_contract_for_market_data_is_200() -> None:
    harness = connected()
    calls = send(harness, lambda c: c.reqMktData(29, option(500.5), "", False, False, []))
    assert [(name, args[:2]) for name, args in calls] == [("error", (29, 200))]


def test_tick_by_tick_streams_and_is_capped() -> None:
    harness = connected(max_tick_by_tick_streams=2)
    calls = send(harness, lambda c: c.reqTickByTickData(30, stock(), "BidAsk", 0, False))
    [(_, bid, ask)] = named(calls, "tickByTickBidAsk")
    assert 0 < bid < ask
    send(harness, lambda c: c.reqTickByTickData(31, stock("QQQ"), "Last", 0, False))
    assert named(updates(harness, 60.0), "tickByTickAllLast")[0][:2] == (31, 1)
    calls = send(harness, lambda c: c.reqTickByTickData(32, stock("AAPL"), "MidPoint", 0,
                                                        False))
    assert [(name, args[:2]) for name, args in calls] == [("error", (32, 10190))]
    send(harness, lambda c: c.cancelTickByTickData(30))
    calls = send(harness, lambda c: c.reqTickByTickData(32, stock("AAPL"), "MidPoint", 0,
                                                        False))
    assert named(calls, "tickByTickMidPoint")


def test_tick_by_tick_on_an_option_is_refused_as_tws_does() -> None:
    calls = send(connected(), lambda c: c.reqTickByTickData(33, option(), "Last", 0, False))
    assert [(name, args[:2]) for name, args in calls] == [("error", (33, 10189))]


def test_stall_halt_and_farm_outage_stop_the_stream() -> None:
    harness = connected()
    market = harness.state.market
    send(harness, lambda c: c.reqMktData(34, stock(), "", False, False, []))
    market.stall("SPY")
    assert updates(harness, 60.0) == []
    market.stall("SPY", False)
    market.halt("SPY")
    assert ("tickGeneric", (34, 49, 1.0)) in updates(harness, 120.0)
    market.halt("SPY", False)
    market.farm_down = True
    assert updates(harness, 180.0) == []
    market.farm_down = False
    assert ("tickGeneric", (34, 49, 0.0)) in updates(harness, 180.0)


def test_widened_spreads_reach_the_quotes() -> None:
    harness = connected()
    harness.state.market.set_spread_factor("SPY", 10)
    calls = send(harness, lambda c: c.reqMktData(35, stock(), "", False, False, []))
    prices = {args[1]: args[2] for args in named(calls, "tickPrice")}
    assert prices[2] - prices[1] == pytest.approx(0.10)
