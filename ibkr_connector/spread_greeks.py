"""Net greeks of a vertical spread, from its two legs' tickers.

TWS computes greeks per option (``tickOptionComputation``), never for a combo. A vertical
is long one option and short another of the same expiry and right, so its greeks are the
difference of the legs' greeks, times the quantity and the multiplier for the position's
dollar figures. Each leg uses TWS's own model greeks when the ticker has them; otherwise
(delayed data without greeks, a leg whose greeks TWS did not compute) they are computed
here with Black–Scholes from the leg's mid price, the underlying's price and the time to
expiry, and the result says which legs were computed (``computed_legs``).
"""

from __future__ import annotations

import datetime

import attrs

from . import black_scholes
from ._errors import IBKRError
from .ticker import Greeks, Ticker

__all__ = ["LegGreeks", "SpreadGreeks", "SpreadGreeksUnavailable", "leg_greeks",
           "vertical_greeks", "years_to_expiry"]

# US equity options stop trading at 16:00 New York time on the expiry date; 21:00 UTC is
# that hour in winter and one hour past it in summer, close enough for greeks.
_EXPIRY_HOUR_UTC = 21


class SpreadGreeksUnavailable(IBKRError):
    """A leg has neither TWS's greeks nor the prices needed to compute them."""


@attrs.frozen
class LegGreeks:
    """One option's greeks per contract (not per share times multiplier)."""

    price: float
    delta: float
    gamma: float
    vega: float
    theta: float
    implied_vol: float | None
    computed: bool  # True: Black–Scholes here; False: TWS's model greeks


@attrs.frozen
class SpreadGreeks:
    """A vertical's net figures per spread and for the position (x quantity x multiplier)."""

    net_price: float
    delta: float
    gamma: float
    vega: float
    theta: float
    position_delta: float
    position_gamma: float
    position_vega: float
    position_theta: float
    computed_legs: tuple[str, ...]


def years_to_expiry(expiry: str, now: datetime.datetime | None = None) -> float:
    """Years from ``now`` (UTC) to the expiry's close; 0 once past it."""
    day = datetime.datetime.strptime(expiry[:8], "%Y%m%d").replace(
        hour=_EXPIRY_HOUR_UTC, tzinfo=datetime.UTC)
    now = now or datetime.datetime.now(datetime.UTC)
    return max((day - now).total_seconds(), 0.0) / (365.0 * 86400.0)


def _complete(greeks: Greeks | None) -> bool:
    return greeks is not None and None not in (
        greeks.delta, greeks.gamma, greeks.vega, greeks.theta, greeks.option_price)


def leg_greeks(ticker: Ticker, *, spot: float | None = None, rate: float = 0.0,
               now: datetime.datetime | None = None) -> LegGreeks:
    """TWS's model greeks of ``ticker`` when complete, else Black–Scholes from its mid."""
    model = ticker.model_greeks
    if model is not None and _complete(model):
        assert model.delta is not None and model.gamma is not None
        assert model.vega is not None and model.theta is not None
        assert model.option_price is not None
        return LegGreeks(model.option_price, model.delta, model.gamma, model.vega,
                         model.theta, model.implied_vol, computed=False)
    contract = ticker.contract
    price = ticker.mid if ticker.mid is not None else ticker.last
    underlying = spot if spot is not None else (model.underlying_price if model else None)
    if price is None or underlying is None or not contract.strike or contract.right not in "CP":
        raise SpreadGreeksUnavailable(
            f"{contract.symbol} {contract.lastTradeDateOrContractMonth} "
            f"{contract.strike:g}{contract.right}: no TWS greeks, and no price or underlying "
            "price to compute them from")
    years = years_to_expiry(contract.lastTradeDateOrContractMonth, now)
    try:
        vol = black_scholes.implied_vol(contract.right, price, underlying, contract.strike,
                                        years, rate)
    except black_scholes.ImpliedVolError as exc:
        raise SpreadGreeksUnavailable(f"no implied vol fits the leg's price: {exc}") from exc
    result = black_scholes.greeks(contract.right, underlying, contract.strike, years, vol, rate)
    return LegGreeks(result.price, result.delta, result.gamma, result.vega, result.theta,
                     vol, computed=True)


def vertical_greeks(long_leg: Ticker, short_leg: Ticker, quantity: int = 1, *,
                    spot: float | None = None, rate: float = 0.0,
                    now: datetime.datetime | None = None) -> SpreadGreeks:
    """Net greeks of ``quantity`` verticals: long ``long_leg``, short ``short_leg``."""
    long_contract, short_contract = long_leg.contract, short_leg.contract
    if (long_contract.lastTradeDateOrContractMonth != short_contract.lastTradeDateOrContractMonth
            or long_contract.right != short_contract.right
            or long_contract.symbol != short_contract.symbol):
        raise ValueError("a vertical's legs share symbol, expiry and right")
    long_g = leg_greeks(long_leg, spot=spot, rate=rate, now=now)
    short_g = leg_greeks(short_leg, spot=spot, rate=rate, now=now)
    multiplier = float(long_contract.multiplier or 100) * quantity
    net = {name: getattr(long_g, name) - getattr(short_g, name)
           for name in ("price", "delta", "gamma", "vega", "theta")}
    computed = tuple(name for name, leg in (("long", long_g), ("short", short_g))
                     if leg.computed)
    return SpreadGreeks(
        net_price=net["price"], delta=net["delta"], gamma=net["gamma"], vega=net["vega"],
        theta=net["theta"], position_delta=net["delta"] * multiplier,
        position_gamma=net["gamma"] * multiplier, position_vega=net["vega"] * multiplier,
        position_theta=net["theta"] * multiplier, computed_legs=computed)
