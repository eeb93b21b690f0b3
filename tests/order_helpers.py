"""Helpers of the order tests: orders, the simulator's view of placements, waiting on a trade."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import trio
from ibapi.order import Order

from ibkr_connector.simulator import TwsSimulator
from ibkr_connector.trade import Trade

SPY = 756733  # the simulator's SPY conId
PLACE_ORDER = 3  # the wire's message id of placeOrder


def order(action: str, qty: int, order_type: str = "MKT", price: float | None = None) -> Order:
    o = Order()
    o.action, o.totalQuantity, o.orderType = action, Decimal(qty), order_type
    if price is not None:
        o.lmtPrice = price
    return o


def placed(sim: TwsSimulator) -> list[int]:
    """Order ids of every placeOrder the simulator received (whatIf included)."""
    return [int(m.fields[0]) for m in sim.received if m.msg_id == PLACE_ORDER]


async def until(trade: Trade, predicate: Callable[[Trade], bool], timeout: float = 10) -> None:
    """Wait (Trio time) until ``predicate(trade)`` holds."""
    with trio.fail_after(timeout):
        if predicate(trade):
            return
        async for _ in trade.updates():
            if predicate(trade):
                return
    raise AssertionError(f"trade ended {trade.status} without the awaited change")
