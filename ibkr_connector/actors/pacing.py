"""Pacing arithmetic for the limiter actor: how fast we may write to TWS.

TWS accepts at most 50 client messages per second and answers error 100 (and may close the
socket) past that. The limiter actor (``actors/limiter``) owns the priority queue and the
Trio sleeping; this module owns only the numbers, sans-IO in the h11 sense: every method
takes the current time ``now`` (seconds on any monotonic clock, normally
``trio.current_time()``), so the same objects run under ``MockClock``, in hypothesis tests
and in the simulator's own accounting.

* :class:`TokenBucket` -- admits at most ``burst + rate * T`` units in any interval of
  length ``T``.
* :class:`PacingGovernor` -- a bucket whose rate is cut when TWS reports a pacing violation
  (error 100) and restored step by step once TWS has been quiet (AIMD, as in TCP).
* :class:`SlidingWindowCounter` -- counts events in a sliding window; used to report the
  observed request rate and, in tests, to assert the 50/s invariant.

Nothing here blocks, sleeps or reads a clock, so there is nothing to cancel.
"""

from __future__ import annotations

import collections

import attrs

__all__ = ["PacingGovernor", "SlidingWindowCounter", "TokenBucket"]

# Tolerance, in tokens, for float rounding. Without it a caller that sleeps exactly
# delay_until_available() and then calls try_acquire() can find 0.9999999 tokens because
# `now + delay` rounded down, and spin forever on a tiny positive delay. The admission bound
# is loosened by at most this much, which can never add a whole message.
_EPSILON = 1e-6


def _positive(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} must be > 0, got {value!r}")


@attrs.define
class TokenBucket:
    """A token bucket: ``rate`` tokens per second, holding at most ``burst`` tokens.

    The bucket starts full, so the first ``burst`` requests go out at once; after that they
    are spaced ``1 / rate`` apart. In any interval of length ``T`` it admits at most
    ``burst + rate * T`` tokens -- with rate 45 and burst 3 never more than 48 in a
    second: under TWS's 50, with room for the startApi of a reconnect.

    Time must not run backwards; an earlier ``now`` than already seen is treated as no
    time elapsed (it cannot mint tokens).
    """

    rate: float = attrs.field(validator=_positive)
    burst: float = attrs.field(validator=_positive)
    _tokens: float = attrs.field(init=False)
    _last: float | None = attrs.field(init=False, default=None)

    def __attrs_post_init__(self) -> None:
        self._tokens = self.burst

    def _refill(self, now: float) -> None:
        if self._last is None:
            self._last = now
        elif now > self._last:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now

    def _check_n(self, n: float) -> None:
        if not 0 < n <= self.burst:
            raise ValueError(f"cannot acquire {n!r} tokens from a bucket of burst {self.burst}")

    def tokens(self, now: float) -> float:
        """The tokens available at ``now`` (for stats; acquiring is :meth:`try_acquire`)."""
        self._refill(now)
        return max(0.0, self._tokens)

    def try_acquire(self, now: float, n: float = 1) -> bool:
        """Take ``n`` tokens if they are available at ``now``; return whether it did.

        Raises ValueError if ``n`` exceeds the burst: such a request could never pass.
        """
        self._check_n(n)
        self._refill(now)
        if self._tokens + _EPSILON >= n:
            self._tokens -= n
            return True
        return False

    def delay_until_available(self, now: float, n: float = 1) -> float:
        """Seconds from ``now`` until ``n`` tokens are available (0.0 if they are now).

        It takes nothing: a caller sleeps this long and then calls :meth:`try_acquire`,
        which then succeeds unless somebody else took the tokens meanwhile.
        """
        self._check_n(n)
        self._refill(now)
        missing = n - self._tokens
        if missing <= _EPSILON:
            return 0.0
        return missing / self.rate

    def set_rate(self, now: float, rate: float) -> None:
        """Change the refill rate from ``now`` on; tokens earned so far are kept."""
        if not rate > 0:
            raise ValueError(f"rate must be > 0, got {rate!r}")
        self._refill(now)
        self.rate = rate

    def drain(self, now: float) -> None:
        """Empty the bucket at ``now``: no burst until it refills."""
        self._refill(now)
        self._tokens = 0.0


