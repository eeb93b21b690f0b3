"""Black–Scholes–Merton prices, greeks and implied volatility for European options.

A pure calculator, used for what TWS does not hand out (a vertical spread's net greeks
from its legs) and by the simulator to price its option chains. No dependency beyond the
standard library: the normal distribution comes from ``math.erf``, the implied volatility
from a safeguarded Newton iteration (bisection whenever Newton would leave the bracket),
so it converges for deep in- and out-of-the-money options too.

Units follow TWS's option computations, not the textbook: ``vega`` is the price change
for one volatility *point* (0.01), ``theta`` the change for one calendar *day* (1/365
year). Hull's vega and theta are these times 100 and times 365. Volatility, rate and
dividend yield are annualised decimals (0.2 is 20 %); time is in years.
"""

from __future__ import annotations

import math

import attrs

from ibkr_connector._errors import IBKRError

__all__ = [
    "Greeks",
    "ImpliedVolError",
    "greeks",
    "implied_vol",
    "norm_cdf",
    "norm_pdf",
    "price",
]

_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_DAYS_PER_YEAR = 365.0
_MIN_VOL = 1e-4
_MAX_VOL = 10.0


class ImpliedVolError(IBKRError, ValueError):
    """No volatility reproduces the price: it is outside the no-arbitrage bounds."""


@attrs.frozen
class Greeks:
    """Price and sensitivities of one option (vega per vol point, theta per day)."""

    price: float
    delta: float
    gamma: float
    vega: float
    theta: float


def norm_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / _SQRT2))


def norm_pdf(x: float) -> float:
    return _INV_SQRT_2PI * math.exp(-0.5 * x * x)


def _check(right: str, spot: float, strike: float, years: float, vol: float) -> None:
    if right not in ("C", "P"):
        raise ValueError(f"right must be 'C' or 'P', got {right!r}")
    if spot <= 0 or strike <= 0:
        raise ValueError("spot and strike must be positive")
    if years < 0 or vol < 0:
        raise ValueError("time and volatility must not be negative")


def _intrinsic(right: str, spot: float, strike: float, years: float, rate: float,
               div: float) -> float:
    forward_spot = spot * math.exp(-div * years)
    pv_strike = strike * math.exp(-rate * years)
    return max(forward_spot - pv_strike, 0.0) if right == "C" else max(pv_strike - forward_spot,
                                                                        0.0)


def greeks(right: str, spot: float, strike: float, years: float, vol: float,
           rate: float = 0.0, div: float = 0.0) -> Greeks:
    """Price and greeks of a European call (``"C"``) or put (``"P"``).

    At expiry (``years == 0``) or zero volatility the option is worth its discounted
    intrinsic value, delta is 0 or ±1 and the other greeks are 0.
    """
    _check(right, spot, strike, years, vol)
    if years == 0 or vol == 0:
        value = _intrinsic(right, spot, strike, years, rate, div)
        itm = (spot > strike) if right == "C" else (spot < strike)
        delta = (1.0 if right == "C" else -1.0) * math.exp(-div * years) if itm else 0.0
        return Greeks(value, delta, 0.0, 0.0, 0.0)
    root_t = math.sqrt(years)
    d1 = (math.log(spot / strike) + (rate - div + 0.5 * vol * vol) * years) / (vol * root_t)
    d2 = d1 - vol * root_t
    disc_q = math.exp(-div * years)
    disc_r = math.exp(-rate * years)
    pdf = norm_pdf(d1)
    gamma = disc_q * pdf / (spot * vol * root_t)
    vega = spot * disc_q * pdf * root_t
    decay = -spot * disc_q * pdf * vol / (2.0 * root_t)
    if right == "C":
        value = spot * disc_q * norm_cdf(d1) - strike * disc_r * norm_cdf(d2)
        delta = disc_q * norm_cdf(d1)
        theta = (decay - rate * strike * disc_r * norm_cdf(d2)
                 + div * spot * disc_q * norm_cdf(d1))
    else:
        value = strike * disc_r * norm_cdf(-d2) - spot * disc_q * norm_cdf(-d1)
        delta = -disc_q * norm_cdf(-d1)
        theta = (decay + rate * strike * disc_r * norm_cdf(-d2)
                 - div * spot * disc_q * norm_cdf(-d1))
    return Greeks(value, delta, gamma, vega / 100.0, theta / _DAYS_PER_YEAR)


def price(right: str, spot: float, strike: float, years: float, vol: float,
          rate: float = 0.0, div: float = 0.0) -> float:
    """The Black–Scholes–Merton value of a European option."""
    return greeks(right, spot, strike, years, vol, rate, div).price


def implied_vol(right: str, option_price: float, spot: float, strike: float, years: float,
                rate: float = 0.0, div: float = 0.0, *, tolerance: float = 1e-8) -> float:
    """The volatility at which ``price`` equals ``option_price``.

    Raises ``ImpliedVolError`` when the price is at or below the discounted intrinsic
    value or at or above the no-arbitrage ceiling (spot for a call, discounted strike for
    a put), or when the option has expired: no volatility fits there.
    """
    _check(right, spot, strike, years, 0.0)
    floor = _intrinsic(right, spot, strike, years, rate, div)
    ceiling = spot * math.exp(-div * years) if right == "C" else strike * math.exp(-rate * years)
    if years == 0 or not floor < option_price < ceiling:
        raise ImpliedVolError(
            f"price {option_price} is outside ({floor:.6g}, {ceiling:.6g}); no implied vol"
        )
    low, high = _MIN_VOL, _MAX_VOL
    if price(right, spot, strike, years, high, rate, div) < option_price:
        raise ImpliedVolError(f"price {option_price} needs a volatility above {_MAX_VOL}")
    vol = 0.3
    for _ in range(100):
        result = greeks(right, spot, strike, years, vol, rate, div)
        diff = result.price - option_price
        if abs(diff) < tolerance:
            return vol
        if diff > 0:
            high = vol
        else:
            low = vol
        vega = result.vega * 100.0
        step = vol - diff / vega if vega > 1e-12 else -1.0
        vol = step if low < step < high else 0.5 * (low + high)
        if high - low < 1e-12:
            break
    return vol
