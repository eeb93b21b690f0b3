"""The state one running tree shares across its supervisors.

A :class:`Tree` owns the name index (names are unique in the whole tree), binds worker
names to mailboxes in the :class:`Registry`, publishes supervision events, and runs the
root supervisor. Supervisors (``_node``) call into it through the ``TreeServices``
protocol of ``_interfaces``; the public handle (``_supervisor``) reads from it. Everything here
is synchronous except ``run_root``.
"""

from __future__ import annotations

import logging

import trio

from ._child import ChildRecord, Incarnation, ReadyStatus, describe_error
from ._errors import ChildAlreadyPresent, SupervisorEscalation, UnknownChild
from ._events import ChildState, EventBus, SupervisionEvent, SupervisionEventKind
from ._interfaces import LiveSupervisor
from ._mailbox import Registry, _MailboxCore
from ._node import SupervisorNode
from ._spec import ChildSpec, SupervisorSpec

logger = logging.getLogger("ibkr_connector.supervisor")

# Event kinds worth a line at INFO; failures go to WARNING / ERROR. Reasons may quote an
# exception message, which could carry order details: above DEBUG only the type is logged.
_QUIET = {SupervisionEventKind.STARTED, SupervisionEventKind.RESTARTED}


class Tree:
    """Index, registry bindings, event bus and root of one running supervision tree."""

    def __init__(self, spec: SupervisorSpec, registry: Registry) -> None:
        self.registry = registry
        self.bus = EventBus()
        self.index: dict[str, ChildRecord] = {}
        self.escalation: SupervisorEscalation | None = None
        self.body_scope: trio.CancelScope | None = None
        # The running node of each supervisor record (none while it is not running).
        self.nodes: dict[ChildRecord, LiveSupervisor] = {}
        self.root = self.adopt(spec, None)

    # -- membership -------------------------------------------------------------------

    def adopt(
        self, spec: ChildSpec | SupervisorSpec, parent: ChildRecord | None
    ) -> ChildRecord:
        """Build records for ``spec`` (and its subtree) under ``parent``; bind mailboxes.

        Validates first, so a rejected spec changes nothing: a name already in the tree
        raises ``ChildAlreadyPresent``, a name twice in ``spec`` itself ``ValueError``.
        The caller appends the returned record to ``parent.children`` (the root has none).
        """
        names = spec.names() if isinstance(spec, SupervisorSpec) else [spec.name]
        seen: set[str] = set()
        for name in names:
            present = self.index.get(name)
            if present is not None:
                raise ChildAlreadyPresent(name, present.state.value)
            if name in seen:
                raise ValueError(f"child name {name!r} is not unique in the supervision tree")
            seen.add(name)
        for worker in _workers(spec):
            if worker.name in self.registry:
                owner = self.registry._core(worker.name).owner
                if owner is not None and owner is not self:
                    raise ValueError(f"name {worker.name!r} is bound to another running tree")
        return self._build(spec, parent)

    def _build(self, spec: ChildSpec | SupervisorSpec, parent: ChildRecord | None) -> ChildRecord:
        core: _MailboxCore | None = None
        if isinstance(spec, ChildSpec):
            core = self.registry._core(spec.name)
            core.bind(self, spec.mailbox_capacity)
        record = ChildRecord(spec, parent, core)
        self.index[spec.name] = record
        if isinstance(spec, SupervisorSpec):
            record.children = [self._build(c, record) for c in spec.children]
        return record

    def forget(self, record: ChildRecord) -> None:
        """Remove a deleted child and its subtree from the index; release its names."""
        for each in record.walk():
            self.index.pop(each.name, None)
            if each.core is not None:
                each.core.close("deleted from the supervision tree", unbind=True)

    def attach(self, node: LiveSupervisor) -> None:
        self.nodes[node.record] = node

    def detach(self, node: LiveSupervisor) -> None:
        if self.nodes.get(node.record) is node:
            del self.nodes[node.record]

    def node_of(self, record: ChildRecord) -> LiveSupervisor | None:
        """The running node of a supervisor record, if it runs."""
        return self.nodes.get(record)

    def lookup(self, name: str) -> ChildRecord:
        record = self.index.get(name)
        if record is None:
            raise UnknownChild(name)
        return record

    def mark_stopped(self, record: ChildRecord, reason: str) -> None:
        """``record`` and its subtree are STOPPED: close mailboxes, fail pending calls."""
        for each in record.walk():
            each.due_at = None
            if each.state is not ChildState.STOPPED:
                each.state = ChildState.STOPPED
                if each.parent is not None:
                    self.emit(SupervisionEventKind.TERMINATED, each.parent.name, each.name,
                              reason)
            if each.core is not None:
                each.core.close(reason)

    # -- events -----------------------------------------------------------------------

    def emit(
        self, kind: SupervisionEventKind, supervisor: str, child: str, reason: str
    ) -> None:
        event = SupervisionEvent(kind, supervisor, child, reason, trio.current_time())
        self.bus.publish(event)
        if kind is SupervisionEventKind.ESCALATED:
            logger.error("supervisor %r escalated: child %r failed too often", supervisor, child)
        elif kind is SupervisionEventKind.EXITED and ":" in reason:
            logger.warning("child %r of %r exited with %s", child, supervisor,
                           reason.split(":", 1)[0])
        elif kind not in _QUIET:
            logger.info("child %r of %r %s", child, supervisor, kind.value)
        logger.debug("supervision event %s %r/%r: %s", kind.value, supervisor, child, reason)

    # -- the root -----------------------------------------------------------------------

    async def run_root(self, inc: Incarnation) -> None:
        """Run the root supervisor until stopped or escalated (never raises escalation).

        An escalation is stored and the ``open_supervisor`` body is cancelled, so the
        error comes out of the ``async with`` rather than out of a nursery as a group.
        An auto_shutdown of the root cancels the body too, and the block ends normally.
        """
        root = self.root
        root.incarnation = inc
        root.launched = True
        try:
            await SupervisorNode(self, root).run(inc, task_status=ReadyStatus(inc))
        except SupervisorEscalation as exc:
            self.escalation = exc
            root.last_error = describe_error(exc)
            if self.body_scope is not None:
                self.body_scope.cancel()
        else:
            if inc.shutdown_note is not None and self.body_scope is not None:
                # auto_shutdown of the root: the tree is done, the block ends normally.
                logger.info("supervisor %r shut down: %s", root.name,
                            inc.shutdown_note.split(":", 1)[0])
                self.body_scope.cancel()
        finally:
            root.incarnation = None
            root.state = ChildState.STOPPED
            inc.settled.set()
            inc.done.set()

    def close(self) -> None:
        """The tree has ended: every mailbox refuses messages and is released."""
        for record in self.root.walk():
            record.state = ChildState.STOPPED
            record.due_at = None
            if record.core is not None:
                record.core.close("the supervision tree has ended", unbind=True)
        self.bus.close()


def _workers(spec: ChildSpec | SupervisorSpec) -> list[ChildSpec]:
    if isinstance(spec, ChildSpec):
        return [spec]
    found: list[ChildSpec] = []
    for child in spec.children:
        found.extend(_workers(child))
    return found
