"""The orders actor: places, modifies and cancels orders, and keeps the order book true.

Every placement takes one path, in one task at a time (TWS refuses an order id below one
it already saw, so ids must reach the wire in the order they were handed out):

    allocate an id (order_ids actor) -> write the intent (audit actor, fsync'd)
    -> the book holds the Trade -> submit through the limiter with the intent's seq
    -> the intent's outcome (written / abandoned / refused / delivery_unknown) is queued
       for the audit (a cast: the caller does not wait for that record)

A write that broke off (`DeliveryUnknown`) leaves the trade ``Unknown``: it is never sent
again on a guess; reconciliation (`order_reconciliation`, at start and after every
reconnect or 1101) settles it from TWS's answer and recovers fills made meanwhile.

The book (`OrderBook`) and the subscription to TWS's order events live in `OrdersMemory`,
created by the runtime: a restart of this actor loses no trade, and the events that
arrived meanwhile are waiting for it. Answers come from the bus; requests leave through
the limiter; nothing here touches the socket.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import attrs
import trio
from ibapi.contract import Contract
from ibapi.order import Order

from .._errors import IBKRError
from ..protocol import codes
from ..protocol import events as ev
from ..protocol.requests import (
    CancelOrder,
    PlaceOrder,
    Request,
)
from ..supervisor import Address, Envelope, Mailbox, SupervisorError, serve
from ..trade import DONE_STATUSES, RejectedOrder, Trade, TradeStatus
from .audit import AppendAudit, AppendOutcome, AuditRecord, OrderOutcome
from .bus import EventBus, Subscription
from .connection_messages import (
    ConnectionEstablished,
    ConnectionLost,
    ConnectionRecovered,
    ConnectionState,
    ConnectionStatus,
    ErrorOccurred,
    GetStatus,
    LinkLost,
)
from .limiter import DeliveryUnknown, submit_through
from .order_book import OrderBook
from .order_calls import run_in_task
from .order_contracts import resolve
from .order_ids import AllocateOrderIds
from .order_reconciliation import Reconciler, exec_req_ids
from .orders_messages import (
    Cancel,
    CancelRefused,
    GetExecutions,
    GetOrderStats,
    GetPositions,
    GetTrades,
    Modify,
    NotOurOrder,
    OrderNotModifiable,
    OrderStatusChanged,
    Place,
    PlaceVerticalSpread,
    Reconcile,
    WhatIf,
)
from .ticket import RequestAbandoned, Ticket
from .vertical_spread import check_order
from .watchdog import RestoreRequested
from .what_if import PendingWhatIf

__all__ = ["ORDER_EVENTS", "ORDER_PEERS", "OrdersMemory", "run_orders"]

log = logging.getLogger(__name__)

#: What the orders actor reads from the bus.
ORDER_EVENTS: tuple[type, ...] = (
    ev.OpenOrder, ev.OrderStatus, ev.ExecDetails, ev.ExecDetailsEnd, ev.OpenOrderEnd,
    ev.WrapperCallback, ErrorOccurred, ConnectionEstablished, ConnectionRecovered,
    RestoreRequested, ConnectionLost, LinkLost,
)
#: The actors it talks to, by name (``addresses`` in `run_orders`).
ORDER_PEERS = ("limiter", "audit", "order_ids", "market_data", "connection")
_RECONCILE_TRIGGERS = (ConnectionEstablished, ConnectionRecovered, RestoreRequested)
_CANCEL_ACKED = frozenset({TradeStatus.PENDING_CANCEL, TradeStatus.CANCELLED,
                           TradeStatus.API_CANCELLED})


@attrs.define
class OrdersMemory:
    """What outlives the orders actor: the book, its bus subscription, the req-id counter,
    each own trade's price tick (checked again on modify). ``address`` is the actor's
    (tree-owned, so as stable as this memory): the runtime reaches the actor through it."""

    address: Address
    book: OrderBook = attrs.Factory(OrderBook)
    subscription: Subscription[object] | None = None
    ticks: dict[int, float] = attrs.Factory(dict)
    exec_req_ids: Iterator[int] = attrs.Factory(exec_req_ids)


@attrs.define
class _CancelWait:
    done: trio.Event = attrs.Factory(trio.Event)
    refusal: CancelRefused | None = None


class OrdersActor:
    """One incarnation's working state around the runtime-owned memory."""

    def __init__(self, memory: OrdersMemory, bus: EventBus, addresses: dict[str, Address],
                 timeout: float, nursery: trio.Nursery) -> None:
        self.memory, self.book, self.bus = memory, memory.book, bus
        self.limiter, self.audit = addresses["limiter"], addresses["audit"]
        self.order_ids, self.market_data = addresses["order_ids"], addresses["market_data"]
        self.connection = addresses["connection"]
        self.timeout, self.nursery = timeout, nursery
        self.place_lock = trio.Lock()
        self.what_ifs: dict[int, PendingWhatIf] = {}
        self.cancels: dict[int, list[_CancelWait]] = {}
        self.reconciler = Reconciler(
            self.book, memory.exec_req_ids, send=self._send, audit=self._audit,
            publish=self.publish, timeout=timeout)

    # -- placing ---------------------------------------------------------------------------

    async def place(self, target: Place | PlaceVerticalSpread) -> Trade:
        resolved = await resolve(self.market_data, target, self.timeout)
        contract, order = resolved.contract, resolved.order
        async with self.place_lock:
            order_id, seq, request = await self._intent(contract, order)
            trade = Trade(order_id, await self._client_id(), contract, order, resolved.legs,
                          remaining=Decimal(order.totalQuantity))
            if resolved.tick is not None:
                self.memory.ticks[order_id] = resolved.tick
            self.book.add(trade, trio.current_time())
            await self._submit(request, seq, trade, target.ticket)
        return trade

    async def _intent(self, contract: Contract, order: Order,
                      **extra: Any) -> tuple[int, int, PlaceOrder]:
        ids = await self.order_ids.call(AllocateOrderIds(1), timeout=self.timeout)
        assert isinstance(ids, range)
        order.orderId = ids.start
        request = PlaceOrder(ids.start, contract, order)
        record = await self._audit("order_intent", **request.audit_fields(), **extra)
        return ids.start, record.seq, request

    async def _submit(self, request: PlaceOrder | CancelOrder, seq: int,
                      trade: Trade | None, ticket: Ticket | None = None) -> None:
        """Through the limiter; the outcome is audited whatever it is. A DeliveryUnknown
        for a placement is not raised: the trade says ``Unknown`` and reconciliation ends
        it. Every other failure is raised (and means: never written)."""
        now = trio.current_time
        outcome = OrderOutcome.REFUSED
        try:
            await submit_through(self.limiter, request, seq, self.timeout, ticket)
            outcome = OrderOutcome.WRITTEN
        except DeliveryUnknown:
            outcome = OrderOutcome.DELIVERY_UNKNOWN
            if trade is None or not isinstance(request, PlaceOrder) or trade.order.whatIf:
                raise
            if trade.status is TradeStatus.PENDING_SUBMIT:
                self.publish(self.book.delivery_unknown(trade, now()))
        except (trio.Cancelled, SupervisorError, IBKRError) as exc:
            if isinstance(exc, trio.Cancelled | SupervisorError | RequestAbandoned):
                outcome = OrderOutcome.ABANDONED
            if trade is not None and isinstance(request, PlaceOrder):
                self.publish(self.book.not_sent(trade, now(), type(exc).__name__))
            raise
        finally:
            self._outcome(seq, request.order_id, outcome)

    # -- modify, cancel, whatIf ------------------------------------------------------------

    async def modify(self, message: Modify) -> Trade:
        trade = self._own(message.trade)
        if trade.is_done or trade.acknowledged_at is None:
            raise OrderNotModifiable(f"order {trade.order_id} is {trade.status.value}: "
                                     "not modifiable")
        order = copy.copy(trade.order)
        if message.limit_price is not None:
            order.lmtPrice = message.limit_price
        if message.quantity is not None:
            order.totalQuantity = Decimal(message.quantity)
        check_order(order, self.memory.ticks.get(trade.order_id))
        request = PlaceOrder(trade.order_id, trade.contract, order)
        record = await self._audit("order_intent", **request.audit_fields(), modify=True)
        await self._submit(request, record.seq, None)
        trade.order = order
        return trade

    async def cancel(self, message: Cancel) -> Trade:
        trade = self._own(message.trade)
        if trade.is_done:
            return trade
        request = CancelOrder(trade.order_id)
        record = await self._audit("cancel_intent", **request.audit_fields())
        wait = _CancelWait()
        self.cancels.setdefault(trade.order_id, []).append(wait)
        try:
            await self._submit(request, record.seq, None)
            with trio.move_on_after(self.timeout):
                await wait.done.wait()
        finally:
            self.cancels[trade.order_id].remove(wait)
        if wait.refusal is not None:
            raise wait.refusal
        return trade

    async def what_if(self, message: WhatIf) -> object:
        resolved = await resolve(self.market_data, message.target, self.timeout)
        contract, order = resolved.contract, copy.copy(resolved.order)
        order.whatIf = True
        async with self.place_lock:
            # REAL-TWS: whether TWS counts a whatIf's order id as used (we spend a fresh one)
            order_id, seq, request = await self._intent(contract, order)
            pending = self.what_ifs[order_id] = PendingWhatIf(order_id)
            try:
                await self._submit(request, seq, None)
            except BaseException:
                del self.what_ifs[order_id]
                raise
        try:
            return await pending.result(self.timeout)
        finally:
            self.what_ifs.pop(order_id, None)

    # -- TWS's events ----------------------------------------------------------------------

    def on_event(self, event: object) -> None:
        book, now = self.book, trio.current_time()
        if isinstance(event, ev.OpenOrder):
            pending = self.what_ifs.get(event.order_id)
            # REAL-TWS: a whatIf is answered by one openOrder echoing whatIf=True, margins as text
            if pending is not None and event.order.whatIf:
                pending.answer(event.order_state)
            elif not event.order.whatIf:
                self.publish(book.on_open_order(event, now))
        elif isinstance(event, ev.OrderStatus):
            self.publish(book.on_status(event, now))
        elif isinstance(event, ev.ExecDetails):
            self.publish(book.on_execution(event, now))
        elif isinstance(event, ev.WrapperCallback):
            self.on_callback(event, now)
        elif isinstance(event, ev.OpenOrderEnd):
            self.reconciler.open_orders_ended()
        elif isinstance(event, ev.ExecDetailsEnd):
            self.reconciler.executions_ended(event.req_id)
        elif isinstance(event, ErrorOccurred):
            self.on_error(event, now)
        if isinstance(event, ConnectionLost | LinkLost):
            book.link_lost()
        if isinstance(event, ConnectionLost):
            self.reconciler.interrupt()
        if isinstance(event, ConnectionEstablished | ConnectionRecovered):
            book.client_id = event.client_id
        if isinstance(event, _RECONCILE_TRIGGERS):
            self.nursery.start_soon(self.reconciler.run_quietly)

    def on_callback(self, event: ev.WrapperCallback, now: float) -> None:
        """The order callbacks without a typed event: commission reports and completed
        orders."""
        method, args = event.method, event.args
        if method in ("commissionAndFeesReport", "commissionReport") and args:
            report = args[0]
            self.book.on_commission(report.execId, float(
                getattr(report, "commissionAndFees", getattr(report, "commission", 0.0))))
        elif method == "completedOrder" and len(args) == 3:
            _contract, order, state = args
            self.publish(self.book.on_completed_order(int(order.permId), state.status, now))
        elif method == "completedOrdersEnd":
            self.reconciler.completed_orders_ended()

    def on_error(self, event: ErrorOccurred, now: float) -> None:
        pending = self.what_ifs.get(event.req_id)
        if pending is not None and event.info.category in (
                codes.Category.ORDER, codes.Category.CONTRACT, codes.Category.REQUEST):
            pending.fail(RejectedOrder(event.req_id, event.code, event.info.meaning,
                                       event.message))
            return
        if event.info.strategy is codes.Strategy.CANCEL_REFUSED:
            for wait in self.cancels.get(event.req_id, ()):
                wait.refusal = CancelRefused(event.req_id, event.code, event.info.meaning)
                wait.done.set()
            return
        self.publish(self.book.on_error(event.req_id, event.info, event.message, now))

    def publish(self, events: list[object]) -> None:
        """Publish the book's events; a status that answers a cancel ends its wait."""
        for event in events:
            self.bus.publish(event)
            if isinstance(event, OrderStatusChanged) and event.client_id == self.book.client_id:
                status = TradeStatus(event.status)
                if status in _CANCEL_ACKED or status in DONE_STATUSES:
                    for wait in self.cancels.get(event.order_id, ()):
                        wait.done.set()

    # -- helpers ---------------------------------------------------------------------------

    def _own(self, trade: Trade) -> Trade:
        held = self.book.trades.get((trade.client_id, trade.order_id))
        if held is not trade or trade.read_only:
            raise NotOurOrder(f"order {trade.order_id} of client {trade.client_id} is not "
                              "this runtime's to change")
        return trade

    async def _client_id(self) -> int:
        if self.book.client_id is None:
            status = await self.connection.call(GetStatus(), timeout=self.timeout)
            assert isinstance(status, ConnectionStatus)
            self.book.client_id = status.client_id
        return self.book.client_id

    async def _audit(self, kind: str, **fields: Any) -> AuditRecord:
        record = await self.audit.call(AppendAudit(kind, fields), timeout=self.timeout)
        assert isinstance(record, AuditRecord)
        return record

    def _outcome(self, seq: int, order_id: int, outcome: OrderOutcome) -> None:
        """Queue the intent's outcome record; nobody waits for it. The order's caller has
        its answer as soon as the write is done, and the record waits in the audit
        actor's tree-owned mailbox, through a restart of either actor."""
        try:
            self.audit.cast_nowait(AppendOutcome(seq, order_id, outcome))
        except SupervisorError as exc:  # the trail settles it at the next start
            log.warning("could not audit the outcome of intent %d: %s", seq,
                        type(exc).__name__)

    async def _send(self, request: Request) -> None:
        await submit_through(self.limiter, request, None, self.timeout)


