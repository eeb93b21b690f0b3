"""A vertical's net greeks: TWS's per leg when it has them, Black–Scholes when not."""

from __future__ import annotations

import datetime

import pytest

from ibkr_connector import black_scholes
from ibkr_connector.contracts import Option
from ibkr_connector.spread_greeks import (
    SpreadGreeksUnavailable,
    vertical_greeks,
    years_to_expiry,
)
from ibkr_connector.ticker import Greeks, Ticker

NOW = datetime.datetime(2026, 12, 1, 15, 0, tzinfo=datetime.UTC)
EXPIRY = "20261218"
SPOT = 600.0


def _leg(strike: float, *, with_greeks: bool, vol: float = 0.2) -> Ticker:
    years = years_to_expiry(EXPIRY, NOW)
    fair = black_scholes.greeks("C", SPOT, strike, years, vol)
    ticker = Ticker(Option("SPY", EXPIRY, strike, "C"))
    ticker.bid, ticker.ask = fair.price - 0.01, fair.price + 0.01
    if with_greeks:
        ticker.greeks["model"] = Greeks(vol, fair.delta, fair.gamma, fair.vega, fair.theta,
                                        fair.price, 0.0, SPOT)
    return ticker


def test_net_greeks_are_the_long_leg_minus_the_short_leg() -> None:
    long_leg, short_leg = _leg(595, with_greeks=True), _leg(605, with_greeks=True)
    net = vertical_greeks(long_leg, short_leg, quantity=2, now=NOW)
    long_g, short_g = long_leg.model_greeks, short_leg.model_greeks
    assert long_g is not None and short_g is not None
    assert long_g.delta is not None and short_g.delta is not None
    assert net.delta == pytest.approx(long_g.delta - short_g.delta)
    assert 0 < net.delta < 1 and net.net_price > 0
    assert net.position_delta == pytest.approx(net.delta * 200)
    assert net.computed_legs == ()


def test_missing_tws_greeks_are_computed_from_the_legs_prices() -> None:
    with_tws = vertical_greeks(_leg(595, with_greeks=True), _leg(605, with_greeks=True),
                               now=NOW)
    computed = vertical_greeks(_leg(595, with_greeks=False), _leg(605, with_greeks=False),
                               spot=SPOT, now=NOW)
    assert computed.computed_legs == ("long", "short")
    assert computed.delta == pytest.approx(with_tws.delta, abs=2e-3)
    assert computed.gamma == pytest.approx(with_tws.gamma, rel=0.05)
    assert computed.theta == pytest.approx(with_tws.theta, rel=0.05)


def test_a_leg_with_nothing_to_go_on_is_a_typed_error() -> None:
    bare = Ticker(Option("SPY", EXPIRY, 600, "C"))
    with pytest.raises(SpreadGreeksUnavailable):
        vertical_greeks(bare, _leg(605, with_greeks=True), now=NOW)


def test_legs_of_different_expiries_are_not_a_vertical() -> None:
    other = Ticker(Option("SPY", "20270115", 605, "C"))
    with pytest.raises(ValueError):
        vertical_greeks(_leg(595, with_greeks=True), other, now=NOW)
