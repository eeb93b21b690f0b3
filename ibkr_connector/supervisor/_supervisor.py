"""The public entry point: ``open_supervisor`` and the operator's ``Supervisor`` handle.

``open_supervisor`` runs a tree for the duration of an ``async with`` block: it returns
once every child reported started, and leaving the block stops the tree gracefully in
reverse start order. The handle inspects the tree and sends operator commands to the
supervisor that owns the named child; names are unique in the whole tree.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from ._child import ChildRecord, Incarnation
from ._errors import ActorNotRunning
from ._events import ChildCounts, ChildInfo, ChildState, SupervisionEvent
from ._interfaces import Command, LiveSupervisor, Operation
from ._mailbox import Address, Registry
from ._spec import ChildSpec, SupervisorSpec
from ._tree import Tree


class Supervisor:
    """Handle on a running tree: inspection, operator commands, supervision events.

    Operations that change the tree are carried out by the control loop of the
    supervisor that owns the child, in order with that supervisor's own restarts; they
    return when done and run to completion even if the caller is cancelled.
    """

    def __init__(self, tree: Tree) -> None:
        self._tree = tree
        self.registry: Registry = tree.registry

    @property
    def name(self) -> str:
        return self._tree.root.name

    @property
    def dropped_events(self) -> int:
        """Events discarded from full subscriber channels (oldest first), in total."""
        return self._tree.bus.dropped

    def address(self, name: str) -> Address:
        """The address of a child's mailbox (get-or-create, like ``Registry.address``)."""
        return self.registry.address(name)

    def which_children(self, supervisor: str | None = None) -> list[ChildInfo]:
        """Snapshots of the direct children of ``supervisor`` (default: the root)."""
        record = self._supervisor_record(supervisor)
        now = trio.current_time()
        return [child.info(now) for child in record.children]

    def count_children(self, supervisor: str | None = None) -> ChildCounts:
        """OTP's ``count_children`` for the direct children of ``supervisor`` (default: root)."""
        children = self._supervisor_record(supervisor).children
        supervisors = sum(1 for child in children if child.kind == "supervisor")
        return ChildCounts(
            specs=len(children),
            active=sum(1 for child in children if child.state is ChildState.RUNNING),
            supervisors=supervisors,
            workers=len(children) - supervisors,
        )

    def get_childspec(self, name: str) -> ChildSpec | SupervisorSpec:
        """The spec of the child ``name`` (OTP's ``get_childspec``); ``UnknownChild`` if none.

        For a supervisor, its ``children`` are those it has now (dynamic ones included),
        so the returned spec describes what a restart of it would start.
        """
        return self._tree.lookup(name).current_spec()

    def tree(self) -> ChildInfo:
        """A snapshot of the whole tree, the root supervisor first."""
        return self._tree.root.info(trio.current_time())

    async def restart_child(self, name: str) -> None:
        """Start a STOPPED child again (OTP's ``restart_child``).

        A child that is running, or waiting for a restart, raises ``ChildRunning`` (OTP's
        ``{error, running}`` / ``{error, restarting}``) and is left alone; to restart a
        running child use :meth:`force_restart_child`. A failed start raises
        ``ActorCrashed`` and leaves the child STOPPED. Not counted against restart
        intensity, and no strategy applies: it touches that one child.
        """
        await self._command("restart", name)

    async def force_restart_child(self, name: str) -> None:
        """Stop the child gracefully if it runs, and start it again now: an operator's restart.

        OTP has no single call for this; it is ``terminate_child`` then ``restart_child``,
        done here as one step so the mailbox never refuses messages in between (the child
        is RESTARTING, not STOPPED, while it stops: queued and new messages wait for the
        next incarnation). Works in any state: a STOPPED child is simply started, and a
        pending backoff is cut short. Not counted against restart intensity and no
        strategy applies. A failed start raises ``ActorCrashed`` and leaves it STOPPED.
        """
        await self._command("force_restart", name)

    async def terminate_child(self, name: str) -> None:
        """Stop the child gracefully for good: it stays in the tree as STOPPED.

        Its mailbox keeps queued messages but refuses new ones (``ActorNotRunning``);
        pending calls fail at once. Only ``restart_child`` (or ``start_child(name)``,
        ``force_restart_child``) brings it back; restarts of its siblings or of its
        supervisor leave it stopped. Terminating a stopped child does nothing (as in OTP).
        """
        await self._command("terminate", name)

    async def start_child(
        self, spec_or_name: ChildSpec | SupervisorSpec | str, *, under: str | None = None
    ) -> None:
        """Add and start a new child from a spec, or start a STOPPED child by name.

        A new child is appended to the supervisor ``under`` (default: the root). A name
        already in the tree raises ``ChildAlreadyPresent`` (OTP's ``already_present`` /
        ``already_started``) and the spec is discarded. If its first start fails it is
        removed again and ``ActorCrashed`` is raised (OTP's ``{error, Reason}``).
        By name it is :meth:`restart_child`: a child that is not STOPPED raises
        ``ChildRunning``.
        """
        if isinstance(spec_or_name, str):
            await self._command("start", spec_or_name)
            return
        parent = self._supervisor_record(under)
        command = Command("add", None, spec_or_name)
        await self._node_of(parent).submit(command)

    async def delete_child(self, name: str) -> None:
        """Remove a STOPPED child (and its subtree) from the tree (OTP's ``delete_child``).

        A child that is not stopped raises ``ChildRunning``: ``terminate_child`` it
        first. Its name is free again; its address stays valid but refuses messages
        until a child of that name is added again.
        """
        await self._command("delete", name)

    def subscribe(self, capacity: int = 256) -> trio.MemoryReceiveChannel[SupervisionEvent]:
        """A channel of every supervision event from now on; ends when the tree ends.

        Never blocks the supervisor: when the channel is full the oldest queued event is
        discarded to make room, and counted in ``dropped_events``.
        """
        return self._tree.bus.subscribe(capacity)

    async def _command(self, op: Operation, name: str) -> None:
        record = self._tree.lookup(name)
        if record.parent is None:
            raise ValueError(
                f"{name!r} is the root supervisor, not a child: leave the "
                "open_supervisor block to stop it"
            )
        await self._node_of(record.parent).submit(Command(op, record))

    def _supervisor_record(self, name: str | None) -> ChildRecord:
        record = self._tree.root if name is None else self._tree.lookup(name)
        if record.kind != "supervisor":
            raise ValueError(f"{name!r} is a worker, not a supervisor")
        return record

    def _node_of(self, record: ChildRecord) -> LiveSupervisor:
        node = self._tree.node_of(record)
        if node is None or not node.accepting:
            raise ActorNotRunning(record.name, "this supervisor is not running")
        return node


