"""What became of each order intent: the ``order_outcome`` records, and the start-up scan.

An intent record says an order (or a cancel) was *about to* go to TWS; on its own it does
not say whether it did. So every intent gets exactly one outcome record naming it by seq:

- ``written``: the whole request went to the socket;
- ``abandoned``: its caller gave up before the limiter claimed it, so it was never sent;
- ``refused``: never sent (ibapi's checks, pacing retries exhausted, the limiter's gate);
- ``delivery_unknown``: the write broke off; only reconciliation with TWS can tell;
- ``unresolved_at_restart``: the process died (kill -9, power loss) before the outcome
  was written, so nobody knows; the audit actor writes this for every such intent when
  the runtime starts again. Like ``delivery_unknown`` it asks for reconciliation.

The first four are written by whoever submitted the intent (the orders actor,
``Runtime.submit``). The scan (:func:`scan_trail`, synchronous: run it in a thread) also
finds the highest order id any intent ever used, because TWS's ``nextValidId`` after a
restart may hand out ids the trail already holds: the runtime takes the next id as the
larger of the two.
"""

from __future__ import annotations

import enum
import os
from typing import Any

import attrs
import trio

from .audit_trail import read_audit_records

__all__ = [
    "INTENT_KINDS",
    "ORDER_OUTCOME",
    "OpenIntent",
    "OrderOutcome",
    "TrailScan",
    "outcome_fields",
    "outcome_of_submit",
    "scan_trail",
]

ORDER_OUTCOME = "order_outcome"
"""The record kind of an outcome."""

INTENT_KINDS = frozenset({"order_intent", "cancel_intent"})
"""The record kinds that each need an outcome: both go to the wire."""


class OrderOutcome(enum.Enum):
    """What became of an intent; see the module docstring."""

    WRITTEN = "written"
    ABANDONED = "abandoned"
    REFUSED = "refused"
    DELIVERY_UNKNOWN = "delivery_unknown"
    UNRESOLVED_AT_RESTART = "unresolved_at_restart"


def outcome_of_submit(error: BaseException | None) -> OrderOutcome:
    """What a submit's result says about the wire (see ``limiter.submit_through``): it
    returned (written); it broke off mid-write (delivery unknown); it timed out, was
    cancelled or found its caller gone before the limiter claimed it, or the limiter was not
    running (abandoned: never written); anything else refused it before the wire."""
    # Imported here: the limiter depends on much of the runtime; this module on none of it.
    from ..supervisor import SupervisorError
    from .limiter import DeliveryUnknown, RequestAbandoned

    if error is None:
        return OrderOutcome.WRITTEN
    if isinstance(error, DeliveryUnknown):
        return OrderOutcome.DELIVERY_UNKNOWN
    if isinstance(error, trio.Cancelled | SupervisorError | RequestAbandoned):
        return OrderOutcome.ABANDONED
    return OrderOutcome.REFUSED


def _order_id(value: object) -> int | None:
    return value if type(value) is int else None


@attrs.frozen
class OpenIntent:
    """An intent record that has no outcome record (yet)."""

    seq: int
    order_id: int | None
    kind: str


def outcome_fields(intent: OpenIntent | int, order_id: int | None,
                   outcome: OrderOutcome) -> dict[str, Any]:
    """The fields of the ``order_outcome`` record for the intent with seq ``intent``."""
    seq = intent.seq if isinstance(intent, OpenIntent) else intent
    return {"intent_seq": seq, "order_id": order_id, "outcome": outcome.value}


@attrs.frozen
class TrailScan:
    """What a trail holds about intents, read once at start."""

    max_order_id: int | None
    """The highest order id any intent in the trail used (None: no intent yet)."""
    open_intents: tuple[OpenIntent, ...]
    """Intents with no outcome record, oldest first."""


def scan_trail(path: str | os.PathLike[str]) -> TrailScan:
    """Read the whole trail once: the highest intent order id and the intents left open.

    A missing file is an empty trail. A torn last line is skipped (the writer repairs it);
    any other unreadable line raises :class:`CorruptTrail`: a corrupted trail might hide
    the highest order id, and guessing past it could send an id twice.
    """
    max_order_id: int | None = None
    open_intents: dict[int, OpenIntent] = {}
    try:
        for record in read_audit_records(path):
            if record.kind in INTENT_KINDS:
                order_id = _order_id(record.fields.get("order_id"))
                if order_id is not None and (max_order_id is None or order_id > max_order_id):
                    max_order_id = order_id
                open_intents[record.seq] = OpenIntent(record.seq, order_id, record.kind)
            elif record.kind == ORDER_OUTCOME:
                intent_seq = record.fields.get("intent_seq")
                if type(intent_seq) is int:
                    open_intents.pop(intent_seq, None)
    except FileNotFoundError:
        return TrailScan(None, ())
    return TrailScan(max_order_id, tuple(open_intents.values()))
