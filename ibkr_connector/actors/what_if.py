"""A whatIf preview in flight: TWS answers it with one ``openOrder`` whose order state
carries margins and commission (as text), or with an error for its order id.

The orders actor registers a `PendingWhatIf` before the preview goes to the wire, so the
answer is never mistaken for an order: a preview never enters the book.
"""

from __future__ import annotations

import math
from typing import Any

import trio

from .._errors import CallTimeout
from .orders_messages import OrderImpact

__all__ = ["PendingWhatIf", "impact_of"]


def _number(value: Any) -> float | None:
    """TWS sends margins as text ("" or a sentinel when unknown) and commissions as
    doubles (``UNSET_DOUBLE`` when unknown)."""
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and abs(number) < 1e300 else None


def impact_of(state: Any) -> OrderImpact:
    """An ibapi ``OrderState`` of a whatIf answer, typed."""
    def get(name: str) -> float | None:
        return _number(getattr(state, name, None))

    return OrderImpact(
        get("initMarginBefore"), get("maintMarginBefore"), get("equityWithLoanBefore"),
        get("initMarginChange"), get("maintMarginChange"), get("equityWithLoanChange"),
        get("initMarginAfter"), get("maintMarginAfter"), get("equityWithLoanAfter"),
        get("commissionAndFees"), get("minCommissionAndFees"), get("maxCommissionAndFees"),
        str(getattr(state, "commissionAndFeesCurrency", "") or ""),
        str(getattr(state, "warningText", "") or ""),
    )


class PendingWhatIf:
    """One preview waiting for TWS's answer."""

    def __init__(self, order_id: int) -> None:
        self.order_id = order_id
        self._done = trio.Event()
        self._impact: OrderImpact | None = None
        self._error: Exception | None = None

    def answer(self, state: Any) -> None:
        if not self._done.is_set():
            self._impact = impact_of(state)
            self._done.set()

    def fail(self, error: Exception) -> None:
        if not self._done.is_set():
            self._error = error
            self._done.set()

    async def result(self, timeout: float) -> OrderImpact:  # noqa: ASYNC109
        """The impact, or the error TWS gave; `CallTimeout` if TWS said nothing in time."""
        with trio.move_on_after(timeout):
            await self._done.wait()
        if self._error is not None:
            raise self._error
        if self._impact is None:
            raise CallTimeout("orders", timeout)
        return self._impact
