"""Typed errors of the supervision layer.

Callers of an actor and operators of a tree see only these; each names the child it is
about so an error surfacing far from its cause still says where it came from. They all
derive from :class:`SupervisorError` so ``except SupervisorError`` catches any of them.
"""

from __future__ import annotations


class SupervisorError(Exception):
    """Base class of every error raised by the supervision layer."""


class ActorCrashed(SupervisorError):
    """The actor crashed while it held the caller's request (taken, never answered).

    Raised to the caller at once, not after its timeout: the incarnation that had the
    request is gone, so waiting longer could not produce a reply.
    """

    def __init__(self, name: str, error: str) -> None:
        super().__init__(f"actor {name!r} crashed while handling the request: {error}")
        self.name = name
        self.error = error


class ActorNotRunning(SupervisorError):
    """The actor is not running and is not going to be restarted on its own.

    Raised at once by :meth:`Address.call` (and by casts) when the child was terminated by
    an operator, was temporary or transient and has finished, was deleted, or its tree has
    ended. Also raised to a caller whose request the actor took and then stopped (not
    crashed) without answering.
    """

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"actor {name!r} is not running: {reason}")
        self.name = name
        self.reason = reason


class CallTimeout(SupervisorError, TimeoutError):
    """No reply arrived within the call's timeout (the actor is alive but slow or stuck)."""

    def __init__(self, name: str, timeout: float) -> None:
        super().__init__(f"call to actor {name!r} got no reply within {timeout} s")
        self.name = name
        self.timeout = timeout


class MailboxFull(SupervisorError):
    """``cast_nowait`` found the actor's mailbox at capacity."""

    def __init__(self, name: str, capacity: int) -> None:
        super().__init__(f"mailbox of actor {name!r} is full ({capacity} messages)")
        self.name = name
        self.capacity = capacity


class SupervisorEscalation(SupervisorError):
    """A supervisor exceeded its restart intensity and gave up.

    A nested supervisor raises it to its parent (which treats it like any child crash);
    the root raises it out of ``open_supervisor``. ``__cause__`` is the exception of the
    child's last failure, so a traceback reads from the tree down to the original error.
    """

    def __init__(
        self,
        supervisor: str,
        child: str,
        last_error: str,
        *,
        max_restarts: int,
        max_seconds: float,
    ) -> None:
        super().__init__(
            f"supervisor {supervisor!r} gave up: child {child!r} needed more than "
            f"{max_restarts} restart(s) in {max_seconds} s; last error: {last_error}"
        )
        self.supervisor = supervisor
        self.child = child
        self.last_error = last_error
        self.max_restarts = max_restarts
        self.max_seconds = max_seconds


class ChildRunning(SupervisorError):
    """The operation needs a STOPPED child, and this one is running or about to (re)start.

    OTP's ``{error, running}`` / ``{error, restarting}``: ``restart_child``,
    ``start_child(name)`` and ``delete_child`` act only on a child that is not running,
    so an operator's command can never silently do nothing or stop a child by surprise.
    ``state`` is the child's state (``"running"``, ``"restarting"`` or ``"starting"``).
    To restart a running child on purpose, use ``force_restart_child``.
    """

    def __init__(self, name: str, state: str, operation: str) -> None:
        super().__init__(
            f"{operation}: child {name!r} is {state}, not stopped (terminate_child it first, "
            "or use force_restart_child to restart it)"
        )
        self.name = name
        self.state = state
        self.operation = operation


class ChildAlreadyPresent(SupervisorError, ValueError):
    """``start_child(spec)`` names a child the tree already has.

    OTP's ``{error, already_present}`` (the child is stopped) and ``{error,
    {already_started, Pid}}`` (it runs): the new spec is discarded and the child is left
    as it was. Start the existing child by name, or delete it first to replace its spec.
    """

    def __init__(self, name: str, state: str) -> None:
        super().__init__(
            f"child name {name!r} is not unique in the supervision tree: a child of that "
            f"name is already present ({state})"
        )
        self.name = name
        self.state = state


class UnknownChild(SupervisorError, LookupError):
    """No child of that name exists anywhere in the tree."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no child named {name!r} in the supervision tree")
        self.name = name


class FailedStart(SupervisorError):
    """The child's start function returned before calling ``task_status.started()``.

    Recorded as the child's last error; it counts as an abnormal exit (so transient
    children are restarted) and against restart intensity.
    """

    def __init__(self, name: str) -> None:
        super().__init__(f"child {name!r} returned before calling task_status.started()")
        self.name = name
