"""The event bus: fan-out of runtime events to subscribers, never stalling the publisher.

Actors publish what happened (connection established/lost, order status, errors, ticks) and
any number of subscribers -- the user's strategy, the control endpoint, tests -- read their
own stream. The publisher is on the market-data hot path, so :meth:`EventBus.publish` is
synchronous, O(subscribers) and never waits for a slow reader. What happens to a slow
reader depends on the event:

* an event whose ``conflation_key`` attribute is not None (market data; the key is like
  ``(type, req_id, tick_type)``) is *conflated*: while the subscriber is behind, only the
  latest event per key is kept, in the order the keys first arrived. A strategy wants the
  current price, not a backlog of stale ones.
* every other event (connection, order, error) is *reliable*: never dropped. A subscriber
  that falls more than ``capacity`` reliable events behind is disconnected with
  :class:`SubscriberOverflow`, which it sees on its next receive. Dropping one order status
  silently would be worse: the subscriber must know its view is incomplete and resync.

Each subscription is a deque plus a dict (key -> pending slot) plus one ``ParkingLot`` to
wake its reader: one allocation per new conflation key, none per conflated update. All of
it must be used from the Trio thread (the protocol bridge hands events into Trio first).

A subscriber that must not lose an event to its own crash (the audit trail) reads with
:meth:`Subscription.peek` and :meth:`Subscription.commit`: the event stays at the head of
the queue until it has been dealt with, so the next reader -- a restarted actor holding the
same runtime-owned subscription -- gets it again.

Publishing and subscribing are plain synchronous calls on the shared :class:`EventBus`, not
messages: a mailbox hop would cost the market-data hot path a task switch per event, and a
subscribe would fail while the actor restarts. The :class:`EventBus` object is owned by the
runtime, not by the actor task; the actor shell :func:`run_event_bus` gives the bus its
place in the supervision tree and answers :class:`BusStats`, so a restart of the shell ends
no subscription.

This module holds the hot path: :class:`EventBus` and :class:`Subscription` share private
state so that a publish costs one ``_offer`` call per matching subscriber and nothing more.
It re-exports the bus's other public names, its vocabulary (``bus_messages``) and its actor
shell (``bus_shell``), so callers import everything of the bus from here.
"""

from __future__ import annotations

import collections
from collections.abc import AsyncIterator, Collection, Hashable
from typing import Final, Generic, NoReturn, TypeVar, cast, overload

import trio

from .bus_messages import BusStats, EventBusStats, SubscriberOverflow
from .bus_shell import run_event_bus

__all__ = [
    "BusStats",
    "EventBus",
    "EventBusStats",
    "SubscriberOverflow",
    "Subscription",
    "run_event_bus",
]

EventT = TypeVar("EventT")
EventT_co = TypeVar("EventT_co", covariant=True)


class _NothingPeeked:
    """The type of :data:`_NOTHING_PEEKED`."""


_NOTHING_PEEKED: Final = _NothingPeeked()


class _Slot:
    """A queued place for the latest event of one conflation key."""

    __slots__ = ("event", "key")

    def __init__(self, key: Hashable, event: object) -> None:
        self.key = key
        self.event = event


