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
- *Error 100 slows us down.* The governor cuts the rate, the rejected request goes back to
  the head of its queue, and after ``max_retries`` rejections it is failed with a typed
  `PacingRejected` (published as `RequestFailed` on the bus).
- *A submit returns when the request is on the wire*, not when TWS answers: most TWS requests
  have no acknowledgement, and answers arrive as events.
- *A submit that raised did not happen.* A queued request whose caller stopped waiting (its
  call timed out, or the limiter restarted while holding it) is dropped, not sent late: a
  stale order must not fire after a long outage, nor twice when its caller retries.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

import attrs
import trio
import trio.lowlevel

from ..protocol import events as ev
from ..protocol.client import NotConnected, RequestRefused, SendFailed
from ..protocol.requests import CancelOrder, PlaceOrder, Request
from ..supervisor import ActorCrashed, ActorNotRunning, Address, CallTimeout, Envelope, Mailbox
from .bus import EventBus
from .connection import (
    ConnectionEstablished,
    ConnectionLost,
    ConnectionRecovered,
    IsConnected,
    Send,
)
from .pacing import PacingGovernor, SlidingWindowCounter
from .request_queue import RequestQueue

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
]

log = logging.getLogger(__name__)

# An error 100 is matched to a request sent at most this long before it arrived.
_PACING_MATCH_WINDOW = 2.0


class PacingRejected(RuntimeError):
    """TWS rejected the request for pacing (error 100) more than ``max_retries`` times."""


class DeliveryUnknown(RuntimeError):
    """The connection failed while writing an order; whether TWS has it is unknown.

    Orders are never re-sent blindly: the order book reconciles with TWS instead.
    """


class RequestAbandoned(RuntimeError):
    """The caller stopped waiting before the request was sent, so it was not sent."""


class UnauditedOrder(RuntimeError):
    """An order request arrived without the audit record that must precede it on the wire."""


@attrs.frozen
class Submit:
    """Call (or cast): queue *request*; a call is answered once it is written.

    An order request (place, modify, cancel) must carry ``audit_seq``: the sequence number
    of its fsync'd audit record. The limiter refuses one without, so no path to the wire,
    present or future, can skip the audit trail.
    """

    request: Request
    audit_seq: int | None = None


@attrs.frozen
class GetLimiterStats:
    """Call: reply with `LimiterStats`."""


@attrs.frozen
class RequestFailed:
    """Published on the bus when a request is given up for good."""

    request: Request
    error: Exception


@attrs.frozen
class LimiterStats:
    queued: int
    sent: int
    rate_now: float  # messages sent in the last second
    allowed_rate: float
    max_in_window: int
    pacing_violations: int
    retried: int
    failed: int


@attrs.define(eq=False)
class _Pending:
    request: Request
    envelope: Envelope | None
    rejections: int = 0
    sent_at: float | None = None


class OutboundQueue:
    """The limiter's queue and counters, owned by the runtime so a restart keeps them."""

    def __init__(self, governor: PacingGovernor, retry_delay: float = 1.0) -> None:
        self.governor = governor
        self.retry_delay = retry_delay
        self.queue: RequestQueue[_Pending] = RequestQueue()
        self.window = SlidingWindowCounter(window=1.0)
        self.recent: deque[_Pending] = deque()
        self.retried = 0
        self.failed = 0
        # After an error 100, send nothing for `retry_delay` (1 s by default: TWS's window,
        # which counts the messages it rejected too, so re-sending at once would only
        # prolong the violation).
        self.paused_until = 0.0
        self._wake = trio.Event()

    def push(self, item: _Pending, *, front: bool = False) -> None:
        priority = item.request.priority
        if front:
            self.queue.push_front(item, priority)
        else:
            self.queue.push(item, priority)
        self._wake.set()

    async def wait_for_work(self) -> None:
        while not self.queue:
            self._wake = trio.Event()
            await self._wake.wait()

    def stats(self, now: float) -> LimiterStats:
        return LimiterStats(
            queued=len(self.queue),
            sent=self.window.total,
            rate_now=self.window.count(now),
            allowed_rate=self.governor.current_rate(now),
            max_in_window=self.window.max_in_any_window(),
            pacing_violations=self.governor.violations,
            retried=self.retried,
            failed=self.failed,
        )


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
        (ConnectionEstablished, ConnectionRecovered, ConnectionLost, ev.TwsError), capacity=10_000
    )
    link.set(await _connection_is_up(connection))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_watch_bus, subscription, link, outbound, max_retries, bus)
        nursery.start_soon(_write_loop, outbound, connection, link, send_timeout, bus)
        task_status.started()
        try:
            async for envelope in mailbox:
                message = envelope.message
                if isinstance(message, Submit):
                    if is_order_request(message.request) and message.audit_seq is None:
                        _refuse_unaudited(message.request, envelope, bus)
                        continue
                    outbound.push(_Pending(message.request, envelope if envelope.is_call else None))
                elif isinstance(message, GetLimiterStats):
                    envelope.reply(outbound.stats(trio.current_time()))
                else:
                    envelope.fail(TypeError(f"limiter got an unknown message {message!r}"))
        finally:
            subscription.close()
            nursery.cancel_scope.cancel()


