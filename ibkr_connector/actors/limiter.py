"""The limiter actor: every outbound request waits here for its turn and its token.

IB allows 50 client messages per second and may disconnect a client that exceeds it. All
outbound requests pass through this actor: a priority queue (cancel > order > market data >
info, FIFO within one) drained at the rate a `PacingGovernor` allows (45/s by default), each
request written by the connection actor, the single writer.

What it promises:

- *Nothing is lost across a reconnect.* A request the connection cannot send (socket down)
  goes back to the head of its priority and waits for the connection to come back. The
  queue itself is an `OutboundQueue` owned by the runtime, not by this task, so a restart of
  the limiter keeps every queued request.
- *Nothing is written while TWS has lost its link to IB* (1100): traffic is held until
  1101/1102, as the code's strategy (``WAIT_FOR_RESTORE``) says.
- *Error 100 slows us down.* The governor cuts the rate, the rejected request goes back to
  the head of its queue, and after ``max_retries`` rejections it is failed with a typed
  `PacingRejected` (published as `RequestFailed` on the bus).
- *A submit returns when the request is on the wire*, not when TWS answers: most TWS requests
  have no acknowledgement, and answers arrive as events.
- *A submit that raised did not happen.* A request carries a `Ticket` its caller holds; the
  writer claims the ticket before it writes and the caller abandons it when it gives up,
  and the first to move it wins (see `ticket` and `submit_through`). A queued request whose
  caller gave up is dropped as `RequestAbandoned`, never sent late: a stale order must not
  fire after a long outage, nor twice when its caller retries.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, Callable

import attrs
import trio
import trio.lowlevel

from .._errors import CallTimeout as RuntimeCallTimeout
from .._errors import IBKRError
from ..protocol import codes
from ..protocol import events as ev
from ..protocol.client import NotConnected, RequestRefused, SendFailed
from ..protocol.requests import CancelOrder, PlaceOrder, Request
from ..supervisor import (
    NOREPLY,
    ActorCrashed,
    ActorNotRunning,
    Address,
    CallTimeout,
    Envelope,
    Mailbox,
    serve,
)
from .bus import EventBus
from .connection_messages import (
    ConnectionEstablished,
    ConnectionLost,
    ConnectionRecovered,
    ConnectionState,
    GetStatus,
    LinkLost,
    LinkRestored,
    Send,
)
from .outbound import LimiterStats, OutboundQueue, Pending
from .ticket import RequestAbandoned, Ticket, TicketState

__all__ = [
    "DeliveryUnknown",
    "GetLimiterStats",
    "LimiterStats",
    "OutboundQueue",
    "PacingRejected",
    "RequestAbandoned",
    "RequestFailed",
    "Submit",
    "UnauditedOrder",
    "is_order_request",
    "run_limiter",
    "submit_through",
]

log = logging.getLogger(__name__)


class PacingRejected(IBKRError, RuntimeError):
    """TWS rejected the request for pacing (error 100) more than ``max_retries`` times."""


class DeliveryUnknown(IBKRError, RuntimeError):
    """The connection failed while writing an order; whether TWS has it is unknown.

    Orders are never re-sent blindly: the order book reconciles with TWS instead.
    """


class UnauditedOrder(IBKRError, RuntimeError):
    """An order request arrived without the audit record that must precede it on the wire."""


@attrs.frozen
class Submit:
    """Call or cast: queue *request* for the wire.

    With a ``ticket`` (what `submit_through` sends) the outcome is reported on the ticket
    and a call is answered at once, when the request is queued. Without one, a call is
    answered once the request is written (or failed); a cast's failures are published as
    `RequestFailed`. Only a ticket makes the hand-off atomic: a plain call whose timeout
    expires while the request is being written raises although the request goes out.

    An order request (place, modify, cancel) must carry ``audit_seq``: the sequence number
    of its fsync'd audit record. The limiter refuses one without, so no path to the wire,
    present or future, can skip the audit trail.
    """

    request: Request
    audit_seq: int | None = None
    ticket: Ticket | None = attrs.field(default=None, eq=False, repr=False)


@attrs.frozen
class GetLimiterStats:
    """Call: reply with `LimiterStats`."""


@attrs.frozen
class RequestFailed:
    """Published on the bus when a request is given up for good."""

    request: Request
    error: Exception


async def submit_through(
    limiter: Address, request: Request, audit_seq: int | None, timeout: float,  # noqa: ASYNC109
    ticket: Ticket | None = None,
) -> None:
    """Hand *request* to the limiter and return once it is written; the caller's side of
    the atomic hand-off.

    Returns when the whole request went to the socket. Raises what the write ended with:
    `DeliveryUnknown` (an order whose write broke off: reconcile, never re-send),
    `RequestRefused` (ibapi refused it), `UnauditedOrder`; ``ActorNotRunning`` if the
    limiter is stopped.

    **Timeout.** ``timeout`` bounds the wait for the limiter to *claim* the request for the
    wire (the queue, the pacing, an outage). If it expires first, `CallTimeout` is raised
    and the request is never written. If the claim came first, the deadline no longer
    applies: the call waits for the outcome of the write, itself bounded by the limiter's
    send timeout, and reports it. A request found certainly unwritten (the socket went down)
    is queued again and the deadline applies again.

    **Cancellation.** The same rule: cancelled before the claim, ``Cancelled`` propagates
    and the request is never written; cancelled after it, the call finishes the write and
    returns (or raises) its outcome, and the cancellation takes effect at the caller's next
    checkpoint. In short: if this raised ``CallTimeout`` or ``Cancelled``, the request did
    not reach the wire; if it returned, it did.

    A non-order request whose write broke off (delivery unknown) is sent again after the
    reconnect, and its deadline applies again meanwhile: if that deadline expires, the
    broken write may still have reached TWS. Only orders are reported as `DeliveryUnknown`.
    """
    # A ticket handed in belongs to an end caller further up (see `Ticket.settled`), who may
    # abandon it while it is pending: then `outcome` raises RequestAbandoned.
    ticket = ticket if ticket is not None else Ticket()
    with trio.move_on_after(timeout):
        await limiter.cast(Submit(request, audit_seq, ticket))
        await ticket.outcome()
        return
    raise RuntimeCallTimeout(limiter.name, timeout)


def is_order_request(request: Request) -> bool:
    """Requests that change orders at TWS: each needs an audit record first."""
    return isinstance(request, PlaceOrder | CancelOrder)


async def run_limiter(
    mailbox: Mailbox,
    *,
    outbound: OutboundQueue,
    connection: Address,
    bus: EventBus,
    max_retries: int,
    send_timeout: float,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `Submit` from *mailbox* and write queued requests at the governed rate."""
    link = _Link(connection)
    # Ask the connection once: the bus only tells us about changes after we subscribed.
    subscription = bus.subscribe(
        (ConnectionEstablished, ConnectionRecovered, ConnectionLost, LinkLost, LinkRestored,
         ev.TwsError),
        capacity=10_000,
    )
    link.set(await _connection_is_up(connection))

    async def on_submit(message: Submit, envelope: Envelope) -> object:
        request, ticket = message.request, message.ticket
        if is_order_request(request) and message.audit_seq is None:
            error = UnauditedOrder(
                f"{type(request).__name__} has no audit record; submit orders through the runtime")
            log.error("refused an order request without an audit record")
            if ticket is not None:
                ticket.finish(error)
            elif not envelope.is_call:
                bus.publish(RequestFailed(request, error))
            raise error
        if ticket is not None:
            outbound.push(Pending(request, ticket=ticket))
            return None  # queued; the outcome goes to the ticket
        if envelope.is_call:
            outbound.push(Pending(request, envelope=envelope))
            return NOREPLY  # answered by the write loop
        outbound.push(Pending(request))
        return None

    async def on_stats(_message: GetLimiterStats, _envelope: Envelope) -> object:
        return outbound.stats(trio.current_time())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(_watch_bus, subscription, link, outbound, max_retries, bus)
        nursery.start_soon(_write_loop, outbound, connection, link, send_timeout, bus)
        task_status.started()
        try:
            await serve(mailbox, {Submit: on_submit, GetLimiterStats: on_stats},
                        expected=(UnauditedOrder,))
        finally:
            subscription.close()
            nursery.cancel_scope.cancel()


