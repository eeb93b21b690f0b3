"""Operator operations: inspection, restart / terminate / start, the event stream."""

from __future__ import annotations

import pytest
import trio
import trio.lowlevel
import trio.testing

from ibkr_connector.supervisor import (
    ActorNotRunning,
    Backoff,
    ChildCounts,
    ChildRunning,
    ChildSpec,
    ChildState,
    Mailbox,
    SupervisionEvent,
    SupervisionEventKind,
    SupervisorError,
    SupervisorSpec,
    UnknownChild,
    open_supervisor,
)

from .helpers import Probe, drain

K = SupervisionEventKind


def pair(probe: Probe) -> SupervisorSpec:
    return SupervisorSpec(
        "root",
        (ChildSpec("a", probe.echo("a", work=1.0)),
         SupervisorSpec("sub", (ChildSpec("b", probe.echo("b")),))),
    )


async def test_which_children_reports_state_restarts_error_uptime_and_depth(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    async with open_supervisor(pair(probe)) as sup:
        await trio.sleep(10)
        probe.crash("a")
        await trio.sleep(4)
        for n in range(3):
            await sup.address("a").cast(n)
        a, sub = sup.which_children()
        assert (a.name, a.kind, sub.kind) == ("a", "worker", "supervisor")
        assert (a.state, a.restarts, a.last_error) == (ChildState.RUNNING, 1, "Boom: a crashed")
        assert a.uptime == pytest.approx(4.0)
        assert sub.uptime == pytest.approx(14.0)
        assert a.mailbox_depth == 2  # one of the three is in hand
        assert [c.name for c in sub.children] == ["b"]


async def test_count_children_counts_specs_active_supervisors_and_workers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    async with open_supervisor(pair(probe)) as sup:
        assert sup.count_children() == ChildCounts(specs=2, active=2, supervisors=1, workers=1)
        await sup.terminate_child("a")
        assert sup.count_children() == ChildCounts(specs=2, active=1, supervisors=1, workers=1)
        assert sup.count_children("sub") == ChildCounts(specs=1, active=1, supervisors=0,
                                                        workers=1)
        with pytest.raises(ValueError, match="not a supervisor"):
            sup.count_children("a")


async def test_get_childspec_gives_the_spec_the_tree_runs_now(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    spec = pair(probe)
    async with open_supervisor(spec) as sup:
        assert sup.get_childspec("a") is spec.children[0]
        extra = ChildSpec("extra", probe.echo("extra"))
        await sup.start_child(extra, under="sub")
        sub = sup.get_childspec("sub")
        assert isinstance(sub, SupervisorSpec)
        assert [c.name for c in sub.children] == ["b", "extra"]
        assert sub.children[1] is extra
        await sup.terminate_child("b")
        await sup.delete_child("b")
        sub = sup.get_childspec("sub")
        assert isinstance(sub, SupervisorSpec)
        assert [c.name for c in sub.children] == ["extra"]
        with pytest.raises(UnknownChild):
            sup.get_childspec("b")


async def test_stopped_children_have_no_uptime(autojump_clock: trio.testing.MockClock) -> None:
    probe = Probe()
    async with open_supervisor(pair(probe)) as sup:
        await sup.terminate_child("a")
        info = sup.which_children()[0]
        assert (info.state, info.uptime) == (ChildState.STOPPED, None)


async def test_force_restart_child_restarts_a_running_child_gracefully(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    async with open_supervisor(pair(probe)) as sup:
        events = sup.subscribe()
        probe.log.clear()
        await sup.force_restart_child("b")
        assert probe.log == ["stop b", "start b"]
        history = [(e.kind, e.child) for e in drain(events)]
        assert history == [(K.EXITED, "b"), (K.RESTARTED, "b"), (K.STARTED, "b")]
        assert sup.which_children("sub")[0].restarts == 1


async def test_force_restart_child_keeps_the_mailbox_open_while_the_child_stops(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    async with open_supervisor(pair(probe)) as sup:
        await sup.address("a").cast("one second of work")
        await trio.lowlevel.checkpoint()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sup.force_restart_child, "a")
            await trio.sleep(0.5)  # "a" is still finishing its message
            await sup.address("a").cast("sent during the restart")  # queued, not refused
        await trio.sleep(2)
        assert probe.received["a"] == ["one second of work", "sent during the restart"]


async def test_force_restart_child_starts_a_stopped_child(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    async with open_supervisor(pair(probe)) as sup:
        await sup.terminate_child("b")
        await sup.force_restart_child("b")
        assert sup.which_children("sub")[0].state is ChildState.RUNNING


async def test_restart_child_starts_a_stopped_child(autojump_clock: trio.testing.MockClock) -> None:
    probe = Probe()
    async with open_supervisor(pair(probe)) as sup:
        await sup.terminate_child("b")
        await sup.restart_child("b")
        assert sup.which_children("sub")[0].state is ChildState.RUNNING
        assert probe.starts["b"] == 2


@pytest.mark.parametrize("operation", ["restart_child", "start_child", "delete_child"])
async def test_an_operation_that_needs_a_stopped_child_refuses_a_running_one(
    autojump_clock: trio.testing.MockClock, operation: str
) -> None:
    probe = Probe()
    async with open_supervisor(pair(probe)) as sup:
        probe.log.clear()
        with pytest.raises(ChildRunning) as caught:
            await getattr(sup, operation)("b")
        assert isinstance(caught.value, SupervisorError)
        assert (caught.value.name, caught.value.state) == ("b", "running")
        assert operation in str(caught.value)
        assert probe.log == []  # left alone: not stopped, not started again
        assert sup.which_children("sub")[0].state is ChildState.RUNNING


async def test_restart_child_refuses_a_child_waiting_for_its_restart(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    spec = SupervisorSpec("root", (ChildSpec("a", probe.echo("a")),),
                          backoff=Backoff(min_delay=10.0, random_factor=0.0))
    async with open_supervisor(spec) as sup:
        probe.crash("a")
        await trio.sleep(1)
        with pytest.raises(ChildRunning) as caught:
            await sup.restart_child("a")
        assert caught.value.state == "restarting"  # OTP's {error, restarting}
        await sup.force_restart_child("a")  # the operator may cut the backoff short
        assert (probe.starts["a"], trio.current_time()) == (2, pytest.approx(1.0))


async def test_operator_restarts_do_not_count_against_intensity(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    spec = SupervisorSpec("root", (ChildSpec("a", probe.echo("a")),), max_restarts=0)
    async with open_supervisor(spec) as sup:
        for _ in range(5):
            await sup.force_restart_child("a")
        assert sup.which_children()[0].restarts == 5


async def test_start_child_by_name_starts_a_terminated_child(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    async with open_supervisor(pair(probe)) as sup:
        await sup.terminate_child("b")
        await sup.start_child("b")
        assert probe.starts["b"] == 2
        assert sup.which_children("sub")[0].state is ChildState.RUNNING


async def test_delete_child_removes_a_terminated_child(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    async with open_supervisor(pair(probe)) as sup:
        await sup.terminate_child("a")
        await sup.delete_child("a")
        assert [c.name for c in sup.which_children()] == ["sub"]
        with pytest.raises(UnknownChild):
            await sup.restart_child("a")


async def test_terminate_waits_for_the_graceful_stop(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    async with open_supervisor(pair(probe)) as sup:
        await sup.address("a").cast("one second of work")
        await trio.lowlevel.checkpoint()
        await sup.terminate_child("a")
        assert trio.current_time() == pytest.approx(1.0)
        assert probe.received["a"] == ["one second of work"]


async def test_unknown_names_and_the_root_are_refused(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_supervisor(pair(Probe())) as sup:
        with pytest.raises(UnknownChild):
            await sup.terminate_child("ghost")
        with pytest.raises(ValueError, match="root supervisor"):
            await sup.restart_child("root")
        with pytest.raises(ValueError, match="not a supervisor"):
            sup.which_children("a")
        with pytest.raises(ValueError, match="not a supervisor"):
            await sup.start_child(ChildSpec("x", Probe().echo("x")), under="a")


async def test_operations_under_a_stopped_supervisor_are_refused(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_supervisor(pair(Probe())) as sup:
        await sup.terminate_child("sub")
        with pytest.raises(ActorNotRunning):
            await sup.restart_child("b")
    with pytest.raises(ActorNotRunning):
        await sup.restart_child("a")  # the tree has ended


async def test_the_event_stream_tells_start_exit_restart_in_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    async with open_supervisor(pair(probe)) as sup:
        events = sup.subscribe()
        probe.crash("b")
        await trio.sleep(0.01)
        history = drain(events)
    assert [(e.kind, e.supervisor, e.child) for e in history] == [
        (K.EXITED, "sub", "b"), (K.RESTARTED, "sub", "b"), (K.STARTED, "sub", "b")]
    assert history[0].reason == "Boom: b crashed"
    assert "one_for_one" in history[1].reason
    assert all(e.at == 0.0 for e in history)


async def test_a_subscription_ends_when_the_tree_ends(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seen: list[SupervisionEvent] = []

    async def read(channel: trio.MemoryReceiveChannel[SupervisionEvent]) -> None:
        async for event in channel:
            seen.append(event)

    async with trio.open_nursery() as nursery:
        async with open_supervisor(pair(Probe())) as sup:
            nursery.start_soon(read, sup.subscribe())
            await trio.lowlevel.checkpoint()
    # the reader finished on its own: otherwise the nursery would still be waiting
    assert [e.kind for e in seen].count(K.TERMINATED) == 3


async def test_a_full_subscriber_loses_its_oldest_events_and_the_loss_is_counted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    async with open_supervisor(pair(probe)) as sup:
        slow = sup.subscribe(capacity=2)
        fast = sup.subscribe(capacity=100)
        for _ in range(2):
            await sup.force_restart_child("b")  # 3 events each
        assert sup.dropped_events == 4
        kept = drain(slow)
        assert kept == drain(fast)[-2:]
        assert [e.kind for e in kept] == [K.RESTARTED, K.STARTED]


async def test_a_subscriber_that_closed_its_channel_is_forgotten(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    async with open_supervisor(pair(probe)) as sup:
        gone = sup.subscribe(capacity=1)
        await gone.aclose()
        await sup.force_restart_child("b")
        assert sup.dropped_events == 0


async def test_an_operation_interrupted_by_cancellation_still_completes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    async with open_supervisor(pair(probe)) as sup:
        await sup.address("a").cast("work")
        await trio.lowlevel.checkpoint()
        with trio.move_on_after(0.5):
            await sup.terminate_child("a")
        await trio.sleep(1)
        assert sup.which_children()[0].state is ChildState.STOPPED


async def test_a_child_stuck_in_start_does_not_block_the_tree_from_stopping(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def never_ready(mailbox: Mailbox, *, task_status: trio.TaskStatus[None]) -> None:
        await trio.sleep_forever()

    probe = Probe()
    spec = SupervisorSpec("root", (ChildSpec("a", probe.echo("a")),))
    async with open_supervisor(spec) as sup:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sup.start_child, ChildSpec("stuck", never_ready))
            await trio.sleep(1)
            assert sup.which_children()[-1].state is ChildState.STARTING
            nursery.cancel_scope.cancel()
    assert probe.live == set()
