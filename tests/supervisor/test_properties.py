"""Property tests: random trees and crash schedules against the supervisor's promises.

Each example runs a whole tree in its own ``trio.run`` with a MockClock, so hypothesis
controls everything, including time. Shapes are plain data; a Probe turns them into
specs whose actors record starts, stops and every message they take.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable

import attrs
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ibkr_connector.supervisor import (
    ChildInfo,
    ChildSpec,
    ChildState,
    Restart,
    Strategy,
    Supervisor,
    SupervisorEscalation,
    SupervisorSpec,
    open_supervisor,
)

from .helpers import Probe

PROPERTY_SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@attrs.frozen
class Worker:
    name: str
    restart: Restart


@attrs.frozen
class Sup:
    name: str
    strategy: Strategy
    children: tuple[Worker | Sup, ...]


def leaves(shape: Worker | Sup) -> list[Worker]:
    if isinstance(shape, Worker):
        return [shape]
    return [leaf for child in shape.children for leaf in leaves(child)]


def build(
    shape: Worker | Sup, probe: Probe, *, max_restarts: int = 10_000
) -> ChildSpec | SupervisorSpec:
    if isinstance(shape, Worker):
        return ChildSpec(shape.name, probe.echo(shape.name, work=0.5), shape.restart)
    return SupervisorSpec(
        shape.name,
        tuple(build(c, probe, max_restarts=max_restarts) for c in shape.children),
        strategy=shape.strategy,
        max_restarts=max_restarts,
    )


@st.composite
def tree_shapes(draw: st.DrawFn, *, restarts: st.SearchStrategy[Restart]) -> Sup:
    counter = itertools.count()

    def node(depth: int) -> Worker | Sup:
        if depth >= 2 or draw(st.integers(0, 3)) > 0:
            return Worker(f"w{next(counter)}", draw(restarts))
        return sup(depth + 1)

    def sup(depth: int) -> Sup:
        name = f"s{next(counter)}"
        strategy = draw(st.sampled_from(Strategy))
        count = draw(st.integers(1, 3))
        return Sup(name, strategy, tuple(node(depth) for _ in range(count)))

    return sup(0)


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    trio.run(scenario, clock=trio.testing.MockClock(autojump_threshold=0))


def walk_infos(info: ChildInfo) -> list[ChildInfo]:
    return [info] + [each for child in info.children for each in walk_infos(child)]


def running_workers(sup: Supervisor) -> list[str]:
    return [i.name for i in walk_infos(sup.tree())
            if i.kind == "worker" and i.state is ChildState.RUNNING]


crash_schedules = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 50)), max_size=12)


@PROPERTY_SETTINGS
@given(
    shape=tree_shapes(restarts=st.sampled_from(Restart)),
    crashes=crash_schedules,
    messages=st.integers(0, 6),
)
def test_random_trees_recover_keep_messages_and_shut_down_cleanly(
    shape: Sup, crashes: list[tuple[int, int]], messages: int
) -> None:
    workers = leaves(shape)
    durable = [w.name for w in workers if w.restart is not Restart.TEMPORARY]

    async def scenario() -> None:
        probe = Probe()
        tasks_before = trio.lowlevel.current_statistics().tasks_living

        async def sender(name: str, address_cast: Callable[[object], Awaitable[None]]) -> None:
            for n in range(messages):
                await address_cast(n)
                await trio.sleep(0.3)

        spec = build(shape, probe)
        assert isinstance(spec, SupervisorSpec)
        async with open_supervisor(spec) as sup:
            async with trio.open_nursery() as nursery:
                for name in durable:
                    nursery.start_soon(sender, name, sup.address(name).cast)
                for gap, index in crashes:
                    await trio.sleep(gap)
                    target = workers[index % len(workers)].name
                    if target in probe.live:
                        probe.crash(target)
                    # a permanent (or crashed transient) child is soon running again
                    # (graceful stops let in-hand messages finish: 0.5 s each) ...
                    await trio.testing.wait_all_tasks_blocked()
                    with trio.fail_after(10):
                        while not set(durable) <= set(running_workers(sup)):
                            await trio.sleep(0.05)
                    # ... and exactly the children shown RUNNING have a live task
                    await trio.testing.wait_all_tasks_blocked()
                    assert probe.live == set(running_workers(sup))
            await trio.sleep(60)  # let every mailbox drain
            for name in durable:  # nothing queued was lost, nothing taken twice
                assert probe.received[name] == list(range(messages))
            start_order = running_workers(sup)
            mark = len(probe.log)
        stops = [line.split()[1] for line in probe.log[mark:] if line.startswith("stop")]
        assert stops == list(reversed(start_order))
        assert probe.live == set()
        assert trio.lowlevel.current_statistics().tasks_living == tasks_before

    run(scenario)


def expected_restarts(shape: Sup, crashed: str) -> set[str]:
    """The workers a crash of ``crashed`` restarts, by the OTP strategy rules."""
    for index, child in enumerate(shape.children):
        names = {w.name for w in leaves(child)}
        if crashed not in names:
            continue
        if isinstance(child, Sup):
            return expected_restarts(child, crashed)
        if shape.strategy is Strategy.ONE_FOR_ONE:
            return {crashed}
        group = shape.children if shape.strategy is Strategy.ONE_FOR_ALL else shape.children[
            index:]
        return {w.name for member in group for w in leaves(member)}
    raise AssertionError(crashed)


@PROPERTY_SETTINGS
@given(
    shape=tree_shapes(restarts=st.just(Restart.PERMANENT)),
    crashes=st.lists(st.integers(0, 50), min_size=1, max_size=8),
)
def test_exactly_the_strategy_group_is_restarted(shape: Sup, crashes: list[int]) -> None:
    workers = [w.name for w in leaves(shape)]

    async def scenario() -> None:
        probe = Probe()
        spec = build(shape, probe)
        assert isinstance(spec, SupervisorSpec)
        async with open_supervisor(spec):
            for index in crashes:
                crashed = workers[index % len(workers)]
                before = dict(probe.starts)
                probe.crash(crashed)
                await trio.testing.wait_all_tasks_blocked()
                restarted = {w for w in workers if probe.starts[w] > before[w]}
                assert restarted == expected_restarts(shape, crashed)
                assert all(probe.starts[w] - before[w] <= 1 for w in workers)

    run(scenario)


@PROPERTY_SETTINGS
@given(
    gaps=st.lists(st.integers(0, 4), min_size=1, max_size=12),
    max_restarts=st.integers(0, 4),
    max_seconds=st.integers(1, 6),
    strategy=st.sampled_from(Strategy),
)
def test_intensity_escalates_exactly_when_exceeded(
    gaps: list[int], max_restarts: int, max_seconds: int, strategy: Strategy
) -> None:
    times = list(itertools.accumulate(gaps))
    expected: int | None = None  # index of the crash that must escalate
    for index, now in enumerate(times):
        if sum(1 for t in times[: index + 1] if t >= now - max_seconds) > max_restarts:
            expected = index
            break

    async def scenario() -> None:
        probe = Probe()
        spec = SupervisorSpec(
            "root",
            (ChildSpec("a", probe.echo("a")), ChildSpec("b", probe.echo("b"))),
            strategy=strategy,
            max_restarts=max_restarts,
            max_seconds=max_seconds,
        )
        issued = -1
        escalated = False
        try:
            async with open_supervisor(spec):
                for index, gap in enumerate(gaps):
                    await trio.sleep(gap)
                    issued = index
                    probe.crash("b")
                    await trio.testing.wait_all_tasks_blocked()
        except SupervisorEscalation as exc:
            escalated = True
            assert exc.child == "b"
            assert trio.current_time() == times[issued]
        assert escalated is (expected is not None)
        if expected is not None:
            assert issued == expected
            assert probe.starts["b"] == expected + 1
        else:
            assert probe.starts["b"] == len(gaps) + 1
        assert probe.live == set()

    run(scenario)