# While the link is down, how often to ask the connection directly rather than wait for
# the bus: an event published while this actor restarted went to nobody.
_LINK_RECHECK = 1.0


@attrs.define
class _Link:
    """Whether the connection can take writes: told by the bus, checked at the source.

    Events are edges; an edge published while this actor was restarting is missed. So a
    wait for the link also asks the connection itself, once a second, whether it is up.
    """

    connection: Address
    up: bool = False
    changed: trio.Event = attrs.Factory(trio.Event)

    def set(self, up: bool) -> None:
        self.up = up
        self.changed.set()
        self.changed = trio.Event()

    async def wait_up(self) -> None:
        while not self.up:
            with trio.move_on_after(_LINK_RECHECK):
                await self.changed.wait()
            if not self.up and await _connection_is_up(self.connection):
                self.set(True)


async def _connection_is_up(connection: Address) -> bool:
    """Whether requests may go out now: connected, and TWS has its link to IB (no 1100)."""
    try:
        status = await connection.call(GetStatus(), timeout=5.0)
    except (ActorCrashed, ActorNotRunning, CallTimeout):
        return False  # not running (yet): down, asked again in a second
    return getattr(status, "state", None) is ConnectionState.CONNECTED


async def _write_loop(
    outbound: OutboundQueue, connection: Address, link: _Link, send_timeout: float, bus: EventBus
) -> None:
    governor = outbound.governor
    while True:
        await outbound.wait_for_work()
        await link.wait_up()
        now = trio.current_time()
        delay = max(governor.delay_until_available(now), outbound.paused_until - now)
        if delay > 0:
            # Sleep, then pop: a cancel that arrived meanwhile goes first.
            await trio.sleep(delay)
            continue
        item = outbound.queue.pop()
        if item.abandoned:
            # The caller was told this request failed (timed out, or the limiter was
            # restarted while holding it): sending it now would surprise them, and for an
            # order invite a duplicate when they retry. It does not go out.
            _give_up(outbound, item, RequestAbandoned(
                f"{type(item.request).__name__} abandoned by its caller before it was sent"), bus)
            await trio.lowlevel.checkpoint()
            continue
        if not governor.try_acquire(now):
            outbound.push(item, front=True)
            await trio.lowlevel.checkpoint()
            continue
        # No checkpoint since the abandoned check: the claim cannot lose the race now.
        item.claim()
        # From pop to recorded outcome the item lives only in this frame: a restart of
        # the limiter (a cancellation) landing in between would lose it. Shielded, and
        # bounded by the send timeout.
        with trio.CancelScope(shield=True):
            try:
                await _send_one(item, outbound, connection, link, send_timeout, bus)
            finally:
                if item.ticket is not None and item.ticket.state is TicketState.CLAIMED:
                    # Only a bug gets here; the caller must not wait for ever.
                    item.settle(DeliveryUnknown("the limiter failed while writing it"))


