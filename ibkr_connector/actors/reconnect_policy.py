"""When the watchdog reconnects: backoff delays and the expected daily restart window.

The watchdog actor (``actors/watchdog``) decides *that* the connection is gone; this module
decides *when* to try again and *whether to be alarmed*, with no I/O and no clock of its
own: times come in as arguments (``now`` on the watchdog's monotonic clock, ``moment`` as a
wall-clock ``datetime``), randomness from an injected ``random.Random``.

* :class:`ReconnectBackoff` -- exponential backoff with jitter (2, 4, 8, ... capped at
  60 s); it starts over only after a connection that lasted, so a TWS that accepts the
  socket and drops it at once (client id in use, login dialog) is not hammered.
* :class:`DailyRestartWindow` -- TWS/IB Gateway restart once a day at the time set in
  their "Auto restart" setting (IBC's ``AutoRestartTime``); a disconnect inside that window
  is expected and is not reported as an outage.
"""

from __future__ import annotations

import datetime
import random
import zoneinfo

import attrs

__all__ = ["DailyRestartWindow", "ReconnectBackoff"]

_UTC = datetime.UTC
_DAY = datetime.timedelta(days=1)


@attrs.define
class ReconnectBackoff:
    """Delays between reconnect attempts: ``initial * multiplier**k`` capped at ``maximum``.

    Each delay is spread by a uniform ``±jitter`` fraction so that many clients of one
    Gateway do not all retry at the same instant after its restart; the cap applies to the
    base delay, so the longest delay is ``maximum * (1 + jitter)``.

    The sequence starts over (see :meth:`on_lost`) only when the lost connection had been
    up for at least ``stable_after`` seconds; a connection that flaps keeps the delays long.
    """

    initial: float = attrs.field(default=2.0)
    maximum: float = attrs.field(default=60.0)
    multiplier: float = attrs.field(default=2.0)
    jitter: float = attrs.field(default=0.1)
    stable_after: float = attrs.field(default=60.0)
    rng: random.Random = attrs.field(factory=random.Random, repr=False)
    _attempts: int = attrs.field(init=False, default=0)
    _next_base: float = attrs.field(init=False, default=0.0)
    _connected_at: float | None = attrs.field(init=False, default=None)

    def __attrs_post_init__(self) -> None:
        if not self.initial > 0:
            raise ValueError(f"initial must be > 0, got {self.initial!r}")
        if not self.maximum >= self.initial:
            raise ValueError(f"maximum {self.maximum!r} is below initial {self.initial!r}")
        if not self.multiplier >= 1:
            raise ValueError(f"multiplier must be >= 1, got {self.multiplier!r}")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"jitter must be in [0, 1), got {self.jitter!r}")
        if not self.stable_after >= 0:
            raise ValueError(f"stable_after must be >= 0, got {self.stable_after!r}")
        self._next_base = self.initial

    @property
    def attempts(self) -> int:
        """Delays handed out since the sequence last started over."""
        return self._attempts

    def next_delay(self) -> float:
        """The seconds to wait before the next attempt; advances the sequence."""
        base = self._next_base
        # Grow the stored base rather than computing multiplier**attempts, which overflows
        # a float after about a thousand failed attempts (a long weekend of a dead TWS).
        self._next_base = min(self.maximum, base * self.multiplier)
        self._attempts += 1
        if self.jitter:
            return base * (1.0 + self.rng.uniform(-self.jitter, self.jitter))
        return base

    def on_connected(self, now: float) -> None:
        """A connection attempt succeeded at ``now``."""
        self._connected_at = now

    def on_lost(self, now: float) -> None:
        """The connection was lost at ``now``: start over if it had been stable."""
        if self._connected_at is not None and now - self._connected_at >= self.stable_after:
            self.reset()
        self._connected_at = None

    def reset(self) -> None:
        """Start the sequence over at ``initial``."""
        self._attempts = 0
        self._next_base = self.initial


def _check_start(_instance: object, _attribute: object, value: datetime.time) -> None:
    if value.tzinfo is not None:
        raise ValueError("start is a wall-clock time in `tz`; give it without tzinfo")


