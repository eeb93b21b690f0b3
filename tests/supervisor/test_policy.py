"""The sans-IO restart rules: restart types, intensity window, backoff formula."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ibkr_connector.supervisor import Backoff, Restart, RestartIntensity, backoff_delay
from ibkr_connector.supervisor._policy import ExitKind, next_attempt, should_restart


@pytest.mark.parametrize(
    ("restart", "kind", "expected"),
    [
        (Restart.PERMANENT, ExitKind.RETURNED, True),
        (Restart.PERMANENT, ExitKind.RAISED, True),
        (Restart.PERMANENT, ExitKind.FAILED_START, True),
        (Restart.TRANSIENT, ExitKind.RETURNED, False),
        (Restart.TRANSIENT, ExitKind.RAISED, True),
        (Restart.TRANSIENT, ExitKind.FAILED_START, True),
        (Restart.TEMPORARY, ExitKind.RETURNED, False),
        (Restart.TEMPORARY, ExitKind.RAISED, False),
        (Restart.TEMPORARY, ExitKind.FAILED_START, False),
        # OTP's `shutdown` (a supervisor child that gave up) is not abnormal.
        (Restart.PERMANENT, ExitKind.SHUTDOWN, True),
        (Restart.TRANSIENT, ExitKind.SHUTDOWN, False),
        (Restart.TEMPORARY, ExitKind.SHUTDOWN, False),
    ],
)
def test_restart_types_follow_otp(restart: Restart, kind: ExitKind, expected: bool) -> None:
    assert should_restart(restart, kind) is expected


def test_intensity_allows_max_restarts_then_refuses_the_next_in_the_window() -> None:
    window = RestartIntensity(max_restarts=3, max_seconds=10.0)
    assert [window.record(t) for t in (0.0, 1.0, 2.0)] == [True, True, True]
    assert window.record(3.0) is False


def test_intensity_forgets_restarts_older_than_the_window() -> None:
    window = RestartIntensity(max_restarts=2, max_seconds=10.0)
    assert window.record(0.0) and window.record(5.0)
    assert window.record(10.5)  # the restart at 0.0 has left the window
    assert window.recent == 2


def test_intensity_window_includes_its_boundary_like_otp() -> None:
    window = RestartIntensity(max_restarts=1, max_seconds=5.0)
    assert window.record(0.0)
    assert window.record(5.0) is False  # now - 0.0 == period still counts


def test_zero_max_restarts_gives_up_on_the_first_restart() -> None:
    assert RestartIntensity(max_restarts=0, max_seconds=1.0).record(0.0) is False


@given(
    times=st.lists(st.floats(min_value=0, max_value=100, allow_nan=False), max_size=30),
    max_restarts=st.integers(min_value=0, max_value=5),
    max_seconds=st.floats(min_value=0.1, max_value=20, allow_nan=False),
)
def test_intensity_matches_counting_restarts_in_the_window(
    times: list[float], max_restarts: int, max_seconds: float
) -> None:
    window = RestartIntensity(max_restarts, max_seconds)
    seen: list[float] = []
    for now in sorted(times):
        seen.append(now)
        in_window = [t for t in seen if t >= now - max_seconds]
        assert window.record(now) is (len(in_window) <= max_restarts)


def test_backoff_doubles_from_min_to_max_without_jitter() -> None:
    backoff = Backoff(min_delay=0.5, max_delay=3.0, random_factor=0.0, reset_after=10.0)
    assert [backoff_delay(backoff, n, 0.9) for n in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_backoff_jitter_adds_at_most_the_random_factor() -> None:
    backoff = Backoff(min_delay=1.0, max_delay=8.0, random_factor=0.25, reset_after=10.0)
    assert backoff_delay(backoff, 0, 0.0) == 1.0
    assert backoff_delay(backoff, 0, 0.5) == pytest.approx(1.125)
    assert backoff_delay(backoff, 10, 0.999) < 8.0 * 1.25


def test_backoff_survives_huge_attempt_counts() -> None:
    backoff = Backoff(min_delay=1.0, max_delay=8.0, random_factor=0.0, reset_after=10.0)
    assert backoff_delay(backoff, 10_000, 0.5) == 8.0


def test_backoff_resets_after_a_stable_run_only() -> None:
    backoff = Backoff(min_delay=1.0, max_delay=8.0, random_factor=0.0, reset_after=10.0)
    assert next_attempt(backoff, 4, uptime=10.0) == 0
    assert next_attempt(backoff, 4, uptime=9.9) == 4
    assert next_attempt(backoff, 4, uptime=None) == 4  # a failed start never ran
