"""Where the audit trail's blocking file work runs: in the event loop while it is fast, in
a worker thread once it is not.

An order's intent must be fsync'd before the order goes to the wire, so that write sits
on every order's path. Handing it to a worker thread costs two cross-thread wake-ups
(~160 µs on a 2-core VM), more than the write and fsync themselves on a fast disk
(~60-100 µs on tmpfs or an NVMe drive with power-loss protection). Run inline there, it
is the fastest way; on a slow disk (a network volume, a consumer SSD's multi-millisecond
fsync) it would stall the loop, and every tick with it.

So :class:`AdaptiveFileWork` measures each run where it ran. Inline while every run
finishes within ``budget``; the first one that does not sends the work to a worker thread,
and it stays there until ``_FAST_RUNS`` runs in a row have taken less than half the
budget (measured in the thread). The loop is thus blocked at most once by a slow write
before the work moves off it. ``budget=0`` means always a worker thread.

Either way a run, once started, finishes and its result is returned: the worker thread is
not abandoned on cancellation (``trio.to_thread.run_sync``'s default), and an inline run
cannot be interrupted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import trio

__all__ = ["AdaptiveFileWork"]

T = TypeVar("T")

#: Consecutive quick runs in a worker thread before the work comes back inline.
_FAST_RUNS = 32


class AdaptiveFileWork:
    """Call it like ``trio.to_thread.run_sync``: ``await work(fn)`` returns ``fn()``."""

    def __init__(self, budget: float, *, clock: Callable[[], float] = time.perf_counter
                 ) -> None:
        if budget < 0:
            raise ValueError(f"budget must be >= 0 seconds, got {budget!r}")
        self.budget = budget
        self._clock = clock
        self.inline = budget > 0
        self._fast_runs = 0
        self.moved_off = 0  # how often a slow run sent the work to a thread

    async def __call__(self, fn: Callable[[], T]) -> T:
        if self.inline:
            await trio.lowlevel.checkpoint_if_cancelled()
            result, took = self._timed(fn)
            if took > self.budget:
                self.inline, self._fast_runs = False, 0
                self.moved_off += 1
            return result
        result, took = await trio.to_thread.run_sync(self._timed, fn)
        if self.budget > 0:
            self._fast_runs = self._fast_runs + 1 if took < self.budget / 2 else 0
            if self._fast_runs >= _FAST_RUNS:
                self.inline = True
        return result

    def _timed(self, fn: Callable[[], T]) -> tuple[T, float]:
        start = self._clock()
        result = fn()
        return result, self._clock() - start

