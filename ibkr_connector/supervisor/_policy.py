"""Sans-IO restart policy: whether to restart, how often is too often, how long to wait.

Pure functions and one small stateful window, fed times rather than reading a clock, so
the rules of the supervisor can be tested (and property-tested) without running tasks.
The supervisor's control loop (``_node``) applies them.
"""

from __future__ import annotations

import collections
import enum

import attrs

from ._spec import Backoff, Restart


class ExitKind(enum.Enum):
    """How one incarnation of a child ended."""

    RETURNED = "returned"  # the start function returned after reporting started
    RAISED = "raised"  # it raised an exception (before or after reporting started)
    FAILED_START = "failed_start"  # it returned without ever reporting started
    KILLED = "killed"  # the supervisor cancelled it (only ever during a stop)
    # A supervisor child ended itself with OTP's exit reason ``shutdown``: it gave up
    # (restart intensity exceeded) or shut down automatically (significant children).
    # Not abnormal: a transient supervisor that gave up is not restarted, as in OTP.
    SHUTDOWN = "shutdown"


ABNORMAL = frozenset({ExitKind.RAISED, ExitKind.FAILED_START})


def should_restart(restart: Restart, kind: ExitKind) -> bool:
    """OTP's rule: permanent always, transient after an abnormal exit, temporary never.

    Abnormal is an exception or a failed start; ``normal`` (RETURNED) and ``shutdown``
    (SHUTDOWN) are not, so they end a transient child for good.
    """
    if restart is Restart.PERMANENT:
        return True
    if restart is Restart.TRANSIENT:
        return kind in ABNORMAL
    return False


@attrs.define
class RestartIntensity:
    """At most ``max_restarts`` restarts in any window of ``max_seconds``.

    A restart at time ``t`` counts while ``now - t <= max_seconds`` (OTP keeps restarts
    at or after ``now - period``). One restart *event* counts once, however many
    children a one_for_all or rest_for_one restart touches.
    """

    max_restarts: int
    max_seconds: float
    _times: collections.deque[float] = attrs.field(factory=collections.deque, init=False)

    def record(self, now: float) -> bool:
        """Record a restart at ``now``; False means the intensity is exceeded (give up)."""
        threshold = now - self.max_seconds
        times = self._times
        while times and times[0] < threshold:
            times.popleft()
        times.append(now)
        return len(times) <= self.max_restarts

    @property
    def recent(self) -> int:
        """Restarts recorded in the current window (as of the last ``record``)."""
        return len(self._times)


#: Exponents above this saturate; 2**64 times any sane min_delay exceeds any max_delay.
_MAX_EXPONENT = 64


def backoff_delay(backoff: Backoff, attempt: int, unit_random: float) -> float:
    """The delay before restart number ``attempt`` (0-based), given ``unit_random`` in [0, 1).

    ``min(max_delay, min_delay * 2**attempt) * (1 + random_factor * unit_random)``:
    the jitter spreads restarts of many children that failed together (Akka's formula),
    so it may take the delay above ``max_delay`` by at most ``random_factor``.
    """
    exponent = min(max(attempt, 0), _MAX_EXPONENT)
    base = min(backoff.max_delay, backoff.min_delay * (2.0**exponent))
    return base * (1.0 + backoff.random_factor * unit_random)


def next_attempt(backoff: Backoff, attempt: int, uptime: float | None) -> int:
    """The backoff attempt to use for this restart: reset to 0 after a stable run."""
    if uptime is not None and uptime >= backoff.reset_after:
        return 0
    return attempt
