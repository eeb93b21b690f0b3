"""Pacing arithmetic: the token bucket's admission bound, the governor's AIMD rate, the
sliding-window counter that reports (and in tests asserts) the request rate."""

import bisect

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ibkr_connector.actors.pacing import PacingGovernor, SlidingWindowCounter, TokenBucket

# --- TokenBucket ---------------------------------------------------------------------


def test_bucket_starts_full_and_admits_exactly_the_burst_at_once() -> None:
    bucket = TokenBucket(rate=45, burst=5)
    assert [bucket.try_acquire(100.0) for _ in range(6)] == [True] * 5 + [False]


def test_bucket_refills_at_its_rate() -> None:
    bucket = TokenBucket(rate=10, burst=2)
    assert bucket.try_acquire(0.0, 2)
    assert not bucket.try_acquire(0.05)
    assert bucket.try_acquire(0.1)
    assert not bucket.try_acquire(0.1)


def test_bucket_never_holds_more_than_the_burst() -> None:
    bucket = TokenBucket(rate=45, burst=5)
    bucket.try_acquire(0.0)
    assert bucket.tokens(1000.0) == 5


def test_delay_until_available_is_zero_when_tokens_are_there() -> None:
    bucket = TokenBucket(rate=45, burst=5)
    assert bucket.delay_until_available(0.0) == 0.0
    assert bucket.delay_until_available(0.0, 5) == 0.0


def test_delay_until_available_is_the_time_to_earn_the_missing_tokens() -> None:
    bucket = TokenBucket(rate=4, burst=2)
    bucket.try_acquire(0.0, 2)
    assert bucket.delay_until_available(0.0) == pytest.approx(0.25)
    assert bucket.delay_until_available(0.0, 2) == pytest.approx(0.5)
    assert bucket.delay_until_available(0.1) == pytest.approx(0.15)


def test_sleeping_the_delay_then_acquiring_always_succeeds_despite_float_rounding() -> None:
    # A late monotonic clock (a long-running process) makes `now + delay` round.
    bucket = TokenBucket(rate=45, burst=1)
    now = 1_234_567.891
    for _ in range(2000):
        now += bucket.delay_until_available(now)
        assert bucket.try_acquire(now)


def test_asking_for_more_than_the_burst_is_an_error_not_a_hang() -> None:
    bucket = TokenBucket(rate=45, burst=5)
    with pytest.raises(ValueError, match="burst"):
        bucket.try_acquire(0.0, 6)
    with pytest.raises(ValueError, match="burst"):
        bucket.delay_until_available(0.0, 6)


def test_time_running_backwards_mints_no_tokens() -> None:
    bucket = TokenBucket(rate=10, burst=1)
    assert bucket.try_acquire(10.0)
    assert not bucket.try_acquire(5.0)
    assert not bucket.try_acquire(10.05)
    assert bucket.try_acquire(10.1)


def test_set_rate_keeps_tokens_already_earned() -> None:
    bucket = TokenBucket(rate=10, burst=5)
    bucket.try_acquire(0.0, 5)
    bucket.set_rate(0.2, 1)  # 2 tokens earned at the old rate
    assert bucket.tokens(0.2) == pytest.approx(2)
    assert bucket.tokens(1.2) == pytest.approx(3)


@pytest.mark.parametrize(("rate", "burst"), [(0, 5), (45, 0), (-1, 5)])
def test_bucket_rejects_nonpositive_parameters(rate: float, burst: float) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate=rate, burst=burst)


def _admitted_times(bucket: TokenBucket, arrivals: list[tuple[float, int]]) -> list[float]:
    now = 0.0
    admitted: list[float] = []
    for gap, tries in arrivals:
        now += gap
        admitted.extend(now for _ in range(tries) if bucket.try_acquire(now))
    return admitted


@given(
    rate=st.floats(min_value=1, max_value=100),
    burst=st.integers(min_value=1, max_value=10),
    arrivals=st.lists(
        st.tuples(st.floats(min_value=0, max_value=0.3), st.integers(min_value=1, max_value=6)),
        max_size=120,
    ),
)
def test_bucket_admits_at_most_burst_plus_rate_times_t_in_any_interval(
    rate: float, burst: int, arrivals: list[tuple[float, int]]
) -> None:
    admitted = _admitted_times(TokenBucket(rate=rate, burst=burst), arrivals)
    # For every i <= j: (j - i + 1) <= burst + rate * (t_j - t_i), i.e.
    # (j - rate * t_j) - min over i <= j of (i - rate * t_i) + 1 <= burst.
    lowest = float("inf")
    for j, t in enumerate(admitted):
        lowest = min(lowest, j - rate * t)
        assert (j - rate * t) - lowest + 1 <= burst + 1e-6


@given(
    burst=st.integers(min_value=1, max_value=5),
    pauses=st.lists(st.floats(min_value=0, max_value=1.5), min_size=1, max_size=40),
)
def test_rate_45_with_burst_up_to_5_never_puts_more_than_50_in_a_second(
    burst: int, pauses: list[float]
) -> None:
    # A limiter that is always ready: it sleeps exactly the advised delay, with some idle
    # pauses in between that let the bucket refill to a full burst.
    bucket = TokenBucket(rate=45, burst=burst)
    counter = SlidingWindowCounter(window=1.0)
    now, sent = 0.0, []
    for pause in pauses:
        now += pause
        for _ in range(60):
            now += bucket.delay_until_available(now)
            assert bucket.try_acquire(now)
            counter.record(now)
            sent.append(now)
    assert counter.max_in_any_window() <= 50
    # Closed windows [t, t + 1] too: the strictest reading of "per second".
    for i, start in enumerate(sent):
        assert bisect.bisect_right(sent, start + 1.0) - i <= 50


