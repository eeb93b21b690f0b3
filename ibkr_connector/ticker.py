"""`Ticker`: a live, typed view of one contract's market data.

The market-data actor is the only writer of a `Ticker`; user code reads its fields at any
moment, or waits for the next change with ``async for _ in ticker.updates()``. Like a
conflated bus subscription, ``updates()`` yields once per *change since you last looked*,
never a backlog: a strategy that takes 50 ms to think sees the latest quote, not the 40
quotes it missed. Every subscriber of the same contract shares one `Ticker` (one TWS line).

TWS's "not computed" sentinels and its "no quote" prices (-1, or 0 with size 0) are `None`
here, so arithmetic on a missing value fails loudly instead of pricing a spread at -1.
"""

from __future__ import annotations

import enum
import math
from collections.abc import AsyncIterator
from decimal import Decimal

import attrs
import trio
from ibapi.common import UNSET_DECIMAL
from ibapi.contract import Contract

from .protocol import events as ev

__all__ = ["Greeks", "MarketDataKind", "Ticker", "TickerState", "apply_tick"]


class MarketDataKind(enum.IntEnum):
    """What TWS says it is streaming (its ``marketDataType``)."""

    LIVE = 1
    FROZEN = 2
    DELAYED = 3
    DELAYED_FROZEN = 4


class TickerState(enum.Enum):
    PENDING = "pending"  # asked for, nothing received yet (or waiting for a line)
    STREAMING = "streaming"
    STALE = "stale"  # no update for longer than the staleness bound, or its farm is down
    FAILED = "failed"  # TWS refused it for good (see `error`)
    CLOSED = "closed"  # unsubscribed by every holder


@attrs.frozen
class Greeks:
    """One ``tickOptionComputation`` as numbers; None where TWS did not compute a value."""

    implied_vol: float | None = None
    delta: float | None = None
    gamma: float | None = None
    vega: float | None = None
    theta: float | None = None
    option_price: float | None = None
    pv_dividend: float | None = None
    underlying_price: float | None = None


#: tickOptionComputation tick types -> the source name used in `Ticker.greeks`.
GREEKS_SOURCES = {10: "bid", 11: "ask", 12: "last", 13: "model",
                  80: "bid", 81: "ask", 82: "last", 83: "model"}


def _size(value: Decimal) -> Decimal | None:
    # ibapi's UNSET_DECIMAL (2**127 - 1) means TWS sent no size.
    return None if value == UNSET_DECIMAL else value


def _price(value: float | None) -> float | None:
    if value is None or not math.isfinite(value) or value == -1:
        return None
    return value


@attrs.define(eq=False)
class Ticker:
    """The latest market data of ``contract``; see the module docstring."""

    contract: Contract
    bid: float | None = None
    ask: float | None = None
    last: float | None = None
    bid_size: Decimal | None = None
    ask_size: Decimal | None = None
    last_size: Decimal | None = None
    volume: Decimal | None = None
    high: float | None = None
    low: float | None = None
    close: float | None = None
    open: float | None = None
    greeks: dict[str, Greeks] = attrs.Factory(dict)
    """Option greeks by source: ``bid``, ``ask``, ``last``, ``model`` (TWS's own)."""
    implied_vol: float | None = None
    """The option's implied vol (model greeks), or the underlying's 30-day IV (tick 24)."""
    historical_vol: float | None = None
    option_volume: dict[str, Decimal] = attrs.Factory(dict)
    open_interest: dict[str, Decimal] = attrs.Factory(dict)
    market_data_kind: MarketDataKind | None = None
    state: TickerState = TickerState.PENDING
    error: str | None = None
    """Why the ticker failed or is degraded (TWS code and its meaning, never account data)."""
    halted: bool = False
    last_update: float | None = None
    """``trio.current_time()`` of the last change, or None before the first."""
    _version: int = 0
    _changed: trio.Event = attrs.Factory(trio.Event)

    @property
    def mid(self) -> float | None:
        if self.bid is None or self.ask is None:
            return None
        return (self.bid + self.ask) / 2

    @property
    def model_greeks(self) -> Greeks | None:
        return self.greeks.get("model")

    @property
    def is_delayed(self) -> bool:
        return self.market_data_kind in (MarketDataKind.DELAYED, MarketDataKind.DELAYED_FROZEN)

    async def updates(self) -> AsyncIterator[Ticker]:
        """Yield this ticker after every change (conflated); ends when it is closed.

        A checkpoint per iteration; cancelling the loop loses nothing (the ticker holds
        the latest values). A `FAILED` ticker ends the iteration too, after one last yield.
        """
        seen = self._version
        while True:
            while self._version == seen and self.state is not TickerState.CLOSED:
                await self._changed.wait()
            if self._version != seen:
                seen = self._version
                yield self
                if self.state is TickerState.FAILED:
                    return
            if self.state is TickerState.CLOSED:
                return

    # -- the writer's side (the market-data actor only) --------------------------------

    def _touch(self, now: float) -> None:
        """Record a change; readers are woken by `_notify` (once per batch of ticks)."""
        self.last_update = now
        self._version += 1

    def _notify(self) -> None:
        changed, self._changed = self._changed, trio.Event()
        changed.set()

    def _set_state(self, state: TickerState, error: str | None, now: float) -> None:
        if state is self.state and error == self.error:
            return
        self.state = state
        self.error = error
        self._version += 1
        self._notify()
        if state is TickerState.STREAMING:
            self.last_update = now

    def _set_price(self, field: str, value: float | None) -> None:
        setattr(self, field, _price(value))


