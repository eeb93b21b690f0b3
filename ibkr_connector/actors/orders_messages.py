"""The orders actor's vocabulary: the calls it serves, the events it publishes, its errors,
and the typed results (positions, margin impact, stats) it hands back.

Kept apart from the actor so user code can depend on the words without the machinery.
Messages and events are frozen values; the live objects (`Trade`) are in
`ibkr_connector.trade`. Events carry quantities and prices for the program that placed the
orders; nothing here is ever logged above DEBUG with them.
"""

from __future__ import annotations

from decimal import Decimal

import attrs
from ibapi.contract import Contract
from ibapi.order import Order

from .._errors import IBKRError
from ..trade import Trade
from .ticket import Ticket

__all__ = [
    "Cancel",
    "CancelRefused",
    "FillReceived",
    "GetExecutions",
    "GetOrderStats",
    "GetPositions",
    "GetTrades",
    "InvalidOrder",
    "Modify",
    "NotOurOrder",
    "OrderCancelled",
    "OrderError",
    "OrderFilled",
    "OrderImpact",
    "OrderNotModifiable",
    "OrderReconciled",
    "OrderRejected",
    "OrderStats",
    "OrderStatusChanged",
    "Place",
    "PlaceVerticalSpread",
    "Position",
    "Reconcile",
    "ReconcileReport",
    "WhatIf",
]


class OrderError(IBKRError):
    """Root of the errors the orders actor raises on purpose."""


class InvalidOrder(OrderError, ValueError):
    """The order is malformed (quantity, price, tick, strikes, right...); nothing was sent."""


class NotOurOrder(OrderError, LookupError):
    """The trade is not this runtime's to change: another client's order (read-only), or an
    order id the book does not hold."""


class OrderNotModifiable(OrderError):
    """The order cannot be modified now: it is finished, or TWS has not acknowledged it yet
    (its fate is not known; a modification could be taken for a new order)."""


class CancelRefused(OrderError):
    """TWS refused the cancel (10147 unknown order, 10148 already done, 161...); the order
    keeps the state TWS reports."""

    def __init__(self, order_id: int, code: int, meaning: str) -> None:
        super().__init__(f"cancel of order {order_id} refused ({code}: {meaning})")
        self.order_id, self.code, self.meaning = order_id, code, meaning


# --- calls --------------------------------------------------------------------------------


@attrs.frozen
class Place:
    """Call: place ``order`` for ``contract``; reply with the `Trade` once it is written."""

    contract: Contract = attrs.field(eq=False)
    order: Order = attrs.field(eq=False)
    #: The end caller's claim ticket (see `Ticket.settled`): ``Runtime.place_order`` passes
    #: one so that a call that raised never reached the wire.
    ticket: Ticket | None = attrs.field(default=None, eq=False)


@attrs.frozen
class PlaceVerticalSpread:
    """Call: buy the ``long_strike`` leg, sell the ``short_strike`` leg, as one BAG order;
    reply with the `Trade`. ``limit_price`` is the net per spread (positive: a debit)."""

    symbol: str
    expiry: str
    right: str
    long_strike: float
    short_strike: float
    quantity: int
    order_type: str = "LMT"
    limit_price: float | None = None
    tif: str = "DAY"
    exchange: str = "SMART"
    currency: str = "USD"
    ticket: Ticket | None = attrs.field(default=None, eq=False)


@attrs.frozen
class Modify:
    """Call: send ``trade``'s order again under its id with a new limit price and/or
    quantity; reply with the same `Trade` once the modification is written."""

    trade: Trade = attrs.field(eq=False)
    limit_price: float | None = None
    quantity: Decimal | int | None = None


@attrs.frozen
class Cancel:
    """Call: cancel ``trade``; reply (the `Trade`) once TWS acknowledged the cancel, or fail
    with `CancelRefused`."""

    trade: Trade = attrs.field(eq=False)


@attrs.frozen
class WhatIf:
    """Call: ask TWS what ``target`` would do to margin and commission; reply with an
    `OrderImpact`. Nothing is placed (the preview spends an order id)."""

    target: Place | PlaceVerticalSpread


@attrs.frozen
class GetPositions:
    """Call: reply with a tuple of `Position` (the net of the executions seen)."""


@attrs.frozen
class GetExecutions:
    """Call: reply with a tuple of every distinct `ibkr_connector.trade.Fill` seen."""


@attrs.frozen
class GetTrades:
    """Call: reply with a tuple of every `Trade` in the book (own and read-only)."""


@attrs.frozen
class GetOrderStats:
    """Call: reply with `OrderStats`."""


@attrs.frozen
class Reconcile:
    """Call: bring the book in line with TWS now; reply with a `ReconcileReport`."""


# --- results -----------------------------------------------------------------------------


@attrs.frozen
class OrderImpact:
    """TWS's whatIf answer: margins before / change / after, and the commission estimate.

    None where TWS gave no number. ``warning`` is TWS's warning text ("" if none)."""

    init_margin_before: float | None
    maint_margin_before: float | None
    equity_with_loan_before: float | None
    init_margin_change: float | None
    maint_margin_change: float | None
    equity_with_loan_change: float | None
    init_margin_after: float | None
    maint_margin_after: float | None
    equity_with_loan_after: float | None
    commission: float | None
    min_commission: float | None
    max_commission: float | None
    commission_currency: str
    warning: str


@attrs.frozen
class Position:
    """The net of the executions seen for one instrument in one account."""

    account: str
    con_id: int
    symbol: str
    sec_type: str
    quantity: Decimal
    avg_price: float | None


@attrs.frozen
class OrderStats:
    """Order ack latency (place -> TWS's first answer) and the book by status."""

    ack_latency_p50_ms: float | None
    ack_latency_p99_ms: float | None
    by_status: dict[str, int] = attrs.field(eq=False)
    placed: int
    reconciliations: int


@attrs.frozen
class ReconcileReport:
    """What one reconciliation found: orders TWS reported open, executions recovered (new
    ones only), and the orders of unknown delivery it resolved."""

    open_orders: int
    new_executions: int
    adopted: tuple[int, ...]
    not_placed: tuple[int, ...]


# --- events on the bus ----------------------------------------------------------------------


@attrs.frozen
class OrderStatusChanged:
    order_id: int
    client_id: int
    status: str
    filled: Decimal
    remaining: Decimal


@attrs.frozen
class FillReceived:
    """A new execution (an execId seen for the first time)."""

    order_id: int
    exec_id: str
    con_id: int
    side: str
    shares: Decimal
    price: float


@attrs.frozen
class OrderFilled:
    order_id: int
    filled: Decimal
    avg_fill_price: float | None


@attrs.frozen
class OrderCancelled:
    order_id: int
    filled: Decimal


@attrs.frozen
class OrderRejected:
    """TWS rejected ``order_id``: its code and the table's ``meaning``; ``tws_reason`` is
    TWS's own text, kept out of ``repr`` (and so out of logs)."""

    order_id: int
    code: int
    meaning: str
    tws_reason: str = attrs.field(repr=False)


@attrs.frozen
class OrderReconciled:
    """An order whose delivery was unknown is resolved from TWS's answer: ``found`` (TWS
    has it: adopted) or not (``NotPlaced``)."""

    order_id: int
    found: bool