class Subscription(Generic[EventT_co]):
    """The receiving side of one subscriber: ``async for event in subscription``.

    Iteration ends when the subscription is closed (:meth:`close`, or :meth:`EventBus.close`
    after the pending events are received); it raises :class:`SubscriberOverflow` if the
    subscriber was cut off. Create it with :meth:`EventBus.subscribe`, which types it by the
    kinds asked for: ``bus.subscribe([ConnectionLost])`` is a
    ``Subscription[ConnectionLost]``.
    """

    __slots__ = (
        "_bus",
        "_capacity",
        "_closed_reason",
        "_conflate",
        "_ended",
        "_kinds",
        "_lot",
        "_peeked",
        "_queue",
        "_reliable_pending",
        "_slots",
    )

    def __init__(self, bus: EventBus, kinds: tuple[type, ...] | None, capacity: int,
                 conflate: bool = True) -> None:
        self._bus = bus
        self._kinds = kinds
        self._capacity = capacity
        self._conflate = conflate
        self._queue: collections.deque[object] = collections.deque()
        self._slots: dict[Hashable, _Slot] = {}
        self._reliable_pending = 0
        self._lot = trio.lowlevel.ParkingLot()
        self._closed_reason: BaseException | None = None
        # Set when no more events will come but the pending ones may still be received.
        self._ended = False
        # What the last peek returned, until commit: a conflated slot updated since then
        # keeps its newer event rather than lose it unseen.
        self._peeked: object = _NOTHING_PEEKED

    @property
    def kinds(self) -> tuple[type, ...] | None:
        """The event classes this subscription receives (None: all)."""
        return self._kinds

    @property
    def capacity(self) -> int:
        """How many reliable events may be pending before the subscriber is cut off."""
        return self._capacity

    @property
    def closed_reason(self) -> BaseException | None:
        """None while open; otherwise why it closed (a :class:`SubscriberOverflow`,
        or a ``trio.ClosedResourceError`` / ``trio.EndOfChannel`` for a normal close)."""
        return self._closed_reason

    def pending(self) -> int:
        """Events waiting to be received (a conflated key counts once)."""
        return len(self._queue)

    def _offer(self, event: object, key: Hashable | None) -> None:
        # Called by EventBus.publish for every matching event: keep it cheap.
        if key is None or not self._conflate:
            if self._reliable_pending >= self._capacity:
                self._bus._overflow(self)
                return
            self._queue.append(event)
            self._reliable_pending += 1
        else:
            slot = self._slots.get(key)
            if slot is not None:
                slot.event = event
                self._bus._conflated += 1
                return
            slot = _Slot(key, event)
            self._slots[key] = slot
            self._queue.append(slot)
        if self._lot:
            self._lot.unpark_all()

    def _take(self) -> object:
        entry = self._queue.popleft()
        self._bus._delivered += 1
        if type(entry) is _Slot:
            del self._slots[entry.key]
            return entry.event
        self._reliable_pending -= 1
        return entry

    def _shut(self, reason: BaseException, *, keep_pending: bool) -> None:
        if self._closed_reason is not None:
            return
        self._closed_reason = reason
        self._ended = True
        if not keep_pending:
            self._queue.clear()
            self._slots.clear()
            self._reliable_pending = 0
        self._lot.unpark_all()

    def receive_nowait(self) -> EventT_co:
        """The next event if one is pending; raises ``trio.WouldBlock`` otherwise.

        Raises :class:`SubscriberOverflow` if cut off, ``trio.EndOfChannel`` once closed.
        """
        if self._queue:
            self._peeked = _NOTHING_PEEKED
            # publish hands a subscription only instances of its kinds
            return cast(EventT_co, self._take())
        self._raise_empty()

    def _raise_empty(self) -> NoReturn:
        reason = self._closed_reason
        if isinstance(reason, SubscriberOverflow):
            # A fresh instance each time: re-raising one would grow its traceback forever.
            raise SubscriberOverflow(reason.capacity) from None
        if self._ended:
            raise trio.EndOfChannel
        raise trio.WouldBlock

    async def receive(self) -> EventT_co:
        """Wait for and return the next event.

        Raises :class:`SubscriberOverflow` if cut off and ``trio.EndOfChannel`` once closed.
        Cancellation loses nothing: an event is removed only when it is returned.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            try:
                event = self.receive_nowait()
            except trio.WouldBlock:
                await self._lot.park()
                continue
            await trio.lowlevel.cancel_shielded_checkpoint()
            return event

    async def peek(self) -> EventT_co:
        """Wait for the next event and return it *without* removing it; see :meth:`commit`.

        For a reader that must not lose an event to its own crash: peek, deal with the
        event (write it down), then commit. If the reader dies in between, the event is
        still at the head for whoever reads next. Peeking again without a commit returns
        the same event (or, for a conflated key, its newer value). Raises like
        :meth:`receive`; cancellation loses nothing.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        while not self._queue:
            try:
                self._raise_empty()
            except trio.WouldBlock:
                await self._lot.park()
        head = self._queue[0]
        event = head.event if type(head) is _Slot else head
        self._peeked = event
        await trio.lowlevel.cancel_shielded_checkpoint()
        return cast(EventT_co, event)

    def commit(self) -> None:
        """Remove the event the last :meth:`peek` returned: it has been dealt with.

        A no-op if there is nothing to commit (no peek since the last commit or receive,
        or the subscription was closed or cut off meanwhile, which already discarded it).
        If the peeked event was market data whose key got a newer value since, the newer
        value stays queued, so it is not lost unseen.
        """
        peeked, self._peeked = self._peeked, _NOTHING_PEEKED
        if peeked is _NOTHING_PEEKED or not self._queue:
            return
        head = self._queue[0]
        if type(head) is _Slot and head.event is not peeked:
            return
        self._take()

    def close(self) -> None:
        """Unsubscribe and discard pending events; a blocked or later receive ends the
        iteration. Idempotent; closing after an overflow keeps the overflow reason."""
        self._bus._detach(self)
        self._shut(trio.ClosedResourceError("subscription closed"), keep_pending=False)

    def __aiter__(self) -> AsyncIterator[EventT_co]:
        return self

    async def __anext__(self) -> EventT_co:
        try:
            return await self.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None

    def __enter__(self) -> Subscription[EventT_co]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class EventBus:
    """Publish/subscribe fan-out with per-subscriber conflation; see the module docstring."""

    __slots__ = ("_closed", "_conflated", "_delivered", "_overflows", "_published", "_subs")

    def __init__(self) -> None:
        # A tuple, replaced on (un)subscribe: publish iterates it without copying, and a
        # subscriber removed during the loop does not disturb the iteration.
        self._subs: tuple[Subscription[object], ...] = ()
        self._published = 0
        self._delivered = 0
        self._conflated = 0
        self._overflows = 0
        self._closed = False

    @overload
    def subscribe(self, kinds: None = None, capacity: int = 1000, *,
                  conflate: bool = True) -> Subscription[object]: ...
    @overload
    def subscribe(self, kinds: type[EventT], capacity: int = 1000, *,
                  conflate: bool = True) -> Subscription[EventT]: ...
    @overload
    def subscribe(
        self, kinds: Collection[type[EventT]], capacity: int = 1000, *, conflate: bool = True
    ) -> Subscription[EventT]: ...

    def subscribe(
        self, kinds: type | Collection[type] | None = None, capacity: int = 1000, *,
        conflate: bool = True,
    ) -> Subscription[object]:
        """A new subscription to events that are instances of ``kinds``: one class, a
        collection of classes (any of them), or None (every event).

        The subscription is typed by what it can yield: one class gives
        ``Subscription[ThatClass]``; several give their nearest common base (as mypy joins
        them), so ``isinstance`` narrows each event without casts. ``capacity`` bounds the
        reliable events that may wait for this subscriber. ``conflate=False`` makes every
        event reliable for this subscriber (a tick-by-tick reader wants every trade, and
        would rather be cut off than silently miss one).
        """
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity!r}")
        kind_tuple = _kinds_tuple(kinds)
        if kind_tuple is not None and not all(isinstance(k, type) for k in kind_tuple):
            raise TypeError(f"kinds must be classes, got {kinds!r}")
        sub: Subscription[object] = Subscription(self, kind_tuple, capacity, conflate)
        if self._closed:
            sub._shut(trio.EndOfChannel("event bus closed"), keep_pending=False)
        else:
            self._subs = (*self._subs, sub)
        return sub

    def publish(self, event: object) -> None:
        """Hand ``event`` to every matching subscriber. Synchronous; never blocks.

        Events whose ``conflation_key`` is not None are conflated per subscriber; all
        others are reliable (see the module docstring). Publishing to a closed bus is a
        no-op: events at shutdown have nobody left to read them.
        """
        self._published += 1
        key: Hashable | None = getattr(event, "conflation_key", None)
        for sub in self._subs:
            kinds = sub._kinds
            if kinds is None or isinstance(event, kinds):
                sub._offer(event, key)

    def stats(self) -> EventBusStats:
        """A snapshot of the bus counters."""
        return EventBusStats(
            published=self._published,
            delivered=self._delivered,
            conflated=self._conflated,
            overflow_disconnects=self._overflows,
            subscribers=len(self._subs),
        )

    def close(self) -> None:
        """End every subscription once its pending events are received; no new ones.

        For runtime shutdown only: the bus outlives restarts of its actor shell.
        """
        self._closed = True
        subs, self._subs = self._subs, ()
        for sub in subs:
            sub._shut(trio.EndOfChannel("event bus closed"), keep_pending=True)

    def _detach(self, sub: Subscription[object]) -> None:
        if sub in self._subs:
            self._subs = tuple(s for s in self._subs if s is not sub)

    def _overflow(self, sub: Subscription[object]) -> None:
        self._overflows += 1
        self._detach(sub)
        sub._shut(SubscriberOverflow(sub._capacity), keep_pending=False)


def _kinds_tuple(kinds: type | Collection[type] | None) -> tuple[type, ...] | None:
    if kinds is None:
        return None
    if isinstance(kinds, type):  # one class (even an iterable one, like an Enum)
        return (kinds,)
    return tuple(kinds)