@asynccontextmanager
async def open_supervisor(
    spec: SupervisorSpec, *, registry: Registry | None = None
) -> AsyncIterator[Supervisor]:
    """Run a supervision tree for the duration of the ``async with`` block.

    Children are started in order before the block is entered. Leaving the block (also
    by an exception or cancellation) stops every child gracefully in reverse order;
    that shutdown is shielded from the caller's cancellation and bounded by the
    children's shutdown timeouts. If the root supervisor escalates, the block is
    cancelled and ``SupervisorEscalation`` is raised out of the ``async with`` (also
    from the ``async with`` line itself if it happens while starting).

    Pass a ``registry`` made beforehand to let start closures capture addresses.
    """
    tree = Tree(spec, registry if registry is not None else Registry())
    handle = Supervisor(tree)
    inc = Incarnation(None)
    body_error: BaseException | None = None
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(tree.run_root, inc)
            await inc.settled.wait()
            if inc.ready:
                tree.root.state = ChildState.RUNNING
                try:
                    with trio.CancelScope() as body_scope:
                        tree.body_scope = body_scope
                        yield handle
                except BaseException as exc:  # re-raised below, after the shutdown
                    body_error = exc
                finally:
                    tree.body_scope = None
                    with trio.CancelScope(shield=True):
                        inc.request_stop(final=True)
                        await inc.done.wait()
    finally:
        tree.close()
    if tree.escalation is not None:
        if body_error is not None:
            tree.escalation.__context__ = body_error
        raise tree.escalation
    if body_error is not None:
        raise body_error
    if not inc.ready:
        raise RuntimeError(f"supervisor {spec.name!r} ended before it started")
