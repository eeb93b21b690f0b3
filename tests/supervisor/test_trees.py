"""Trees: supervisors as children, nested restarts, dynamic children at run time."""

from __future__ import annotations

import pytest
import trio
import trio.lowlevel
import trio.testing

from ibkr_connector.supervisor import (
    ActorCrashed,
    ActorNotRunning,
    ChildAlreadyPresent,
    ChildSpec,
    ChildState,
    Restart,
    Strategy,
    SupervisorSpec,
    UnknownChild,
    open_supervisor,
)

from .helpers import Probe


def nested(probe: Probe) -> SupervisorSpec:
    return SupervisorSpec(
        "root",
        (
            ChildSpec("conn", probe.echo("conn")),
            SupervisorSpec(
                "data",
                (ChildSpec("chains", probe.echo("chains")),
                 ChildSpec("ticks", probe.echo("ticks"))),
                strategy=Strategy.REST_FOR_ONE,
            ),
        ),
        strategy=Strategy.REST_FOR_ONE,
    )


async def test_a_nested_tree_starts_depth_first_in_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    async with open_supervisor(nested(probe)) as sup:
        assert probe.log == ["start conn", "start chains", "start ticks"]
        tree = sup.tree()
        assert tree.name == "root" and tree.kind == "supervisor"
        assert [c.name for c in tree.children] == ["conn", "data"]
        assert [c.name for c in tree.children[1].children] == ["chains", "ticks"]
        assert all(c.state is ChildState.RUNNING for c in sup.which_children("data"))


async def test_restarting_a_subtree_restarts_its_children_and_keeps_their_mailboxes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    async with open_supervisor(nested(probe)) as sup:
        probe.crash("conn")  # rest_for_one at the root: conn, then the whole data subtree
        await trio.lowlevel.checkpoint()
        await sup.address("ticks").cast("queued while data restarts")
        await trio.sleep(0.01)
        assert probe.starts == {"conn": 2, "chains": 2, "ticks": 2}
        assert probe.received["ticks"] == ["queued while data restarts"]
        assert [c.restarts for c in sup.which_children("data")] == [1, 1]


async def test_a_supervisor_child_is_stopped_gracefully_in_reverse_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    async with open_supervisor(nested(probe)) as sup:
        probe.log.clear()
        await sup.terminate_child("data")
        assert probe.log == ["stop ticks", "stop chains"]
        assert [c.state for c in sup.which_children("data")] == [ChildState.STOPPED] * 2
        with pytest.raises(ActorNotRunning):
            await sup.address("ticks").call("anyone?")
        await sup.start_child("data")
        assert await sup.address("ticks").call("back") == "back"


async def test_dynamic_children_can_be_added_under_any_supervisor(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    async with open_supervisor(nested(probe)) as sup:
        await sup.start_child(ChildSpec("greeks", probe.echo("greeks")), under="data")
        await sup.start_child(SupervisorSpec("orders", (ChildSpec("book", probe.echo("book")),)))
        assert [c.name for c in sup.which_children("data")] == ["chains", "ticks", "greeks"]
        assert [c.name for c in sup.which_children()] == ["conn", "data", "orders"]
        assert await sup.address("greeks").call("hi") == "hi"
        assert await sup.address("book").call("hi") == "hi"
        probe.crash("ticks")  # rest_for_one in data: ticks and the later greeks restart
        await trio.sleep(0.01)
        assert (probe.starts["chains"], probe.starts["ticks"], probe.starts["greeks"]) == (
            1, 2, 2)


async def test_dynamic_children_can_be_terminated_and_deleted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    async with open_supervisor(nested(probe)) as sup:
        await sup.start_child(ChildSpec("extra", probe.echo("extra")), under="data")
        await sup.terminate_child("extra")
        assert sup.which_children("data")[-1].state is ChildState.STOPPED
        await sup.delete_child("extra")
        assert [c.name for c in sup.which_children("data")] == ["chains", "ticks"]
        with pytest.raises(UnknownChild):
            await sup.restart_child("extra")
        await sup.start_child(ChildSpec("extra", probe.echo("extra")))  # the name is free
        assert await sup.address("extra").call("again") == "again"


async def test_a_dynamic_child_needs_a_unique_name(autojump_clock: trio.testing.MockClock) -> None:
    probe = Probe()
    async with open_supervisor(nested(probe)) as sup:
        with pytest.raises(ChildAlreadyPresent, match="not unique") as caught:
            await sup.start_child(ChildSpec("ticks", probe.echo("ticks")))
        assert (caught.value.name, caught.value.state) == ("ticks", "running")
        assert isinstance(caught.value, ValueError)  # still what it was before
        await sup.terminate_child("ticks")
        with pytest.raises(ChildAlreadyPresent, match="already present \\(stopped\\)"):
            await sup.start_child(ChildSpec("ticks", probe.echo("ticks")))
        assert probe.starts["ticks"] == 1  # the existing child was left alone


def test_static_names_must_be_unique_in_the_whole_tree() -> None:
    probe = Probe()
    sub = SupervisorSpec("sub", (ChildSpec("x", probe.echo("x")),))
    with pytest.raises(ValueError, match="'x' is not unique"):  # refused when described
        SupervisorSpec("root", (ChildSpec("x", probe.echo("x")), sub))


async def test_a_dynamic_child_that_fails_to_start_is_reported_and_removed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    async with open_supervisor(nested(probe)) as sup:
        with pytest.raises(ActorCrashed, match="cannot start"):
            await sup.start_child(ChildSpec("bad", probe.failing_start("bad")))
        assert probe.starts["bad"] == 1  # an operator's start is not retried
        assert "bad" not in [c.name for c in sup.which_children()]


async def test_a_temporary_dynamic_child_runs_once(autojump_clock: trio.testing.MockClock) -> None:
    probe = Probe()
    async with open_supervisor(nested(probe)) as sup:
        await sup.start_child(ChildSpec("job", probe.echo("job"), Restart.TEMPORARY))
        await sup.address("job").cast("return")
        await trio.sleep(0.01)
        assert sup.which_children()[-1].state is ChildState.STOPPED
        assert probe.starts["job"] == 1
