"""Mailboxes, addresses and the registry: how messages reach an actor across restarts.

The inbox of a child is a Trio memory channel held by a :class:`_MailboxCore` that the
*tree* owns (through the :class:`Registry`), never the child's task. An incarnation only
borrows it through a per-incarnation :class:`Mailbox` view, so a restart keeps every
queued message and every :class:`Address` stays valid. This is the hot path of the
runtime (market data flows through it): a cast is ``send_nowait`` plus a checkpoint, a
receive is one channel receive plus two attribute checks; calls add one set insertion.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any, Final

import attrs
import trio

from ._errors import ActorCrashed, ActorNotRunning, CallTimeout, MailboxFull


class _SlotState(enum.Enum):
    PENDING = 0
    ANSWERED = 1  # the actor replied or failed it
    SETTLED = 2  # the system failed it (crash, stop) or the caller stopped waiting


class _ReplySlot:
    """One-shot reply of a call: written once, read by the one waiting caller."""

    __slots__ = ("event", "value", "error", "state", "holder", "callbacks")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.value: object = None
        self.error: BaseException | None = None
        self.state = _SlotState.PENDING
        # The in-hand set of the incarnation that took the request (see Mailbox.receive).
        self.holder: set[_ReplySlot] | None = None
        self.callbacks: list[Callable[[], object]] | None = None

    def when_settled(self, callback: Callable[[], object]) -> None:
        if self.state is not _SlotState.PENDING:
            callback()
        elif self.callbacks is None:
            self.callbacks = [callback]
        else:
            self.callbacks.append(callback)

    def answer(self, value: object, error: BaseException | None) -> None:
        if self.state is not _SlotState.PENDING:
            if self.state is _SlotState.ANSWERED:
                raise RuntimeError("this request was already answered")
            return  # the caller gave up or the system failed it: nobody is listening
        self.state = _SlotState.ANSWERED
        self._settle(value, error)

    def settle(self, error: BaseException | None) -> None:
        """Fail (or abandon, with ``error=None``) the request on the system's behalf."""
        if self.state is _SlotState.PENDING:
            self.state = _SlotState.SETTLED
            self._settle(None, error)

    def _settle(self, value: object, error: BaseException | None) -> None:
        self.value = value
        self.error = error
        if self.holder is not None:
            self.holder.discard(self)
            self.holder = None
        self.event.set()
        callbacks, self.callbacks = self.callbacks, None
        for callback in callbacks or ():
            callback()