def _check_duration(_instance: object, _attribute: object, value: datetime.timedelta) -> None:
    if not datetime.timedelta(0) < value < _DAY:
        raise ValueError(f"duration must be between 0 and 24 hours, got {value}")


def _load_zone(window: DailyRestartWindow) -> zoneinfo.ZoneInfo | None:
    return None if window.tz is None else zoneinfo.ZoneInfo(window.tz)


@attrs.frozen
class DailyRestartWindow:
    """The daily period in which TWS/IB Gateway is expected to be restarting.

    ``start`` is the restart time as configured in TWS ("Auto restart" on the Lock and Exit
    page) or IBC (``AutoRestartTime``). That setting is wall-clock time on the machine that
    runs TWS, so ``tz`` is that machine's zone as an IANA key (for example
    ``"America/New_York"``); ``None`` means this process's local zone, right when both run on
    the same host. The window lasts ``duration`` of elapsed time from the start instant.

    ``duration`` defaults to 15 minutes: the restart itself (JVM exit and relaunch, login
    with the stored token, API port reopening, farm reconnects) takes one to five minutes on
    an ordinary host; 15 minutes covers a slow host without hiding a real outage for long.

    DST: a ``start`` that does not exist on a spring-forward day is read with the offset in
    force before the change (02:30 becomes 03:30 in New York); one that occurs twice on a
    fall-back day means its first occurrence. A naive ``moment`` is wall time in ``tz``.
    """

    start: datetime.time = attrs.field(default=datetime.time(23, 55), validator=_check_start)
    duration: datetime.timedelta = attrs.field(
        default=datetime.timedelta(minutes=15), validator=_check_duration
    )
    tz: str | None = None
    _zone: zoneinfo.ZoneInfo | None = attrs.field(
        init=False, eq=False, repr=False, default=attrs.Factory(_load_zone, takes_self=True)
    )

    def _instant(self, moment: datetime.datetime) -> datetime.datetime:
        if moment.tzinfo is None:
            # astimezone() on a naive datetime reads it as system local time.
            moment = moment.replace(tzinfo=self._zone) if self._zone else moment.astimezone()
        return moment.astimezone(_UTC)

    def _local(self, instant: datetime.datetime) -> datetime.datetime:
        return instant.astimezone(self._zone) if self._zone else instant.astimezone()

    def _start_on(self, day: datetime.date) -> datetime.datetime:
        if self._zone is not None:
            wall = datetime.datetime.combine(day, self.start, tzinfo=self._zone)
        else:
            wall = datetime.datetime.combine(day, self.start).astimezone()
        # In UTC, so that adding the duration is elapsed time, not wall-clock arithmetic.
        return wall.astimezone(_UTC)

    def _window_at(self, instant: datetime.datetime) -> datetime.datetime | None:
        day = self._local(instant).date()
        # Shorter than a day, so only the windows starting yesterday or today can hold it.
        for candidate in (day - _DAY, day):
            begin = self._start_on(candidate)
            if begin <= instant < begin + self.duration:
                return begin
        return None

    def contains(self, moment: datetime.datetime) -> bool:
        """Whether ``moment`` falls in a restart window (start inclusive, end exclusive)."""
        return self._window_at(self._instant(moment)) is not None

    def window_end(self, moment: datetime.datetime) -> datetime.datetime | None:
        """The end of the window holding ``moment`` (aware, in ``tz``), or None if outside.

        The watchdog uses it to tell how long silence is still expected.
        """
        begin = self._window_at(self._instant(moment))
        return None if begin is None else self._local(begin + self.duration)

    def next_start(self, after: datetime.datetime) -> datetime.datetime:
        """The first window start strictly after ``after``, aware, in ``tz``."""
        instant = self._instant(after)
        day = self._local(instant).date()
        for candidate in (day, day + _DAY, day + 2 * _DAY):
            begin = self._start_on(candidate)
            if begin > instant:
                return self._local(begin)
        raise AssertionError("unreachable: a daily window starts within two days")
