"""The limiter's outbound queue: which request goes to TWS next.

Every outbound request passes the limiter actor (``actors/limiter``), which may hold it back
for pacing. While requests wait, the order in which they leave matters: a cancel must not
queue behind a hundred market-data subscriptions, and an order behind a history request
can miss its price. :class:`RequestQueue` is that order -- strict priority between the
classes of :class:`Priority`, first in first out within one -- as a plain data structure
with no I/O, no clock and nothing to cancel; the actor owns the waiting.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Generic, TypeVar

from ..protocol.requests import Priority

__all__ = ["Priority", "RequestQueue"]

T = TypeVar("T")


_PRIORITIES = tuple(Priority)


class RequestQueue(Generic[T]):
    """A priority queue of outbound requests: by :class:`Priority`, FIFO within one.

    :meth:`push_front` puts a request back at the head of its class: a request that TWS
    refused with error 100 was already the oldest of its class when it left, and must not
    lose its place to younger ones. All operations are O(1) except :meth:`remove` (linear).

    ``priority`` arguments take a :class:`Priority` or any int of the same value (e.g. an
    equal IntEnum declared next to the requests); anything else raises ValueError.
    """

    __slots__ = ("_len", "_queues")

    def __init__(self) -> None:
        self._queues: tuple[collections.deque[T], ...] = tuple(
            collections.deque() for _ in _PRIORITIES
        )
        self._len = 0

    def __len__(self) -> int:
        return self._len

    def __bool__(self) -> bool:
        return self._len > 0

    def __repr__(self) -> str:
        pairs = zip(_PRIORITIES, self._queues, strict=True)
        sizes = ", ".join(f"{p.name}={len(q)}" for p, q in pairs)
        return f"<RequestQueue {sizes}>"

    def push(self, item: T, priority: int) -> None:
        """Queue ``item`` behind every other request of its ``priority``."""
        self._queues[Priority(priority)].append(item)
        self._len += 1

    def push_front(self, item: T, priority: int) -> None:
        """Queue ``item`` ahead of every other request of its ``priority`` (a re-queue)."""
        self._queues[Priority(priority)].appendleft(item)
        self._len += 1

    def pop(self) -> T:
        """Remove and return the next request. Raises IndexError if the queue is empty."""
        for queue in self._queues:
            if queue:
                self._len -= 1
                return queue.popleft()
        raise IndexError("pop from an empty RequestQueue")

    def peek_priority(self) -> Priority | None:
        """The priority of the request :meth:`pop` would return, or None if empty."""
        for priority, queue in zip(_PRIORITIES, self._queues, strict=True):
            if queue:
                return priority
        return None

    def count(self, priority: int) -> int:
        """How many requests of ``priority`` are waiting."""
        return len(self._queues[Priority(priority)])

    def drain(self) -> list[T]:
        """Remove and return every request, in pop order (e.g. to fail them on shutdown)."""
        items: list[T] = []
        for queue in self._queues:
            items.extend(queue)
            queue.clear()
        self._len = 0
        return items

    def remove(self, predicate: Callable[[T], bool]) -> list[T]:
        """Remove and return, in pop order, every request for which ``predicate`` is true.

        Used when a request becomes pointless before it leaves: e.g. a subscription that is
        cancelled while its reqMktData is still waiting is dropped with its cancel.
        """
        removed: list[T] = []
        for queue in self._queues:
            if not queue:
                continue
            kept: list[T] = []
            gone: list[T] = []
            for item in queue:
                (gone if predicate(item) else kept).append(item)
            # Only now mutate: if the predicate raised, this class is left untouched.
            if gone:
                queue.clear()
                queue.extend(kept)
                self._len -= len(gone)
                removed.extend(gone)
        return removed
