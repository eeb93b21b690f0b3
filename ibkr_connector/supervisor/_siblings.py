"""Sans-IO rules over one supervisor's list of children: who starts next, who restarts
together, when the supervisor ends itself, and when an operator may act on a child.

They read (and, for the start plan, set) plain :class:`ChildRecord` fields and take the
time as an argument, so they can be checked without running a tree. The supervisor's
control loop (``_node``) applies them, as it applies the restart policy of ``_policy``.
"""

from __future__ import annotations

from collections.abc import Sequence

from ._child import ChildRecord
from ._errors import ChildRunning
from ._events import ChildState
from ._spec import AutoShutdown, Strategy


def plan_start(children: Sequence[ChildRecord], now: float) -> None:
    """Make every child that is not terminated due to start at ``now``, in order."""
    for child in children:
        if child.terminated:
            continue
        child.due_at = now
        child.state = ChildState.RESTARTING if child.launched else ChildState.STARTING


def next_due(
    strategy: Strategy, children: Sequence[ChildRecord], now: float
) -> tuple[ChildRecord | None, float | None]:
    """The next child to start now, else when to look again.

    Under one_for_all and rest_for_one a child never starts while an earlier sibling
    still waits to start: later children may depend on earlier ones.
    """
    wake: float | None = None
    for child in children:
        if child.due_at is None:
            continue
        if child.due_at <= now:
            return child, None
        wake = child.due_at if wake is None else min(wake, child.due_at)
        if strategy is not Strategy.ONE_FOR_ONE:
            break
    return None, wake


def restart_group(
    strategy: Strategy, children: Sequence[ChildRecord], child: ChildRecord
) -> list[ChildRecord]:
    """The children restarted together with ``child``, in start order."""
    if strategy is Strategy.ONE_FOR_ONE:
        return [child]
    if strategy is Strategy.REST_FOR_ONE:
        children = children[children.index(child):]
    return [c for c in children if c is child or not c.terminated]


def auto_shutdown_reason(
    mode: AutoShutdown, children: Sequence[ChildRecord], child: ChildRecord, reason: str
) -> str | None:
    """Why the supervisor ends now that significant ``child`` ended for good, or None.

    OTP's ``auto_shutdown``: never, when any significant child ended, or only once all
    significant children have.
    """
    if mode is AutoShutdown.ALL_SIGNIFICANT and any(
        c.spec.significant and c.state is not ChildState.STOPPED for c in children
    ):
        return None
    if mode is AutoShutdown.NEVER:
        return None
    return f"auto_shutdown {mode.value}: significant child {child.name!r} ended ({reason})"


def require_stopped(child: ChildRecord, operation: str) -> None:
    """OTP's ``{error, running}`` / ``{error, restarting}`` for a child that is not stopped."""
    if child.state is not ChildState.STOPPED or child.incarnation is not None:
        raise ChildRunning(child.name, child.state.value, operation)