# --- applying TWS's ticks (the writer's side) -------------------------------------------

# tick type -> (field, delayed?) for prices and sizes; delayed ids mirror the live ones.
_PRICE_FIELDS = {1: "bid", 2: "ask", 4: "last", 6: "high", 7: "low", 9: "close", 14: "open",
                 66: "bid", 67: "ask", 68: "last", 72: "high", 73: "low", 75: "close",
                 76: "open"}
_SIZE_FIELDS = {0: "bid_size", 3: "ask_size", 5: "last_size", 8: "volume",
                69: "bid_size", 70: "ask_size", 71: "last_size", 74: "volume"}
# TICK_PRICE carries the size of its own side (ibapi then calls tickSize with it).
_SIZE_OF_PRICE = {1: "bid_size", 2: "ask_size", 4: "last_size",
                  66: "bid_size", 67: "ask_size", 68: "last_size"}
_OPTION_SIZES = {27: ("open_interest", "call"), 28: ("open_interest", "put"),
                 29: ("option_volume", "call"), 30: ("option_volume", "put")}
_HISTORICAL_VOL, _IMPLIED_VOL, _HALTED = 23, 24, 49


def apply_tick(ticker: Ticker, event: object, now: float) -> bool:
    """Apply one market-data event to ``ticker``; True if it changed anything.

    Sans-IO and cheap (one dict lookup per tick): the market-data actor calls it for every
    tick of a line, and wakes the ticker's readers (``ticker._notify()``) once per batch of
    ticks, not once per tick. ``event`` is any of the protocol's tick events.
    """
    kind = type(event)
    if kind is ev.TickPrice:
        assert isinstance(event, ev.TickPrice)
        field = _PRICE_FIELDS.get(event.tick_type)
        if field is None:
            return False
        # A combo's net can be -1.00: the size tells a quote from TWS's "no data".
        # REAL-TWS: a tickPrice of -1 with a positive size is a quote, with size 0 no data
        size = event.size
        quoted = event.price == -1 and size is not None and size > 0 and size != UNSET_DECIMAL
        setattr(ticker, field, event.price if quoted else _price(event.price))
        size_field = _SIZE_OF_PRICE.get(event.tick_type)
        if event.size is not None and size_field is not None:
            setattr(ticker, size_field, _size(event.size))
    elif kind is ev.TickSize:
        assert isinstance(event, ev.TickSize)
        field = _SIZE_FIELDS.get(event.tick_type)
        if field is not None:
            setattr(ticker, field, _size(event.size))
        elif event.tick_type in _OPTION_SIZES:
            table, side = _OPTION_SIZES[event.tick_type]
            size = _size(event.size)
            if size is None:
                getattr(ticker, table).pop(side, None)
            else:
                getattr(ticker, table)[side] = size
        else:
            return False
    elif kind is ev.TickOptionComputation:
        assert isinstance(event, ev.TickOptionComputation)
        source = GREEKS_SOURCES.get(event.tick_type)
        if source is None:
            return False
        ticker.greeks[source] = Greeks(
            implied_vol=event.implied_vol, delta=event.delta, gamma=event.gamma,
            vega=event.vega, theta=event.theta, option_price=event.option_price,
            pv_dividend=event.pv_dividend, underlying_price=event.underlying_price)
        if source == "model" and event.implied_vol is not None:
            ticker.implied_vol = event.implied_vol
    elif kind is ev.TickGeneric:
        assert isinstance(event, ev.TickGeneric)
        if event.tick_type == _IMPLIED_VOL and ticker.contract.secType != "OPT":
            ticker.implied_vol = event.value
        elif event.tick_type == _HISTORICAL_VOL:
            ticker.historical_vol = event.value
        elif event.tick_type == _HALTED:
            ticker.halted = event.value not in (0.0, -1.0)
        else:
            return False
    elif kind is ev.MarketDataType:
        assert isinstance(event, ev.MarketDataType)
        try:
            ticker.market_data_kind = MarketDataKind(event.market_data_type)
        except ValueError:
            return False
    else:
        return False
    if ticker.state in (TickerState.PENDING, TickerState.STALE):
        ticker.state = TickerState.STREAMING
    ticker._touch(now)
    return True
