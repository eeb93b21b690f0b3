"""The audit actor: the one writer of the audit trail, and its reader of order events.

Whoever sends an order (the orders actor, or ``Runtime.submit`` for a raw request) asks it
to write an ``order_intent`` / ``cancel_intent`` record before the request goes to the
limiter (the limiter refuses an order without one), and then the intent's
``order_outcome`` (:class:`AppendOutcome`). Order status changes and executions reach it from a bus
subscription the runtime owns. The file itself (:mod:`.audit_trail`) is synchronous I/O;
the runtime hands this actor an ``offload`` that runs it inline while writes are fast and
in a worker thread once one is not (:mod:`.file_work`: a slow disk blocks the event loop
at most once), and a write that has started always finishes and is answered.

Two promises rest on it:

- **no order event is lost.** An event is taken from the subscription only after its
  record is fsync'd (peek, write, commit): if the write fails the actor crashes, the
  event stays at the head of the runtime-owned subscription, and the next incarnation
  (which reopens and repairs the file) writes it.
- **every intent has an outcome.** On the runtime's first start the actor scans the
  trail and writes ``unresolved_at_restart`` for each intent a killed process left
  without one (:mod:`.audit_outcomes`); :class:`GetTrailSummary` then tells the runtime
  the highest order id ever used, so that no id is handed out twice.

Everything in :mod:`.audit_trail` and :mod:`.audit_outcomes` is re-exported here.
"""

from __future__ import annotations

import datetime
import functools
import logging
import math
import os
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
import trio

from ..protocol import events as ev
from ..supervisor import Envelope, Mailbox, serve
from .audit_outcomes import (
    INTENT_KINDS,
    ORDER_OUTCOME,
    OpenIntent,
    OrderOutcome,
    TrailScan,
    outcome_fields,
    scan_trail,
)
from .audit_trail import (
    AuditRecord,
    AuditTrail,
    AuditTrailError,
    CorruptTrail,
    UnstorableRecord,
    frozen_mapping,
    read_audit_records,
    redact,
)
from .bus import Subscription

__all__ = [
    "INTENT_KINDS",
    "ORDER_OUTCOME",
    "AppendAudit",
    "AppendOutcome",
    "AuditRecord",
    "AuditTrail",
    "AuditTrailError",
    "CorruptTrail",
    "GetTrailSummary",
    "OpenIntent",
    "OrderOutcome",
    "TrailMemory",
    "TrailScan",
    "TrailSummary",
    "UnstorableRecord",
    "outcome_fields",
    "read_audit_records",
    "redact",
    "run_audit",
    "scan_trail",
]

logger = logging.getLogger(__name__)


@attrs.frozen
class AppendAudit:
    """Call: append a record; the reply, an :class:`AuditRecord`, comes after fsync."""

    kind: str
    fields: Mapping[str, Any] = attrs.field(factory=dict, converter=frozen_mapping)


@attrs.frozen
class AppendOutcome:
    """Call or cast: write what became of the intent whose record has seq ``intent_seq``.

    The reply to a call is the fsync'd ``order_outcome`` :class:`AuditRecord`. The orders
    actor casts it (its caller need not wait for this record); a cast that finds the
    mailbox full raises ``MailboxFull`` at once, and the next start settles the intent."""

    intent_seq: int = attrs.field(validator=attrs.validators.and_(
        attrs.validators.instance_of(int), attrs.validators.ge(1)))
    order_id: int | None = attrs.field(
        validator=attrs.validators.optional(attrs.validators.instance_of(int)))
    outcome: OrderOutcome = attrs.field(validator=attrs.validators.instance_of(OrderOutcome))


@attrs.frozen
class GetTrailSummary:
    """Call: reply is a :class:`TrailSummary`."""


