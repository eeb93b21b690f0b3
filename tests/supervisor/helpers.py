"""Test actors and a probe that records what they did, shared by the supervisor tests."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable

import trio

from ibkr_connector.supervisor import Mailbox, SupervisionEvent, SupervisionEventKind

StartFn = Callable[..., Awaitable[None]]


class Boom(Exception):
    """The failure our test actors inject."""


class Probe:
    """Records starts, stops and received messages of every test actor it builds.

    Message protocol of ``echo`` actors: "crash" raises Boom, "return" returns normally,
    "hang" never answers, anything else is answered with itself.
    """

    def __init__(self) -> None:
        self.log: list[str] = []
        self.live: set[str] = set()
        self.received: defaultdict[str, list[object]] = defaultdict(list)
        self.starts: defaultdict[str, int] = defaultdict(int)
        self.triggers: dict[str, trio.Event] = {}

    def starts_and_stops(self) -> list[str]:
        return list(self.log)

    def echo(self, name: str, *, work: float = 0.0, start_delay: float = 0.0) -> StartFn:
        async def start(
            mailbox: Mailbox, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
        ) -> None:
            self.starts[name] += 1
            self.live.add(name)
            self.log.append(f"start {name}")
            trigger = self.triggers[name] = trio.Event()
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_crash_on, trigger, name)
                    if start_delay:
                        await trio.sleep(start_delay)
                    task_status.started()
                    async for envelope in mailbox:
                        message = envelope.message
                        self.received[name].append(message)
                        if message == "crash":
                            raise Boom(name)
                        if message == "return":
                            break
                        if message == "hang":
                            await trio.sleep_forever()
                        if work:
                            await trio.sleep(work)
                        envelope.reply(message)
                    nursery.cancel_scope.cancel()
            finally:
                self.live.discard(name)
                self.log.append(f"stop {name}")

        return start

    def crash(self, name: str) -> None:
        """Make the running incarnation of ``name`` raise Boom (out of band)."""
        self.triggers[name].set()

    def failing_start(self, name: str, *, returns: bool = False) -> StartFn:
        """An actor that fails before reporting started (raises, or returns)."""

        async def start(
            mailbox: Mailbox, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
        ) -> None:
            self.starts[name] += 1
            self.log.append(f"failed {name}")
            if not returns:
                raise Boom(f"{name} cannot start")

        return start

    def stubborn(self, name: str) -> StartFn:
        """Ignores stop requests: only cancellation ends it."""

        async def start(
            mailbox: Mailbox, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
        ) -> None:
            self.starts[name] += 1
            self.live.add(name)
            self.log.append(f"start {name}")
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                self.live.discard(name)
                self.log.append(f"stop {name}")

        return start


async def _crash_on(trigger: trio.Event, name: str) -> None:
    await trigger.wait()
    raise Boom(f"{name} crashed")


def drain(events: trio.MemoryReceiveChannel[SupervisionEvent]) -> list[SupervisionEvent]:
    found = []
    while True:
        try:
            found.append(events.receive_nowait())
        except (trio.WouldBlock, trio.EndOfChannel):
            return found


def kinds(
    events: list[SupervisionEvent], kind: SupervisionEventKind
) -> list[tuple[str, str]]:
    return [(e.supervisor, e.child) for e in events if e.kind is kind]
