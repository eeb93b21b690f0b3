"""What a tree reports about itself: child snapshots and the supervision event stream.

``ChildInfo`` and ``ChildCounts`` are point-in-time snapshots (``ChildInfo`` answers the
operator endpoint's ``tree`` command); ``SupervisionEvent`` is the history (tests and
operators subscribe). Publishing never blocks the supervisor: a subscriber that falls
behind loses its *oldest* events (the recent ones say what the tree looks like now) and
the loss is counted.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from typing import Literal

import attrs
import trio


class ChildState(enum.Enum):
    STARTING = "starting"  # first start pending or in progress
    RUNNING = "running"  # reported started and not exited
    RESTARTING = "restarting"  # waiting for (or in) a restart
    STOPPED = "stopped"  # not running and not going to be restarted on its own


class SupervisionEventKind(enum.Enum):
    STARTED = "started"  # an incarnation reported ready (first start or restart)
    EXITED = "exited"  # an incarnation ended; reason says how
    RESTARTED = "restarted"  # a restart was decided; reason says why and the delay
    TERMINATED = "terminated"  # the child is now STOPPED
    ESCALATED = "escalated"  # a supervisor exceeded its intensity and gave up


@attrs.frozen
class SupervisionEvent:
    kind: SupervisionEventKind
    supervisor: str  # the supervisor that owns ``child``
    child: str
    reason: str
    at: float  # trio.current_time()


@attrs.frozen
class ChildInfo:
    name: str
    kind: Literal["worker", "supervisor"]
    state: ChildState
    restarts: int  # incarnations started after the first
    last_error: str | None
    uptime: float | None  # seconds since the running incarnation reported started
    mailbox_depth: int
    children: tuple[ChildInfo, ...] = ()

    def walk(self) -> Iterator[ChildInfo]:
        """This node, then every node below it, depth first in start order."""
        yield self
        for child in self.children:
            yield from child.walk()

    def find(self, name: str) -> ChildInfo | None:
        """The node called *name* in this subtree (names are unique in a tree), if any."""
        return next((info for info in self.walk() if info.name == name), None)


@attrs.frozen
class ChildCounts:
    """OTP's ``count_children``: the direct children of one supervisor, by kind and liveness."""

    specs: int  # children in the list, running or not
    active: int  # children RUNNING now
    supervisors: int  # children that are supervisors, running or not
    workers: int  # children that are workers, running or not


class EventBus:
    """Fan-out of supervision events to subscribers; never blocks the publisher."""

    __slots__ = ("_subscribers", "dropped", "_closed")

    def __init__(self) -> None:
        self._subscribers: list[
            tuple[
                trio.MemorySendChannel[SupervisionEvent],
                trio.MemoryReceiveChannel[SupervisionEvent],
            ]
        ] = []
        self.dropped = 0  # events discarded from full subscribers, in total
        self._closed = False

    def subscribe(self, capacity: int) -> trio.MemoryReceiveChannel[SupervisionEvent]:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        send, recv = trio.open_memory_channel[SupervisionEvent](capacity)
        if self._closed:
            send.close()
        else:
            self._subscribers.append((send, recv))
        return recv

    def publish(self, event: SupervisionEvent) -> None:
        gone = []
        for pair in self._subscribers:
            send, recv = pair
            try:
                try:
                    send.send_nowait(event)
                except trio.WouldBlock:
                    # Full: drop the oldest (a full buffer means nobody waits in receive).
                    recv.receive_nowait()
                    self.dropped += 1
                    send.send_nowait(event)
            except (trio.BrokenResourceError, trio.ClosedResourceError, trio.WouldBlock):
                gone.append(pair)
        for pair in gone:
            pair[0].close()
            self._subscribers.remove(pair)

    def close(self) -> None:
        """End every subscription (their ``async for`` finishes) when the tree ends."""
        self._closed = True
        for send, _recv in self._subscribers:
            send.close()
        self._subscribers.clear()
