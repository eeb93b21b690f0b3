"""Strategies: which siblings restart with a failed child; start and stop order."""

from __future__ import annotations

import trio
import trio.testing

from ibkr_connector.supervisor import (
    ChildSpec,
    ChildState,
    Restart,
    Strategy,
    SupervisionEventKind,
    SupervisorSpec,
    open_supervisor,
)

from .helpers import Probe, drain, kinds


def three(probe: Probe, strategy: Strategy, **extra: Restart) -> SupervisorSpec:
    return SupervisorSpec(
        "root",
        tuple(
            ChildSpec(n, probe.echo(n), extra.get(n, Restart.PERMANENT)) for n in ("a", "b", "c")
        ),
        strategy=strategy,
    )


async def test_one_for_one_restarts_only_the_failed_child(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    async with open_supervisor(three(probe, Strategy.ONE_FOR_ONE)) as sup:
        probe.log.clear()
        await sup.address("b").cast("crash")
        await trio.sleep(0.01)
        assert probe.log == ["stop b", "start b"]
        assert [c.restarts for c in sup.which_children()] == [0, 1, 0]


async def test_one_for_all_stops_the_others_in_reverse_then_starts_all_in_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    async with open_supervisor(three(probe, Strategy.ONE_FOR_ALL)) as sup:
        probe.log.clear()
        await sup.address("b").cast("crash")
        await trio.sleep(0.01)
        assert probe.log == ["stop b", "stop c", "stop a", "start a", "start b", "start c"]
        assert [c.restarts for c in sup.which_children()] == [1, 1, 1]


async def test_rest_for_one_restarts_the_failed_child_and_those_after_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    async with open_supervisor(three(probe, Strategy.REST_FOR_ONE)) as sup:
        events = sup.subscribe()
        probe.log.clear()
        await sup.address("b").cast("crash")
        await trio.sleep(0.01)
        assert probe.log == ["stop b", "stop c", "start b", "start c"]
        restarted = kinds(drain(events), SupervisionEventKind.RESTARTED)
        assert restarted == [("root", "b"), ("root", "c")]


async def test_temporary_siblings_are_stopped_but_not_restarted_by_a_group_restart(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    spec = three(probe, Strategy.ONE_FOR_ALL, c=Restart.TEMPORARY)
    async with open_supervisor(spec) as sup:
        await sup.address("a").cast("crash")
        await trio.sleep(0.01)
        states = {c.name: c.state for c in sup.which_children()}
        assert states == {"a": ChildState.RUNNING, "b": ChildState.RUNNING,
                          "c": ChildState.STOPPED}
        assert probe.starts["c"] == 1


async def test_a_temporary_child_exiting_does_not_restart_its_siblings(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    async with open_supervisor(three(probe, Strategy.ONE_FOR_ALL, a=Restart.TEMPORARY)) as sup:
        await sup.address("a").cast("crash")
        await trio.sleep(0.01)
        assert (probe.starts["b"], probe.starts["c"]) == (1, 1)


async def test_an_operator_terminated_child_stays_stopped_through_group_restarts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    async with open_supervisor(three(probe, Strategy.ONE_FOR_ALL)) as sup:
        await sup.terminate_child("c")
        await sup.address("a").cast("crash")
        await trio.sleep(0.01)
        assert probe.starts == {"a": 2, "b": 2, "c": 1}
        assert sup.which_children()[2].state is ChildState.STOPPED


async def test_leaving_the_block_stops_children_in_reverse_start_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    spec = SupervisorSpec(
        "root",
        (
            ChildSpec("a", probe.echo("a")),
            SupervisorSpec("sub", (ChildSpec("b", probe.echo("b")),
                                   ChildSpec("c", probe.echo("c")))),
            ChildSpec("d", probe.echo("d")),
        ),
    )
    async with open_supervisor(spec) as sup:
        events = sup.subscribe()
    starts = [line for line in probe.log if line.startswith("start")]
    stops = [line for line in probe.log if line.startswith("stop")]
    assert [s.split()[1] for s in starts] == ["a", "b", "c", "d"]
    assert [s.split()[1] for s in stops] == ["d", "c", "b", "a"]
    exited = kinds(drain(events), SupervisionEventKind.EXITED)
    assert exited == [("root", "d"), ("sub", "c"), ("sub", "b"), ("root", "sub"), ("root", "a")]
