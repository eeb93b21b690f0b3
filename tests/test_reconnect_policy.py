"""Reconnect timing: the backoff sequence, its cap and jitter, starting over only after a
stable connection; and the daily TWS restart window across midnight and DST changes."""

import datetime
import random
import time
import zoneinfo
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ibkr_connector.actors.reconnect_policy import DailyRestartWindow, ReconnectBackoff

NY = zoneinfo.ZoneInfo("America/New_York")
UTC = datetime.UTC


def _delays(backoff: ReconnectBackoff, n: int) -> list[float]:
    return [backoff.next_delay() for _ in range(n)]


# --- ReconnectBackoff ----------------------------------------------------------------


def test_backoff_doubles_from_2_seconds_and_caps_at_60() -> None:
    backoff = ReconnectBackoff(jitter=0, rng=random.Random(1))
    assert _delays(backoff, 8) == [2, 4, 8, 16, 32, 60, 60, 60]
    assert backoff.attempts == 8


def test_backoff_stays_at_the_cap_after_thousands_of_attempts() -> None:
    backoff = ReconnectBackoff(jitter=0)
    assert _delays(backoff, 5000)[-1] == 60


def test_same_seed_gives_the_same_jittered_sequence() -> None:
    first = _delays(ReconnectBackoff(rng=random.Random(42)), 10)
    again = _delays(ReconnectBackoff(rng=random.Random(42)), 10)
    assert first == again
    assert first != _delays(ReconnectBackoff(jitter=0), 10)


@given(
    seed=st.integers(min_value=0, max_value=2**32),
    jitter=st.floats(min_value=0, max_value=0.9),
    count=st.integers(min_value=1, max_value=12),
)
def test_each_delay_is_within_the_jitter_fraction_of_its_base(
    seed: int, jitter: float, count: int
) -> None:
    backoff = ReconnectBackoff(jitter=jitter, rng=random.Random(seed))
    bases = [min(60.0, 2.0 * 2**k) for k in range(count)]
    for base, delay in zip(bases, _delays(backoff, count), strict=True):
        assert base * (1 - jitter) - 1e-9 <= delay <= base * (1 + jitter) + 1e-9


def test_a_stable_connection_lost_starts_the_sequence_over() -> None:
    backoff = ReconnectBackoff(jitter=0, stable_after=30)
    _delays(backoff, 4)
    backoff.on_connected(100.0)
    backoff.on_lost(130.0)
    assert backoff.attempts == 0
    assert backoff.next_delay() == 2


def test_a_connection_that_flaps_keeps_the_delays_growing() -> None:
    backoff = ReconnectBackoff(jitter=0, stable_after=30)
    _delays(backoff, 4)  # 2, 4, 8, 16
    backoff.on_connected(100.0)
    backoff.on_lost(129.9)
    assert backoff.next_delay() == 32


def test_losing_without_having_connected_does_not_start_over() -> None:
    backoff = ReconnectBackoff(jitter=0, stable_after=0)
    _delays(backoff, 2)
    backoff.on_lost(1000.0)
    assert backoff.next_delay() == 8