@attrs.frozen
class Envelope:
    """A message as the actor receives it; for a call, also the way to answer it.

    ``reply`` and ``fail`` are no-ops for casts and for calls whose caller stopped
    waiting; answering the same call twice is a bug and raises ``RuntimeError``.
    """

    message: object
    _slot: _ReplySlot | None = attrs.field(default=None, alias="slot", repr=False)

    @property
    def is_call(self) -> bool:
        return self._slot is not None

    @property
    def abandoned(self) -> bool:
        """True once nobody waits for the answer: the caller timed out or was cancelled,
        or the system failed the call (the actor crashed or was stopped while holding it).
        An actor that queues work beyond its own incarnation checks this before acting,
        so that a caller who was told "failed" is never surprised by the work happening.
        """
        return self._slot is not None and self._slot.state is _SlotState.SETTLED

    def when_settled(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` (synchronously, in the Trio thread) once the call is answered
        or abandoned (see `abandoned`); at once if it already is, or if this is a cast.
        Work done for a caller can stop as soon as the caller gives up, without polling
        and without a watcher task per call."""
        if self._slot is None:
            callback()
        else:
            self._slot.when_settled(callback)

    def reply(self, value: object = None) -> None:
        """Answer the call: the caller's ``call`` returns ``value``."""
        if self._slot is not None:
            self._slot.answer(value, None)

    def fail(self, exc: BaseException) -> None:
        """Answer the call with an error: the caller's ``call`` raises ``exc``."""
        if self._slot is not None:
            self._slot.answer(None, exc)


class _Wake:
    """Handed straight to a receiver blocked on an empty mailbox to end its wait."""


_WAKE: Final = _Wake()


class _MailboxCore:
    """The tree-owned part of a mailbox: the channel, its state and pending calls."""

    __slots__ = ("name", "capacity", "send", "recv", "open", "owner", "calls", "blocked",
                 "address", "closed_reason")

    def __init__(self, name: str) -> None:
        self.name = name
        self.capacity = 0
        self.send: trio.MemorySendChannel[Envelope | _Wake] | None = None
        self.recv: trio.MemoryReceiveChannel[Envelope | _Wake] | None = None
        self.open = False  # accepting casts and calls (bound and not stopped)
        self.owner: object | None = None  # the tree the name is bound to, if any
        self.calls: set[_ReplySlot] = set()  # every call not yet answered
        self.blocked: set[trio.CancelScope] = set()  # casts waiting for room
        self.address = Address(self)
        self.closed_reason = "no child of that name has been started in a running tree"

    def bind(self, owner: object, capacity: int) -> None:
        if self.owner is not None and self.owner is not owner:
            raise ValueError(f"name {self.name!r} is already bound to another running tree")
        self.owner = owner
        if self.send is None or capacity != self.capacity:
            self.send, self.recv = trio.open_memory_channel[Envelope | _Wake](capacity)
            self.capacity = capacity
        self.open = True

    def reopen(self) -> None:
        self.open = True

    def close(self, reason: str, *, unbind: bool = False) -> None:
        """Refuse new messages, fail every pending call and wake blocked senders.

        Queued messages stay (the child may be started again); calls among them are
        already failed, so the next incarnation skips them.
        """
        self.open = False
        self.closed_reason = reason
        if unbind:
            self.owner = None
        if self.calls:
            error = ActorNotRunning(self.name, reason)
            for slot in list(self.calls):
                slot.settle(error)
            self.calls.clear()
        for scope in self.blocked:
            scope.cancel()

    @property
    def depth(self) -> int:
        return 0 if self.recv is None else self.recv.statistics().current_buffer_used


class Address:
    """The send side of a child's mailbox: stable across restarts, hashable, cheap.

    One Address exists per name in a registry, so addresses compare by identity.
    """

    __slots__ = ("_core",)

    def __init__(self, core: _MailboxCore) -> None:
        self._core = core

    @property
    def name(self) -> str:
        return self._core.name

    def __repr__(self) -> str:
        return f"<Address {self._core.name!r}>"

    async def cast(self, message: object) -> None:
        """Send without waiting for a reply; waits for room when the mailbox is full.

        A checkpoint. Raises ``ActorNotRunning`` if the child is stopped (also when it is
        stopped while this cast waits for room). If cancelled, the message was not sent.
        """
        await self._send(Envelope(message))

    def cast_nowait(self, message: object) -> None:
        """Send without waiting at all: raises ``MailboxFull`` if there is no room."""
        core = self._core
        if not core.open or core.send is None:
            raise ActorNotRunning(core.name, core.closed_reason)
        try:
            core.send.send_nowait(Envelope(message))
        except trio.WouldBlock:
            raise MailboxFull(core.name, core.capacity) from None

    # A per-call timeout is the contract (OTP's gen_server:call/3); a missed reply is an
    # error of the actor, reported as CallTimeout, not a cancellation of the caller.
    async def call(self, message: object, *, timeout: float = 5.0) -> Any:  # noqa: ASYNC109
        """Send a request and wait for the actor's ``envelope.reply(value)``.

        Raises what the actor passed to ``envelope.fail``; ``CallTimeout`` if no answer
        came within ``timeout`` (time spent waiting for room counts); ``ActorCrashed`` at
        once if the incarnation that took the request crashed; ``ActorNotRunning`` at
        once if the child is or becomes stopped. If the caller is cancelled or times out
        before the actor took the request, the actor never sees it.
        """
        core = self._core
        slot = _ReplySlot()
        core.calls.add(slot)
        try:
            with trio.move_on_after(timeout):
                await self._send(Envelope(message, slot))
                await slot.event.wait()
            return _outcome(core, slot, timeout)
        finally:
            core.calls.discard(slot)
            slot.settle(None)

    async def send_call(self, message: object) -> PendingCall:
        """The first half of `call`: send the request and return its `PendingCall`, whose
        `PendingCall.result` is the second half. For a caller that must decide, between
        the two, whether it still waits (a placement whose caller may give up only until
        the order is claimed for the wire). A checkpoint; if cancelled, nothing was sent.
        Waiting for room is not bounded here (the mailbox's capacity is the bound)."""
        core = self._core
        slot = _ReplySlot()
        core.calls.add(slot)
        try:
            await self._send(Envelope(message, slot))
        except BaseException:
            core.calls.discard(slot)
            slot.settle(None)
            raise
        return PendingCall(core, slot)

    async def _send(self, envelope: Envelope) -> None:
        core = self._core
        await trio.lowlevel.checkpoint_if_cancelled()
        if not core.open or core.send is None:
            raise ActorNotRunning(core.name, core.closed_reason)
        try:
            core.send.send_nowait(envelope)
        except trio.WouldBlock:
            pass
        else:
            await trio.lowlevel.cancel_shielded_checkpoint()
            return
        # Slow path: wait for room, but let close() wake us (a stopped child never drains).
        scope = trio.CancelScope()
        core.blocked.add(scope)
        try:
            with scope:
                await core.send.send(envelope)
        finally:
            core.blocked.discard(scope)
        if scope.cancelled_caught:
            raise ActorNotRunning(core.name, core.closed_reason)


class PendingCall:
    """A call sent with `Address.send_call` whose answer is not collected yet."""

    __slots__ = ("_core", "_slot")

    def __init__(self, core: _MailboxCore, slot: _ReplySlot) -> None:
        self._core = core
        self._slot = slot

    def when_settled(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` once the call is answered, failed or abandoned (at once if
        it already is)."""
        self._slot.when_settled(callback)

    def abandon(self) -> None:
        """Stop waiting: the actor sees the call abandoned (``Envelope.abandoned``)."""
        self._core.calls.discard(self._slot)
        self._slot.settle(None)

    async def result(self, *, timeout: float) -> Any:  # noqa: ASYNC109 - as `Address.call`
        """Wait for the answer as `Address.call` does, with the same errors; the call is
        over afterwards (abandoned, if this was cancelled or timed out)."""
        slot = self._slot
        try:
            with trio.move_on_after(timeout):
                await slot.event.wait()
            return _outcome(self._core, slot, timeout)
        finally:
            self.abandon()


def _outcome(core: _MailboxCore, slot: _ReplySlot, timeout: float) -> Any:
    if slot.state is _SlotState.PENDING:
        raise CallTimeout(core.name, timeout)
    if slot.error is not None:
        raise slot.error
    return slot.value


class Mailbox:
    """The receive side one incarnation of an actor gets.

    ``async for envelope in mailbox`` ends when the supervisor asks the child to stop;
    ``receive()`` then raises ``trio.EndOfChannel``. Messages still queued stay for the
    next incarnation. Actors whose main loop does not read the mailbox watch
    ``stop_requested`` instead.
    """

    __slots__ = ("_core", "_recv", "_stop", "_in_hand")

    def __init__(self, core: _MailboxCore, stop: trio.Event) -> None:
        if core.recv is None:
            raise ValueError(f"mailbox {core.name!r} is not bound to a tree")
        self._core = core
        self._recv = core.recv
        self._stop = stop
        self._in_hand: set[_ReplySlot] = set()

    @property
    def name(self) -> str:
        return self._core.name

    @property
    def address(self) -> Address:
        """This actor's own address (to hand to others as a reply-to)."""
        return self._core.address

    @property
    def depth(self) -> int:
        """Messages queued and not yet received."""
        return self._core.depth

    @property
    def stop_requested(self) -> trio.Event:
        """Set when the supervisor asks this incarnation to stop gracefully."""
        return self._stop

    async def receive(self) -> Envelope:
        """The next message, in order. A checkpoint.

        Raises ``trio.EndOfChannel`` once a stop was requested (even with messages
        queued: they wait for the next incarnation). Calls whose caller already gave up
        are skipped.
        """
        recv = self._recv
        stop = self._stop
        while True:
            if stop.is_set():
                await trio.lowlevel.checkpoint()
                raise trio.EndOfChannel
            item = await recv.receive()
            if item is _WAKE:
                continue
            assert isinstance(item, Envelope)
            slot = item._slot
            if slot is None:
                return item
            if slot.state is not _SlotState.PENDING:
                continue
            slot.holder = self._in_hand
            self._in_hand.add(slot)
            return item

    def __aiter__(self) -> Mailbox:
        return self

    async def __anext__(self) -> Envelope:
        try:
            return await self.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None

    def _wake_receivers(self) -> None:
        """End the wait of every task blocked in ``receive`` (called on a stop request).

        A blocked receiver means the buffer is empty, so the wake-ups go straight to those
        tasks and never sit in the queue.
        """
        recv, send = self._core.recv, self._core.send
        if recv is None or send is None:
            return
        for _ in range(recv.statistics().tasks_waiting_receive):
            try:
                send.send_nowait(_WAKE)
            except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
                return

    def _release(self, name: str, crash: str | None, reason: str) -> None:
        """The incarnation ended: fail every request it took and never answered."""
        if not self._in_hand:
            return
        error: BaseException = (
            ActorCrashed(name, crash) if crash is not None else ActorNotRunning(name, reason)
        )
        for slot in list(self._in_hand):
            slot.settle(error)
        self._in_hand.clear()


class Registry:
    """Name -> mailbox for one tree; names are unique in the whole tree.

    ``address`` is get-or-create: an address is valid before its child ever starts, so a
    start closure can capture its siblings' addresses. Messages to a name the running
    tree does not (yet) have raise ``ActorNotRunning``; once the tree binds the name they
    queue until the child reads them.
    """

    __slots__ = ("_cores",)

    def __init__(self) -> None:
        self._cores: dict[str, _MailboxCore] = {}

    def address(self, name: str) -> Address:
        return self._core(name).address

    def names(self) -> list[str]:
        """Every name an address was ever handed out or bound for."""
        return list(self._cores)

    def __contains__(self, name: object) -> bool:
        return name in self._cores

    def _core(self, name: str) -> _MailboxCore:
        core = self._cores.get(name)
        if core is None:
            if not isinstance(name, str) or not name:
                raise ValueError(f"an actor name must be a non-empty string, got {name!r}")
            core = self._cores[name] = _MailboxCore(name)
        return core