@attrs.define
class PacingGovernor:
    """A token bucket that slows down when TWS says we are too fast (error 100).

    Additive increase, multiplicative decrease: each violation multiplies the rate by
    ``cut_factor`` (never below ``floor_rate``) and empties the bucket; after
    ``quiet_period`` seconds without a violation the rate grows by ``restore_step``, and by
    another step every further ``quiet_period``, up to ``target_rate``.

    Violations tend to come in volleys -- every request already in flight when TWS started
    counting can draw its own error 100 -- so only one cut is made per ``cut_holdoff``
    seconds; every violation is still counted in :attr:`violations`.
    """

    target_rate: float = attrs.field(default=45.0, validator=_positive)
    burst: float = attrs.field(default=5.0, validator=_positive)
    floor_rate: float = attrs.field(default=5.0, validator=_positive)
    cut_factor: float = attrs.field(default=0.5)
    quiet_period: float = attrs.field(default=10.0, validator=_positive)
    restore_step: float = attrs.field(default=5.0, validator=_positive)
    cut_holdoff: float = attrs.field(default=1.0)
    _bucket: TokenBucket = attrs.field(init=False)
    _violations: int = attrs.field(init=False, default=0)
    _last_cut: float | None = attrs.field(init=False, default=None)
    _last_change: float = attrs.field(init=False, default=0.0)

    @cut_factor.validator
    def _check_cut_factor(self, _attribute: attrs.Attribute[float], value: float) -> None:
        if not 0 < value < 1:
            raise ValueError(f"cut_factor must be in (0, 1), got {value!r}")

    @cut_holdoff.validator
    def _check_cut_holdoff(self, _attribute: attrs.Attribute[float], value: float) -> None:
        if value < 0:
            raise ValueError(f"cut_holdoff must be >= 0, got {value!r}")

    def __attrs_post_init__(self) -> None:
        if self.floor_rate > self.target_rate:
            raise ValueError(
                f"floor_rate {self.floor_rate} is above target_rate {self.target_rate}"
            )
        self._bucket = TokenBucket(rate=self.target_rate, burst=self.burst)

    @property
    def violations(self) -> int:
        """How many pacing violations were reported, including those that did not cut."""
        return self._violations

    def current_rate(self, now: float) -> float:
        """The admitted rate at ``now``, after any restore steps that are due."""
        rate = self._bucket.rate
        if rate < self.target_rate and now - self._last_change >= self.quiet_period:
            steps = int((now - self._last_change) // self.quiet_period)
            new_rate = min(self.target_rate, rate + steps * self.restore_step)
            # Credit each step at the moment it fell due, so restoring is the same whether
            # or not anybody asked in between.
            self._last_change += steps * self.quiet_period
            self._bucket.set_rate(now, new_rate)
            rate = new_rate
        return rate

    def on_pacing_violation(self, now: float) -> float:
        """Record an error 100 at ``now``; return the rate in force afterwards."""
        self._violations += 1
        rate = self.current_rate(now)
        if self._last_cut is not None and now - self._last_cut < self.cut_holdoff:
            return rate
        self._last_cut = now
        self._last_change = now
        rate = max(self.floor_rate, rate * self.cut_factor)
        self._bucket.set_rate(now, rate)
        self._bucket.drain(now)
        return rate

    def try_acquire(self, now: float, n: float = 1) -> bool:
        """:meth:`TokenBucket.try_acquire` at the current rate."""
        self.current_rate(now)
        return self._bucket.try_acquire(now, n)

    def delay_until_available(self, now: float, n: float = 1) -> float:
        """:meth:`TokenBucket.delay_until_available` at the current rate.

        The delay is computed at the rate in force now; a restore step falling due during
        the wait only makes the tokens arrive earlier, so it is never too short.
        """
        self.current_rate(now)
        return self._bucket.delay_until_available(now, n)


@attrs.define
class SlidingWindowCounter:
    """Counts events in a sliding window of ``window`` seconds.

    A window is half-open: events at ``t`` and ``t + window`` are never in the same one.
    :meth:`max_in_any_window` is exact: the busiest window always ends at an event, and
    each event is checked when it is recorded. Memory is the events of one window.
    """

    window: float = attrs.field(default=1.0, validator=_positive)
    _times: collections.deque[float] = attrs.field(init=False, factory=collections.deque)
    _max: int = attrs.field(init=False, default=0)
    _total: int = attrs.field(init=False, default=0)

    def _expire(self, now: float) -> None:
        if self._times and now < self._times[-1]:
            raise ValueError(f"time went backwards: {now} < {self._times[-1]}")
        horizon = now - self.window
        times = self._times
        while times and times[0] <= horizon:
            times.popleft()

    def record(self, now: float) -> None:
        """Record one event at ``now`` (not earlier than the previous one)."""
        self._expire(now)
        self._times.append(now)
        self._total += 1
        if len(self._times) > self._max:
            self._max = len(self._times)

    def count(self, now: float) -> int:
        """Events in the window ending at ``now``: ``(now - window, now]``."""
        self._expire(now)
        return len(self._times)

    def max_in_any_window(self) -> int:
        """The most events ever seen in one window."""
        return self._max

    @property
    def total(self) -> int:
        """All events ever recorded."""
        return self._total
