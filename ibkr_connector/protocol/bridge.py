"""The bridge: ibapi's EWrapper callbacks in, typed events out, into Trio.

ibapi's decoder calls EWrapper methods from the session's reader thread (`_reader`), which
also posts the fast path's events here directly. That thread must never block on Trio: if it did, a
slow consumer would stall the socket reader and TWS would see us as dead. So each callback
only builds a frozen event and appends it to a list; at most one wake-up is pending in Trio
at any time (``TrioToken.run_sync_soon``), and the Trio side takes the whole list in one go.

What the hand-over costs is wake-ups, not appends. A wake-up is a Trio loop iteration plus
a write to its wake-up socket, a system call that releases the GIL. So:

* the consumer, once woken, stays *awake*: no further wake-up is scheduled until it finds
  the list empty and goes back to sleep. Under a flood the reader keeps the GIL for a whole
  switch interval and the consumer takes a thousand events at a time;
* when wake-ups come in quick succession (a steady stream of a few thousand events a
  second or more, each of which would cost a wake-up), the consumer *lingers*: it waits
  ``linger`` while staying awake, so posters schedule nothing, then takes what came. At such
  rates that cuts the Trio thread's CPU about threefold, for up to ``linger`` (1 ms) of
  added latency; an event after a quiet spell is delivered at once.
  `bench/bridge_throughput.py` measures both.

Hot tick events are built by writing their slots directly: the same frozen attrs values,
about a third cheaper than their generated ``__init__``. Ticks usually do not come through
these callbacks at all: the session's reader decodes them on its fast path (`fastpath`) and
posts the same events straight into this bridge; the callbacks serve whatever ibapi decodes.

The list is unbounded on purpose: TWS itself buffers without limit, and dropping here would
lose order or connection events. Conflation of market data happens later, per subscriber,
on the event bus.
"""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import trio
from ibapi.wrapper import EWrapper

from . import events as ev
from .fastpath import (  # the hot events' slot setters: one definition for both decoders
    _new,
    _sized,
    _tg0,
    _tg1,
    _tg2,
    _TickGeneric,
    _TickPrice,
    _TickSize,
    _TickString,
    _tp0,
    _tp1,
    _tp2,
    _tp3,
    _tp4,
    _tp5,
    _tp6,
    _ts0,
    _ts1,
    _ts2,
    _tx0,
    _tx1,
    _tx2,
    opt_delta,
    opt_value,
)

__all__ = ["EventBridge"]

_DEFAULT_LINGER = 0.001
# Wake-ups that come this soon after the consumer fell asleep, this many times in a row, mean
# a busy reader (over ~5,000 wake-ups a second): the consumer then lingers (see module doc).
_QUICK_WAKEUP = 200e-6
_QUICK_STREAK = 8



