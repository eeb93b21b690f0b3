"""TWS's client message-rate rule as a sans-IO sliding window.

TWS accepts at most 50 messages a second from each API client. Past that it answers
error 100 and drops the message (and may close the connection); a client that connected
with the ``+PACEAPI`` option is instead slowed down: TWS holds its messages until the
window has room. ``SlidingWindow`` implements both for the session layer; time is always
passed in (``trio.current_time()`` in the server, plain numbers in tests).

A window is half-open: a message at time ``t`` is in the window ending at ``now`` when
``now - window < t <= now``. ``max_in_window`` measures recorded traffic with the same rule.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Sequence

__all__ = ["SlidingWindow", "max_in_window"]


class SlidingWindow:
    """Counts messages in the trailing ``window`` seconds against ``limit``."""

    def __init__(self, limit: int, window: float = 1.0) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("limit must be >= 1 and window > 0")
        self.limit = limit
        self.window = window
        self._times: collections.deque[float] = collections.deque()

    def _expire(self, now: float) -> None:
        horizon = now - self.window
        while self._times and self._times[0] <= horizon:
            self._times.popleft()

    def count(self, now: float) -> int:
        """Messages counted in the window ending at ``now``."""
        self._expire(now)
        return len(self._times)

    def admit(self, now: float) -> bool:
        """Count one arriving message; False if it makes the window exceed the limit.

        Every arrival counts, refused or not, as TWS measures what it received: a client
        that keeps sending too fast keeps being refused.
        """
        self._expire(now)
        self._times.append(now)
        return len(self._times) <= self.limit

    def schedule(self, now: float) -> float:
        """For a paced (``+PACEAPI``) client: the earliest time >= ``now`` this message may
        be processed without exceeding the limit; the slot is taken. Slots never go
        backwards: a message is never scheduled before one that arrived earlier."""
        if self._times:
            now = max(now, self._times[-1])
        self._expire(now)
        slot = now
        if len(self._times) >= self.limit:
            slot = max(now, self._times[-self.limit] + self.window)
        self._times.append(slot)
        return slot


def max_in_window(times: Iterable[float], window: float = 1.0) -> int:
    """The largest number of ``times`` inside any half-open window of ``window`` seconds."""
    ordered: Sequence[float] = sorted(times)
    best = 0
    start = 0
    for end, t in enumerate(ordered):
        while ordered[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best