async def run_orders(
    mailbox: Mailbox,
    *,
    memory: OrdersMemory,
    bus: EventBus,
    addresses: dict[str, Address],
    timeout: float,  # noqa: ASYNC109 - the bound of each wait on another actor or TWS
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """The supervised actor: serve the order calls; keep the book in line with TWS."""
    if memory.subscription is None:
        memory.subscription = bus.subscribe(ORDER_EVENTS, capacity=100_000)
    subscription = memory.subscription
    async with trio.open_nursery() as nursery:
        actor = OrdersActor(memory, bus, addresses, timeout, nursery)
        nursery.start_soon(_pump, subscription, actor.on_event)
        if await _link_up(actor):
            nursery.start_soon(actor.reconciler.run_quietly)  # edges missed while we were down
        task_status.started()
        await serve(mailbox, _handlers(actor, nursery))
        nursery.cancel_scope.cancel()


async def _pump(subscription: Subscription[object], handle: Callable[[object], None]) -> None:
    async for event in subscription:
        handle(event)


async def _link_up(actor: OrdersActor) -> bool:
    try:
        status = await actor.connection.call(GetStatus(), timeout=5.0)
    except SupervisorError:
        return False
    if not isinstance(status, ConnectionStatus) or status.state is not ConnectionState.CONNECTED:
        return False
    actor.book.client_id = status.client_id
    return True


def _handlers(actor: OrdersActor, nursery: trio.Nursery) -> dict[type, Any]:
    def now(view: Callable[[], object]) -> Any:
        async def handler(_message: Any, _envelope: Envelope) -> object:
            return view()

        return handler

    book = actor.book
    return {
        Place: run_in_task(nursery, actor.place),
        PlaceVerticalSpread: run_in_task(nursery, actor.place),
        Modify: run_in_task(nursery, actor.modify),
        Cancel: run_in_task(nursery, actor.cancel),
        WhatIf: run_in_task(nursery, actor.what_if),
        Reconcile: run_in_task(nursery, lambda _m: actor.reconciler.run()),
        GetPositions: now(book.positions),
        GetExecutions: now(lambda: tuple(book.fills.values())),
        GetTrades: now(lambda: tuple(book.trades.values())),
        GetOrderStats: now(book.stats),
    }
