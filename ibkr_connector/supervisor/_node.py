"""One running supervisor: a control loop that starts, watches and restarts its children.

Every change to a supervisor's children happens in its single control-loop task, in
the order events arrive (an exit, an operator command, a backoff timer, a stop
request), like an OTP supervisor's mailbox. Children run as tasks in the supervisor's
nursery, wrapped by ``run_incarnation`` so that their exits arrive as messages, never
as exceptions. The loop is only ever blocked by a child's start (until it reports
started; a stop request interrupts that) and by graceful stops (bounded by shutdown
timeouts). Past its restart intensity, a supervisor stops its children in reverse order
and raises ``SupervisorEscalation`` to its parent.

A node reaches the tree it runs in only through the ``TreeServices`` protocol of
``_interfaces`` (which ``_tree.Tree`` satisfies), so the dependency runs one way:
``_child`` <- ``_interfaces`` <- ``_node`` <- ``_tree`` <- ``_supervisor``. The loop decides
*when*; the rules over its list of children (``_siblings``) and the stop sequence of one
child (``_stopping``) live below it, in that same one-way order.
"""

from __future__ import annotations

import math
import random
from collections.abc import Awaitable, Callable

import attrs
import trio

from ._child import ChildRecord, Incarnation, ReadyStatus, run_incarnation
from ._errors import ActorCrashed, ActorNotRunning, SupervisorEscalation, UnknownChild
from ._events import ChildState, SupervisionEventKind
from ._interfaces import Command, TreeServices
from ._policy import RestartIntensity, backoff_delay, next_attempt, should_restart
from ._siblings import (
    auto_shutdown_reason,
    next_due,
    plan_start,
    require_stopped,
    restart_group,
)
from ._spec import Restart, SupervisorSpec, check_childspecs
from ._stopping import account, stop_all, stop_child

Kind = SupervisionEventKind


@attrs.frozen(eq=False)
class _Exited:
    child: ChildRecord
    incarnation: Incarnation


class _Signal:
    """Stop request and backoff wake-up, as inbox items."""


_STOP = _Signal()
_WAKE = _Signal()

_Item = _Exited | Command | _Signal


class _GiveUp(Exception):
    """Internal: intensity exceeded while handling ``child``'s exit."""

    def __init__(self, child: ChildRecord, last_error: str, error: BaseException | None):
        super().__init__(last_error)
        self.child = child
        self.last_error = last_error
        self.error = error


class _AutoShutdown(Exception):
    """Internal: a significant child ended and ``auto_shutdown`` says the supervisor ends."""


