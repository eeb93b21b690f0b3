"""The event bus's actor shell: the bus's place in the supervision tree.

The :class:`~ibkr_connector.actors.bus.EventBus` itself is owned by the runtime and used by
plain synchronous calls (a mailbox hop would cost the market-data hot path a task switch per
event). This shell only gives it a supervised task that answers :class:`BusStats`, so a
restart of the shell ends no subscription. It needs nothing of the bus but its counters,
hence the small protocol below instead of an import of the bus machinery.
"""

from __future__ import annotations

from typing import Protocol

import trio

from ..supervisor import Envelope, Mailbox, serve
from .bus_messages import BusStats, EventBusStats

__all__ = ["run_event_bus"]


class _Counted(Protocol):
    """What the shell needs of the bus (``EventBus`` provides it)."""

    def stats(self) -> EventBusStats:
        """A snapshot of the bus counters."""


async def run_event_bus(
    mailbox: Mailbox,
    bus: _Counted,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Actor shell: answer :class:`BusStats` until the supervisor stops it.

    The bus is passed in and survives the shell, so a restart keeps every subscription.
    """

    async def stats(message: BusStats, envelope: Envelope) -> EventBusStats:
        return bus.stats()

    task_status.started()
    await serve(mailbox, {BusStats: stats})
