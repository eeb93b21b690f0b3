"""One child of a supervisor: its lasting record and the task of each incarnation.

A :class:`ChildRecord` lives as long as the child is in the tree (across restarts and
across restarts of its supervisor): state, counters, the mailbox core, and the current
:class:`Incarnation`, if any. :func:`run_incarnation` is the task body that wraps one
call of the start function: it turns every way the call can end into an outcome for
the supervisor, so a child's exception never escapes into the supervisor's nursery.

This module is the bottom of the tree's layers (``_child`` <- ``_node`` <- ``_tree`` <-
``_supervisor``): a record does not know the live supervisor that runs its children;
the tree maps records to running nodes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Literal

import attrs
import trio

from ._errors import FailedStart, SupervisorEscalation
from ._events import ChildInfo, ChildState
from ._mailbox import Mailbox, _MailboxCore
from ._policy import ExitKind
from ._spec import ChildSpec, SupervisorSpec


def describe_error(exc: BaseException) -> str:
    """``Type: message`` of an error; exception groups are described by their leaves.

    A child's failure usually arrives wrapped in the group of its own nursery; the
    operator wants the error inside, not "Exceptions from Trio nursery".
    """
    if isinstance(exc, BaseExceptionGroup):
        leaves = [describe_error(leaf) for leaf in exc.exceptions]
        return leaves[0] if len(leaves) == 1 else f"{len(leaves)} errors: " + "; ".join(leaves)
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def gave_up(child: ChildRecord, exc: BaseException) -> bool:
    """Whether ``exc`` is supervisor ``child`` giving up (OTP: it exits with ``shutdown``).

    Only the escalation a supervisor child raises about itself counts; a worker that
    raises ``SupervisorEscalation`` (say, from a tree it runs inside) has crashed.
    """
    return (
        isinstance(child.spec, SupervisorSpec)
        and isinstance(exc, SupervisorEscalation)
        and exc.supervisor == child.name
    )


class Incarnation:
    """One run of a child's start function, from launch to exit."""

    __slots__ = ("kill_scope", "stop_requested", "stop_final", "ready", "settled", "done",
                 "kind", "error", "started_at", "handled", "mailbox", "shutdown_note")

    def __init__(self, mailbox_core: _MailboxCore | None) -> None:
        # Made here, entered by the task: a kill before the task first runs still works.
        self.kill_scope = trio.CancelScope()
        self.stop_requested = trio.Event()
        self.stop_final = True  # for supervisors: stop for good (True) or for a restart
        self.ready = False
        self.settled = trio.Event()  # ready, or ended before that
        self.done = trio.Event()
        self.kind: ExitKind | None = None  # None: still running, or torn down from outside
        self.error: BaseException | None = None
        self.started_at: float | None = None
        self.handled = False  # the supervisor has accounted for this exit already
        self.mailbox = (
            None if mailbox_core is None else Mailbox(mailbox_core, self.stop_requested)
        )
        # Set by a supervisor that ends itself (auto_shutdown): why, for its parent.
        self.shutdown_note: str | None = None

    def request_stop(self, final: bool) -> None:
        self.stop_final = final
        self.stop_requested.set()
        if self.mailbox is not None:
            self.mailbox._wake_receivers()

    def reason(self, stopping: bool) -> str:
        if self.kind is ExitKind.RAISED and self.error is not None:
            return describe_error(self.error)
        if self.kind is ExitKind.FAILED_START:
            return "returned before task_status.started()"
        if self.kind is ExitKind.KILLED:
            return "killed (shutdown timeout)"
        if self.kind is ExitKind.RETURNED:
            return "shutdown" if stopping else "normal"
        if self.kind is ExitKind.SHUTDOWN:
            why = describe_error(self.error) if self.error is not None else self.shutdown_note
            return f"shutdown: {why}"
        return "cancelled"


