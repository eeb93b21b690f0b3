"""Child specs at run time: restart types, start order, failed starts, shutdown timeouts."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from ibkr_connector.supervisor import (
    ActorNotRunning,
    ChildSpec,
    ChildState,
    Mailbox,
    Restart,
    SupervisionEventKind,
    SupervisorSpec,
    open_supervisor,
)

from .helpers import Probe, drain, kinds


async def settle() -> None:
    await trio.sleep(0.01)


def state_of(sup_children: list[object], name: str) -> ChildState:
    for info in sup_children:
        if getattr(info, "name", None) == name:
            state = info.state  # type: ignore[attr-defined]
            assert isinstance(state, ChildState)
            return state
    raise AssertionError(name)


@pytest.mark.parametrize("how", ["crash", "return"])
async def test_permanent_child_is_restarted_after_any_exit(
    autojump_clock: trio.testing.MockClock, how: str
) -> None:
    probe = Probe()
    spec = SupervisorSpec("root", (ChildSpec("p", probe.echo("p")),))
    async with open_supervisor(spec) as sup:
        await sup.address("p").cast(how)
        await settle()
        assert probe.starts["p"] == 2
        assert state_of(list(sup.which_children()), "p") is ChildState.RUNNING


async def test_transient_child_is_restarted_after_an_exception(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    spec = SupervisorSpec("root", (ChildSpec("t", probe.echo("t"), Restart.TRANSIENT),))
    async with open_supervisor(spec) as sup:
        await sup.address("t").cast("crash")
        await settle()
        assert probe.starts["t"] == 2
        assert sup.which_children()[0].state is ChildState.RUNNING


async def test_transient_child_that_returns_is_not_restarted_and_stops(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    spec = SupervisorSpec("root", (ChildSpec("t", probe.echo("t"), Restart.TRANSIENT),))
    async with open_supervisor(spec) as sup:
        await sup.address("t").cast("return")
        await settle()
        assert probe.starts["t"] == 1
        assert sup.which_children()[0].state is ChildState.STOPPED
        with pytest.raises(ActorNotRunning):
            await sup.address("t").call("ping")


@pytest.mark.parametrize("how", ["crash", "return"])
async def test_temporary_child_is_never_restarted(
    autojump_clock: trio.testing.MockClock, how: str
) -> None:
    probe = Probe()
    spec = SupervisorSpec("root", (ChildSpec("tmp", probe.echo("tmp"), Restart.TEMPORARY),))
    async with open_supervisor(spec) as sup:
        await sup.address("tmp").cast(how)
        await settle()
        assert probe.starts["tmp"] == 1
        info = sup.which_children()[0]
        assert info.state is ChildState.STOPPED
        assert (info.last_error is not None) is (how == "crash")


async def test_children_start_in_order_each_after_the_previous_reported_started(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    started_at: dict[str, float] = {}

    def timed(name: str, delay: float) -> ChildSpec:
        inner = probe.echo(name, start_delay=delay)

        async def start(mailbox: Mailbox, *, task_status: trio.TaskStatus[None]) -> None:
            started_at[name] = trio.current_time()
            await inner(mailbox, task_status=task_status)

        return ChildSpec(name, start)

    spec = SupervisorSpec("root", (timed("a", 1.0), timed("b", 2.0), timed("c", 0.0)))
    async with open_supervisor(spec) as sup:
        assert trio.current_time() == pytest.approx(3.0)
        assert [c.state for c in sup.which_children()] == [ChildState.RUNNING] * 3
    assert started_at == pytest.approx({"a": 0.0, "b": 1.0, "c": 3.0})


@pytest.mark.parametrize("returns", [True, False])
async def test_a_child_failing_before_started_counts_as_a_failed_start(
    autojump_clock: trio.testing.MockClock, returns: bool
) -> None:
    probe = Probe()
    attempts = 0

    async def flaky(mailbox: Mailbox, *, task_status: trio.TaskStatus[None]) -> None:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            await probe.failing_start("f", returns=returns)(mailbox, task_status=task_status)
            return
        await probe.echo("f")(mailbox, task_status=task_status)

    spec = SupervisorSpec("root", (ChildSpec("f", flaky, Restart.TRANSIENT),))
    async with open_supervisor(spec) as sup:
        info = sup.which_children()[0]
        assert (attempts, info.restarts, info.state) == (3, 2, ChildState.RUNNING)
        expected = "FailedStart" if returns else "Boom"
        assert info.last_error is not None and info.last_error.startswith(expected)


async def test_graceful_stop_lets_the_actor_finish_before_the_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    spec = SupervisorSpec("root", (ChildSpec("a", probe.echo("a"), shutdown_timeout=10),))
    async with open_supervisor(spec):
        pass
    assert trio.current_time() == 0.0  # ended as soon as asked, no timeout waited
    assert probe.log == ["start a", "stop a"]


async def test_an_actor_ignoring_the_stop_request_is_cancelled_after_its_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    spec = SupervisorSpec("root", (ChildSpec("s", probe.stubborn("s"), shutdown_timeout=3),))
    async with open_supervisor(spec) as sup:
        events = sup.subscribe()
    assert trio.current_time() == pytest.approx(3.0)
    assert probe.live == set()
    exits = [e.reason for e in drain(events) if e.kind is SupervisionEventKind.EXITED]
    assert exits == ["killed (shutdown timeout)"]


async def test_zero_shutdown_timeout_is_a_brutal_kill_without_a_stop_request(
    autojump_clock: trio.testing.MockClock,
) -> None:
    saw_stop_request = []

    async def worker(mailbox: Mailbox, *, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()
        try:
            await trio.sleep_forever()
        finally:
            saw_stop_request.append(mailbox.stop_requested.is_set())

    spec = SupervisorSpec("root", (ChildSpec("w", worker, shutdown_timeout=0),))
    async with open_supervisor(spec):
        pass
    assert trio.current_time() == 0.0
    assert saw_stop_request == [False]


async def test_stop_requested_is_set_for_actors_that_do_not_read_their_mailbox(
    autojump_clock: trio.testing.MockClock,
) -> None:
    stopped_cleanly = []

    async def poller(mailbox: Mailbox, *, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()
        while not mailbox.stop_requested.is_set():
            with trio.move_on_after(1.0):
                await mailbox.stop_requested.wait()
        stopped_cleanly.append(trio.current_time())

    spec = SupervisorSpec("root", (ChildSpec("p", poller),))
    async with open_supervisor(spec):
        await trio.sleep(2.5)
    assert stopped_cleanly == [2.5]


async def test_exceptions_from_children_never_escape_the_tree(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    spec = SupervisorSpec(
        "root",
        (ChildSpec("a", probe.echo("a")), ChildSpec("b", probe.echo("b"), Restart.TEMPORARY)),
    )
    async with open_supervisor(spec) as sup:
        events = sup.subscribe()
        await sup.address("a").cast("crash")
        await sup.address("b").cast("crash")
        await settle()
    exited = kinds(drain(events), SupervisionEventKind.EXITED)
    assert ("root", "a") in exited and ("root", "b") in exited
