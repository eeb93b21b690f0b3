"""Combo (``BAG``) market data, sans-IO: a combo's legs resolved, and its quote as the
net of theirs.

TWS streams a quote for a combo it computes from its legs; the simulator does the same on
every step of the walk, so a combo line moves exactly when a leg does. Split from
``_market_data`` (which holds the lines and calls these): this is the arithmetic and the
refusals of one combo, nothing of a session.

* bid = the BUY legs' bids less the SELL legs' asks, ask = the BUY legs' asks less the
  SELL legs' bids, each times its ratio (negative for a credit); so bid <= ask whenever
  every leg's is; sizes are the smallest leg size over its ratio;
* no last, volume or greeks (TWS computes none for a combo);
* no legs is 321, an unknown leg conId 200, a ratio below 1 or an action other than
  BUY/SELL 321 (the simulator's choice of text for the latter).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import attrs

from ibkr_connector.simulator import _messages as msg
from ibkr_connector.simulator._market import Instrument, SimMarket
from ibkr_connector.simulator._requests import ComboLegSpec

__all__ = ["ComboLeg", "ComboRefused", "combo_legs", "combo_quote", "combo_ticks"]

# REAL-TWS: a BAG without legs is refused with 321 and this text (seen for placeOrder)
_WITHOUT_LEGS = ("Error validating request.-'bN' : cause - Security type 'BAG' requires "
                 "combo leg details.")
_BAD_LEG = "Error validating request.-'bN' : cause - Invalid combo leg details."


@attrs.frozen
class ComboLeg:
    """One leg of a streamed combo: the instrument, its ratio, bought or sold."""

    inst: Instrument
    ratio: int
    buy: bool


class ComboRefused(Exception):
    """TWS refuses the combo: its error ``code`` and ``text`` (empty: the code's usual)."""

    def __init__(self, code: int, text: str = "") -> None:
        super().__init__(code, text)
        self.code, self.text = code, text


def combo_legs(market: SimMarket, specs: tuple[ComboLegSpec, ...]) -> tuple[ComboLeg, ...]:
    """The legs as instruments; `ComboRefused` as TWS would refuse them."""
    if not specs:
        raise ComboRefused(321, _WITHOUT_LEGS)
    legs = []
    for spec in specs:
        if spec.ratio < 1 or spec.action not in ("BUY", "SELL"):
            raise ComboRefused(321, _BAD_LEG)
        inst = market.instrument(spec.con_id)
        if inst is None:
            raise ComboRefused(200)
        legs.append(ComboLeg(inst, spec.ratio, spec.action == "BUY"))
    return tuple(legs)


def combo_quote(market: SimMarket, legs: tuple[ComboLeg, ...]
                ) -> tuple[float, float, int, int] | None:
    """(bid, ask, bid size, ask size) of a combo now, from its legs' quotes; None while a
    leg has no two-sided quote. Buying the combo at its ask buys each BUY leg at its ask
    and sells each SELL leg at its bid; selling it at its bid does the opposite."""
    # REAL-TWS: a combo's bid/ask is the net of its legs' far sides; sizes the least leg's
    bid = ask = 0.0
    bid_size = ask_size = None
    for leg in legs:
        quote = market.quote(leg.inst.con_id)
        if quote.bid < 0 or quote.ask < 0:
            return None
        if leg.buy:
            bid += leg.ratio * quote.bid
            ask += leg.ratio * quote.ask
            sizes = (quote.bid_size, quote.ask_size)
        else:
            bid -= leg.ratio * quote.ask
            ask -= leg.ratio * quote.bid
            sizes = (quote.ask_size, quote.bid_size)
        leg_bid_size, leg_ask_size = (size // leg.ratio for size in sizes)
        bid_size = leg_bid_size if bid_size is None else min(bid_size, leg_bid_size)
        ask_size = leg_ask_size if ask_size is None else min(ask_size, leg_ask_size)
    if bid_size is None or ask_size is None:
        return None
    return round(bid, 8), round(ask, 8), bid_size, ask_size


def combo_ticks(market: SimMarket, req_id: int, legs: tuple[ComboLeg, ...],
                sent: dict[int, object], tick_id: Callable[[int], int]) -> Iterator[bytes]:
    """The bid and ask ticks of a combo line whose values differ from ``sent`` (what it
    was last sent; updated). A combo price may be negative or zero: sent with its size,
    it is a quote. ``tick_id`` maps a live tick id to the one the line uses."""
    quote = combo_quote(market, legs)
    if quote is None:
        return
    bid, ask, bid_size, ask_size = quote
    for price_tick, size_tick, price, size in ((1, 0, bid, bid_size), (2, 3, ask, ask_size)):
        if sent.get(price_tick) != price:
            sent[price_tick], sent[size_tick] = price, size
            yield msg.tick_price(req_id, tick_id(price_tick), price, size)
        elif sent.get(size_tick) != size:
            sent[size_tick] = size
            yield msg.tick_size(req_id, tick_id(size_tick), size)
