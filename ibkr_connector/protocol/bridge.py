"""The bridge: ibapi's EWrapper callbacks in, typed events out, into Trio.

ibapi calls EWrapper methods from the thread that runs ``EClient.run()`` (and, during the
handshake, from the connecting thread). That thread must never block on Trio: if it did, a
slow consumer would stall the socket reader and TWS would see us as dead. So each callback
only builds a frozen event and appends it to a thread-safe deque; at most one wake-up is
pending in Trio at any time (``TrioToken.run_sync_soon``), and the Trio side drains the whole
deque in one go. Under a flood this is one wake-up per batch, not per message.

The deque is unbounded on purpose: TWS itself buffers without limit, and dropping here would
lose order or connection events. Conflation of market data happens later, per subscriber,
on the event bus.
"""

from __future__ import annotations

import collections
import inspect
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import trio
from ibapi.wrapper import EWrapper

from . import events as ev

__all__ = ["EventBridge"]

_UNSET_DOUBLE = 1.7976931348623157e308


def _opt(value: float) -> float | None:
    """ibapi marks absent greeks with UNSET_DOUBLE (and some with -1/-2); keep None instead."""
    if value is None or value == _UNSET_DOUBLE or value in (-1.0, -2.0):
        return None
    return float(value)


class EventBridge(EWrapper):  # type: ignore[misc]
    """An EWrapper whose every callback becomes one event in a deque drained from Trio.

    Create it inside Trio (it captures the current TrioToken). Callbacks are safe from any
    thread; `receive_batch` is for exactly one Trio task at a time.
    """

    def __init__(self, token: trio.lowlevel.TrioToken | None = None) -> None:
        super().__init__()
        self._token = token if token is not None else trio.lowlevel.current_trio_token()
        self._queue: collections.deque[ev.TwsEvent] = collections.deque()
        self._wake_pending = False
        self._ready = trio.Event()
        self.wakeups = 0  # how many Trio wake-ups were scheduled (for the benchmark)

    # -- the thread side ---------------------------------------------------------------

    def post(self, event: ev.TwsEvent) -> None:
        """Hand *event* to Trio. Never blocks; callable from any thread."""
        self._queue.append(event)
        if not self._wake_pending:
            self._wake_pending = True
            self.wakeups += 1
            try:
                self._token.run_sync_soon(self._wake)
            except trio.RunFinishedError:
                # Trio has exited; nobody is left to read. Drop quietly: the reader
                # thread is about to be told to stop.
                self._wake_pending = False

    def _wake(self) -> None:
        # Runs in the Trio thread. Reset the flag first: an append that races with us
        # either sees the flag down and schedules another wake, or lands before the
        # consumer's drain below. Either way nothing is stranded.
        self._wake_pending = False
        self._ready.set()

    # -- the Trio side -------------------------------------------------------------------

    async def receive_batch(self) -> list[ev.TwsEvent]:
        """Wait until at least one event is there, then return all that are.

        Cancellation-safe: if cancelled while waiting, no event is lost; they stay in the
        deque for the next call.
        """
        queue = self._queue
        while True:
            if queue:
                # Take exactly what is there now; appends racing with us stay for next time.
                popleft = queue.popleft
                return [popleft() for _ in range(len(queue))]
            self._ready = trio.Event()
            if queue:  # re-check after arming: a post may have landed in between
                continue
            await self._ready.wait()

    def pending(self) -> int:
        return len(self._queue)

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

    def tickPrice(self, reqId: int, tickType: int, price: float, attrib: Any) -> None:  # noqa: N802, N803
        self.post(
            ev.TickPrice(
                reqId, tickType, price,
                bool(attrib.canAutoExecute), bool(attrib.pastLimit), bool(attrib.preOpen),
            )
        )

    def tickSize(self, reqId: int, tickType: int, size: Decimal) -> None:  # noqa: N802, N803
        self.post(ev.TickSize(reqId, tickType, size))

    def tickString(self, reqId: int, tickType: int, value: str) -> None:  # noqa: N802, N803
        self.post(ev.TickString(reqId, tickType, value))

    def tickGeneric(self, reqId: int, tickType: int, value: float) -> None:  # noqa: N802, N803
        self.post(ev.TickGeneric(reqId, tickType, value))

    def tickOptionComputation(  # noqa: N802, PLR0913
        self, reqId: int, tickType: int, tickAttrib: int, impliedVol: float,  # noqa: N803
        delta: float, optPrice: float, pvDividend: float, gamma: float,  # noqa: N803
        vega: float, theta: float, undPrice: float,  # noqa: N803
    ) -> None:
        self.post(
            ev.TickOptionComputation(
                reqId, tickType, tickAttrib, _opt(impliedVol), _opt_delta(delta),
                _opt(optPrice), _opt(pvDividend), _opt_delta(gamma), _opt_delta(vega),
                _opt_delta(theta), _opt(undPrice),
            )
        )

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


def _opt_delta(value: float) -> float | None:
    # Greeks may legitimately be -1 (delta of a deep ITM put), so only UNSET means absent.
    if value is None or value == _UNSET_DOUBLE:
        return None
    return float(value)


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
