"""The audit trail's file work runs in the event loop while it is fast, in a worker thread
once it is not, and comes back after a run of quick writes."""

from __future__ import annotations

import threading

import pytest
import trio

from ibkr_connector.actors.file_work import AdaptiveFileWork


class _Disk:
    """A write whose duration the test sets, timed by a clock the test owns."""

    def __init__(self) -> None:
        self.now = 0.0
        self.duration = 0.0001
        self.threads: list[bool] = []  # per run: did it run in the Trio (main) thread?

    def clock(self) -> float:
        return self.now

    def write(self) -> str:
        self.threads.append(threading.current_thread() is threading.main_thread())
        self.now += self.duration
        return "stored"


async def test_fast_writes_run_in_the_event_loop() -> None:
    disk = _Disk()
    work = AdaptiveFileWork(0.001, clock=disk.clock)
    assert [await work(disk.write) for _ in range(5)] == ["stored"] * 5
    assert disk.threads == [True] * 5
    assert work.inline and work.moved_off == 0


async def test_one_slow_write_moves_the_work_to_a_thread() -> None:
    disk = _Disk()
    work = AdaptiveFileWork(0.001, clock=disk.clock)
    disk.duration = 0.005
    assert await work(disk.write) == "stored"  # this one blocked the loop: the only one
    await work(disk.write)
    await work(disk.write)
    assert disk.threads == [True, False, False]
    assert not work.inline and work.moved_off == 1


async def test_the_work_comes_back_after_32_quick_writes_in_a_row() -> None:
    disk = _Disk()
    work = AdaptiveFileWork(0.001, clock=disk.clock)
    disk.duration = 0.005
    await work(disk.write)
    disk.duration = 0.0001
    for _ in range(31):
        await work(disk.write)
    assert not work.inline
    disk.duration = 0.0008  # under the budget, not under half of it: starts the count over
    await work(disk.write)
    disk.duration = 0.0001
    for _ in range(31):
        await work(disk.write)
    assert not work.inline
    await work(disk.write)
    assert work.inline
    await work(disk.write)
    assert disk.threads[-1] is True and disk.threads[1:-1] == [False] * 64


async def test_a_zero_budget_always_uses_a_thread() -> None:
    disk = _Disk()
    work = AdaptiveFileWork(0.0, clock=disk.clock)
    for _ in range(40):
        await work(disk.write)
    assert disk.threads == [False] * 40


async def test_an_error_of_the_write_reaches_the_caller_wherever_it_ran() -> None:
    def broken() -> None:
        raise OSError("disk full")

    for budget in (0.001, 0.0):
        with pytest.raises(OSError, match="disk full"):
            await AdaptiveFileWork(budget)(broken)


async def test_an_inline_write_is_not_started_when_already_cancelled() -> None:
    disk = _Disk()
    work = AdaptiveFileWork(0.001, clock=disk.clock)
    with trio.CancelScope() as scope:
        scope.cancel()
        await work(disk.write)
    assert disk.threads == []


def test_a_negative_budget_is_refused() -> None:
    with pytest.raises(ValueError, match="budget"):
        AdaptiveFileWork(-1.0)
