"""Market-data lines as a plain data structure: who holds which line, who waits for one.

TWS gives a client a fixed number of market-data lines (100 by default) and answers one
more with error 101, and caps tick-by-tick streams the same way (10190). The runtime never
lets TWS enforce either: :class:`LineBook` is the budget the market-data actor keeps
itself. Sans-IO: no clock, no channels; every method returns the requests to send.

- One line per contract, however many subscribers (reference-counted ``holders``).
- Past the budget a new subscription waits in priority order (lower number first, FIFO
  within one) or is refused with `LineBudgetExhausted`, as its caller chose.
- Releasing the last holder frees the line at once and hands it to the first waiter.
- When TWS forgets our lines (a lost socket, 1101) every line that held a slot is asked
  for again under a *new* request id, so a late tick of the old id can never be taken for
  the new stream.
"""

# REAL-TWS: the line budget is 100 by default and TWS answers 101 past it
from __future__ import annotations

import itertools
from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar

import attrs

from .._errors import IBKRError

__all__ = ["Line", "LineBook", "LineBudgetExhausted", "Want"]

T = TypeVar("T")


class LineBudgetExhausted(IBKRError):
    """Every market-data line (or tick-by-tick stream) of the budget is in use."""


@attrs.define(eq=False)
class Line(Generic[T]):
    """One subscription at TWS: its payload (what to ask for), holders and request id."""

    key: Hashable
    payload: T
    priority: int
    holders: int = 1
    req_id: int | None = None  # set while it holds a slot and has been asked for
    has_slot: bool = False
    seq: int = 0  # arrival order among waiters


@attrs.frozen
class Want(Generic[T]):
    """An instruction to the actor: ask TWS for ``line`` under ``req_id`` (``cancel``:
    stop ``req_id``)."""

    line: Line[T]
    req_id: int
    cancel: bool = False


class LineBook(Generic[T]):
    """See the module docstring. ``next_req_id`` hands out request ids (owned by the caller,
    so ids never repeat across a restart of the actor that uses this book)."""

    def __init__(self, budget: int, next_req_id: Callable[[], int]) -> None:
        if budget < 1:
            raise ValueError(f"budget must be >= 1, got {budget!r}")
        self.budget = budget
        self._next_req_id = next_req_id
        self._lines: dict[Hashable, Line[T]] = {}
        self._by_req: dict[int, Line[T]] = {}
        self._arrivals = itertools.count()

    # -- queries ---------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._lines)

    def __iter__(self) -> Iterator[Line[T]]:
        return iter(list(self._lines.values()))

    def get(self, key: Hashable) -> Line[T] | None:
        return self._lines.get(key)

    def by_req_id(self, req_id: int) -> Line[T] | None:
        return self._by_req.get(req_id)

    @property
    def in_use(self) -> int:
        """Lines holding a slot (asked for, or to be asked for once the link is up)."""
        return sum(1 for line in self._lines.values() if line.has_slot)

    @property
    def waiting(self) -> int:
        return sum(1 for line in self._lines.values() if not line.has_slot)

    def live_req_ids(self) -> frozenset[int]:
        return frozenset(self._by_req)

    # -- changes ---------------------------------------------------------------------

    def acquire(self, key: Hashable, payload: T, *, priority: int = 0, wait: bool = False,
                link_up: bool = True) -> tuple[Line[T], list[Want[T]]]:
        """Hold the line of ``key`` (creating it); returns it and what to send."""
        line = self._lines.get(key)
        if line is not None:
            line.holders += 1
            line.priority = min(line.priority, priority)
            return line, []
        if self.in_use >= self.budget and not wait:
            raise LineBudgetExhausted(
                f"all {self.budget} lines are in use; unsubscribe something or subscribe "
                "with wait=True to queue by priority")
        line = Line(key, payload, priority, seq=next(self._arrivals))
        self._lines[key] = line
        if self.in_use < self.budget:
            line.has_slot = True
            return line, self._ask(line) if link_up else []
        return line, []

    def release(self, key: Hashable, *, link_up: bool = True) -> list[Want[T]]:
        """Drop one holder of ``key``; the last one frees the line (cancel + promotion).

        Releasing a key nobody holds is a no-op (an unsubscribe twice is not an error)."""
        line = self._lines.get(key)
        if line is None:
            return []
        line.holders -= 1
        if line.holders > 0:
            return []
        del self._lines[key]
        wants: list[Want[T]] = []
        if line.req_id is not None:
            del self._by_req[line.req_id]
            if link_up:
                wants.append(Want(line, line.req_id, cancel=True))
            line.req_id = None
        if line.has_slot:
            line.has_slot = False
            wants.extend(self._promote(link_up))
        return wants

    def refused(self, req_id: int, *, link_up: bool = True) -> tuple[Line[T] | None, list[Want[T]]]:
        """TWS refused ``req_id`` for good: the line stays known (its holders are told) but
        gives its slot to the next waiter."""
        line = self._by_req.pop(req_id, None)
        if line is None:
            return None, []
        line.req_id = None
        line.has_slot = False
        # A refused line waits behind everyone; it is not asked for again by itself.
        line.seq = next(self._arrivals)
        line.priority = max(line.priority, 1 << 30)
        return line, self._promote(link_up)

    def forget_all(self) -> None:
        """TWS dropped every line (socket lost, 1101): nothing is asked for any more."""
        for line in self._lines.values():
            line.req_id = None
        self._by_req.clear()

    def forget_line(self, key: Hashable) -> None:
        """TWS no longer has this one line (or never got it): it keeps its slot and is
        asked for again, under a new id, by the next `restore`."""
        line = self._lines.get(key)
        if line is not None and line.req_id is not None:
            del self._by_req[line.req_id]
            line.req_id = None

    def restore(self) -> list[Want[T]]:
        """Ask again for every line that holds a slot and is not asked for (new ids)."""
        self._promote(link_up=False)  # fill slots freed while the link was down
        return [want for line in sorted(self._lines.values(), key=_order)
                if line.has_slot and line.req_id is None for want in self._ask(line)]

    def set_budget(self, budget: int, *, link_up: bool = True) -> list[Want[T]]:
        if budget < 1:
            raise ValueError(f"budget must be >= 1, got {budget!r}")
        self.budget = budget
        return self._promote(link_up)

    # -- internals -------------------------------------------------------------------

    def _ask(self, line: Line[T]) -> list[Want[T]]:
        req_id = self._next_req_id()
        line.req_id = req_id
        self._by_req[req_id] = line
        return [Want(line, req_id)]

    def _promote(self, link_up: bool) -> list[Want[T]]:
        wants: list[Want[T]] = []
        free = self.budget - self.in_use
        if free <= 0:
            return wants
        waiters = sorted((line for line in self._lines.values() if not line.has_slot
                          and line.priority < (1 << 30)), key=_order)
        for line in waiters[:free]:
            line.has_slot = True
            if link_up:
                wants.extend(self._ask(line))
        return wants


def _order(line: Line[T]) -> tuple[int, int]:
    return (line.priority, line.seq)
