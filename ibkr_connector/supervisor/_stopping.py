"""How one child's incarnation ends: stopped by its supervisor, gracefully then hard, and
recorded (``last_error``, an EXITED event) however it ended.

Kept apart from the control loop (``_node``) that decides *when* to stop a child: this is
the one place that knows the stop sequence and its shutdown timeout, and it needs of the
tree only the ``TreeServices`` protocol of ``_interfaces``.
"""

from __future__ import annotations

from collections.abc import Sequence

import trio

from ._child import ChildRecord, Incarnation, describe_error
from ._events import ChildState, SupervisionEventKind
from ._interfaces import TreeServices
from ._policy import ABNORMAL, ExitKind


def account(
    tree: TreeServices, supervisor: str, child: ChildRecord, inc: Incarnation, *,
    stopping: bool,
) -> str:
    """Record how an incarnation ended (last_error, EXITED event); return the reason."""
    inc.handled = True
    if child.incarnation is inc:
        child.incarnation = None
    # Not RUNNING any more; the caller decides between RESTARTING and STOPPED.
    child.state = ChildState.RESTARTING
    reason = inc.reason(stopping)
    if inc.error is not None and (inc.kind in ABNORMAL or inc.kind is ExitKind.SHUTDOWN):
        child.last_error = describe_error(inc.error)
    tree.emit(SupervisionEventKind.EXITED, supervisor, child.name, reason)
    return reason


async def stop_child(
    tree: TreeServices, supervisor: str, child: ChildRecord, *, final: bool
) -> None:
    """Stop the running incarnation gracefully, then hard; cancel a pending start.

    ``final`` tells the child it stops for good (its mailbox closes) rather than for a
    restart. Waits up to the child's ``shutdown_timeout`` before the hard kill, a Trio
    cancellation of the incarnation; a child shielded from it is waited for.
    """
    child.due_at = None
    inc = child.incarnation
    if inc is None:
        return
    if not inc.handled:
        inc.handled = True
        if not inc.done.is_set():
            timeout = child.spec.shutdown_timeout
            if timeout > 0:
                inc.request_stop(final)
                with trio.move_on_after(timeout):
                    await inc.done.wait()
            if not inc.done.is_set():
                inc.kill_scope.cancel()
                await inc.done.wait()
        account(tree, supervisor, child, inc, stopping=True)
    child.incarnation = None


async def stop_all(
    tree: TreeServices, supervisor: str, children: Sequence[ChildRecord], *, final: bool
) -> None:
    """Stop ``children`` in reverse start order: for good, or left RESTARTING."""
    for child in reversed(children):
        await stop_child(tree, supervisor, child, final=final)
        if final:
            tree.mark_stopped(child, "supervisor shutdown")
        elif child.state is not ChildState.STOPPED:
            child.state = ChildState.RESTARTING
