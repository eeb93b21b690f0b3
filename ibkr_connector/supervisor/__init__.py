"""OTP-style supervision trees for Trio.

Children (workers or nested supervisors) are started in order, watched, restarted per
their restart type and their supervisor's strategy, within a restart intensity past
which the supervisor gives up and escalates to its parent. Each worker's mailbox is
owned by the tree, so restarts keep queued messages and addresses stay valid.

This package is self-contained: it depends on trio and attrs only, and knows nothing
of Interactive Brokers. See docs/supervision.md for the semantics beside OTP's.
"""

from ._errors import (
    ActorCrashed,
    ActorNotRunning,
    CallTimeout,
    ChildAlreadyPresent,
    ChildRunning,
    FailedStart,
    MailboxFull,
    SupervisorError,
    SupervisorEscalation,
    UnknownChild,
)
from ._events import ChildCounts, ChildInfo, ChildState, SupervisionEvent, SupervisionEventKind
from ._mailbox import Address, Envelope, Mailbox, PendingCall, Registry
from ._policy import RestartIntensity, backoff_delay
from ._server import NOREPLY, Handler, NoReply, Stop, serve
from ._spec import (
    DEFAULT_MAX_RESTARTS,
    DEFAULT_MAX_SECONDS,
    AutoShutdown,
    Backoff,
    ChildSpec,
    Restart,
    Strategy,
    SupervisorSpec,
    check_childspecs,
)
from ._supervisor import Supervisor, open_supervisor

__all__ = [
    "DEFAULT_MAX_RESTARTS",
    "DEFAULT_MAX_SECONDS",
    "ActorCrashed",
    "ActorNotRunning",
    "Address",
    "AutoShutdown",
    "Backoff",
    "CallTimeout",
    "ChildAlreadyPresent",
    "ChildCounts",
    "ChildInfo",
    "ChildRunning",
    "ChildSpec",
    "ChildState",
    "Envelope",
    "FailedStart",
    "Handler",
    "Mailbox",
    "PendingCall",
    "MailboxFull",
    "NOREPLY",
    "NoReply",
    "Registry",
    "Restart",
    "RestartIntensity",
    "Strategy",
    "SupervisionEvent",
    "SupervisionEventKind",
    "Supervisor",
    "SupervisorError",
    "SupervisorEscalation",
    "Stop",
    "SupervisorSpec",
    "UnknownChild",
    "backoff_delay",
    "check_childspecs",
    "open_supervisor",
    "serve",
]
