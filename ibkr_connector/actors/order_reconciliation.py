"""Reconciliation: bring the order book in line with what TWS holds, never by guessing.

Run by the orders actor at its start and after every reconnect or 1101 (a
`ConnectionEstablished`, `ConnectionRecovered` or `RestoreRequested` on the bus), and on
demand. One round is:

1. remember which own orders are unsettled: of unknown delivery, or written with no answer
   from TWS yet (their answer may have been lost with the link);
2. ``reqAllOpenOrders``: every open order of every client, then ``openOrderEnd`` (the
   book adopts what it did not know; other clients' orders read-only);
3. ``reqExecutions`` from the last execution seen before the link first dropped (not the
   latest one seen: a later order's fill may have arrived live before this round), then
   ``execDetailsEnd``: fills made while the link was down arrive here, and one seen
   before is counted once (by execId);
   an order whose executions add up to its quantity is ``Filled``;
4. ``reqCompletedOrders``: how the orders TWS no longer lists ended (cancelled or made
   inactive while the link was down), matched by permId;
5. only now, with both answers complete, settle each remembered order: TWS named it or
   filled it -> adopted; else -> ``NotPlaced``. Each finding is audited
   (``order_reconciled``) and published (`OrderReconciled`). Nothing is ever re-sent.

A round that cannot finish (the link drops again, TWS does not answer in time) settles
nothing: the next trigger starts a new round. A drop interrupts the running round at
its next wait: an answer to a request the limiter re-sends after the reconnect would be
newer than the answers before it, and mixing the two is how a fill goes missing. (A
request already queued is left to go out rather than abandoned: its answer is harmless.)
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import trio

from .._errors import IBKRError
from ..protocol.requests import ReqAllOpenOrders, ReqCompletedOrders, ReqExecutions, Request
from ..supervisor import SupervisorError
from .order_book import OrderBook
from .orders_messages import OrderError, OrderReconciled, ReconcileReport

__all__ = ["Reconciler", "ReconciliationInterrupted", "exec_req_ids"]

log = logging.getLogger(__name__)

_EXEC_REQ_BASE = 1_900_000_000  # far above the market-data actor's ids (from 1e9)


def exec_req_ids() -> Iterator[int]:
    """Request ids of ``reqExecutions`` (runtime-owned, so never reused after a restart)."""
    return itertools.count(_EXEC_REQ_BASE)


class ReconciliationInterrupted(OrderError):
    """The link to TWS dropped during a reconciliation round; nothing was settled."""


class Reconciler:
    """One orders-actor incarnation's reconciliation rounds (one at a time)."""

    def __init__(self, book: OrderBook, req_ids: Iterator[int], *,
                 send: Callable[[Request], Awaitable[None]],
                 audit: Callable[..., Awaitable[Any]],
                 publish: Callable[[list[object]], None],
                 timeout: float) -> None:
        self.book, self.req_ids, self.timeout = book, req_ids, timeout
        self._send, self._audit, self._publish = send, audit, publish
        self._lock = trio.Lock()
        self._queued = False
        self._open_orders_end = trio.Event()
        self._exec_ends: dict[int, trio.Event] = {}
        self._completed_end = trio.Event()
        self._interrupted = False

    # -- fed by the actor's event pump --------------------------------------------------------

    def open_orders_ended(self) -> None:
        self._open_orders_end.set()

    def interrupt(self) -> None:
        """The link dropped: answers to the running round may be lost or stale (a request
        re-sent after the reconnect would be answered with newer facts than the ones
        before it), so the round settles nothing; the reconnect triggers a new one."""
        self._interrupted = True
        for end in (self._open_orders_end, self._completed_end, *self._exec_ends.values()):
            end.set()

    def completed_orders_ended(self) -> None:
        self._completed_end.set()

    def executions_ended(self, req_id: int) -> None:
        end = self._exec_ends.get(req_id)
        if end is not None:
            end.set()

    # -- rounds ---------------------------------------------------------------------------------

    async def run_quietly(self) -> None:
        """A trigger's round: at most one waits behind the running one; a failure is
        logged (the next trigger tries again)."""
        if self._queued:
            return
        self._queued = True
        try:
            async with self._lock:
                self._queued = False
                await self._round()
        except (IBKRError, SupervisorError, trio.TooSlowError) as exc:
            log.warning("order reconciliation did not finish (%s); it runs again on the "
                        "next reconnect", type(exc).__name__)

    async def run(self) -> ReconcileReport:
        async with self._lock:
            return await self._round()

    async def _round(self) -> ReconcileReport:
        book = self.book
        before = len(book.fills)
        book.begin_reconciliation()
        self._interrupted = False
        try:
            await self._ask_tws()
        except BaseException:
            book.abandon_reconciliation()
            raise
        return await self._settle(before)

    async def _ask_tws(self) -> None:
        """The three questions, each waiting for its complete answer."""
        self._open_orders_end = trio.Event()
        await self._send(ReqAllOpenOrders())
        await self._answer(self._open_orders_end)
        req_id = next(self.req_ids)
        end = self._exec_ends[req_id] = trio.Event()
        try:
            await self._send(ReqExecutions(req_id, since=self.book.exec_complete_until))
            await self._answer(end)
        finally:
            del self._exec_ends[req_id]
        self._completed_end = trio.Event()
        # REAL-TWS: reqCompletedOrders lists orders cancelled at IB while the link was down
        await self._send(ReqCompletedOrders(api_only=True))
        await self._answer(self._completed_end)

    async def _answer(self, end: trio.Event) -> None:
        with trio.fail_after(self.timeout):
            await end.wait()
        if self._interrupted:
            raise ReconciliationInterrupted("the link to TWS dropped during reconciliation")

    async def _settle(self, before: int) -> ReconcileReport:
        book = self.book
        open_orders = sum(1 for t in book.trades.values() if not t.is_done)
        adopted, not_placed = book.finish_reconciliation(trio.current_time())
        findings = [(t, True) for t in adopted] + [(t, False) for t in not_placed]
        for trade, found in findings:
            with trio.CancelScope(shield=True):
                await self._audit("order_reconciled", order_id=trade.order_id, found=found,
                                  status=trade.status.value)
            self._publish([OrderReconciled(trade.order_id, found), book.status_event(trade)])
        return ReconcileReport(open_orders, len(book.fills) - before,
                               tuple(t.order_id for t in adopted),
                               tuple(t.order_id for t in not_placed))