class ReadyStatus:
    """The ``task_status`` a start function receives (duck-types ``trio.TaskStatus``)."""

    __slots__ = ("_incarnation",)

    def __init__(self, incarnation: Incarnation) -> None:
        self._incarnation = incarnation

    def started(self, value: object = None) -> None:
        inc = self._incarnation
        if inc.ready:
            raise RuntimeError("called 'started' twice on the same task status")
        inc.ready = True
        inc.started_at = trio.current_time()
        inc.settled.set()


class ChildRecord:
    """Everything the tree knows about one child, kept across its incarnations."""

    __slots__ = ("spec", "parent", "children", "core", "state", "restarts", "last_error",
                 "launched", "incarnation", "due_at", "terminated", "backoff_attempt")

    def __init__(
        self,
        spec: ChildSpec | SupervisorSpec,
        parent: ChildRecord | None,
        core: _MailboxCore | None,
    ) -> None:
        self.spec = spec
        self.parent = parent
        self.children: list[ChildRecord] = []
        self.core = core
        self.state = ChildState.STARTING
        self.restarts = 0
        self.last_error: str | None = None
        self.launched = False
        self.incarnation: Incarnation | None = None
        self.due_at: float | None = None  # when a pending (re)start may happen
        # Sticky STOPPED: terminated by an operator, or a temporary child that ended.
        # Such a child is started again only by an operator, never by a restart.
        self.terminated = False
        self.backoff_attempt = 0

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def kind(self) -> Literal["worker", "supervisor"]:
        return "supervisor" if isinstance(self.spec, SupervisorSpec) else "worker"

    def walk(self) -> list[ChildRecord]:
        """This record and every descendant, parents before children."""
        found = [self]
        for child in self.children:
            found.extend(child.walk())
        return found

    def current_spec(self) -> ChildSpec | SupervisorSpec:
        """The spec as the tree runs it now: a supervisor's children as they are today,
        dynamic ones added and deleted ones gone (its restarts start exactly these)."""
        spec = self.spec
        if isinstance(spec, ChildSpec):
            return spec
        return attrs.evolve(spec, children=tuple(c.current_spec() for c in self.children))

    def info(self, now: float) -> ChildInfo:
        inc = self.incarnation
        uptime = None
        if self.state is ChildState.RUNNING and inc is not None and inc.started_at is not None:
            uptime = now - inc.started_at
        return ChildInfo(
            name=self.name,
            kind=self.kind,
            state=self.state,
            restarts=self.restarts,
            last_error=self.last_error,
            uptime=uptime,
            mailbox_depth=0 if self.core is None else self.core.depth,
            children=tuple(child.info(now) for child in self.children),
        )


async def run_incarnation(
    child: ChildRecord,
    inc: Incarnation,
    start: Callable[..., Awaitable[None]],
    argument: object,
    on_exit: Callable[[ChildRecord, Incarnation], None],
) -> None:
    """Run ``await start(argument, task_status=...)`` and report how it ended.

    Exceptions (including groups of them) become the outcome; a supervisor child's own
    ``SupervisorEscalation`` is OTP's ``shutdown`` (SHUTDOWN), not a crash. Cancellation
    by the incarnation's own kill scope is a KILLED outcome; cancellation from outside
    (the whole supervisor being torn down) propagates, with the incarnation still marked
    done so nobody waits on it forever.
    """
    try:
        with inc.kill_scope:
            await start(argument, task_status=ReadyStatus(inc))
        if inc.kill_scope.cancelled_caught:
            inc.kind = ExitKind.KILLED
        elif inc.ready:
            inc.kind = ExitKind.RETURNED if inc.shutdown_note is None else ExitKind.SHUTDOWN
        else:
            inc.kind = ExitKind.FAILED_START
            inc.error = FailedStart(child.name)
    except Exception as exc:
        inc.kind = ExitKind.SHUTDOWN if gave_up(child, exc) else ExitKind.RAISED
        inc.error = exc
    finally:
        if inc.mailbox is not None:
            crash = inc.error if inc.kind is ExitKind.RAISED else None
            inc.mailbox._release(
                child.name,
                None if crash is None else describe_error(crash),
                inc.reason(inc.stop_requested.is_set()),
            )
        inc.settled.set()
        inc.done.set()
        on_exit(child, inc)
