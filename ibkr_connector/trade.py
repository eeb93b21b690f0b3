"""`Trade`: a live, typed view of one order, from the moment it is placed to its end.

The orders actor is the only writer of a `Trade` (through `OrderBook`); user code reads
its fields at any moment, waits for the next change with ``async for _ in
trade.updates()``, or for the end with ``await trade.filled()`` / ``await trade.done()``.
Like a `Ticker`, ``updates()`` yields once per *change since you last looked*: the log
(``trade.log``) and the fills (``trade.fills``) keep every step, so nothing is lost to a
slow reader.

Two statuses are ours, not TWS's: ``Unknown`` (the write of the order broke off, so
whether TWS has it is unknown until reconciliation says) and ``NotPlaced`` (TWS's answer
after a reconnect shows it never got the order). An ``Unknown`` order is never sent again
on a guess: it waits for TWS's word.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from decimal import Decimal

import attrs
import trio
from ibapi.contract import Contract
from ibapi.order import Order

from ._errors import IBKRError

__all__ = [
    "DONE_STATUSES",
    "Fill",
    "Leg",
    "OrderNotFilled",
    "Rejection",
    "RejectedOrder",
    "StatusEntry",
    "Trade",
    "TradeStatus",
]


class TradeStatus(enum.Enum):
    """TWS's order statuses, plus ``PendingSubmit`` (written, TWS has not answered yet),
    ``Unknown`` and ``NotPlaced`` (see the module docstring)."""

    PENDING_SUBMIT = "PendingSubmit"
    PRE_SUBMITTED = "PreSubmitted"
    SUBMITTED = "Submitted"
    API_PENDING = "ApiPending"
    PENDING_CANCEL = "PendingCancel"
    API_CANCELLED = "ApiCancelled"
    CANCELLED = "Cancelled"
    FILLED = "Filled"
    INACTIVE = "Inactive"
    UNKNOWN = "Unknown"
    NOT_PLACED = "NotPlaced"

    @classmethod
    def from_tws(cls, text: str) -> TradeStatus | None:
        """TWS's spelling (``orderStatus``'s ``status``) -> the member; None if unknown."""
        try:
            return cls(text)
        except ValueError:
            return None


#: Statuses after which an order never changes again.
DONE_STATUSES = frozenset({TradeStatus.FILLED, TradeStatus.CANCELLED, TradeStatus.API_CANCELLED,
                           TradeStatus.INACTIVE, TradeStatus.NOT_PLACED})


class RejectedOrder(IBKRError):
    """TWS rejected the order (201, or a request error such as 110 for its id).

    ``meaning`` is the error table's wording; ``tws_reason`` is TWS's own text (it may
    quote prices or the account, so it is never logged above DEBUG)."""

    def __init__(self, order_id: int, code: int, meaning: str, tws_reason: str) -> None:
        super().__init__(f"order {order_id} rejected by TWS ({code}: {meaning})")
        self.order_id, self.code, self.meaning, self.tws_reason = (
            order_id, code, meaning, tws_reason)


class OrderNotFilled(IBKRError):
    """The order ended without being filled in full (cancelled, inactive, not placed)."""

    def __init__(self, order_id: int, status: TradeStatus, filled: Decimal) -> None:
        super().__init__(f"order {order_id} ended {status.value} with {filled} filled")
        self.order_id, self.status, self.filled = order_id, status, filled


@attrs.frozen
class Leg:
    """One leg of a combo: the instrument (by conId, and what it is), side and ratio."""

    con_id: int
    action: str
    ratio: int
    symbol: str = ""
    expiry: str = ""
    strike: float | None = None
    right: str = ""


@attrs.frozen
class Fill:
    """One execution of an order (a combo has one per leg and one for the combo itself).

    ``commission`` is None until TWS's commission report for ``exec_id`` arrives."""

    exec_id: str
    order_id: int
    client_id: int
    perm_id: int
    account: str
    con_id: int
    symbol: str
    sec_type: str
    side: str  # BOT / SLD
    shares: Decimal
    price: float
    time: str
    commission: float | None = None