async def _connection_is_up(connection: Address) -> bool:
    try:
        return bool(await connection.call(IsConnected(), timeout=5.0))
    except (ActorCrashed, CallTimeout):
        return False
    except Exception:  # noqa: BLE001 - connection not running yet: treat as down
        return False


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
        if not governor.try_acquire(now):
            await trio.lowlevel.checkpoint()
            continue
        item = outbound.queue.pop()
        # From pop to recorded outcome the item lives only in this frame: a restart of
        # the limiter (a cancellation) landing in between would lose it. Shielded, and
        # bounded by the send timeout.
        with trio.CancelScope(shield=True):
            await _send_one(item, outbound, connection, link, send_timeout, bus)


async def _send_one(
    item: _Pending, outbound: OutboundQueue, connection: Address, link: _Link,
    send_timeout: float, bus: EventBus,
) -> None:
    if item.envelope is not None and item.envelope.abandoned:
        # The caller was told this request failed (timed out, or the limiter was
        # restarted while holding it): sending it now would surprise them, and for an
        # order invite a duplicate when they retry. It does not go out.
        _give_up(outbound, item, RequestAbandoned(
            f"{type(item.request).__name__} abandoned by its caller before it was sent"), bus)
        return
    try:
        await connection.call(Send(item.request), timeout=send_timeout)
    except NotConnected:
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
            outbound.push(item, front=True)
        if not isinstance(exc, CallTimeout):
            # The session (or the connection actor) is gone: wait for the bus to say it
            # is back. A mere slow answer says nothing of the kind.
            link.set(False)
        return
    now = trio.current_time()
    item.sent_at = now
    outbound.window.record(now)
    outbound.recent.append(item)
    _forget_old(outbound.recent, now)
    if item.envelope is not None:
        item.envelope.reply(None)
        item.envelope = None


def _forget_old(recent: deque[_Pending], now: float) -> None:
    while recent:
        sent_at = recent[0].sent_at
        if sent_at is None or now - sent_at <= _PACING_MATCH_WINDOW:
            break
        recent.popleft()


async def _watch_bus(
    subscription: Any, link: _Link, outbound: OutboundQueue, max_retries: int, bus: EventBus
) -> None:
    async for event in subscription:
        if isinstance(event, ConnectionEstablished | ConnectionRecovered):
            link.set(True)
        elif isinstance(event, ConnectionLost):
            link.set(False)
        elif isinstance(event, ev.TwsError) and event.code == 100:
            _on_pacing_violation(outbound, event, max_retries, bus)


def _on_pacing_violation(
    outbound: OutboundQueue, error: ev.TwsError, max_retries: int, bus: EventBus
) -> None:
    now = trio.current_time()
    rate = outbound.governor.on_pacing_violation(now)
    outbound.paused_until = max(outbound.paused_until, now + outbound.retry_delay)
    log.warning("TWS reported a pacing violation (error 100); rate cut to %.1f/s", rate)
    _forget_old(outbound.recent, now)
    item = _match(outbound.recent, error.req_id)
    if item is None:
        return
    outbound.recent.remove(item)
    item.rejections += 1
    if item.rejections > max_retries:
        _give_up(outbound, item, PacingRejected(
            f"{type(item.request).__name__} rejected for pacing {item.rejections} times"), bus)
        return
    outbound.retried += 1
    outbound.push(item, front=True)


def _match(recent: deque[_Pending], req_id: int) -> _Pending | None:
    """The request an error 100 refers to: by id, else the latest one that has no id."""
    for item in reversed(recent):
        rid = item.request.request_id
        if (req_id >= 0 and rid == req_id) or (req_id < 0 and rid is None):
            return item
    return None


def is_order_request(request: Request) -> bool:
    """Requests that change orders at TWS: each needs an audit record first."""
    return isinstance(request, PlaceOrder | CancelOrder)


def _refuse_unaudited(request: Request, envelope: Envelope, bus: EventBus) -> None:
    error = UnauditedOrder(
        f"{type(request).__name__} has no audit record; submit orders through the runtime")
    log.error("refused an order request without an audit record")
    if envelope.is_call:
        envelope.fail(error)
    else:
        bus.publish(RequestFailed(request, error))


def _give_up(outbound: OutboundQueue, item: _Pending, error: Exception, bus: EventBus) -> None:
    outbound.failed += 1
    log.error("giving up on %s: %s", type(item.request).__name__, error)
    if item.envelope is not None:
        item.envelope.fail(error)
        item.envelope = None
    bus.publish(RequestFailed(item.request, error))
