"""The gen_server loop: handlers by message type; reply, no-reply, stop; bugs crash."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from ibkr_connector.supervisor import (
    NOREPLY,
    ActorCrashed,
    ActorNotRunning,
    ChildSpec,
    Envelope,
    Mailbox,
    Restart,
    Stop,
    SupervisorSpec,
    open_supervisor,
    serve,
)


class Refused(Exception):
    pass


class Add(int):
    pass


class Later(int):
    pass


class Bug:
    pass


class Halt:
    pass


def counter(starts: list[int]) -> ChildSpec:
    async def start(mailbox: Mailbox, *, task_status: trio.TaskStatus[None]) -> None:
        starts.append(1)
        total = 0
        held: list[Envelope] = []

        async def add(message: Add, envelope: Envelope) -> object:
            nonlocal total
            if message < 0:
                raise Refused("negative")
            total += message
            for waiting in held:
                waiting.reply(total)
            held.clear()
            return total

        async def later(message: Later, envelope: Envelope) -> object:
            held.append(envelope)
            return NOREPLY

        async def bug(message: Bug, envelope: Envelope) -> object:
            return {}["missing"]

        async def halt(message: Halt, envelope: Envelope) -> object:
            return Stop(reply="bye")

        task_status.started()
        await serve(mailbox, {int: add, Later: later, Bug: bug, Halt: halt},
                    expected=(Refused,))

    return ChildSpec("counter", start, restart=Restart.TRANSIENT)


async def test_a_handler_value_is_the_reply(autojump_clock: trio.testing.MockClock) -> None:
    async with open_supervisor(SupervisorSpec("root", (counter([]),))) as sup:
        assert await sup.address("counter").call(Add(2)) == 2
        # Found along the MRO: Add is an int subclass registered as int.
        assert await sup.address("counter").call(Add(3)) == 5


async def test_noreply_leaves_the_answer_to_the_actor(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_supervisor(SupervisorSpec("root", (counter([]),))) as sup:
        address = sup.address("counter")
        results: list[object] = []
        async with trio.open_nursery() as nursery:

            async def wait_for_total() -> None:
                results.append(await address.call(Later(0)))

            nursery.start_soon(wait_for_total)
            await trio.testing.wait_all_tasks_blocked()
            assert results == []
            await address.call(Add(7))
        assert results == [7]


async def test_an_expected_error_fails_the_call_and_the_actor_lives(
    autojump_clock: trio.testing.MockClock,
) -> None:
    starts: list[int] = []
    async with open_supervisor(SupervisorSpec("root", (counter(starts),))) as sup:
        with pytest.raises(Refused):
            await sup.address("counter").call(Add(-1))
        assert await sup.address("counter").call(Add(1)) == 1
    assert len(starts) == 1


async def test_a_bug_in_a_handler_crashes_the_actor(
    autojump_clock: trio.testing.MockClock,
) -> None:
    starts: list[int] = []
    async with open_supervisor(SupervisorSpec("root", (counter(starts),))) as sup:
        await sup.address("counter").call(Add(4))
        with pytest.raises(ActorCrashed):
            await sup.address("counter").call(Bug())
        # Restarted fresh: the state went with the crashed incarnation.
        assert await sup.address("counter").call(Add(1)) == 1
    assert len(starts) == 2


async def test_an_unknown_message_fails_the_sender_not_the_actor(
    autojump_clock: trio.testing.MockClock,
) -> None:
    starts: list[int] = []
    async with open_supervisor(SupervisorSpec("root", (counter(starts),))) as sup:
        with pytest.raises(TypeError, match="no handler for str"):
            await sup.address("counter").call("what")
        await sup.address("counter").cast("nobody listens")
        assert await sup.address("counter").call(Add(1)) == 1
    assert len(starts) == 1


async def test_stop_replies_and_ends_the_actor_normally(
    autojump_clock: trio.testing.MockClock,
) -> None:
    starts: list[int] = []
    async with open_supervisor(SupervisorSpec("root", (counter(starts),))) as sup:
        assert await sup.address("counter").call(Halt()) == "bye"
        await trio.testing.wait_all_tasks_blocked()
        # Transient and exited normally: not restarted.
        with pytest.raises(ActorNotRunning):
            await sup.address("counter").call(Add(1))
    assert len(starts) == 1