class EventBridge(EWrapper):  # type: ignore[misc]
    """An EWrapper whose every callback becomes one event in a list drained from Trio.

    Create it inside Trio (it captures the current TrioToken). Callbacks are safe from any
    thread; `receive_batch` is for exactly one Trio task at a time.

    *linger* (seconds, on Trio's clock) is how long the consumer waits for more events,
    without scheduling wake-ups, once wake-ups come in quick succession (measured in real
    time); 0 turns it off. It bounds the latency added under load; an event arriving after a
    quiet spell is delivered at once.
    """

    def __init__(
        self, token: trio.lowlevel.TrioToken | None = None, *, linger: float = _DEFAULT_LINGER
    ) -> None:
        super().__init__()
        self._token = token if token is not None else trio.lowlevel.current_trio_token()
        self._events: list[ev.TwsEvent] = []
        self._append = self._events.append
        # Held while a wake-up is pending or the consumer is awake: taking it is the only way
        # to schedule a wake-up, so there is never more than one.
        self._signal = threading.Lock()
        # A hint for posters, read without the lock: True once the consumer may be asleep.
        self._asleep = True
        # Trio side only: the consumer holds the signal (its wake-up ran, or it took the
        # signal back itself) and must release it before sleeping.
        self._awake = False
        self._linger = linger
        self._streak = 0  # consecutive quick wake-ups
        self._slept_at = 0.0
        self._ready = trio.Event()
        # A TickPrice whose size ibapi reports in the tickSize call that follows at once.
        self._held: ev.TickPrice | None = None
        self.wakeups = 0  # how many Trio wake-ups were scheduled (for the benchmark)

    # -- the thread side ---------------------------------------------------------------

    def post(self, event: ev.TwsEvent) -> None:
        """Hand *event* to Trio. Never blocks; never raises; callable from any thread."""
        if self._held is not None:
            self._release_held()
        self._append(event)
        if self._asleep:
            self._schedule_wakeup()

    def _schedule_wakeup(self) -> None:
        if not self._signal.acquire(blocking=False):
            return  # a wake-up is already pending, or the consumer is awake
        self._asleep = False
        self.wakeups += 1
        try:
            self._token.run_sync_soon(self._wake)
        except trio.RunFinishedError:
            # Trio has exited; nobody is left to read. Keep the signal: later posts then
            # skip the wake-up altogether while the reader thread is told to stop.
            pass

    def _release_held(self) -> None:
        # A price tick whose size did not follow (only a direct caller can do that) goes
        # out as it is, ahead of whatever came next.
        held, self._held = self._held, None
        if held is not None:
            self._append(held)

    def _wake(self) -> None:
        # Runs in the Trio thread and hands the signal to the consumer.
        self._awake = True
        if time.perf_counter() - self._slept_at < _QUICK_WAKEUP:
            self._streak += 1
        else:
            self._streak = 0
        self._ready.set()

    # -- the Trio side -------------------------------------------------------------------

    async def receive_batch(self) -> list[ev.TwsEvent]:
        """Wait until at least one event is there, then return all that are, in order.

        Cancellation-safe: if cancelled while waiting (or lingering), no event is lost; they
        stay for the next call.
        """
        events = self._events
        while True:
            count = len(events)
            if count:
                # Copy, then cut exactly what was copied: each step is one atomic list
                # operation, and appends racing with us land after the cut.
                batch = events[:count]
                del events[:count]
                return batch
            if self._awake and self._streak >= _QUICK_STREAK and self._linger > 0:
                # The reader is busy. Keep the signal (no wake-up per event) and leave it the
                # GIL for a moment; once a linger brings nothing, the burst is over.
                await trio.sleep(self._linger)
                if not events:
                    self._streak = 0
                continue
            self._ready = trio.Event()
            if self._awake:
                self._awake = False
                self._slept_at = time.perf_counter()
                self._asleep = True
                self._signal.release()
                # A post that saw the signal held before the release scheduled nothing; its
                # event is already in the list.
                if events:
                    if self._signal.acquire(blocking=False):
                        self._asleep = False
                        self._awake = True
                    continue
            await self._ready.wait()

    def pending(self) -> int:
        """Events posted and not yet taken by `receive_batch`."""
        return len(self._events)

    # -- callbacks with their own event class -----------------------------------------------

    def connectAck(self) -> None:  # noqa: N802 - ibapi's names
        self.post(ev.ConnectAck())

    def connectionClosed(self) -> None:  # noqa: N802
        self.post(ev.ConnectionClosed())

    def nextValidId(self, orderId: int) -> None:  # noqa: N802, N803
        self.post(ev.NextValidId(int(orderId)))

    def managedAccounts(self, accountsList: str) -> None:  # noqa: N802, N803
        accounts = tuple(a for a in accountsList.split(",") if a)
        self.post(ev.ManagedAccounts(accounts))

    def currentTime(self, time: int) -> None:  # noqa: N802
        self.post(ev.CurrentTime(int(time)))

    def currentTimeInMillis(self, timeInMillis: int) -> None:  # noqa: N802, N803
        self.post(ev.CurrentTimeInMillis(int(timeInMillis)))

    def error(  # noqa: N802
        self,
        reqId: int,  # noqa: N803
        errorTime: int,  # noqa: N803
        errorCode: int,  # noqa: N803
        errorString: str,  # noqa: N803
        advancedOrderRejectJson: str = "",  # noqa: N803
    ) -> None:
        self.post(
            ev.TwsError(
                int(reqId), int(errorCode), str(errorString), int(errorTime or 0),
                str(advancedOrderRejectJson or ""),
            )
        )

    # The tick callbacks are the hot path when ibapi decodes ticks (the session's fast path
    # usually does): post() is inlined and the events are built through the slot setters.
    # The decoder already hands us bools for the attribs.
    #
    # ibapi reports one TICK_PRICE of a bid, ask or last as tickPrice and, at once, tickSize
    # of the matching size tick type: the price is held for that tickSize and posted as one
    # TickPrice carrying its size (see `events.TickPrice`).

    def tickPrice(self, reqId: int, tickType: int, price: float, attrib: Any) -> None:  # noqa: N802, N803
        if self._held is not None:
            self._release_held()
        event = _new(_TickPrice)
        _tp0(event, reqId)
        _tp1(event, tickType)
        _tp2(event, price)
        _tp3(event, attrib.canAutoExecute)
        _tp4(event, attrib.pastLimit)
        _tp5(event, attrib.preOpen)
        _tp6(event, None)
        if tickType in _sized:
            self._held = event
            return
        self._append(event)
        if self._asleep:
            self._schedule_wakeup()

    def tickSize(self, reqId: int, tickType: int, size: Decimal) -> None:  # noqa: N802, N803
        held = self._held
        if held is not None:
            self._held = None
            if held.req_id == reqId and _sized[held.tick_type] == tickType:
                _tp6(held, size)
                self._append(held)
                if self._asleep:
                    self._schedule_wakeup()
                return
            self._append(held)
        event = _new(_TickSize)
        _ts0(event, reqId)
        _ts1(event, tickType)
        _ts2(event, size)
        self._append(event)
        if self._asleep:
            self._schedule_wakeup()

    def tickString(self, reqId: int, tickType: int, value: str) -> None:  # noqa: N802, N803
        if self._held is not None:
            self._release_held()
        event = _new(_TickString)
        _tx0(event, reqId)
        _tx1(event, tickType)
        _tx2(event, value)
        self._append(event)
        if self._asleep:
            self._schedule_wakeup()

    def tickGeneric(self, reqId: int, tickType: int, value: float) -> None:  # noqa: N802, N803
        if self._held is not None:
            self._release_held()
        event = _new(_TickGeneric)
        _tg0(event, reqId)
        _tg1(event, tickType)
        _tg2(event, value)
        self._append(event)
        if self._asleep:
            self._schedule_wakeup()

    def tickOptionComputation(  # noqa: N802, PLR0913
        self, reqId: int, tickType: int, tickAttrib: int, impliedVol: float,  # noqa: N803
        delta: float, optPrice: float, pvDividend: float, gamma: float,  # noqa: N803
        vega: float, theta: float, undPrice: float,  # noqa: N803
    ) -> None:
        self.post(
            ev.TickOptionComputation(
                reqId, tickType, tickAttrib, opt_value(impliedVol), opt_delta(delta),
                opt_value(optPrice), opt_value(pvDividend), opt_delta(gamma), opt_delta(vega),
                opt_delta(theta), opt_value(undPrice),
            )
        )

    def tickByTickAllLast(  # noqa: N802, PLR0913
        self, reqId: int, tickType: int, time: int, price: float, size: Decimal,  # noqa: N803
        tickAttribLast: Any, exchange: str, specialConditions: str,  # noqa: N803
    ) -> None:
        self.post(ev.TickByTickAllLast(
            reqId, tickType, time, price, size, tickAttribLast.pastLimit,
            tickAttribLast.unreported, exchange, specialConditions,
        ))

    def tickByTickBidAsk(  # noqa: N802, PLR0913
        self, reqId: int, time: int, bidPrice: float, askPrice: float,  # noqa: N803
        bidSize: Decimal, askSize: Decimal, tickAttribBidAsk: Any,  # noqa: N803
    ) -> None:
        self.post(ev.TickByTickBidAsk(
            reqId, time, bidPrice, askPrice, bidSize, askSize, tickAttribBidAsk.bidPastLow,
            tickAttribBidAsk.askPastHigh,
        ))

    def tickByTickMidPoint(self, reqId: int, time: int, midPoint: float) -> None:  # noqa: N802, N803
        self.post(ev.TickByTickMidPoint(reqId, time, midPoint))

    def tickSnapshotEnd(self, reqId: int) -> None:  # noqa: N802, N803
        self.post(ev.TickSnapshotEnd(reqId))

    def marketDataType(self, reqId: int, marketDataType: int) -> None:  # noqa: N802, N803
        self.post(ev.MarketDataType(reqId, marketDataType))

    def orderStatus(  # noqa: N802
        self, orderId: int, status: str, filled: Decimal, remaining: Decimal,  # noqa: N803
        avgFillPrice: float, permId: int, parentId: int, lastFillPrice: float,  # noqa: N803
        clientId: int, whyHeld: str, mktCapPrice: float,  # noqa: N803
    ) -> None:
        self.post(
            ev.OrderStatus(
                orderId, status, filled, remaining, avgFillPrice, permId, parentId,
                lastFillPrice, clientId, whyHeld, mktCapPrice,
            )
        )

    def openOrder(self, orderId: int, contract: Any, order: Any, orderState: Any) -> None:  # noqa: N802, N803
        self.post(ev.OpenOrder(orderId, contract, order, orderState))

    def openOrderEnd(self) -> None:  # noqa: N802
        self.post(ev.OpenOrderEnd())

    def execDetails(self, reqId: int, contract: Any, execution: Any) -> None:  # noqa: N802, N803
        self.post(ev.ExecDetails(reqId, contract, execution))

    def execDetailsEnd(self, reqId: int) -> None:  # noqa: N802, N803
        self.post(ev.ExecDetailsEnd(reqId))

    def position(self, account: str, contract: Any, position: Decimal, avgCost: float) -> None:  # noqa: N803
        self.post(ev.Position(account, contract, position, avgCost))

    def positionEnd(self) -> None:  # noqa: N802
        self.post(ev.PositionEnd())

    def contractDetails(self, reqId: int, contractDetails: Any) -> None:  # noqa: N802, N803
        self.post(ev.ContractDetails(reqId, contractDetails))

    def contractDetailsEnd(self, reqId: int) -> None:  # noqa: N802, N803
        self.post(ev.ContractDetailsEnd(reqId))

    def securityDefinitionOptionParameter(  # noqa: N802, PLR0913
        self, reqId: int, exchange: str, underlyingConId: int, tradingClass: str,  # noqa: N803
        multiplier: str, expirations: Any, strikes: Any,
    ) -> None:
        self.post(ev.SecDefOptParams(
            reqId, exchange, int(underlyingConId), tradingClass, multiplier,
            frozenset(expirations), frozenset(float(s) for s in strikes)))

    def securityDefinitionOptionParameterEnd(self, reqId: int) -> None:  # noqa: N802, N803
        self.post(ev.SecDefOptParamsEnd(reqId))


def _generic(name: str) -> Callable[..., None]:
    def callback(self: EventBridge, *args: Any) -> None:
        self.post(ev.WrapperCallback(name, args))

    callback.__name__ = name
    callback.__doc__ = f"EWrapper.{name} as a WrapperCallback event."
    return callback


def _install_generic_callbacks() -> None:
    """Every EWrapper callback without its own class above becomes a WrapperCallback.

    Done once at import, from ibapi's own EWrapper, so a callback added by a newer ibapi
    is still delivered rather than swallowed by EWrapper's logging default.
    """
    own = set(vars(EventBridge))
    for name, _ in inspect.getmembers(EWrapper, inspect.isfunction):
        if name.startswith("_") or name in own or name == "logAnswer":
            continue
        setattr(EventBridge, name, _generic(name))


_install_generic_callbacks()