@attrs.frozen
class TrailSummary:
    """What the trail says about order ids and intents, as of this runtime's start."""

    max_order_id: int | None
    """The highest order id any intent ever used, this run included (None: none yet).
    The runtime's next order id must be above it, whatever TWS's ``nextValidId`` says."""
    settled_at_start: tuple[OpenIntent, ...]
    """Intents a previous run left without an outcome; each got ``unresolved_at_restart``
    at this start. They may or may not have reached TWS: reconcile them."""


@attrs.define
class TrailMemory:
    """What the audit actor learnt at the runtime's start, kept across its restarts.

    Created by the runtime, like the subscription of order events. Only the first
    incarnation scans the trail and settles intents left open: a restarted one must not
    settle intents of this very run whose outcome is still on its way from ``submit``.
    ``last_status`` is each order's last *written* (status, filled, remaining), so that
    TWS's repeats are not recorded again after a restart either.
    """

    summary: TrailSummary | None = None
    last_status: dict[int, tuple[str, str, str]] = attrs.Factory(dict)

    def note(self, record: AuditRecord) -> None:
        """Keep ``max_order_id`` true as this run's intents are written."""
        summary = self.summary
        order_id = record.fields.get("order_id")
        if summary is None or record.kind not in INTENT_KINDS or type(order_id) is not int:
            return
        if summary.max_order_id is None or order_id > summary.max_order_id:
            self.summary = attrs.evolve(summary, max_order_id=order_id)


def _open_trail(
    path: Path, clock: Callable[[], datetime.datetime] | None, scan_first: bool
) -> tuple[AuditTrail, TrailSummary | None]:
    """Open (and repair) the trail; on the run's first start, settle intents left open."""
    trail = AuditTrail(path, clock=clock)
    if not scan_first:
        return trail, None
    try:
        scan = scan_trail(path)
        for intent in scan.open_intents:
            trail.append(ORDER_OUTCOME, intent_kind=intent.kind, **outcome_fields(
                intent, intent.order_id, OrderOutcome.UNRESOLVED_AT_RESTART))
    except BaseException:
        trail.close()
        raise
    if scan.open_intents:
        logger.warning(
            "audit trail %s: %d intent(s) of an earlier run had no outcome (order ids %s); "
            "recorded as unresolved_at_restart: reconcile them with TWS",
            path, len(scan.open_intents), [i.order_id for i in scan.open_intents],
        )
    return trail, TrailSummary(scan.max_order_id, scan.open_intents)


