"""Significant children and auto_shutdown (OTP 24+): a supervisor that ends with its job."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from ibkr_connector.supervisor import (
    AutoShutdown,
    ChildSpec,
    ChildState,
    Restart,
    Strategy,
    SupervisionEventKind,
    Supervisor,
    SupervisorSpec,
    check_childspecs,
    open_supervisor,
)

from .helpers import Probe, drain, kinds

K = SupervisionEventKind
ANY = AutoShutdown.ANY_SIGNIFICANT
ALL = AutoShutdown.ALL_SIGNIFICANT


def job(probe: Probe, name: str, restart: Restart = Restart.TRANSIENT) -> ChildSpec:
    return ChildSpec(name, probe.echo(name), restart, significant=True)


def batch(probe: Probe, mode: AutoShutdown, *jobs: ChildSpec,
          restart: Restart = Restart.TRANSIENT, root_restarts: int = 0) -> SupervisorSpec:
    """root ── batch(mode) ── helper (permanent), *jobs; and a bystander under root.

    The root allows no restart by default: a test passes only if none was counted."""
    children = (ChildSpec("helper", probe.echo("helper")), *jobs)
    return SupervisorSpec("root", (
        ChildSpec("bystander", probe.echo("bystander")),
        SupervisorSpec("batch", children, auto_shutdown=mode, restart=restart),
    ), max_restarts=root_restarts)


def state(sup: Supervisor, name: str) -> ChildState:
    info = sup.tree().find(name)
    assert info is not None
    return info.state


async def test_a_significant_transient_child_that_ends_normally_shuts_its_supervisor_down(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    async with open_supervisor(batch(probe, ANY, job(probe, "job"))) as sup:
        events = sup.subscribe()
        await sup.address("job").cast("return")
        await trio.sleep(1)
        history = drain(events)
        assert [state(sup, n) for n in ("batch", "helper", "job", "bystander")] == [
            ChildState.STOPPED, ChildState.STOPPED, ChildState.STOPPED, ChildState.RUNNING]
        exited = [e.reason for e in history if e.kind is K.EXITED and e.child == "batch"]
        assert exited == [
            "shutdown: auto_shutdown any_significant: significant child 'job' ended (normal)"]
        # OTP's `shutdown` is a normal exit: the transient batch is not restarted and the
        # root (max_restarts=0) did not escalate.
        assert ("root", "batch") not in kinds(history, K.RESTARTED)
        assert probe.log[-2:] == ["stop job", "stop helper"]


async def test_a_significant_transient_child_that_crashes_is_restarted_instead(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    async with open_supervisor(batch(probe, ANY, job(probe, "job"))) as sup:
        probe.crash("job")
        await trio.sleep(1)
        assert state(sup, "batch") is ChildState.RUNNING
        assert probe.starts["job"] == 2


async def test_a_significant_temporary_child_shuts_it_down_even_when_it_crashes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    spec = batch(probe, ANY, job(probe, "job", Restart.TEMPORARY))
    async with open_supervisor(spec) as sup:
        probe.crash("job")
        await trio.sleep(1)
        assert state(sup, "batch") is ChildState.STOPPED
        assert state(sup, "bystander") is ChildState.RUNNING


async def test_all_significant_waits_for_the_last_significant_child(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    async with open_supervisor(batch(probe, ALL, job(probe, "j1"), job(probe, "j2"))) as sup:
        await sup.address("j1").cast("return")
        await trio.sleep(1)
        assert state(sup, "batch") is ChildState.RUNNING
        assert (state(sup, "j1"), state(sup, "helper")) == (ChildState.STOPPED,
                                                            ChildState.RUNNING)
        await sup.address("j2").cast("return")
        await trio.sleep(1)
        assert state(sup, "batch") is ChildState.STOPPED


async def test_stops_made_by_the_supervisor_or_an_operator_never_trigger_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    spec = SupervisorSpec("root", (SupervisorSpec(
        "batch",
        (ChildSpec("helper", probe.echo("helper")), job(probe, "job", Restart.TEMPORARY)),
        strategy=Strategy.ONE_FOR_ALL, auto_shutdown=ANY, restart=Restart.TRANSIENT),))
    async with open_supervisor(spec) as sup:
        probe.crash("helper")  # one_for_all stops the temporary job for good
        await trio.sleep(1)
        assert (state(sup, "batch"), state(sup, "helper"), state(sup, "job")) == (
            ChildState.RUNNING, ChildState.RUNNING, ChildState.STOPPED)
        await sup.restart_child("job")
        await sup.terminate_child("job")
        assert state(sup, "batch") is ChildState.RUNNING


async def test_a_permanent_supervisor_that_shut_itself_down_is_restarted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    spec = batch(probe, ANY, job(probe, "job"), restart=Restart.PERMANENT, root_restarts=1)
    async with open_supervisor(spec) as sup:
        await sup.address("job").cast("return")
        await trio.sleep(1)
        assert state(sup, "batch") is ChildState.RUNNING
        assert (probe.starts["helper"], probe.starts["job"]) == (2, 2)


async def test_a_root_that_shuts_itself_down_ends_the_block_normally(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    spec = SupervisorSpec("root", (ChildSpec("helper", probe.echo("helper")),
                                   job(probe, "job")), auto_shutdown=ANY)
    reached_end = False
    async with open_supervisor(spec) as sup:
        await sup.address("job").cast("return")
        with trio.fail_after(3600):  # the tree, not this timeout, must end the block
            await trio.sleep_forever()
        reached_end = True  # never: the block is cancelled
    assert not reached_end
    assert probe.live == set()
    assert sup.tree().state is ChildState.STOPPED


def test_a_significant_child_must_be_transient_or_temporary() -> None:
    with pytest.raises(ValueError, match="transient or temporary"):
        ChildSpec("job", Probe().echo("job"), significant=True)
    with pytest.raises(ValueError, match="transient or temporary"):
        SupervisorSpec("sub", significant=True)


def test_significant_children_need_an_auto_shutdown() -> None:
    significant = job(Probe(), "job")
    with pytest.raises(ValueError, match="auto_shutdown is never"):
        SupervisorSpec("root", (significant,))
    with pytest.raises(ValueError, match="auto_shutdown is never"):
        check_childspecs([significant], AutoShutdown.NEVER)
    check_childspecs([significant])  # no supervisor named: OTP's `undefined`
    check_childspecs([significant], ALL)


async def test_a_dynamic_significant_child_is_refused_where_auto_shutdown_is_never(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    async with open_supervisor(batch(probe, ANY, job(probe, "job"))) as sup:
        with pytest.raises(ValueError, match="auto_shutdown is never"):
            await sup.start_child(job(probe, "late"))  # under the root: never
        assert sup.tree().find("late") is None
        await sup.start_child(job(probe, "late"), under="batch")
        assert state(sup, "late") is ChildState.RUNNING
