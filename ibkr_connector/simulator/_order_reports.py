"""What the simulated TWS reports about orders and executions it already holds.

Pure functions over the order engine's snapshots (``OrderEngine.orders()`` and
``fills()``): the answers to ``reqOpenOrders``, ``reqAllOpenOrders``, the open-order
download at connect, ``reqCompletedOrders`` and ``reqExecutions``. Kept apart from the
engine because they change nothing: a report is a view, never a state transition.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable

from ibkr_connector.simulator._order_types import (
    DONE_STATES,
    CommissionMsg,
    CompletedOrderMsg,
    CompletedOrdersEndMsg,
    ExecDetailsEndMsg,
    ExecDetailsMsg,
    Fill,
    Notice,
    OpenOrderEndMsg,
    OpenOrderMsg,
    OrderStatusMsg,
    OrderView,
)
from ibkr_connector.simulator._order_wire import ExecutionFilter

__all__ = ["completed_orders", "executions", "open_orders"]


def open_orders(orders: Iterable[OrderView], client_id: int, *, all_clients: bool = False,
                end: bool = True) -> list[Notice]:
    """``reqOpenOrders`` (this client's), ``reqAllOpenOrders`` (every client's) and the
    download at connect (without the end marker): openOrder + orderStatus per open order."""
    notices: list[Notice] = []
    for view in orders:
        if view.status in DONE_STATES or not (all_clients or view.client_id == client_id):
            continue
        notices += [Notice(client_id, OpenOrderMsg(view)), Notice(client_id,
                                                                OrderStatusMsg(view))]
    return notices + ([Notice(client_id, OpenOrderEndMsg())] if end else [])


def completed_orders(orders: Iterable[OrderView], client_id: int) -> list[Notice]:
    """``reqCompletedOrders``: every finished order of the day (all clients)."""
    done = [view for view in orders if view.status in DONE_STATES]
    return ([Notice(client_id, CompletedOrderMsg(v)) for v in done]
            + [Notice(client_id, CompletedOrdersEndMsg())])


def executions(fills: Iterable[Fill], client_id: int, req_id: int,
               flt: ExecutionFilter) -> list[Notice]:
    """``reqExecutions``: the client's own executions (a non-master client sees no
    others) matching ``flt``, each followed by its commission report, then the end."""
    since = _filter_time(flt.time)
    side = {"BUY": "BOT", "SELL": "SLD"}.get(flt.side.upper(), flt.side.upper())
    notices: list[Notice] = []
    for fill in fills:
        if (fill.client_id != client_id
                or (flt.client_id and fill.client_id != flt.client_id)
                or (flt.account and fill.account != flt.account)
                or (flt.symbol and fill.contract.symbol != flt.symbol)
                or (flt.sec_type and fill.contract.sec_type != flt.sec_type)
                or (side and fill.side != side)
                or (since is not None and fill.timestamp < since)):
            continue
        notices += [Notice(client_id, ExecDetailsMsg(req_id, fill)),
                    Notice(client_id, CommissionMsg(fill))]
    return notices + [Notice(client_id, ExecDetailsEndMsg(req_id))]


def _filter_time(text: str) -> float | None:
    """An execution filter's time ("YYYYMMDD HH:MM:SS [TZ]" or "YYYYMMDD-HH:MM:SS", UTC
    assumed for any zone) as Unix seconds; None when absent or unreadable."""
    text = text.strip()
    if not text:
        return None
    digits = text.replace("-", " ").split()
    try:
        stamp = datetime.datetime.strptime(" ".join(digits[:2]), "%Y%m%d %H:%M:%S")
    except ValueError:
        return None
    return stamp.replace(tzinfo=datetime.UTC).timestamp()
