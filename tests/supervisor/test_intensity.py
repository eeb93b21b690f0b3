"""Restart intensity: restarts within the limit recover; one more escalates."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from ibkr_connector.supervisor import (
    ChildSpec,
    ChildState,
    Restart,
    SupervisionEvent,
    SupervisionEventKind,
    SupervisorEscalation,
    SupervisorSpec,
    open_supervisor,
)

from .helpers import Boom, Probe, drain, kinds


async def crash_n(probe: Probe, name: str, times: int, *, every: float) -> None:
    for _ in range(times):
        probe.crash(name)
        await trio.sleep(every)


async def test_restarts_within_intensity_leave_the_child_running(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    spec = SupervisorSpec("root", (ChildSpec("a", probe.echo("a")),), max_restarts=3,
                          max_seconds=10)
    async with open_supervisor(spec) as sup:
        await crash_n(probe, "a", 3, every=0.1)
        info = sup.which_children()[0]
        assert (info.state, info.restarts) == (ChildState.RUNNING, 3)


async def test_one_restart_too_many_escalates_the_root_with_a_clear_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    spec = SupervisorSpec(
        "root",
        (ChildSpec("steady", probe.echo("steady")), ChildSpec("a", probe.echo("a"))),
        max_restarts=3,
        max_seconds=10,
    )
    events: trio.MemoryReceiveChannel[SupervisionEvent] | None = None
    with pytest.raises(SupervisorEscalation) as caught:
        async with open_supervisor(spec) as sup:
            events = sup.subscribe()
            await crash_n(probe, "a", 4, every=0.1)
            await trio.sleep_forever()  # cancelled by the escalation
    error = caught.value
    assert (error.supervisor, error.child) == ("root", "a")
    assert error.last_error == "Boom: a crashed"
    assert "'a'" in str(error) and "Boom: a crashed" in str(error)
    assert isinstance(error.__cause__, BaseExceptionGroup)
    assert error.__cause__.subgroup(Boom) is not None
    assert probe.live == set()  # every child was stopped before escalating
    assert events is not None
    history = drain(events)
    assert kinds(history, SupervisionEventKind.ESCALATED) == [("root", "a")]
    assert history[-1].kind is SupervisionEventKind.ESCALATED


async def test_crashes_spread_wider_than_the_window_never_escalate(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    spec = SupervisorSpec("root", (ChildSpec("a", probe.echo("a")),), max_restarts=1,
                          max_seconds=5)
    async with open_supervisor(spec) as sup:
        await crash_n(probe, "a", 5, every=5.5)
        assert sup.which_children()[0].restarts == 5


async def test_a_crash_loop_on_start_escalates_while_the_tree_starts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    spec = SupervisorSpec("root", (ChildSpec("bad", probe.failing_start("bad")),),
                          max_restarts=2)
    with pytest.raises(SupervisorEscalation) as caught:
        async with open_supervisor(spec):
            raise AssertionError("the body must not run")
    assert probe.starts["bad"] == 3
    assert caught.value.child == "bad"
    assert "cannot start" in caught.value.last_error


async def test_a_nested_supervisor_escalates_to_its_parent_which_restarts_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    sub = SupervisorSpec("sub", (ChildSpec("w", probe.echo("w")),), max_restarts=1)
    spec = SupervisorSpec("root", (ChildSpec("x", probe.echo("x")), sub))
    async with open_supervisor(spec) as sup:
        events = sup.subscribe()
        await crash_n(probe, "w", 2, every=0.1)
        history = drain(events)
        assert kinds(history, SupervisionEventKind.ESCALATED) == [("sub", "w")]
        exited = [e for e in history if e.kind is SupervisionEventKind.EXITED
                  and e.child == "sub"]
        assert "SupervisorEscalation" in exited[0].reason
        assert ("root", "sub") in kinds(history, SupervisionEventKind.RESTARTED)
        root_children = {c.name: c for c in sup.which_children()}
        assert root_children["sub"].state is ChildState.RUNNING
        assert root_children["sub"].restarts == 1
        assert root_children["x"].restarts == 0  # one_for_one: the sibling is untouched
        assert sup.which_children("sub")[0].state is ChildState.RUNNING


async def test_escalation_chains_up_to_the_root_naming_each_level(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    sub = SupervisorSpec("sub", (ChildSpec("w", probe.echo("w")),), max_restarts=0)
    spec = SupervisorSpec("root", (sub,), max_restarts=0)
    with pytest.raises(SupervisorEscalation) as caught:
        async with open_supervisor(spec):
            probe.crash("w")
            await trio.sleep_forever()
    assert (caught.value.supervisor, caught.value.child) == ("root", "sub")
    inner = caught.value.__cause__
    assert isinstance(inner, SupervisorEscalation)
    assert (inner.supervisor, inner.child) == ("sub", "w")


async def test_a_temporary_supervisor_that_escalates_is_left_stopped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    sub = SupervisorSpec("sub", (ChildSpec("w", probe.echo("w")),), max_restarts=0,
                         restart=Restart.TEMPORARY)
    async with open_supervisor(SupervisorSpec("root", (sub,))) as sup:
        probe.crash("w")
        await trio.sleep(0.01)
        tree = sup.tree()
        assert tree.children[0].state is ChildState.STOPPED
        assert tree.children[0].children[0].state is ChildState.STOPPED


async def test_a_transient_supervisor_that_gave_up_is_not_restarted_by_its_parent(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # OTP: past its intensity a supervisor exits with reason `shutdown`, which is not
    # abnormal, so its parent does not restart a transient one (nor count a restart).
    probe = Probe()
    sub = SupervisorSpec("sub", (ChildSpec("w", probe.echo("w")),), max_restarts=0,
                         restart=Restart.TRANSIENT)
    spec = SupervisorSpec("root", (ChildSpec("x", probe.echo("x")), sub), max_restarts=0)
    async with open_supervisor(spec) as sup:
        events = sup.subscribe()
        probe.crash("w")
        await trio.sleep(1)
        history = drain(events)
        sub_info = sup.which_children()[1]
        assert (sub_info.state, sub_info.restarts) == (ChildState.STOPPED, 0)
        assert sub_info.last_error is not None and "gave up" in sub_info.last_error
        assert sup.which_children("sub")[0].state is ChildState.STOPPED
        assert probe.starts == {"x": 1, "w": 1}
        assert ("root", "sub") not in kinds(history, SupervisionEventKind.RESTARTED)
        exited = [e for e in history if e.kind is SupervisionEventKind.EXITED
                  and e.child == "sub"]
        assert exited[0].reason.startswith("shutdown: SupervisorEscalation")
        assert ("root", "sub") in kinds(history, SupervisionEventKind.TERMINATED)
        # The root (max_restarts=0) did not escalate: no restart was counted. An operator
        # may bring the subtree back.
        await sup.restart_child("sub")
        assert await sup.address("w").call("back") == "back"


async def test_a_permanent_supervisor_that_gave_up_counts_against_its_parent(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    sub = SupervisorSpec("sub", (ChildSpec("w", probe.echo("w")),), max_restarts=0)
    spec = SupervisorSpec("root", (sub,), max_restarts=1, max_seconds=10)
    with pytest.raises(SupervisorEscalation) as caught:
        async with open_supervisor(spec):
            await crash_n(probe, "w", 2, every=0.1)  # sub gives up twice in 0.1 s
            await trio.sleep_forever()
    assert (caught.value.supervisor, caught.value.child) == ("root", "sub")
    assert probe.starts["w"] == 2


async def test_a_worker_raising_an_escalation_of_its_own_tree_has_crashed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Only a supervisor child's own escalation is OTP's `shutdown`; a worker that runs a
    # tree inside and lets its escalation out crashed, so a transient worker is restarted.
    starts = 0

    async def runs_a_tree(mailbox: object, *, task_status: trio.TaskStatus[None]) -> None:
        nonlocal starts
        starts += 1
        task_status.started()
        if starts == 1:
            inner = SupervisorSpec("inner", (ChildSpec("i", Probe().failing_start("i")),),
                                   max_restarts=0)
            async with open_supervisor(inner):
                raise AssertionError("the inner tree cannot start")
        await trio.sleep_forever()

    spec = SupervisorSpec("root", (ChildSpec("w", runs_a_tree, Restart.TRANSIENT),))
    async with open_supervisor(spec) as sup:
        await trio.sleep(1)
        info = sup.which_children()[0]
        assert (info.state, info.restarts, starts) == (ChildState.RUNNING, 1, 2)
        assert info.last_error is not None and "SupervisorEscalation" in info.last_error
