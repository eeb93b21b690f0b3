"""Restart backoff at run time: exponential delays, jitter bounds, reset, prompt stop."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from ibkr_connector.supervisor import (
    Backoff,
    ChildSpec,
    ChildState,
    Strategy,
    Supervisor,
    SupervisorSpec,
    open_supervisor,
)

from .helpers import Probe

NO_JITTER = Backoff(min_delay=1.0, max_delay=4.0, random_factor=0.0, reset_after=30.0)


async def crash_and_time(probe: Probe, sup: Supervisor, name: str = "a") -> float:
    """Crash ``name`` and return how long until it runs again (1 ms resolution)."""
    before = sup.which_children()[0].restarts
    crashed_at = trio.current_time()
    probe.crash(name)
    while True:
        info = sup.which_children()[0]
        if info.restarts > before and info.state is ChildState.RUNNING:
            return trio.current_time() - crashed_at
        await trio.sleep(0.001)


async def test_restart_delays_double_up_to_the_maximum(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    spec = SupervisorSpec("root", (ChildSpec("a", probe.echo("a")),), backoff=NO_JITTER,
                          max_restarts=10, max_seconds=100)
    async with open_supervisor(spec) as sup:
        delays = [await crash_and_time(probe, sup) for _ in range(4)]
    assert delays == pytest.approx([1.0, 2.0, 4.0, 4.0], abs=0.002)


async def test_jitter_keeps_each_delay_within_the_random_factor(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    backoff = Backoff(min_delay=1.0, max_delay=1.0, random_factor=0.5, reset_after=30.0)
    spec = SupervisorSpec("root", (ChildSpec("a", probe.echo("a")),), backoff=backoff,
                          max_restarts=20, max_seconds=100)
    async with open_supervisor(spec) as sup:
        for _ in range(8):
            assert 1.0 <= await crash_and_time(probe, sup) <= 1.5 + 0.001


async def test_backoff_resets_after_a_stable_period(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    spec = SupervisorSpec("root", (ChildSpec("a", probe.echo("a")),), backoff=NO_JITTER,
                          max_restarts=10, max_seconds=100)
    async with open_supervisor(spec) as sup:
        assert await crash_and_time(probe, sup) == pytest.approx(1.0, abs=0.002)
        assert await crash_and_time(probe, sup) == pytest.approx(2.0, abs=0.002)
        await trio.sleep(31)  # stable for longer than reset_after
        assert await crash_and_time(probe, sup) == pytest.approx(1.0, abs=0.002)


async def test_a_child_waiting_for_its_restart_shows_restarting(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    spec = SupervisorSpec("root", (ChildSpec("a", probe.echo("a")),), backoff=NO_JITTER)
    async with open_supervisor(spec) as sup:
        probe.crash("a")
        await trio.sleep(0.5)
        assert sup.which_children()[0].state is ChildState.RESTARTING
        await sup.address("a").cast("queued while down")
        await trio.sleep(1.0)
        assert sup.which_children()[0].state is ChildState.RUNNING
        await trio.sleep(0.01)
        assert probe.received["a"] == ["queued while down"]


async def test_rest_for_one_waits_for_the_failed_child_before_later_siblings(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    spec = SupervisorSpec(
        "root",
        (ChildSpec("a", probe.echo("a")), ChildSpec("b", probe.echo("b"))),
        strategy=Strategy.REST_FOR_ONE,
        backoff=NO_JITTER,
    )
    async with open_supervisor(spec):
        probe.log.clear()
        probe.crash("a")
        await trio.sleep(0.9)
        assert probe.log == ["stop a", "stop b"]
        await trio.sleep(0.2)
        assert probe.log == ["stop a", "stop b", "start a", "start b"]


async def test_the_tree_stops_promptly_while_a_restart_is_pending(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    slow = Backoff(min_delay=60.0, max_delay=60.0, random_factor=0.0, reset_after=30.0)
    spec = SupervisorSpec("root", (ChildSpec("a", probe.echo("a")),), backoff=slow)
    async with open_supervisor(spec):
        probe.crash("a")
        await trio.sleep(1)
    assert trio.current_time() == pytest.approx(1.0)
    assert probe.starts["a"] == 1