# --- PacingGovernor ------------------------------------------------------------------


def test_governor_runs_at_the_target_rate_until_told_otherwise() -> None:
    governor = PacingGovernor()
    assert governor.current_rate(0.0) == 45
    assert governor.current_rate(1000.0) == 45
    assert governor.violations == 0


def test_pacing_violation_halves_the_rate_and_empties_the_bucket() -> None:
    governor = PacingGovernor(target_rate=40, burst=5)
    assert governor.on_pacing_violation(0.0) == 20
    assert governor.current_rate(0.0) == 20
    assert not governor.try_acquire(0.0)
    assert governor.delay_until_available(0.0) == pytest.approx(1 / 20)
    assert governor.violations == 1


def test_a_volley_of_violations_cuts_once_but_counts_all() -> None:
    governor = PacingGovernor(target_rate=40, cut_holdoff=1.0)
    for i in range(5):
        governor.on_pacing_violation(i * 0.1)
    assert governor.current_rate(0.5) == 20
    assert governor.violations == 5
    assert governor.on_pacing_violation(1.5) == 10


def test_repeated_violations_never_go_below_the_floor() -> None:
    governor = PacingGovernor(target_rate=45, floor_rate=5, cut_holdoff=0)
    for i in range(10):
        rate = governor.on_pacing_violation(float(i))
    assert rate == 5
    assert governor.violations == 10


def test_rate_is_restored_step_by_step_after_quiet_periods() -> None:
    governor = PacingGovernor(target_rate=45, quiet_period=10, restore_step=5)
    governor.on_pacing_violation(100.0)  # -> 22.5
    assert governor.current_rate(109.9) == 22.5
    assert governor.current_rate(110.0) == 27.5
    assert governor.current_rate(125.0) == 32.5
    assert governor.current_rate(130.0) == 37.5
    assert governor.current_rate(1000.0) == 45


def test_restoring_does_not_depend_on_being_asked_in_between() -> None:
    asked, unasked = PacingGovernor(), PacingGovernor()
    asked.on_pacing_violation(0.0)
    unasked.on_pacing_violation(0.0)
    for t in range(0, 35):
        asked.current_rate(float(t))
    assert asked.current_rate(35.0) == unasked.current_rate(35.0) == 37.5


def test_a_violation_during_restore_cuts_from_the_current_rate() -> None:
    governor = PacingGovernor(target_rate=40, quiet_period=10, restore_step=10)
    governor.on_pacing_violation(0.0)  # 20
    governor.current_rate(10.0)  # 30
    assert governor.on_pacing_violation(12.0) == 15
    assert governor.current_rate(21.9) == 15
    assert governor.current_rate(22.0) == 25


def test_governor_rejects_a_floor_above_the_target() -> None:
    with pytest.raises(ValueError, match="floor"):
        PacingGovernor(target_rate=4, floor_rate=5)


@pytest.mark.parametrize("cut_factor", [0, 1, 1.5])
def test_governor_rejects_a_cut_that_does_not_cut(cut_factor: float) -> None:
    with pytest.raises(ValueError, match="cut_factor"):
        PacingGovernor(cut_factor=cut_factor)


# --- SlidingWindowCounter ------------------------------------------------------------


def test_counter_counts_events_in_the_trailing_window() -> None:
    counter = SlidingWindowCounter(window=1.0)
    for t in (0.0, 0.2, 0.4, 1.1):
        counter.record(t)
    assert counter.count(1.1) == 3  # 0.2, 0.4, 1.1
    assert counter.count(1.3) == 2
    assert counter.count(5.0) == 0
    assert counter.total == 4


def test_counter_windows_are_half_open() -> None:
    counter = SlidingWindowCounter(window=1.0)
    counter.record(0.0)
    counter.record(1.0)
    assert counter.max_in_any_window() == 1


def test_counter_remembers_the_busiest_window() -> None:
    counter = SlidingWindowCounter(window=1.0)
    for i in range(30):
        counter.record(i * 0.02)  # 30 within 0.6 s
    for i in range(10):
        counter.record(5 + i * 0.5)
    assert counter.max_in_any_window() == 30
    assert counter.count(9.5) == 2


def test_counter_refuses_time_running_backwards() -> None:
    counter = SlidingWindowCounter()
    counter.record(2.0)
    with pytest.raises(ValueError, match="backwards"):
        counter.record(1.0)


@given(st.lists(st.floats(min_value=0, max_value=5), max_size=80))
def test_counter_max_matches_a_brute_force_count(times: list[float]) -> None:
    times.sort()
    counter = SlidingWindowCounter(window=1.0)
    for t in times:
        counter.record(t)
    brute = max(
        (sum(1 for u in times if t - 1.0 < u <= t) for t in times),
        default=0,
    )
    assert counter.max_in_any_window() == brute
