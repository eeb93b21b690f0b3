"""A gen_server for Trio: an actor declares a table of handlers, the loop is written once.

OTP's ``gen_server`` separates *what* a process does with each message (``handle_call``,
``handle_cast``, returning ``{reply, ...}``, ``{noreply, ...}`` or ``{stop, ...}``) from the
receive loop every process would otherwise write by hand. :func:`serve` is that loop for a
:class:`Mailbox`: a handler is looked up by the message's type and its return value says
what to do with the envelope:

- any value: reply with it (a cast ignores it);
- :data:`NOREPLY`: the handler kept the envelope and answers it later (or never needs to),
  as OTP's ``{noreply, State}`` followed by ``gen_server:reply/2``;
- :class:`Stop`: reply with ``Stop.reply`` and end the loop, so the actor returns normally
  (OTP's ``{stop, normal, Reply, State}``).

Errors follow OTP too. An exception whose type the actor declared as ``expected`` is part
of the handler's contract (a refused request, a failed connect): it goes to the caller and
the actor carries on. Any other exception is a bug in the actor and crashes it, which is
its supervisor's business; the caller that was waiting gets ``ActorCrashed`` at once. A
message of a type the table does not know is the *sender's* bug: the call fails with
``TypeError`` (a cast is logged and dropped) and the actor carries on.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import attrs

from ._mailbox import Envelope, Mailbox

__all__ = ["NOREPLY", "Handler", "NoReply", "Stop", "serve"]

log = logging.getLogger(__name__)


class NoReply:
    """The type of :data:`NOREPLY`."""

    _instance: NoReply | None = None

    def __new__(cls) -> NoReply:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NOREPLY"


NOREPLY: Final = NoReply()
"""Returned by a handler that answers the envelope itself, later or not at all."""


@attrs.frozen
class Stop:
    """Returned by a handler: reply with ``reply`` and end the serve loop normally."""

    reply: object = None


Handler = Callable[[Any, Envelope], Awaitable[object]]
"""``async def handler(message, envelope) -> reply | NOREPLY | Stop``."""


async def serve(
    mailbox: Mailbox,
    handlers: Mapping[type, Handler],
    *,
    expected: tuple[type[BaseException], ...] = (),
) -> None:
    """Serve *mailbox* with *handlers* until a stop is requested or a handler says `Stop`.

    Handlers run one at a time, in mailbox order, in the calling task: a handler that
    awaits holds the mailbox (OTP's sequential process), so long work belongs in a task
    the actor starts, with the envelope handed to it and :data:`NOREPLY` returned.
    Handlers are found by exact type first, then along the message type's MRO.
    """
    table = dict(handlers)
    async for envelope in mailbox:
        message = envelope.message
        handler = _lookup(table, type(message))
        if handler is None:
            error = TypeError(f"actor {mailbox.name!r} has no handler for {type(message).__name__}")
            if envelope.is_call:
                envelope.fail(error)
            else:
                log.error("%s", error)
            continue
        try:
            result = await handler(message, envelope)
        except expected as exc:
            envelope.fail(exc)
            continue
        if result is NOREPLY:
            continue
        if isinstance(result, Stop):
            envelope.reply(result.reply)
            return
        envelope.reply(result)


def _lookup(table: dict[type, Handler], kind: type) -> Handler | None:
    handler = table.get(kind)
    if handler is not None:
        return handler
    for base in kind.__mro__[1:]:
        handler = table.get(base)
        if handler is not None:
            table[kind] = handler  # cache: the next message of this type is one lookup
            return handler
    return None
