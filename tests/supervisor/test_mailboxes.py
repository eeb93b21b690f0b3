"""Mailboxes and addresses: owned by the tree, kept across restarts, cast and call."""

from __future__ import annotations

import pytest
import trio
import trio.lowlevel
import trio.testing

from ibkr_connector.supervisor import (
    ActorCrashed,
    ActorNotRunning,
    Address,
    CallTimeout,
    ChildSpec,
    Envelope,
    Mailbox,
    MailboxFull,
    Registry,
    Restart,
    SupervisorSpec,
    open_supervisor,
)

from .helpers import Boom, Probe


def one(probe: Probe, name: str = "a", **options: object) -> SupervisorSpec:
    work = options.pop("work", 0.0)
    assert isinstance(work, float)
    return SupervisorSpec("root", (ChildSpec(name, probe.echo(name, work=work),
                                             **options),))  # type: ignore[arg-type]


async def test_call_returns_the_reply(autojump_clock: trio.testing.MockClock) -> None:
    async with open_supervisor(one(Probe())) as sup:
        assert await sup.address("a").call("ping") == "ping"


async def test_call_raises_what_the_actor_failed_it_with(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def refuser(mailbox: Mailbox, *, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()
        async for envelope in mailbox:
            envelope.fail(KeyError(envelope.message))

    async with open_supervisor(SupervisorSpec("root", (ChildSpec("r", refuser),))) as sup:
        with pytest.raises(KeyError):
            await sup.address("r").call("missing")


async def test_call_times_out_when_the_actor_does_not_answer(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_supervisor(one(Probe())) as sup:
        with pytest.raises(CallTimeout):
            await sup.address("a").call("hang", timeout=2.0)
        assert trio.current_time() == pytest.approx(2.0)


async def test_a_caller_whose_request_was_in_hand_gets_actor_crashed_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    async with open_supervisor(one(probe)) as sup:
        async def crash_soon() -> None:
            await trio.sleep(1.0)
            probe.crash("a")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(crash_soon)
            with pytest.raises(ActorCrashed) as caught:
                await sup.address("a").call("hang", timeout=60.0)
        assert trio.current_time() == pytest.approx(1.0)
        assert caught.value.name == "a"
        assert "Boom" in caught.value.error


async def test_queued_calls_wait_for_the_next_incarnation_after_a_crash(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    async with open_supervisor(one(probe, work=1.0)) as sup:
        address = sup.address("a")
        results: list[object] = []

        async def caller(message: str) -> None:
            results.append(await address.call(message, timeout=10))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(caller, "first")
            await trio.sleep(0.5)  # "first" is in hand
            await address.cast("crash")  # queued behind it; crashes after "first"
            nursery.start_soon(caller, "after the crash")
        assert results == ["first", "after the crash"]
        assert probe.starts["a"] == 2


async def test_queued_messages_survive_a_restart(autojump_clock: trio.testing.MockClock) -> None:
    probe = Probe()
    async with open_supervisor(one(probe, work=1.0)) as sup:
        address = sup.address("a")
        for n in range(5):
            await address.cast(n)
        await trio.sleep(1.5)  # 0 done, 1 in hand
        probe.crash("a")
        await trio.sleep(10)
    assert probe.received["a"] == [0, 1, 2, 3, 4]
    assert probe.starts["a"] == 2


async def test_addresses_are_valid_before_the_child_starts(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    registry = Registry()
    b = registry.address("b")

    async def a(mailbox: Mailbox, *, task_status: trio.TaskStatus[None]) -> None:
        await b.cast("hello from a, before b started")
        task_status.started()
        await trio.sleep_forever()

    spec = SupervisorSpec("root", (ChildSpec("a", a), ChildSpec("b", probe.echo("b"))))
    async with open_supervisor(spec, registry=registry) as sup:
        assert sup.address("b") is b
        await trio.sleep(0.01)
    assert probe.received["b"] == ["hello from a, before b started"]


async def test_an_address_is_stable_hashable_and_named(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    async with open_supervisor(one(probe)) as sup:
        before = sup.address("a")
        probe.crash("a")
        await trio.sleep(0.01)
        after = sup.address("a")
        assert before is after and before == after
        assert {before: 1}[after] == 1
        assert before.name == "a"
        assert await before.call("still works") == "still works"


async def test_mailbox_iteration_ends_on_a_stop_and_leaves_messages_queued(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    async with open_supervisor(one(probe, work=1.0)) as sup:
        address = sup.address("a")
        for n in range(4):
            await address.cast(n)
        await trio.sleep(0.5)
        await sup.terminate_child("a")  # graceful: "0" finishes, the rest stays queued
        assert trio.current_time() == pytest.approx(1.0)
        assert sup.which_children()[0].mailbox_depth == 3
        await sup.start_child("a")
        await trio.sleep(3.5)
    assert probe.received["a"] == [0, 1, 2, 3]


async def test_cast_nowait_raises_mailbox_full_at_capacity(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_supervisor(one(Probe(), mailbox_capacity=2, work=1.0)) as sup:
        address = sup.address("a")
        await address.cast(1)
        await trio.sleep(0.1)  # 1 is in hand, the mailbox is empty
        address.cast_nowait(2)
        address.cast_nowait(3)
        with pytest.raises(MailboxFull):
            address.cast_nowait(4)


async def test_cast_waits_for_room_when_the_mailbox_is_full(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_supervisor(one(Probe(), mailbox_capacity=1, work=1.0)) as sup:
        address = sup.address("a")
        await address.cast(1)  # taken at once, in hand for 1 s
        await trio.lowlevel.checkpoint()
        await address.cast(2)  # fills the mailbox
        await address.cast(3)  # waits until 1 is done and 2 is taken
        assert trio.current_time() == pytest.approx(1.0)


async def test_calls_and_casts_to_a_terminated_child_fail_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_supervisor(one(Probe(), mailbox_capacity=1, work=5.0)) as sup:
        address = sup.address("a")
        await address.cast("busy")
        await trio.lowlevel.checkpoint()
        await address.cast("fills the mailbox")
        errors: list[BaseException] = []

        async def blocked(action: str) -> None:
            try:
                if action == "cast":
                    await address.cast("blocked")
                else:
                    await address.call("queued", timeout=60)
            except ActorNotRunning as exc:
                errors.append(exc)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(blocked, "cast")
            nursery.start_soon(blocked, "call")
            await trio.sleep(0.1)
            await sup.terminate_child("a")
        assert len(errors) == 2
        assert trio.current_time() == pytest.approx(5.0)  # the stop waited for "busy" only
        with pytest.raises(ActorNotRunning):
            await address.call("now")
        with pytest.raises(ActorNotRunning):
            address.cast_nowait("now")


async def test_a_temporary_child_that_is_gone_refuses_calls(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_supervisor(one(Probe(), restart=Restart.TEMPORARY)) as sup:
        await sup.address("a").cast("return")
        await trio.sleep(0.01)
        with pytest.raises(ActorNotRunning):
            await sup.address("a").call("anyone?")


async def test_a_taken_request_unanswered_at_a_clean_exit_fails_not_running(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def forgetful(mailbox: Mailbox, *, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()
        await mailbox.receive()  # takes the request, then returns without answering

    spec = SupervisorSpec("root", (ChildSpec("f", forgetful, Restart.TRANSIENT),))
    async with open_supervisor(spec) as sup:
        with pytest.raises(ActorNotRunning):
            await sup.address("f").call("question", timeout=60)
        assert trio.current_time() == 0.0


async def test_a_call_whose_caller_gave_up_is_skipped_by_the_actor(
    autojump_clock: trio.testing.MockClock,
) -> None:
    probe = Probe()
    async with open_supervisor(one(probe, work=2.0)) as sup:
        address = sup.address("a")
        await address.cast("slow")
        with pytest.raises(CallTimeout):
            await address.call("stale", timeout=1.0)
        assert await address.call("fresh") == "fresh"
    assert probe.received["a"] == ["slow", "fresh"]


async def test_messages_to_a_name_not_in_the_tree_are_refused(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_supervisor(one(Probe())) as sup:
        with pytest.raises(ActorNotRunning):
            await sup.address("nobody").cast("hello")


async def test_mailboxes_refuse_messages_after_the_tree_ended(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_supervisor(one(Probe())) as sup:
        address = sup.address("a")
    with pytest.raises(ActorNotRunning):
        await address.cast("too late")


async def test_answering_a_call_twice_is_a_bug(autojump_clock: trio.testing.MockClock) -> None:
    problems: list[BaseException] = []

    async def double(mailbox: Mailbox, *, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()
        async for envelope in mailbox:
            envelope.reply(1)
            try:
                envelope.reply(2)
            except RuntimeError as exc:
                problems.append(exc)

    async with open_supervisor(SupervisorSpec("root", (ChildSpec("d", double),))) as sup:
        assert await sup.address("d").call("x") == 1
        await trio.sleep(0.01)
    assert len(problems) == 1


def test_replying_to_a_cast_is_a_no_op() -> None:
    envelope = Envelope("just a cast")
    assert not envelope.is_call
    envelope.reply("ignored")
    envelope.fail(Boom())


def test_registry_hands_out_one_address_per_name() -> None:
    registry = Registry()
    assert registry.address("x") is registry.address("x")
    assert isinstance(registry.address("y"), Address)
    assert registry.names() == ["x", "y"]
    with pytest.raises(ValueError):
        registry.address("")


async def test_one_registry_cannot_serve_two_running_trees_with_one_name(
    autojump_clock: trio.testing.MockClock,
) -> None:
    registry = Registry()
    async with open_supervisor(one(Probe()), registry=registry):
        with pytest.raises(ValueError, match="another running tree"):
            async with open_supervisor(
                SupervisorSpec("root2", (ChildSpec("a", Probe().echo("a")),)), registry=registry
            ):
                pass


async def test_when_settled_runs_its_callback_when_the_caller_gives_up(
    autojump_clock: trio.testing.MockClock,
) -> None:
    settled_at: list[float] = []

    async def holder(mailbox: Mailbox, *, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()
        async for envelope in mailbox:
            settled = trio.Event()
            envelope.when_settled(settled.set)  # nobody answers: only the caller can settle it
            await settled.wait()
            settled_at.append(trio.current_time())
            assert envelope.abandoned

    async with open_supervisor(SupervisorSpec("root", (ChildSpec("h", holder),))) as sup:
        with pytest.raises(CallTimeout):
            await sup.address("h").call("work", timeout=3.0)
        await trio.testing.wait_all_tasks_blocked()
    assert settled_at == [pytest.approx(3.0)]


async def test_when_settled_runs_at_once_for_a_cast_and_after_an_answer() -> None:
    calls: list[str] = []

    async def answerer(mailbox: Mailbox, *, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()
        async for envelope in mailbox:
            envelope.when_settled(lambda m=envelope.message: calls.append(f"settled {m}"))
            calls.append(f"answering {envelope.message}")
            envelope.reply("ok")
            envelope.when_settled(lambda: calls.append("late"))  # already settled: at once

    async with open_supervisor(SupervisorSpec("root", (ChildSpec("a", answerer),))) as sup:
        await sup.address("a").cast("cast")
        assert await sup.address("a").call("call") == "ok"
    assert calls == ["settled cast", "answering cast", "late",
                     "answering call", "settled call", "late"]


async def test_a_pending_call_is_answered_through_result() -> None:
    async with open_supervisor(SupervisorSpec("root", (ChildSpec("e", Probe().echo("e")),))
                               ) as sup:
        pending = await sup.address("e").send_call("hello")
        seen: list[str] = []
        pending.when_settled(lambda: seen.append("settled"))
        assert await pending.result(timeout=5.0) == "hello"
        assert seen == ["settled"]


async def test_a_pending_call_times_out_and_is_abandoned_like_a_call(
    autojump_clock: trio.testing.MockClock,
) -> None:
    abandoned: list[tuple[object, bool]] = []

    async def holder(mailbox: Mailbox, *, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()
        async for envelope in mailbox:
            settled = trio.Event()
            envelope.when_settled(settled.set)
            await settled.wait()
            abandoned.append((envelope.message, envelope.abandoned))

    async with open_supervisor(SupervisorSpec("root", (ChildSpec("h", holder),))) as sup:
        pending = await sup.address("h").send_call("work")
        with pytest.raises(CallTimeout):
            await pending.result(timeout=2.0)
        await trio.testing.wait_all_tasks_blocked()
        pending = await sup.address("h").send_call("more")
        pending.abandon()  # taken or not yet, the actor must not see a caller waiting
        await sup.address("h").cast("last")
        await trio.testing.wait_all_tasks_blocked()
    assert abandoned[0] == ("work", True) and abandoned[-1] == ("last", False)
    assert all(gone for message, gone in abandoned if message == "more")


async def test_a_pending_call_to_a_crashed_actor_fails_with_actor_crashed() -> None:
    async def crasher(mailbox: Mailbox, *, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()
        async for _envelope in mailbox:
            raise Boom("handler bug")

    spec = SupervisorSpec("root", (ChildSpec("c", crasher, restart=Restart.TEMPORARY),))
    async with open_supervisor(spec) as sup:
        pending = await sup.address("c").send_call("work")
        with pytest.raises(ActorCrashed):
            await pending.result(timeout=5.0)


async def test_a_cancelled_send_call_sends_nothing() -> None:
    received: list[object] = []

    async def recorder(mailbox: Mailbox, *, task_status: trio.TaskStatus[None]) -> None:
        task_status.started()
        async for envelope in mailbox:
            received.append(envelope.message)

    async with open_supervisor(SupervisorSpec("root", (ChildSpec("r", recorder),))) as sup:
        with trio.CancelScope() as scope:
            scope.cancel()
            await sup.address("r").send_call("never")
        await sup.address("r").cast("after")
        await trio.testing.wait_all_tasks_blocked()
    assert received == ["after"]