async def run_audit(
    mailbox: Mailbox,
    trail_path: str | os.PathLike[str],
    *,
    status_feed: Subscription[object] | None = None,
    memory: TrailMemory | None = None,
    clock: Callable[[], datetime.datetime] | None = None,
    offload: Callable[..., Awaitable[Any]] = trio.to_thread.run_sync,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Actor shell: open (and repair) the trail, then serve appends and the summary.

    ``offload`` runs the blocking file work (the runtime's `AdaptiveFileWork`: inline
    while fast, else a worker thread; a single-thread simulation runs it inline, see
    ``open_runtime``'s ``transport``).

    A reply is sent only after the record is fsync'd, so an acknowledged intent is on disk.
    Appends run one at a time through ``offload``, never abandoned: on cancellation a
    write already started completes and is answered, and appends still queued stay in the
    tree-owned mailbox for the next incarnation. A record that cannot be stored
    (:class:`UnstorableRecord`) fails only its caller; an OSError (or a broken trail)
    crashes the actor, so that the restart reopens and repairs the file.

    ``status_feed`` (a bus subscription to order events, owned by the runtime so that it
    keeps queuing while this actor restarts) adds one ``order_status`` record per change of
    an order's status and one ``execution`` record per fill. ``memory`` (owned by the
    runtime too) makes only the run's first start settle intents; without it, every start
    is a first start.
    """
    memory = memory if memory is not None else TrailMemory()
    opener = functools.partial(_open_trail, Path(trail_path), clock, memory.summary is None)
    trail, summary = await offload(opener)
    if summary is not None:
        memory.summary = summary
    lock = trio.Lock()  # one append at a time: the trail's seq is a single sequence

    async def append(kind: str, fields: Mapping[str, Any]) -> AuditRecord:
        async with lock:
            call = functools.partial(trail.append, kind, **fields)
            record: AuditRecord = await offload(call)
        memory.note(record)
        return record

    async def on_append(message: AppendAudit, envelope: Envelope) -> AuditRecord:
        return await append(message.kind, message.fields)

    async def on_outcome(message: AppendOutcome, envelope: Envelope) -> AuditRecord:
        return await append(ORDER_OUTCOME, outcome_fields(
            message.intent_seq, message.order_id, message.outcome))

    async def on_summary(message: GetTrailSummary, envelope: Envelope) -> TrailSummary:
        assert memory.summary is not None  # set by the first incarnation before serving
        return memory.summary

    try:
        async with trio.open_nursery() as nursery:
            if status_feed is not None:
                nursery.start_soon(
                    _record_order_events, status_feed, append, memory.last_status)
            task_status.started()
            await serve(
                mailbox,
                {AppendAudit: on_append, AppendOutcome: on_outcome,
                 GetTrailSummary: on_summary},
                expected=(UnstorableRecord,),
            )
            nursery.cancel_scope.cancel()
    finally:
        trail.close()


def _finite(value: object) -> object:
    # TWS sends floats; a NaN or infinity cannot be JSON and must not make a status
    # unrecordable (which would block the feed behind it), so it is kept as its text.
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _order_event_record(event: object) -> tuple[str, dict[str, Any]] | None:
    if isinstance(event, ev.OrderStatus):
        return "order_status", {
            "order_id": event.order_id, "status": event.status,
            "filled": str(event.filled), "remaining": str(event.remaining),
            "avg_fill_price": _finite(event.avg_fill_price), "perm_id": event.perm_id,
            "client_id": event.client_id, "why_held": event.why_held,
        }
    if isinstance(event, ev.ExecDetails):
        execution = event.execution
        return "execution", {
            "order_id": getattr(execution, "orderId", None),
            "exec_id": getattr(execution, "execId", ""),
            "account": getattr(execution, "acctNumber", ""),
            "side": getattr(execution, "side", ""),
            "shares": str(getattr(execution, "shares", "")),
            "price": _finite(getattr(execution, "price", None)),
            "time": getattr(execution, "time", ""),
        }
    return None


async def _record_order_events(
    feed: Subscription[object],
    append: Callable[[str, Mapping[str, Any]], Awaitable[AuditRecord]],
    last: dict[int, tuple[str, str, str]],
) -> None:
    """Turn order events from the bus into audit records, one per change.

    Peek, write, commit: an event leaves the feed only once its record is on disk, so a
    crash in between hands it to the next incarnation. TWS repeats an unchanged
    orderStatus freely (every reconnect, every openOrder request); only a change of
    (status, filled, remaining) from ``last`` is a new fact worth a record. ``last`` is
    updated only after the write, so a status whose write failed is never taken for a
    repeat of itself when it is delivered again.
    """
    while True:
        try:
            event = await feed.peek()
        except trio.EndOfChannel:
            return
        change: tuple[int, tuple[str, str, str]] | None = None
        if isinstance(event, ev.OrderStatus):
            change = event.order_id, (event.status, str(event.filled), str(event.remaining))
            if last.get(change[0]) == change[1]:
                feed.commit()
                continue
        record = _order_event_record(event)
        if record is not None:
            kind, fields = record
            try:
                await append(kind, fields)
            except UnstorableRecord as exc:
                # Stopping here would block every later event behind this one.
                logger.error("audit: a %s event could not be recorded as it is (%s)",
                             type(event).__name__, type(exc.__cause__).__name__)
                await append("unrecordable_event", {
                    "event": type(event).__name__, "order_id": fields.get("order_id"),
                    "error": str(exc)})
        if change is not None:
            last[change[0]] = change[1]
        feed.commit()