async def _send_one(
    item: Pending, outbound: OutboundQueue, connection: Address, link: _Link,
    send_timeout: float, bus: EventBus,
) -> None:
    try:
        await connection.call(Send(item.request), timeout=send_timeout)
    except NotConnected:  # certainly not written (also LinkDown, during 1100)
        item.release()
        outbound.push(item, front=True)
        link.set(False)
        return
    except RequestRefused as exc:
        _give_up(outbound, item, exc, bus)
        return
    except (SendFailed, ActorCrashed, ActorNotRunning, CallTimeout) as exc:
        # Delivery unknown. An order is never re-sent on a guess (the order book
        # reconciles with TWS instead); anything else is safe to ask again, once the
        # connection is back.
        if isinstance(item.request, PlaceOrder):
            _give_up(outbound, item, DeliveryUnknown(str(exc)), bus)
        else:
            item.release()
            outbound.push(item, front=True)
        if not isinstance(exc, CallTimeout):
            # The session (or the connection actor) is gone: wait for the bus to say it
            # is back. A mere slow answer says nothing of the kind.
            link.set(False)
        return
    outbound.record_sent(item, trio.current_time())
    item.settle(None)


async def _watch_bus(
    subscription: AsyncIterable[object], link: _Link, outbound: OutboundQueue, max_retries: int,
    bus: EventBus,
) -> None:
    def link_up(_event: object) -> None:
        link.set(True)

    def link_down(_event: object) -> None:
        link.set(False)

    def on_error(event: ev.TwsError) -> None:
        strategy = codes.classify(event.code).strategy
        if strategy is codes.Strategy.BACKOFF_AND_RETRY:
            _on_pacing_violation(outbound, event, max_retries, bus)
        elif strategy is codes.Strategy.WAIT_FOR_RESTORE:
            link.set(False)  # the connection's LinkLost follows; hold traffic from now

    # 1100 (LinkLost) holds traffic until 1101/1102 (LinkRestored), as does a lost socket.
    table: dict[type, Callable[[object], None]] = {
        ConnectionEstablished: link_up, ConnectionRecovered: link_up, LinkRestored: link_up,
        ConnectionLost: link_down, LinkLost: link_down,
        ev.TwsError: on_error,  # type: ignore[dict-item]
    }
    async for event in subscription:
        handler = table.get(type(event))
        if handler is not None:
            handler(event)


def _on_pacing_violation(
    outbound: OutboundQueue, error: ev.TwsError, max_retries: int, bus: EventBus
) -> None:
    now = trio.current_time()
    rate = outbound.governor.on_pacing_violation(now)
    outbound.paused_until = max(outbound.paused_until, now + outbound.retry_delay)
    log.warning("TWS reported a pacing violation (error 100); rate cut to %.1f/s", rate)
    item = outbound.take_rejected(error.req_id, now)
    if item is None:
        return
    item.rejections += 1
    if item.rejections > max_retries:
        _give_up(outbound, item, PacingRejected(
            f"{type(item.request).__name__} rejected for pacing {item.rejections} times"), bus)
        return
    outbound.retried += 1
    outbound.push(item, front=True)


def _give_up(outbound: OutboundQueue, item: Pending, error: Exception, bus: EventBus) -> None:
    outbound.failed += 1
    # A caller that gave up was told so already: dropping its request is routine.
    level = logging.INFO if isinstance(error, RequestAbandoned) else logging.ERROR
    log.log(level, "giving up on %s: %s", type(item.request).__name__, error)
    item.settle(error)
    bus.publish(RequestFailed(item.request, error))
