"""The order-id owner: every order id this runtime places is handed out here, exactly once.

TWS requires a client's order ids to increase, tells the client where to start with
``nextValidId``, and rejects a reused id with error 103. That is not enough to keep ids
unique from the trader's point of view: after a restart of the program (a kill -9, say)
TWS's ``nextValidId`` can hand out an id the audit trail already holds for an order that
never reached TWS, and two intents in the trail then share one id. So the next id is

    max(TWS's latest nextValidId, highest id in the audit trail + 1, last id handed out + 1)

:class:`OrderIdBook` is that rule as a plain value (no I/O), created by the runtime so an
actor restart never rewinds it; :func:`run_order_ids` is the supervised actor around it. It
learns TWS's id from the connection (asked at start: events are edges, and one may have
been published while this actor was down) and from the bus; on a code whose strategy is
``RESYNC_ORDER_IDS`` (103) it stops handing out ids, asks TWS (``reqIds``, through the
limiter like every request) and resumes when the answer arrives.
"""

from __future__ import annotations

import logging

import attrs
import trio

from ..protocol import codes
from ..protocol import events as ev
from ..protocol.requests import ReqIds
from ..supervisor import NOREPLY, Address, Envelope, Mailbox, SupervisorError, serve
from .audit import GetTrailSummary, TrailSummary
from .bus import EventBus
from .connection_messages import (
    ConnectionEstablished,
    ConnectionRecovered,
    ConnectionStatus,
    ErrorOccurred,
    GetStatus,
)
from .limiter import Submit

__all__ = ["AllocateOrderIds", "OrderIdBook", "run_order_ids"]

log = logging.getLogger(__name__)


@attrs.define
class OrderIdBook:
    """Where the next order id comes from; owned by the runtime, outlives the actor.

    ``next_id`` is None until TWS has told us where to start (an id chosen before that
    could be below what TWS already accepted from this client id), and again after a 103
    until TWS's answer to ``reqIds`` arrives.
    """

    floor: int = 0
    next_id: int | None = None
    trail_observed: bool = False

    def observe_trail(self, highest_used: int | None) -> None:
        """No id at or below ``highest_used`` (from the audit trail) is handed out again."""
        self.trail_observed = True
        if highest_used is not None:
            self.floor = max(self.floor, highest_used + 1)
            if self.next_id is not None:
                self.next_id = max(self.next_id, self.floor)

    def observe_tws(self, next_valid_id: int) -> None:
        """TWS's ``nextValidId``: a lower bound, never a reason to go back."""
        self.next_id = max(next_valid_id, self.floor, self.next_id or 0)

    def invalidate(self) -> None:
        """TWS refused an id as used (103): hand out nothing until it says where to go on."""
        if self.next_id is not None:
            self.floor = max(self.floor, self.next_id)
        self.next_id = None

    def allocate(self, count: int) -> range:
        """``count`` fresh ids, in order. Raises LookupError while ``next_id`` is unknown."""
        if self.next_id is None:
            raise LookupError("no valid order id is known yet")
        first = self.next_id
        self.next_id = first + count
        self.floor = max(self.floor, self.next_id)
        return range(first, first + count)


@attrs.frozen
class AllocateOrderIds:
    """Call: reply with a ``range`` of ``count`` fresh order ids.

    Waits (within the caller's timeout) until TWS has said where ids start; the ids are
    spent once handed out, whether or not an order is ever placed with them.
    """

    count: int = attrs.field(default=1)

    @count.validator
    def _positive(self, _attribute: object, value: int) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 10_000:
            raise ValueError(f"AllocateOrderIds.count must be an int in 1..10000, got {value!r}")


async def run_order_ids(
    mailbox: Mailbox,
    *,
    book: OrderIdBook,
    bus: EventBus,
    connection: Address,
    limiter: Address,
    audit: Address | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `AllocateOrderIds`; keep ``book`` in step with TWS and the audit trail."""
    if audit is not None and not book.trail_observed:
        # Ids the trail holds are spent, whatever TWS says after a restart. Without the
        # answer no id is safe: the actor fails its start (its supervisor retries). Asked
        # once per runtime: later ids all come from this book.
        summary = await audit.call(GetTrailSummary(), timeout=30.0)
        assert isinstance(summary, TrailSummary)
        book.observe_trail(summary.max_order_id)
    waiting: list[tuple[Envelope, int]] = []
    subscription = bus.subscribe(
        (ev.NextValidId, ConnectionEstablished, ConnectionRecovered, ErrorOccurred),
        capacity=10_000,
    )

    def answer_waiting() -> None:
        while waiting and book.next_id is not None:
            envelope, count = waiting.pop(0)
            if not envelope.abandoned:
                envelope.reply(book.allocate(count))

    async def allocate(message: AllocateOrderIds, envelope: Envelope) -> object:
        if book.next_id is None or waiting:
            waiting.append((envelope, message.count))
            return NOREPLY
        return book.allocate(message.count)

    async def listen() -> None:
        async for event in subscription:
            if isinstance(event, ev.NextValidId):
                book.observe_tws(event.order_id)
            elif isinstance(event, ConnectionEstablished | ConnectionRecovered):
                book.observe_tws(event.next_order_id)
            elif (isinstance(event, ErrorOccurred)
                  and event.info.strategy is codes.Strategy.RESYNC_ORDER_IDS):
                log.warning("TWS reported an order id as used (%d); asking for the next one",
                            event.code)
                book.invalidate()
                await _ask_tws(limiter)
            answer_waiting()

    with subscription:
        # The state at the source: a connection made before we subscribed announced its
        # id to nobody.
        status = await _connection_status(connection)
        if status is not None and status.next_order_id is not None:
            book.observe_tws(status.next_order_id)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(listen)
            task_status.started()
            await serve(mailbox, {AllocateOrderIds: allocate})
            nursery.cancel_scope.cancel()


async def _connection_status(connection: Address) -> ConnectionStatus | None:
    try:
        status = await connection.call(GetStatus(), timeout=5.0)
    except SupervisorError:
        return None
    return status if isinstance(status, ConnectionStatus) else None


async def _ask_tws(limiter: Address) -> None:
    # A cast: the answer is a NextValidId event. If the limiter is stopped the ids stay
    # held, which is the safe side: an order waits rather than risk a duplicate id.
    try:
        await limiter.cast(Submit(ReqIds()))
    except SupervisorError as exc:
        log.warning("could not ask TWS for order ids: %s", type(exc).__name__)
