"""The Black–Scholes calculator against published reference values (Hull, *Options,
Futures, and Other Derivatives*) and its own identities."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ibkr_connector.black_scholes import ImpliedVolError, greeks, implied_vol, price


def test_prices_match_hulls_worked_example() -> None:
    # Hull, Example 15.6 (8th ed.): S=42, K=40, r=10 %, sigma=20 %, T=0.5 -> c=4.76, p=0.81.
    assert price("C", 42, 40, 0.5, 0.2, 0.1) == pytest.approx(4.76, abs=0.005)
    assert price("P", 42, 40, 0.5, 0.2, 0.1) == pytest.approx(0.81, abs=0.005)


def test_call_greeks_match_hulls_delta_hedging_example() -> None:
    # Hull, Examples 19.1/19.4/19.6/19.7 (8th ed.): S=49, K=50, r=5 %, sigma=20 %,
    # T=20 weeks (0.3846): delta 0.522, gamma 0.066, theta -4.31/year, vega 12.1 per 1.00.
    result = greeks("C", 49, 50, 0.3846, 0.2, 0.05)
    assert result.price == pytest.approx(2.40, abs=0.005)
    assert result.delta == pytest.approx(0.522, abs=0.0005)
    assert result.gamma == pytest.approx(0.066, abs=0.0005)
    assert result.theta * 365 == pytest.approx(-4.31, abs=0.005)
    assert result.vega * 100 == pytest.approx(12.1, abs=0.05)


def test_put_greeks_follow_from_the_call_by_parity() -> None:
    call = greeks("C", 49, 50, 0.3846, 0.2, 0.05)
    put = greeks("P", 49, 50, 0.3846, 0.2, 0.05)
    assert put.delta == pytest.approx(call.delta - 1)
    assert put.gamma == pytest.approx(call.gamma)
    assert put.vega == pytest.approx(call.vega)
    # Put theta = call theta + r K e^{-rT} (per year).
    assert (put.theta - call.theta) * 365 == pytest.approx(
        0.05 * 50 * math.exp(-0.05 * 0.3846))


def test_dividend_yield_matches_hulls_index_option_example() -> None:
    # Hull, Example 17.1 (8th ed.): S=930, K=900, r=8 %, q=3 %, sigma=20 %, T=2/12 -> 51.83.
    assert price("C", 930, 900, 2 / 12, 0.2, 0.08, 0.03) == pytest.approx(51.83, abs=0.01)


def test_expired_option_is_worth_its_intrinsic_value() -> None:
    assert greeks("C", 105, 100, 0.0, 0.3).price == 5.0
    assert greeks("C", 105, 100, 0.0, 0.3).delta == 1.0
    assert greeks("P", 105, 100, 0.0, 0.3).price == 0.0
    assert greeks("P", 95, 100, 0.0, 0.3).delta == -1.0


@given(
    right=st.sampled_from(["C", "P"]),
    strike=st.floats(50, 150),
    years=st.floats(0.01, 2),
    vol=st.floats(0.05, 1.5),
)
def test_implied_vol_recovers_the_volatility_that_priced_the_option(
        right: str, strike: float, years: float, vol: float) -> None:
    value = price(right, 100, strike, years, vol, 0.03)
    floor = greeks(right, 100, strike, years, 0.0, 0.03).price
    if value - floor < 1e-6:  # no information left in the price: vega is nil
        return
    found = implied_vol(right, value, 100, strike, years, 0.03)
    assert price(right, 100, strike, years, found, 0.03) == pytest.approx(value, abs=1e-7)
    if greeks(right, 100, strike, years, vol, 0.03).vega > 1e-3:  # the price pins the vol
        assert found == pytest.approx(vol, abs=1e-4)


def test_a_price_below_intrinsic_has_no_implied_vol() -> None:
    with pytest.raises(ImpliedVolError):
        implied_vol("C", 4.0, 110, 100, 0.5)
    with pytest.raises(ImpliedVolError):
        implied_vol("P", 120.0, 110, 100, 0.5)


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="right"):
        price("X", 100, 100, 1, 0.2)
    with pytest.raises(ValueError, match="positive"):
        price("C", 0, 100, 1, 0.2)
