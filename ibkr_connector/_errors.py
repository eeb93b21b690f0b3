"""The root of every error an embedding program can catch from ibkr-connector.

Each layer keeps its own error classes next to the code that raises them (a config error in
``config``, a refused request in ``protocol.requests``...), and every one of them derives from
:class:`IBKRError`, so ``except ibkr_connector.IBKRError`` catches anything the runtime
raises on purpose. Errors that mean the same as a builtin keep that builtin as a second base
(``RequestError`` is also a ``ValueError``), so code written against the builtin still works.

The supervision layer is IB-free and has its own root (``SupervisorError``); the runtime
re-raises those at its boundary as the subclasses in ``runtime`` that derive from both.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from . import supervisor

__all__ = [
    "ActorCrashed",
    "ActorNotRunning",
    "CallTimeout",
    "ChildAlreadyPresent",
    "ChildRunning",
    "IBKRError",
    "MailboxFull",
    "SupervisorError",
    "SupervisorEscalation",
    "UnknownChild",
    "translate_supervisor_errors",
]


class IBKRError(Exception):
    """Base class of every error ibkr-connector raises to its caller."""


# --- the supervision layer's errors, as the runtime raises them ------------------------
# Each derives from IBKRError *and* from the supervisor's own class, so a caller may catch
# either; `translate_supervisor_errors` turns one into the other at the runtime's edge.


class ActorCrashed(IBKRError, supervisor.ActorCrashed):
    __doc__ = supervisor.ActorCrashed.__doc__


class ActorNotRunning(IBKRError, supervisor.ActorNotRunning):
    __doc__ = supervisor.ActorNotRunning.__doc__


class CallTimeout(IBKRError, supervisor.CallTimeout):
    __doc__ = supervisor.CallTimeout.__doc__


class MailboxFull(IBKRError, supervisor.MailboxFull):
    __doc__ = supervisor.MailboxFull.__doc__


class UnknownChild(IBKRError, supervisor.UnknownChild):
    __doc__ = supervisor.UnknownChild.__doc__


class SupervisorEscalation(IBKRError, supervisor.SupervisorEscalation):
    __doc__ = supervisor.SupervisorEscalation.__doc__


class ChildRunning(IBKRError, supervisor.ChildRunning):
    __doc__ = supervisor.ChildRunning.__doc__


class ChildAlreadyPresent(IBKRError, supervisor.ChildAlreadyPresent):
    __doc__ = supervisor.ChildAlreadyPresent.__doc__


class SupervisorError(IBKRError, supervisor.SupervisorError):
    """Any other error of the supervision layer (e.g. an operator command that does not
    apply to the child's state)."""


# Most specific first: the first supervisor class the error is an instance of wins.
_TWINS: tuple[tuple[type[supervisor.SupervisorError], type[IBKRError]], ...] = (
    (supervisor.ActorCrashed, ActorCrashed),
    (supervisor.ActorNotRunning, ActorNotRunning),
    (supervisor.CallTimeout, CallTimeout),
    (supervisor.MailboxFull, MailboxFull),
    (supervisor.UnknownChild, UnknownChild),
    (supervisor.SupervisorEscalation, SupervisorEscalation),
    (supervisor.ChildRunning, ChildRunning),
    (supervisor.ChildAlreadyPresent, ChildAlreadyPresent),
    (supervisor.SupervisorError, SupervisorError),
)


def _translate(error: supervisor.SupervisorError) -> IBKRError:
    twin = next(ours for theirs, ours in _TWINS if isinstance(error, theirs))
    # Same message and attributes, without re-running a constructor whose signature differs
    # per class.
    translated = twin.__new__(twin)
    translated.args = error.args
    translated.__dict__.update(vars(error))
    return translated


@contextmanager
def translate_supervisor_errors() -> Iterator[None]:
    """Re-raise a supervision-layer error as its `IBKRError` twin (same message, same
    attributes, the original as ``__cause__``); anything else passes through untouched."""
    try:
        yield
    except IBKRError:
        raise
    except supervisor.SupervisorError as exc:
        raise _translate(exc) from exc