@pytest.mark.parametrize(
    "kwargs",
    [{"initial": 0}, {"maximum": 1}, {"multiplier": 0.5}, {"jitter": 1}, {"stable_after": -1}],
)
def test_backoff_rejects_nonsense_parameters(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        ReconnectBackoff(**kwargs)  # type: ignore[arg-type]


# --- DailyRestartWindow --------------------------------------------------------------


def _ny(
    year: int, month: int, day: int, hour: int, minute: int, second: int = 0, *, fold: int = 0
) -> datetime.datetime:
    return datetime.datetime(year, month, day, hour, minute, second, tzinfo=NY, fold=fold)


def test_default_window_is_2355_for_15_minutes_local() -> None:
    window = DailyRestartWindow()
    assert (window.start, window.duration, window.tz) == (
        datetime.time(23, 55), datetime.timedelta(minutes=15), None
    )


def test_window_crosses_midnight() -> None:
    window = DailyRestartWindow(tz="America/New_York")
    assert not window.contains(_ny(2026, 1, 14, 23, 54, 59))
    assert window.contains(_ny(2026, 1, 14, 23, 55))
    assert window.contains(_ny(2026, 1, 15, 0, 9, 59))
    assert not window.contains(_ny(2026, 1, 15, 0, 10))
    assert not window.contains(_ny(2026, 1, 15, 12, 0))


def test_moments_in_other_zones_are_compared_as_instants() -> None:
    window = DailyRestartWindow(tz="America/New_York")
    # 23:58 in New York in January is 04:58 UTC the next day.
    assert window.contains(datetime.datetime(2026, 1, 15, 4, 58, tzinfo=UTC))
    assert not window.contains(datetime.datetime(2026, 1, 14, 23, 58, tzinfo=UTC))


def test_a_naive_moment_is_wall_time_in_the_windows_zone() -> None:
    window = DailyRestartWindow(tz="America/New_York")
    assert window.contains(datetime.datetime(2026, 1, 14, 23, 58))


def test_next_start_is_today_or_tomorrow() -> None:
    window = DailyRestartWindow(tz="America/New_York")
    assert window.next_start(_ny(2026, 1, 14, 12, 0)) == _ny(2026, 1, 14, 23, 55)
    assert window.next_start(_ny(2026, 1, 14, 23, 55)) == _ny(2026, 1, 15, 23, 55)
    assert window.next_start(_ny(2026, 1, 15, 0, 5)) == _ny(2026, 1, 15, 23, 55)
    assert window.next_start(_ny(2026, 1, 14, 12, 0)).tzinfo == NY


def test_window_end_tells_how_long_silence_is_expected() -> None:
    window = DailyRestartWindow(tz="America/New_York")
    assert window.window_end(_ny(2026, 1, 15, 0, 1)) == _ny(2026, 1, 15, 0, 10)
    assert window.window_end(_ny(2026, 1, 15, 1, 0)) is None


def test_window_on_the_spring_forward_day_lasts_its_elapsed_duration() -> None:
    # 2026-03-08 New York: 02:00 EST jumps to 03:00 EDT.
    window = DailyRestartWindow(
        start=datetime.time(1, 55), duration=datetime.timedelta(minutes=15),
        tz="America/New_York",
    )
    assert window.contains(_ny(2026, 3, 8, 1, 59))
    assert window.contains(_ny(2026, 3, 8, 3, 9))  # 14 minutes after 01:55 EST
    assert not window.contains(_ny(2026, 3, 8, 3, 10))


def test_a_start_time_skipped_by_spring_forward_begins_an_hour_later_by_the_wall() -> None:
    window = DailyRestartWindow(start=datetime.time(2, 30), tz="America/New_York")
    start = window.next_start(_ny(2026, 3, 8, 0, 0))
    assert start.astimezone(UTC) == datetime.datetime(2026, 3, 8, 7, 30, tzinfo=UTC)
    assert (start.hour, start.minute) == (3, 30)


def test_on_the_fall_back_day_only_the_first_occurrence_of_the_start_counts() -> None:
    # 2026-11-01 New York: 01:00-02:00 happens twice (EDT, then EST).
    window = DailyRestartWindow(start=datetime.time(1, 30), tz="America/New_York")
    assert window.contains(_ny(2026, 11, 1, 1, 35, fold=0))
    assert not window.contains(_ny(2026, 11, 1, 1, 35, fold=1))


def test_next_start_across_a_dst_change_is_23_hours_later() -> None:
    window = DailyRestartWindow(tz="America/New_York")
    first = window.next_start(_ny(2026, 3, 7, 12, 0))
    second = window.next_start(first)
    # Same-tzinfo subtraction is wall-clock in Python; compare the instants.
    elapsed = second.astimezone(UTC) - first.astimezone(UTC)
    assert elapsed == datetime.timedelta(hours=23)
    assert (second.hour, second.minute) == (23, 55)


@pytest.fixture
def local_zone_chicago(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "America/Chicago")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("local_zone_chicago")
def test_no_tz_means_this_machines_local_zone() -> None:
    window = DailyRestartWindow()
    # 23:58 in Chicago in January is 05:58 UTC.
    assert window.contains(datetime.datetime(2026, 1, 15, 5, 58, tzinfo=UTC))
    assert not window.contains(datetime.datetime(2026, 1, 15, 4, 58, tzinfo=UTC))
    start = window.next_start(datetime.datetime(2026, 1, 15, 12, 0, tzinfo=UTC))
    assert start.astimezone(UTC) == datetime.datetime(2026, 1, 16, 5, 55, tzinfo=UTC)


def test_window_rejects_an_aware_start_a_bad_duration_and_an_unknown_zone() -> None:
    with pytest.raises(ValueError, match="tzinfo"):
        DailyRestartWindow(start=datetime.time(23, 55, tzinfo=UTC))
    with pytest.raises(ValueError, match="duration"):
        DailyRestartWindow(duration=datetime.timedelta(0))
    with pytest.raises(ValueError, match="duration"):
        DailyRestartWindow(duration=datetime.timedelta(hours=24))
    with pytest.raises(zoneinfo.ZoneInfoNotFoundError):
        DailyRestartWindow(tz="Mars/Olympus_Mons")
