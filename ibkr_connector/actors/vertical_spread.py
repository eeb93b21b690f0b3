"""A vertical spread as a TWS combo: the checks that keep bad input off the wire, and the
BAG contract and order built from the two legs' contract details.

Pure functions (no I/O): the orders actor resolves the legs (contract details through the
market-data actor) and calls these around it; `Runtime.subscribe_vertical_spread` resolves
the same legs the same way (`vertical_legs`, `vertical_combo`) to quote the combo. Every
refusal is a typed error raised before anything is sent: `InvalidOrder` for what the
arguments themselves get wrong (equal strikes, quantity, a LMT without a price, a price
off the tick, an unknown right or order type), `UnknownContract` (from the market-data
actor) for a strike or expiry TWS does not list.
"""

from __future__ import annotations

import math
from decimal import Decimal

from ibapi.contract import ComboLeg, Contract
from ibapi.order import Order

from ..contracts import ContractError, Option, normalise_expiry, normalise_right
from ..trade import Leg
from .market_data_messages import ContractInfo
from .orders_messages import InvalidOrder, PlaceVerticalSpread

__all__ = ["ORDER_TYPES", "TIFS", "build_spread", "check_order", "check_tick", "leg_queries",
           "vertical_combo", "vertical_legs"]

ORDER_TYPES = frozenset({"LMT", "MKT"})
TIFS = frozenset({"DAY", "GTC", "IOC", "OPG", "FOK", "GTD"})
_UNSET = 1.7e308


def check_tick(price: float, tick: float) -> None:
    """``price`` must be a whole number of ``tick``s (TWS answers 110 otherwise)."""
    if tick > 0 and abs(price / tick - round(price / tick)) > 1e-6:
        raise InvalidOrder(f"the price is not a multiple of the minimum tick {tick:g}")


def check_order(order: Order, min_tick: float | None = None) -> None:
    """What any order must get right before the wire (TWS would 201 or 110 it)."""
    if order.action not in ("BUY", "SELL"):
        raise InvalidOrder(f"action must be BUY or SELL, got {order.action!r}")
    quantity = order.totalQuantity
    if isinstance(quantity, bool) or not isinstance(quantity, int | float | Decimal) or not (
            quantity > 0 and math.isfinite(quantity)):
        raise InvalidOrder("quantity must be a number > 0")
    if order.orderType not in ORDER_TYPES:
        raise InvalidOrder(f"order type must be one of {sorted(ORDER_TYPES)}, "
                           f"got {order.orderType!r}")
    if order.tif and order.tif not in TIFS:
        raise InvalidOrder(f"tif must be one of {sorted(TIFS)}, got {order.tif!r}")
    price = order.lmtPrice
    has_price = price is not None and price < _UNSET
    if order.orderType == "LMT":
        if not has_price or not math.isfinite(price):
            raise InvalidOrder("a LMT order needs a finite limit price")
        # REAL-TWS: contract details' minTick is the increment TWS checks (110 otherwise)
        if min_tick is not None:
            check_tick(price, min_tick)


def leg_queries(spec: PlaceVerticalSpread) -> tuple[Contract, Contract]:
    """The two option contracts to look up (long leg, short leg), after checking the
    arguments that need no lookup."""
    if isinstance(spec.quantity, bool) or not isinstance(spec.quantity, int) or spec.quantity <= 0:
        raise InvalidOrder(f"quantity must be a whole number of spreads > 0, got "
                           f"{spec.quantity!r}")
    legs = vertical_legs(spec.symbol, spec.expiry, spec.right, spec.long_strike,
                         spec.short_strike, spec.exchange, spec.currency)
    if spec.order_type not in ORDER_TYPES:
        raise InvalidOrder(f"order type must be one of {sorted(ORDER_TYPES)}, "
                           f"got {spec.order_type!r}")
    if spec.order_type == "LMT" and (spec.limit_price is None
                                     or not math.isfinite(spec.limit_price)):
        raise InvalidOrder("a LMT spread needs a finite limit price (the net per spread)")
    if spec.tif not in TIFS:
        raise InvalidOrder(f"tif must be one of {sorted(TIFS)}, got {spec.tif!r}")
    return legs


def vertical_legs(symbol: str, expiry: str, right: str, long_strike: float,
                  short_strike: float, exchange: str, currency: str
                  ) -> tuple[Contract, Contract]:
    """The two option contracts of a vertical (long leg, short leg) to look up; what is
    wrong with them before any lookup is `InvalidOrder`."""
    try:
        right = normalise_right(right)
        expiry = normalise_expiry(expiry)
        legs = tuple(Option(symbol, expiry, strike, right, exchange, currency)
                     for strike in (long_strike, short_strike))
    except ContractError as exc:
        raise InvalidOrder(str(exc)) from exc
    if legs[0].strike == legs[1].strike:
        raise InvalidOrder("a vertical spread needs two different strikes")
    return legs[0], legs[1]


def vertical_combo(long: ContractInfo, short: ContractInfo, exchange: str, currency: str
                   ) -> tuple[Contract, tuple[Leg, ...]]:
    """The BAG of a vertical: buy one ``long``, sell one ``short``, routed to ``exchange``
    (what an order and a quote of the spread both name)."""
    bag = Contract()
    bag.symbol, bag.secType = long.symbol, "BAG"
    bag.exchange, bag.currency = exchange, currency
    bag.comboLegs = []
    legs = []
    for info, action in ((long, "BUY"), (short, "SELL")):
        combo_leg = ComboLeg()
        combo_leg.conId, combo_leg.ratio, combo_leg.action = info.con_id, 1, action
        combo_leg.exchange = exchange
        bag.comboLegs.append(combo_leg)
        legs.append(Leg(info.con_id, action, 1, info.symbol, info.expiry, info.strike,
                        info.right))
    return bag, tuple(legs)


def build_spread(spec: PlaceVerticalSpread, long: ContractInfo, short: ContractInfo
                 ) -> tuple[Contract, Order, tuple[Leg, ...]]:
    """The BAG contract (buy the long leg, sell the short one) and its order.

    The combo's tick is the finest of its legs' (what TWS checks a combo price against).
    The order's ``orderRef`` names the spread, so it reads as one after a restart too."""
    if spec.order_type == "LMT" and spec.limit_price is not None:
        check_tick(spec.limit_price, min(long.min_tick, short.min_tick))
    bag, legs = vertical_combo(long, short, spec.exchange, spec.currency)
    order = Order()
    order.action, order.totalQuantity = "BUY", Decimal(spec.quantity)
    order.orderType, order.tif = spec.order_type, spec.tif
    if spec.order_type == "LMT" and spec.limit_price is not None:
        order.lmtPrice = spec.limit_price
    order.orderRef = (f"vertical {long.symbol} {long.expiry} {long.right} "
                      f"{long.strike:g}/{short.strike:g}")
    return bag, order, legs