@attrs.frozen
class Rejection:
    """Why TWS refused an order: its code, the table's meaning, TWS's text (never logged)."""

    code: int
    meaning: str
    tws_reason: str = attrs.field(repr=False)


@attrs.frozen
class StatusEntry:
    """One step of a trade's life: when (Trio time), the status then, and what moved it."""

    time: float
    status: TradeStatus
    filled: Decimal
    remaining: Decimal
    note: str = ""


@attrs.define(eq=False)
class Trade:
    """One order and everything TWS said about it; see the module docstring.

    ``read_only`` trades belong to another client id (seen through ``reqAllOpenOrders``):
    they are shown, never modified or cancelled from here.
    """

    order_id: int
    client_id: int
    contract: Contract = attrs.field(repr=False)
    order: Order = attrs.field(repr=False)
    legs: tuple[Leg, ...] = ()
    read_only: bool = False
    status: TradeStatus = TradeStatus.PENDING_SUBMIT
    perm_id: int = 0
    filled_quantity: Decimal = Decimal(0)
    remaining: Decimal = Decimal(0)
    avg_fill_price: float | None = None
    fills: list[Fill] = attrs.Factory(list)
    log: list[StatusEntry] = attrs.Factory(list)
    rejection: Rejection | None = None
    placed_at: float | None = None
    acknowledged_at: float | None = None
    _version: int = 0
    _changed: trio.Event = attrs.field(factory=trio.Event, repr=False)

    @property
    def is_done(self) -> bool:
        return self.status in DONE_STATUSES

    @property
    def is_spread(self) -> bool:
        return bool(self.legs)

    @property
    def commission(self) -> float:
        """The commissions reported so far, over every fill."""
        return sum(f.commission for f in self.fills if f.commission is not None)

    @property
    def commissions_pending(self) -> bool:
        """True while a fill still waits for its commission report (TWS sends it after the
        execution, so often after the order is already Filled)."""
        return any(f.commission is None for f in self.fills)

    async def updates(self) -> AsyncIterator[Trade]:
        """Yield this trade after every change (conflated); ends after its last change:
        once the order is done and every fill has its commission.

        A checkpoint per iteration; cancelling the loop loses nothing (``log`` and
        ``fills`` keep every step)."""
        seen = self._version
        while True:
            if self._version == seen and self.is_done and not self.commissions_pending:
                return
            while self._version == seen:
                await self._changed.wait()
            seen = self._version
            yield self

    async def done(self) -> Trade:
        """Wait until the order can change no more; raise `RejectedOrder` if TWS rejected it.

        A checkpoint; cancelling the wait changes nothing about the order."""
        await trio.lowlevel.checkpoint()
        while not self.is_done:
            await self._changed.wait()
        if self.rejection is not None and self.status is not TradeStatus.FILLED:
            r = self.rejection
            raise RejectedOrder(self.order_id, r.code, r.meaning, r.tws_reason)
        return self

    async def filled(self) -> Trade:
        """Wait for the fill; `RejectedOrder` or `OrderNotFilled` if it ends otherwise.

        Cancelling the wait does not cancel the order (use ``runtime.cancel(trade)``)."""
        await self.done()
        if self.status is not TradeStatus.FILLED:
            raise OrderNotFilled(self.order_id, self.status, self.filled_quantity)
        return self

    # -- the writer's side (the order book only) ----------------------------------------

    def _touch(self) -> None:
        self._version += 1
        changed, self._changed = self._changed, trio.Event()
        changed.set()

    def _set_status(self, status: TradeStatus, now: float, note: str = "") -> bool:
        """Move to ``status``; True if anything changed. A done trade stays done, except
        that TWS's word overrides our own ``NotPlaced``."""
        if self.is_done and status is not self.status and (
                self.status is not TradeStatus.NOT_PLACED or status is TradeStatus.UNKNOWN):
            return False
        last = self.log[-1] if self.log else None
        if (last is not None and last.status is status
                and last.filled == self.filled_quantity and last.remaining == self.remaining):
            return False
        self.status = status
        self.log.append(StatusEntry(now, status, self.filled_quantity, self.remaining, note))
        self._touch()
        return True
