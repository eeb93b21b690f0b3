"""What the parts of a running tree say to each other, as types with no behaviour.

A supervisor node needs a few services of its tree (events, the name index, the map of
running nodes) and the public handle sends operator commands to a node. Both are
declared here, so ``_node`` depends on these protocols rather than on ``_tree``, and the
handle on the :class:`LiveSupervisor` protocol rather than on ``_node``: the modules
import one way, ``_child`` <- ``_interfaces`` <- ``_node`` <- ``_tree`` <- ``_supervisor``.
"""

from __future__ import annotations

from typing import Literal, Protocol

import attrs
import trio

from ._child import ChildRecord
from ._events import SupervisionEventKind
from ._spec import ChildSpec, SupervisorSpec

Operation = Literal["restart", "force_restart", "terminate", "start", "add", "delete"]


@attrs.define(eq=False)
class Command:
    """An operator request to the supervisor that owns ``target``, answered through
    ``done`` / ``error``; ``spec`` is the new child of an ``add``."""

    op: Operation
    target: ChildRecord | None
    spec: ChildSpec | SupervisorSpec | None = None
    done: trio.Event = attrs.field(factory=trio.Event)
    error: BaseException | None = None

    def finish(self, error: BaseException | None = None) -> None:
        self.error = error
        self.done.set()


class LiveSupervisor(Protocol):
    """A running supervisor as the tree and the handle see it (``_node.SupervisorNode``)."""

    @property
    def record(self) -> ChildRecord:
        """The record whose children it runs."""

    @property
    def accepting(self) -> bool:
        """Whether it takes operator commands (False once it is stopping)."""

    async def submit(self, command: Command) -> None:
        """Carry out ``command`` in order with its own restarts; raise its error."""


class TreeServices(Protocol):
    """What a running supervisor needs from its tree (``_tree.Tree`` provides it)."""

    def emit(
        self, kind: SupervisionEventKind, supervisor: str, child: str, reason: str
    ) -> None:
        """Publish one supervision event."""

    def mark_stopped(self, record: ChildRecord, reason: str) -> None:
        """``record`` and its subtree are STOPPED: close mailboxes, fail pending calls."""

    def adopt(
        self, spec: ChildSpec | SupervisorSpec, parent: ChildRecord | None
    ) -> ChildRecord:
        """Build (and validate) records for a new child under ``parent``."""

    def forget(self, record: ChildRecord) -> None:
        """Remove a deleted child and its subtree from the tree."""

    def attach(self, node: LiveSupervisor) -> None:
        """``node`` now runs its record's children and takes its operator commands."""

    def detach(self, node: LiveSupervisor) -> None:
        """``node`` has ended (a no-op if another node runs that record by now)."""