class SupervisorNode:
    """The live part of one supervisor incarnation (its record outlives it)."""

    def __init__(self, tree: TreeServices, record: ChildRecord) -> None:
        assert isinstance(record.spec, SupervisorSpec)
        self.spec: SupervisorSpec = record.spec
        self.record = record
        self._tree = tree
        self._intensity = RestartIntensity(self.spec.max_restarts, self.spec.max_seconds)
        self._send, self._inbox = trio.open_memory_channel[_Item](math.inf)
        self._nursery: trio.Nursery | None = None
        self._stopping = False
        self._start_scope: trio.CancelScope | None = None
        self._timers: set[float] = set()
        self.accepting = True

    @property
    def name(self) -> str:
        return self.spec.name

    # -- lifetime ------------------------------------------------------------------------

    async def run(self, inc: Incarnation, *, task_status: ReadyStatus) -> None:
        """Start the children in order, report started, supervise until asked to stop.

        On a stop request the children are stopped in reverse order (for good, or, if the
        parent is restarting this supervisor, left RESTARTING so their mailboxes keep
        accepting). Raises ``SupervisorEscalation`` after stopping them if the restart
        intensity is exceeded. Returns (with ``inc.shutdown_note`` set) when significant
        children ended and ``auto_shutdown`` says so: OTP's exit with ``shutdown``.
        """
        give_up: _GiveUp | None = None
        self._tree.attach(self)
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                nursery.start_soon(self._watch_stop, inc)
                try:
                    plan_start(self.record.children, trio.current_time())
                    await self._start_due()
                    if not self._stopping:
                        task_status.started()
                        await self._serve()
                except _GiveUp as exc:
                    give_up = exc
                except _AutoShutdown as exc:
                    inc.shutdown_note = str(exc)
                finally:
                    self.accepting = False
                    self._fail_commands()
                    # Ending itself (gave up, auto_shutdown), a supervisor leaves its
                    # children's mailboxes open: its parent may restart it.
                    ends_itself = give_up is not None or inc.shutdown_note is not None
                    await stop_all(self._tree, self.name, self.record.children,
                                   final=inc.stop_final and not ends_itself)
                    self._fail_commands()
                    nursery.cancel_scope.cancel()
        finally:
            self._tree.detach(self)
        if give_up is not None:
            self._tree.emit(Kind.ESCALATED, self.name, give_up.child.name, give_up.last_error)
            raise SupervisorEscalation(
                self.name,
                give_up.child.name,
                give_up.last_error,
                max_restarts=self.spec.max_restarts,
                max_seconds=self.spec.max_seconds,
            ) from give_up.error

    async def submit(self, command: Command) -> None:
        """Queue an operator command and wait for the loop to carry it out.

        Runs to completion even if the caller is cancelled meanwhile.
        """
        if not self.accepting:
            raise ActorNotRunning(self.name, "the supervisor is not running")
        self._send.send_nowait(command)
        await command.done.wait()
        if command.error is not None:
            raise command.error

    async def _watch_stop(self, inc: Incarnation) -> None:
        await inc.stop_requested.wait()
        self._stopping = True
        self._send.send_nowait(_STOP)
        if self._start_scope is not None:
            self._start_scope.cancel()

    async def _serve(self) -> None:
        while not self._stopping:
            item = await self._inbox.receive()
            if isinstance(item, _Exited):
                await self._on_exit(item.child, item.incarnation)
            elif isinstance(item, Command):
                await self._run_command(item)
            await self._start_due()

    def _notify_exit(self, child: ChildRecord, inc: Incarnation) -> None:
        if not inc.handled:
            self._send.send_nowait(_Exited(child, inc))

    def _fail_commands(self) -> None:
        while True:
            try:
                item = self._inbox.receive_nowait()
            except trio.WouldBlock:
                return
            if isinstance(item, Command):
                item.finish(ActorNotRunning(self.name, "the supervisor is shutting down"))

    # -- starting ----------------------------------------------------------------------

    async def _start_due(self) -> None:
        while not self._stopping:
            child, wake = next_due(self.spec.strategy, self.record.children,
                                   trio.current_time())
            if child is None:
                if wake is not None and wake not in self._timers:
                    self._timers.add(wake)
                    assert self._nursery is not None
                    self._nursery.start_soon(self._timer, wake)
                return
            failed = await self._launch(child)
            if failed is not None:
                await self._on_exit(child, failed)

    async def _timer(self, at: float) -> None:
        await trio.sleep_until(at)
        self._timers.discard(at)
        self._send.send_nowait(_WAKE)

    async def _launch(self, child: ChildRecord) -> Incarnation | None:
        """Start one incarnation and wait until it reports started.

        Returns the incarnation if it ended before reporting started (a failed start),
        else None (started, or the wait was interrupted by a stop request).
        """
        child.due_at = None
        child.state = ChildState.RESTARTING if child.launched else ChildState.STARTING
        if child.launched:
            child.restarts += 1
        child.launched = True
        if child.core is not None:
            child.core.reopen()
        inc = Incarnation(child.core)
        child.incarnation = inc
        start, argument = self._entry(child, inc)
        assert self._nursery is not None
        self._nursery.start_soon(run_incarnation, child, inc, start, argument, self._notify_exit)
        scope = self._start_scope = trio.CancelScope()
        if self._stopping:
            scope.cancel()
        try:
            with scope:
                await inc.settled.wait()
        finally:
            self._start_scope = None
        if inc.ready:
            child.state = ChildState.RUNNING
            self._tree.emit(Kind.STARTED, self.name, child.name, "")
            return None
        return inc if inc.done.is_set() else None

    def _entry(
        self, child: ChildRecord, inc: Incarnation
    ) -> tuple[Callable[..., Awaitable[None]], object]:
        if isinstance(child.spec, SupervisorSpec):
            return SupervisorNode(self._tree, child).run, inc
        return child.spec.start, inc.mailbox

    # -- exits and restarts --------------------------------------------------------------

    async def _on_exit(self, child: ChildRecord, inc: Incarnation) -> None:
        """A child ended on its own: restart it (and siblings) per spec, or give up."""
        if inc.handled or child.incarnation is not inc:
            return  # already accounted for by a stop we made
        reason = account(self._tree, self.name, child, inc, stopping=False)
        if inc.kind is None or not should_restart(child.spec.restart, inc.kind):
            child.terminated = child.spec.restart is Restart.TEMPORARY
            self._tree.mark_stopped(child, f"not restarted ({child.spec.restart.value}): "
                                           f"{reason}")
            if inc.kind is not None and child.spec.significant:
                self._check_auto_shutdown(child, reason)
            return
        now = trio.current_time()
        if not self._intensity.record(now):
            raise _GiveUp(child, reason, inc.error)
        delay = self._backoff(child, inc, now)
        group = restart_group(self.spec.strategy, self.record.children, child)
        for sibling in reversed(group):
            if sibling is not child and sibling.incarnation is not None:
                temporary = sibling.spec.restart is Restart.TEMPORARY
                await stop_child(self._tree, self.name, sibling, final=temporary)
        why = f"{self.spec.strategy.value} after {child.name!r} exited ({reason})"
        for member in group:
            if member is not child and member.spec.restart is Restart.TEMPORARY:
                member.terminated = True
                self._tree.mark_stopped(member, f"temporary, not restarted: {why}")
                continue
            due = now + delay
            member.due_at = due if member.due_at is None else max(member.due_at, due)
            member.state = ChildState.RESTARTING
            self._tree.emit(Kind.RESTARTED, self.name, member.name, f"{why}; delay {delay:.3f} s")

    def _check_auto_shutdown(self, child: ChildRecord, reason: str) -> None:
        """A significant child ended for good by itself: end this supervisor if due."""
        why = auto_shutdown_reason(self.spec.auto_shutdown, self.record.children, child, reason)
        if why is not None:
            raise _AutoShutdown(why)

    def _backoff(self, child: ChildRecord, inc: Incarnation, now: float) -> float:
        backoff = self.spec.backoff
        if backoff is None:
            return 0.0
        uptime = None if inc.started_at is None else now - inc.started_at
        attempt = next_attempt(backoff, child.backoff_attempt, uptime)
        child.backoff_attempt = attempt + 1
        return backoff_delay(backoff, attempt, random.random())

    # -- operator commands ---------------------------------------------------------------

    async def _run_command(self, command: Command) -> None:
        try:
            await self._execute(command)
        except Exception as exc:
            command.finish(exc)
        else:
            command.finish()

    async def _execute(self, command: Command) -> None:
        if command.op == "add":
            assert command.spec is not None
            check_childspecs([command.spec], self.spec.auto_shutdown)
            added = self._tree.adopt(command.spec, self.record)
            self.record.children.append(added)
            try:
                await self._operator_start(added, "added")
            except ActorCrashed:
                self.record.children.remove(added)
                self._tree.forget(added)
                raise
            return
        child = command.target
        if child is None or child not in self.record.children:
            raise UnknownChild("<deleted>" if child is None else child.name)
        if command.op == "force_restart":
            await stop_child(self._tree, self.name, child, final=False)
            self._tree.emit(Kind.RESTARTED, self.name, child.name, "requested by operator")
            await self._operator_start(child, "restart")
        elif command.op in ("restart", "start"):
            require_stopped(child, f"{command.op}_child")
            await self._operator_start(child, command.op)
        elif command.op == "delete":
            require_stopped(child, "delete_child")
            self.record.children.remove(child)
            self._tree.forget(child)
        else:
            child.terminated = True
            await stop_child(self._tree, self.name, child, final=True)
            self._tree.mark_stopped(child, "terminated by operator")

    async def _operator_start(self, child: ChildRecord, what: str) -> None:
        """Start on an operator's behalf; a failed start is reported, not retried."""
        child.terminated = False
        failed = await self._launch(child)
        if failed is None:
            return
        reason = account(self._tree, self.name, child, failed, stopping=False)
        child.terminated = True
        self._tree.mark_stopped(child, f"operator {what} failed: {reason}")
        raise ActorCrashed(child.name, reason) from failed.error

