"""How the orders actor runs a call that waits on others (ids, the audit, the limiter, TWS).

Each such call runs in its own task, so the actor's mailbox keeps moving (a cancel must
not wait behind a placement stuck in an outage), and the envelope is answered from that
task. A caller that stops waiting (cancelled, or its call timed out) has its work
cancelled too, so its order does not go out later: the limiter's rule then applies (not
yet claimed for the wire: never written; claimed: the write finishes and is recorded).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio

from .._errors import IBKRError
from ..supervisor import NOREPLY, Envelope, Handler, SupervisorError

__all__ = ["run_in_task"]


def run_in_task(nursery: trio.Nursery, work: Callable[[Any], Awaitable[object]]) -> Handler:
    """A `serve` handler that runs ``work(message)`` in a task of ``nursery`` and answers
    the call with its result, or with the error it raised on purpose (an `IBKRError`, a
    supervision error, a ``ValueError``). Anything else crashes the actor."""

    async def handler(message: Any, envelope: Envelope) -> object:
        async def run() -> None:
            with trio.CancelScope() as scope:
                envelope.when_settled(lambda: _cancel_if_abandoned(envelope, scope))
                try:
                    result = await work(message)
                except (IBKRError, SupervisorError, ValueError) as exc:
                    envelope.fail(exc)
                else:
                    envelope.reply(result)

        nursery.start_soon(run)
        return NOREPLY

    return handler


def _cancel_if_abandoned(envelope: Envelope, scope: trio.CancelScope) -> None:
    if envelope.abandoned:
        scope.cancel()
