"""Test helpers: an event recorder standing in for the bus (it is one: a list plus a wake-up)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import trio
from ibapi.contract import Contract

from ibkr_connector.protocol.client import session_threads as our_threads  # noqa: F401

T = TypeVar("T")

#: How long an order takes to write under the `slow_order_writes` fixture (virtual s).
SLOW_ORDER_WRITE = 3.0


class Recorder:
    """An `emit` callable that keeps every event and lets a test wait for one."""

    def __init__(self) -> None:
        self.events: list[object] = []
        self._changed = trio.Event()

    def __call__(self, event: object) -> None:
        self.events.append(event)
        self._changed.set()
        self._changed = trio.Event()

    def of(self, kind: type[T]) -> list[T]:
        return [e for e in self.events if isinstance(e, kind)]

    async def wait_for(self, kind: type[T], predicate: Callable[[T], bool] = lambda _: True,
                       *, timeout: float = 10.0, after: int = 0) -> T:
        with trio.fail_after(timeout):
            while True:
                for event in self.events[after:]:
                    if isinstance(event, kind) and predicate(event):
                        return event
                await self._changed.wait()


def spy_stock() -> Contract:
    """A plain stock contract the simulator accepts for market data."""
    contract = Contract()
    contract.symbol, contract.secType = "SPY", "STK"
    contract.exchange, contract.currency = "SMART", "USD"
    return contract
