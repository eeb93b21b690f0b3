"""The facade: one supervised runtime, one typed API.

`open_runtime` builds the supervision tree and hands back a `Runtime`; leaving the context
stops every actor in reverse start order and joins every thread. The tree (names are what
operators type):

    ibkr                 one_for_one
    ├── core             one_for_one
    │   ├── bus          event bus: subscriptions, stats
    │   └── audit        append-only, fsync'd order trail
    ├── session          one_for_one
    │   ├── connection   the socket's single writer
    │   ├── limiter      priority + token bucket; all requests pass it
    │   ├── watchdog     health probe, reconnect, restore
    │   ├── order_ids    hands out order ids, never one twice
    │   ├── market_data  contracts, tickers, option chains, tick-by-tick
    │   └── orders       the order book: trades, spreads, whatIf, reconciliation
    └── control          operator endpoint (only with a control path)

State that must outlive an actor's restart (the bus's subscriptions, the limiter's queue,
the connection's intent, the next order id) is created here and handed to the actor,
exactly as the tree owns mailboxes: a restart replaces the task, not the data.

Cancellation and timeouts, for every `Runtime` method (trio's conventions):

- Every ``async`` method is a checkpoint and may be cancelled by the caller's scope.
  Cancelling a *query* (`status`, `stats`, `is_connected`, `audit`...) leaves nothing
  behind. Methods that take a ``timeout`` or use the configured ones raise `CallTimeout`
  when the actor does not answer in time; the actor is alive but slow, and a query that
  timed out changed nothing.
- `submit` is the one that writes to TWS, and its promise is that *a submit that raised
  did not happen*: if it raises (timeout, cancellation, refusal) before the limiter
  claimed the request for the wire, the request is never written; once claimed, `submit`
  waits for the write's outcome (shielded from cancellation and from its own timeout,
  bounded by the send timeout) and either returns (written) or raises what happened
  (`DeliveryUnknown` for an order whose write broke off). See the limiter.
- `connect` cancelled during an attempt drops that attempt's socket; `disconnect` and the
  operator commands (`restart`, `stop`, `start`) are carried out once begun.
- Every error raised on purpose derives from `IBKRError`; the supervision layer's errors
  arrive as their `IBKRError` twins (`ActorNotRunning`, `CallTimeout`, ...).
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable, Collection, Coroutine, Iterable, Sequence
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any, ParamSpec, TypeVar, overload

import attrs
import trio
from ibapi.contract import Contract
from ibapi.order import Order

from ._errors import CallTimeout as RuntimeCallTimeout
from ._errors import IBKRError, SupervisorError, translate_supervisor_errors
from ._userdirs import state_dir
from .actors import connection as conn
from .actors import orders_messages as om
from .actors.audit import AppendAudit, AppendOutcome, AuditRecord, TrailMemory, run_audit
from .actors.audit_outcomes import outcome_of_submit
from .actors.bus import BusStats, EventBus, EventBusStats, EventT, Subscription, run_event_bus
from .actors.file_work import AdaptiveFileWork
from .actors.limiter import (
    GetLimiterStats,
    LimiterStats,
    OutboundQueue,
    run_limiter,
    submit_through,
)
from .actors.market_data import (
    KNOWN_GENERIC_TICKS,
    MarketDataMemory,
    MarketDataTimeout,
    market_data_settings,
    run_market_data,
)
from .actors.market_data_messages import (
    CloseTickByTick,
    ContractInfo,
    GetContractDetails,
    GetMarketDataStats,
    GetOptionChainDefinition,
    MarketDataStats,
    OpenTickByTick,
    SubscribeTicker,
    TickByTickKind,
    UnknownContract,
    Unsubscribe,
)
from .actors.order_ids import AllocateOrderIds, OrderIdBook, run_order_ids
from .actors.orders import ORDER_PEERS, OrdersMemory, run_orders
from .actors.pacing import PacingGovernor
from .actors.ticket import Ticket
from .actors.vertical_spread import vertical_combo, vertical_legs
from .actors.watchdog import GetWatchdogStatus, KeepConnected, WatchdogStatus, run_watchdog
from .config import IBKRConfig
from .contracts import Index, Stock, describe, normalise_right
from .option_chain import OptionChain, select_expiries, strikes_around
from .protocol import events as ev
from .protocol.client import Transport, threaded_session
from .protocol.requests import CancelOrder, PlaceOrder, Request, RequestError
from .supervisor import (
    ChildInfo,
    ChildSpec,
    PendingCall,
    Registry,
    Restart,
    Strategy,
    Supervisor,
    SupervisorSpec,
    open_supervisor,
)
from .ticker import Ticker
from .trade import Fill, Trade

log = logging.getLogger(__name__)

__all__ = ["Runtime", "RuntimeStatus", "default_audit_path", "open_runtime"]


def default_audit_path() -> Path:
    """``$XDG_STATE_HOME/ibkr-connector/audit.jsonl`` (``~/.local/state/...`` by default)."""
    return state_dir() / "audit.jsonl"


@attrs.frozen
class RuntimeStatus:
    connection: conn.ConnectionStatus
    watchdog: WatchdogStatus
    limiter: LimiterStats
    uptime: float


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _ibkr_errors(
    method: Callable[_P, Coroutine[Any, Any, _R]],
) -> Callable[_P, Coroutine[Any, Any, _R]]:
    """The runtime's edge: supervision-layer errors leave as their `IBKRError` twins."""

    @functools.wraps(method)
    async def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with translate_supervisor_errors():
            return await method(*args, **kwargs)

    return wrapper


class Runtime:
    """A running tree. Every method is safe to call from any task of the embedding program.

    It holds addresses, not actors: each call goes through the target actor's mailbox."""

    def __init__(self, config: IBKRConfig, registry: Registry, bus: EventBus) -> None:
        self.config = config
        self.bus = bus
        self._supervisor: Supervisor | None = None
        self._started_at = trio.current_time()
        self._connection = registry.address("connection")
        self._limiter = registry.address("limiter")
        self._watchdog = registry.address("watchdog")
        self._audit = registry.address("audit")
        self._bus_actor = registry.address("bus")
        self._order_ids = registry.address("order_ids")
        self._market_data = registry.address("market_data")
        self._market_data_memory = MarketDataMemory(market_data_settings(config))
        self._order_ids_book = OrderIdBook()
        self._orders_memory = OrdersMemory(registry.address("orders"))

    @property
    def supervisor(self) -> Supervisor:
        if self._supervisor is None:
            raise RuntimeError("the runtime is still starting")
        return self._supervisor

    # -- connection ------------------------------------------------------------------------

    @_ibkr_errors
    async def connect(self) -> conn.ConnectionStatus:
        """Connect to TWS; raises `ConnectFailed` (or `ClientIdInUse`) if it cannot."""
        result = await self._connection.call(conn.Connect(), timeout=self._call_timeout())
        assert isinstance(result, conn.ConnectionStatus)
        return result

    @_ibkr_errors
    async def disconnect(self) -> None:
        await self._connection.call(conn.Disconnect(), timeout=self._call_timeout())

    @_ibkr_errors
    async def keep_connected(self) -> None:
        """Connect now and keep reconnecting (with the watchdog's backoff) until connected.

        Returns at once; watch `events()` for `ConnectionEstablished`."""
        await self._watchdog.cast(KeepConnected())

    @_ibkr_errors
    async def is_connected(self) -> bool:
        return bool(await self._connection.call(conn.IsConnected(), timeout=5.0))

    # -- requests and events -------------------------------------------------------------------

    @_ibkr_errors
    async def submit(self, request: Request) -> None:
        """Queue *request* through the limiter; returns once it is on the wire.

        An order request (place, modify, cancel) is first written to the audit trail and
        fsync'd; only then is it released to the limiter, carrying its record's number; its
        outcome (written, abandoned, refused, delivery unknown) is recorded after. If this
        raised, the request did not reach the wire (`DeliveryUnknown` excepted: reconcile).
        Orders placed this way use the caller's order id; `place_order` allocates one.
        """
        if not isinstance(request, PlaceOrder | CancelOrder):
            # Timeout and cancellation: see submit_through (raised = never reached the wire).
            await submit_through(self._limiter, request, None, self.config.request_timeout)
            return
        kind = "order_intent" if isinstance(request, PlaceOrder) else "cancel_intent"
        audit_seq = (await self.audit(kind, **request.audit_fields())).seq
        error: BaseException | None = None
        try:
            await submit_through(self._limiter, request, audit_seq, self.config.request_timeout)
        except BaseException as exc:
            error = exc
            raise
        finally:
            # Every intent gets its outcome, whatever happened (a kill -9 right here is
            # settled as unresolved_at_restart when the runtime starts again).
            with trio.CancelScope(shield=True):
                try:
                    await self._audit.call(AppendOutcome(
                        audit_seq, request.order_id, outcome_of_submit(error)),
                        timeout=self._call_timeout())
                except SupervisorError as exc:
                    # The audit actor is down: the intent is settled at the next start.
                    log.warning("could not record an order outcome now (%s)",
                                type(exc).__name__)

    @_ibkr_errors
    async def allocate_order_ids(self, count: int = 1) -> range:
        """``count`` fresh order ids, never handed out before by this runtime or its trail.

        Waits until TWS has said where ids start (after connecting), within the call
        timeout. The ids are spent once returned: use them or leave a gap, never reuse
        them. Cancelling the wait allocates nothing.
        """
        ids = await self._order_ids.call(AllocateOrderIds(count), timeout=self._call_timeout())
        assert isinstance(ids, range)
        return ids

    # -- market data -------------------------------------------------------------------

    @_ibkr_errors
    async def contract_details(self, contract: Contract) -> tuple[ContractInfo, ...]:
        """Every instrument TWS lists for ``contract`` (cached for ``contract_cache_ttl``:
        a cache hit sends nothing). Raises `UnknownContract` when TWS lists none."""
        infos = await self._market_data.call(GetContractDetails(contract),
                                             timeout=self._call_timeout())
        assert isinstance(infos, tuple)
        return infos

    @_ibkr_errors
    async def qualify(self, contract: Contract) -> ContractInfo:
        """The one instrument ``contract`` names (conId and all), or `UnknownContract`
        (none, or ambiguous). A checkpoint; cancelling leaves nothing behind."""
        infos = await self.contract_details(contract)
        if len(infos) != 1:
            raise UnknownContract(f"{describe(contract)} is ambiguous: {len(infos)} match")
        return infos[0]

    @_ibkr_errors
    async def subscribe_ticker(self, contract: Contract, tick_types: Iterable[int] | None = None,
                               *, priority: int = 0, wait: bool = False) -> Ticker:
        """A live `Ticker` for ``contract`` (one TWS line however many subscribers).

        ``tick_types`` are TWS generic tick ids (100 option volume, 101 open interest, 104
        historical vol, 106 implied vol, ...); an unknown one is a `RequestError` before the
        wire. Past ``max_market_data_lines`` the call raises `LineBudgetExhausted`, or with
        ``wait=True`` returns a pending ticker that gets a line, by ``priority`` (lower
        first), when one is freed. Each call is one hold: pair it with `unsubscribe`.
        Cancelled or timed out before it returns, it holds nothing.
        """
        ticks = tuple(sorted(set(tick_types or ())))
        unknown = [t for t in ticks if t not in KNOWN_GENERIC_TICKS]
        if unknown:
            raise RequestError(f"unknown generic tick type(s) {unknown}; known: "
                               f"{sorted(KNOWN_GENERIC_TICKS)}")
        ticker = await self._market_data.call(
            SubscribeTicker(contract, ticks, priority, wait), timeout=self._call_timeout())
        assert isinstance(ticker, Ticker)
        return ticker

    @_ibkr_errors
    async def subscribe_vertical_spread(
        self, symbol: str, expiry: str, right: str, long_strike: float, short_strike: float,
        *, exchange: str = "SMART", currency: str = "USD",
    ) -> Ticker:
        """A live `Ticker` for the combo `place_vertical_spread` would place with the same
        arguments (buy ``long_strike``, sell ``short_strike``): its bid and ask are TWS's
        quote of the BAG, the net of the legs' (negative for a credit). The legs are
        resolved as for the order, with the same errors before the wire (`InvalidOrder`,
        `UnknownContract`); the BAG's line is keyed by its legs, so the same spread twice
        is one line. Release it with ``unsubscribe(ticker.contract)``. Cancelled or timed
        out before it returns, it holds nothing (the legs' details stay cached)."""
        long_query, short_query = vertical_legs(symbol, expiry, right, long_strike,
                                                short_strike, exchange, currency)
        long, short = await self.qualify(long_query), await self.qualify(short_query)
        bag, _legs = vertical_combo(long, short, exchange, currency)
        return await self.subscribe_ticker(bag)

    @_ibkr_errors
    async def unsubscribe(self, contract: Contract) -> None:
        """Drop one hold on ``contract``'s line; the last one frees it at once. A contract
        not subscribed is a no-op."""
        await self._market_data.call(Unsubscribe(contract), timeout=self._call_timeout())

    @_ibkr_errors
    async def subscribe_option_chain(
        self, symbol: str, exchange: str = "SMART", *, sec_type: str = "STK",
        expiries: int | Sequence[str] = 2, strikes_each_side: int = 5,
        rights: Sequence[str] = ("C", "P"), trading_class: str | None = None,
        generic_ticks: Iterable[int] | None = None, spot_timeout: float = 10.0,
    ) -> OptionChain:
        """The option chain of ``symbol`` with live tickers for a window of it.

        Expiries: the next ``expiries`` listed ones, or the ones named. Strikes: per expiry,
        those TWS lists for that expiry (never the union), ``strikes_each_side`` below and
        above the underlying's price. Every ticker is one hold (release them with
        `unsubscribe_option_chain`). Raises `LineBudgetExhausted` before subscribing
        anything if the window needs more lines than are free.
        """
        underlying_contract = (Index(symbol, exchange if exchange != "SMART" else "CBOE")
                               if sec_type == "IND" else Stock(symbol, exchange))
        underlying = await self.qualify(underlying_contract)
        definitions = await self._market_data.call(
            GetOptionChainDefinition(underlying), timeout=self._call_timeout())
        wanted_class = trading_class or None
        chosen_defs = tuple(d for d in definitions
                            if d.exchange == exchange
                            and (wanted_class is None or d.trading_class == wanted_class))
        if not chosen_defs:
            raise UnknownContract(f"no options on {symbol} at {exchange}"
                                  + (f" in class {trading_class}" if trading_class else ""))
        listed = sorted({e for d in chosen_defs for e in d.expirations})
        selected = (select_expiries(listed, count=expiries) if isinstance(expiries, int)
                    else select_expiries(listed, wanted=expiries))
        contracts: dict[tuple[str, float, str], ContractInfo] = {}
        for expiry in selected:
            for info in await self.contract_details(_chain_query(underlying, expiry, exchange,
                                                                  trading_class)):
                if info.strike is not None:
                    contracts[(info.expiry[:8], info.strike, info.right)] = info
        strikes_by_expiry = {e: tuple(sorted({k[1] for k in contracts if k[0] == e}))
                             for e in selected}
        underlying_ticker = await self.subscribe_ticker(underlying.contract)
        chain = OptionChain(underlying, underlying_ticker, chosen_defs, tuple(listed),
                            strikes_by_expiry, contracts)
        try:
            spot = await _first_price(underlying_ticker, spot_timeout)
            wanted_rights = [normalise_right(r) for r in rights]
            keys = [(e, k, r) for e in selected
                    for k in strikes_around(strikes_by_expiry[e], spot, strikes_each_side)
                    for r in wanted_rights if (e, k, r) in contracts]
            for key in keys:
                chain.tickers[key] = await self.subscribe_ticker(
                    contracts[key].contract, generic_ticks)
        except BaseException:
            with trio.CancelScope(shield=True):
                await self.unsubscribe_option_chain(chain)
            raise
        return chain

    @_ibkr_errors
    async def unsubscribe_option_chain(self, chain: OptionChain) -> None:
        """Release every hold `subscribe_option_chain` took for ``chain``."""
        for ticker in chain.tickers.values():
            await self.unsubscribe(ticker.contract)
        chain.tickers.clear()
        await self.unsubscribe(chain.underlying_ticker.contract)

    @asynccontextmanager
    async def tick_by_tick(self, contract: Contract, kind: TickByTickKind | str
                           ) -> AsyncIterator[trio.MemoryReceiveChannel[object]]:
        """``async with runtime.tick_by_tick(c, "BidAsk") as ticks: async for t in ticks``.

        Every tick of the stream, none conflated; a reader that falls ``capacity`` ticks
        behind finds its stream ended rather than silently thinned. Streams count against
        ``max_tick_by_tick_streams`` (TWS's 10190 is never reached). Leaving the block
        closes the stream (the TWS stream with its last reader)."""
        with translate_supervisor_errors():
            kind = TickByTickKind(kind) if isinstance(kind, str) else kind
            reply = await self._market_data.call(OpenTickByTick(contract, kind),
                                                 timeout=self._call_timeout())
        stream_id, ticks = reply
        try:
            async with ticks:
                yield ticks
        finally:
            with trio.CancelScope(shield=True):
                with contextlib.suppress(SupervisorError):
                    await self._market_data.cast(CloseTickByTick(stream_id))

    # -- orders (the orders actor; see docs/trading.md) ------------------------------------
    #
    # Each order call goes to the orders actor, which bounds every wait inside it (contract
    # details, ids, the audit, the limiter) by ``request_timeout``; the call here waits
    # for all of that. A placement carries the caller's claim ticket down to the limiter:
    # cancelled (or timed out) before the limiter claimed the order for the wire, nothing
    # is sent and the call raises; once claimed, the call waits for the write's outcome and
    # returns the Trade, whatever happened to the caller's scope (the cancellation then
    # takes effect at its next checkpoint). So a placement that raised did not reach the
    # wire, and one that returned is written (or ``Unknown``, if its write broke off:
    # reconciliation settles it, it is never re-sent).

    def _order_call_timeout(self) -> float:
        return 4 * self.config.request_timeout + self._call_timeout()

    async def _place(self, message: om.Place | om.PlaceVerticalSpread) -> Trade:
        """Run a placement with its ticket: see the comment above `_order_call_timeout`."""
        ticket = message.ticket
        assert ticket is not None
        timeout = self._order_call_timeout()
        address = self._orders_memory.address
        pending: PendingCall | None = None
        # Cancellable (and bounded) only while nothing claimed the order; abandoning the
        # ticket then stops the placement before the wire (recorded abandoned, never sent).
        with trio.move_on_after(timeout) as scope:
            pending = await address.send_call(message)
            # An answer (or a crash) ends the call: if nothing claimed the order by then,
            # nothing will, and the wait below must end.
            pending.when_settled(ticket.close)
            try:
                await ticket.settled()
            except BaseException:
                pending.abandon()
                raise
        if scope.cancelled_caught or pending is None:  # never claimed within the deadline
            if pending is not None:
                pending.abandon()
            raise RuntimeCallTimeout(address.name, timeout)
        # Claimed, or over: the answer comes whatever happens to the caller's scope (its
        # cancellation takes effect at the next checkpoint after this call).
        with trio.CancelScope(shield=True):
            result = await pending.result(timeout=timeout)
        assert isinstance(result, Trade)
        return result

    async def _order_call(self, message: object) -> Any:
        return await self._orders_memory.address.call(message,
                                                      timeout=self._order_call_timeout())

    @_ibkr_errors
    async def place_order(self, contract: Contract, order: Order) -> Trade:
        """Place ``order`` for ``contract`` (a BAG as given; any other contract is looked
        up first, so an unknown one is `UnknownContract` and a price off its tick
        `InvalidOrder`, before the wire). The order id is the runtime's: ``order.orderId``
        is set. Returns the live `Trade` once the order is written."""
        return await self._place(om.Place(contract, order, ticket=Ticket()))

    @_ibkr_errors
    async def place_vertical_spread(
        self, symbol: str, expiry: str, right: str, long_strike: float, short_strike: float,
        quantity: int, order_type: str = "LMT", limit_price: float | None = None,
        tif: str = "DAY", *, exchange: str = "SMART", currency: str = "USD",
    ) -> Trade:
        """Buy the ``long_strike`` option and sell the ``short_strike`` one (same symbol,
        expiry and right) as one combo order of ``quantity`` spreads; ``limit_price`` is
        the net per spread. Bad input is `InvalidOrder` / `UnknownContract` before the
        wire. Returns the live `Trade` (its ``legs`` name both options)."""
        return await self._place(om.PlaceVerticalSpread(
            symbol, expiry, right, long_strike, short_strike, quantity, order_type,
            limit_price, tif, exchange, currency, ticket=Ticket()))

    @_ibkr_errors
    async def modify(self, trade: Trade, *, limit_price: float | None = None,
                     quantity: int | Decimal | None = None) -> Trade:
        """Send ``trade``'s order again under its id with a new limit price and/or quantity
        (audited as a new intent). `NotOurOrder` for another client's or a finished one."""
        result = await self._order_call(om.Modify(trade, limit_price, quantity))
        assert isinstance(result, Trade)
        return result

    @_ibkr_errors
    async def cancel(self, trade: Trade) -> Trade:
        """Cancel ``trade``; returns once TWS acknowledged it (``PendingCancel`` or
        ``Cancelled``), raises `CancelRefused` if TWS refused. A finished trade: no-op."""
        result = await self._order_call(om.Cancel(trade))
        assert isinstance(result, Trade)
        return result

    @_ibkr_errors
    async def what_if(self, contract: Contract, order: Order) -> om.OrderImpact:
        """TWS's margin and commission impact of ``order``; nothing is placed."""
        impact = await self._order_call(om.WhatIf(om.Place(contract, order)))
        assert isinstance(impact, om.OrderImpact)
        return impact

    @_ibkr_errors
    async def what_if_vertical_spread(
        self, symbol: str, expiry: str, right: str, long_strike: float, short_strike: float,
        quantity: int, order_type: str = "LMT", limit_price: float | None = None,
        tif: str = "DAY", *, exchange: str = "SMART", currency: str = "USD",
    ) -> om.OrderImpact:
        """`what_if` for the spread `place_vertical_spread` would place; nothing is placed."""
        impact = await self._order_call(om.WhatIf(om.PlaceVerticalSpread(
            symbol, expiry, right, long_strike, short_strike, quantity, order_type,
            limit_price, tif, exchange, currency)))
        assert isinstance(impact, om.OrderImpact)
        return impact

    @_ibkr_errors
    async def positions(self) -> tuple[om.Position, ...]:
        """The net of every execution seen (each execId once), per account and instrument."""
        positions = await self._orders_memory.address.call(om.GetPositions(), timeout=5.0)
        assert isinstance(positions, tuple)
        return positions

    @_ibkr_errors
    async def executions(self) -> tuple[Fill, ...]:
        """Every distinct execution seen, live or recovered by reconciliation."""
        fills = await self._orders_memory.address.call(om.GetExecutions(), timeout=5.0)
        assert isinstance(fills, tuple)
        return fills

    @_ibkr_errors
    async def trades(self) -> tuple[Trade, ...]:
        """Every trade in the book: ours, and other clients' (``read_only``)."""
        trades = await self._orders_memory.address.call(om.GetTrades(), timeout=5.0)
        assert isinstance(trades, tuple)
        return trades

    @_ibkr_errors
    async def order_stats(self) -> om.OrderStats:
        """Order ack latency p50/p99 (place -> TWS's first answer) and orders by status."""
        stats = await self._orders_memory.address.call(om.GetOrderStats(), timeout=5.0)
        assert isinstance(stats, om.OrderStats)
        return stats

    @_ibkr_errors
    async def reconcile_orders(self) -> om.ReconcileReport:
        """Bring the book in line with TWS now (it also happens at start and after every
        reconnect or 1101)."""
        report = await self._order_call(om.Reconcile())
        assert isinstance(report, om.ReconcileReport)
        return report

    @overload
    def events(self, kinds: None = None, capacity: int = 1000) -> Subscription[object]: ...
    @overload
    def events(self, kinds: type[EventT], capacity: int = 1000) -> Subscription[EventT]: ...
    @overload
    def events(self, kinds: Collection[type[EventT]],
               capacity: int = 1000) -> Subscription[EventT]: ...

    def events(self, kinds: type | Collection[type] | None = None,
               capacity: int = 1000) -> Subscription[object]:
        """A subscription to the event bus: what the actors publish (connection, link and
        watchdog events, every inbound TWS event, failed requests).

        Supervision events (an actor started, exited, restarted) are not on the bus: read
        them from ``runtime.supervisor.subscribe()``. Not a checkpoint; close the
        subscription (or use it as a context manager) when done.
        """
        return self.bus.subscribe(kinds, capacity)

    @_ibkr_errors
    async def audit(self, kind: str, **fields: Any) -> AuditRecord:
        """Append to the audit trail; returns once the record is fsync'd."""
        record = await self._audit.call(AppendAudit(kind, fields), timeout=self._call_timeout())
        assert isinstance(record, AuditRecord)
        return record

    # -- operators -------------------------------------------------------------------------

    def tree(self) -> ChildInfo:
        return self.supervisor.tree()

    @_ibkr_errors
    async def restart(self, actor: str) -> None:
        # An operator's restart works on a running actor too (restart_child would raise
        # ChildRunning); `start` of a running actor raises ChildRunning, as OTP does.
        await self.supervisor.force_restart_child(actor)

    @_ibkr_errors
    async def stop(self, actor: str) -> None:
        await self.supervisor.terminate_child(actor)

    @_ibkr_errors
    async def start(self, actor: str) -> None:
        await self.supervisor.start_child(actor)

    @_ibkr_errors
    async def status(self) -> RuntimeStatus:
        connection = await self._connection.call(conn.GetStatus(), timeout=5.0)
        watchdog = await self._watchdog.call(GetWatchdogStatus(), timeout=5.0)
        limiter = await self._limiter.call(GetLimiterStats(), timeout=5.0)
        return RuntimeStatus(connection, watchdog, limiter,
                             trio.current_time() - self._started_at)

    @_ibkr_errors
    async def stats(self) -> dict[str, object]:
        """The metrics operators ask for: request rate, uptime, reconnects, subscriptions."""
        status = await self.status()
        c, lim = status.connection, status.limiter
        now = trio.current_time()
        bus = await self._bus_actor.call(BusStats(), timeout=5.0)
        assert isinstance(bus, EventBusStats)
        md = await self._market_data.call(GetMarketDataStats(), timeout=5.0)
        assert isinstance(md, MarketDataStats)
        orders = await self.order_stats()
        return {
            "runtime_uptime_s": round(status.uptime, 3),
            "connection_uptime_s": (round(now - c.connected_since, 3)
                                    if c.connected_since is not None else None),
            "reconnects": c.reconnects,
            "requests_sent": lim.sent,
            "request_rate_per_s": lim.rate_now,
            "allowed_rate_per_s": lim.allowed_rate,
            "max_requests_in_1s": lim.max_in_window,
            "requests_queued": lim.queued,
            "pacing_violations": lim.pacing_violations,
            "requests_failed": lim.failed,
            "subscriptions": {"market_data_lines": c.market_data_lines,
                              "bus_subscribers": bus.subscribers},
            "market_data": {"lines_in_use": md.lines_in_use, "line_budget": md.line_budget,
                            "lines_waiting": md.lines_waiting,
                            "tick_by_tick_streams": md.tick_by_tick_streams,
                            "tick_by_tick_budget": md.tick_by_tick_budget,
                            "ticks_per_s": md.ticks_per_s, "ticks_total": md.ticks_total,
                            "stale_tickers": md.stale_tickers,
                            "cached_contracts": md.cached_contracts},
            # place_order -> TWS's first status, as the strategy waits for it (audit and
            # queue included); the wire's own share is the connection's write -> answer.
            "order_ack_latency_ms": {"p50": orders.ack_latency_p50_ms,
                                     "p99": orders.ack_latency_p99_ms},
            "order_wire_ack_latency_ms": {"p50": c.order_ack_p50_ms,
                                          "p99": c.order_ack_p99_ms},
            "orders": {"placed": orders.placed, "by_status": dict(orders.by_status),
                       "reconciliations": orders.reconciliations},
            "bus_published": bus.published,
            "bus_overflow_disconnects": bus.overflow_disconnects,
            "health_probes": status.watchdog.probes_sent,
            "health_probe_rtt_ms": (round(status.watchdog.last_probe_rtt * 1000, 1)
                                    if status.watchdog.last_probe_rtt is not None else None),
        }

    @_ibkr_errors
    async def status_report(self) -> dict[str, object]:
        """`status` for operators, as JSON-able data. Accounts are masked."""
        status = await self.status()
        c = status.connection
        return {
            "state": c.state.value,
            "host": c.host,
            "port": c.port,
            "client_id": c.client_id,
            "server_version": c.server_version,
            "accounts": [mask_account(a) for a in c.accounts],
            "reconnects": c.reconnects,
            "reconnecting": status.watchdog.reconnecting,
            "request_rate_per_s": status.limiter.rate_now,
            "last_error": c.last_error,
            "upstream_degraded": c.upstream_degraded,
            "data_farms": {name: state.value for name, state in sorted(c.farms.items())},
        }

    async def _session_number(self) -> tuple[int, int] | None:
        """The connection's session (its reconnect count, and how many 1101s have voided
        the market data) while its socket is up (1100 included: TWS keeps the lines),
        else None."""
        try:
            with translate_supervisor_errors():
                status = await self._connection.call(conn.GetStatus(), timeout=5.0)
        except IBKRError:
            return None
        assert isinstance(status, conn.ConnectionStatus)
        up = (conn.ConnectionState.CONNECTED, conn.ConnectionState.LINK_DOWN)
        return (status.reconnects, status.data_resets) if status.state in up else None

    async def _link_is_up(self) -> bool:
        try:
            return await self.is_connected()
        except IBKRError:
            return False

    def _call_timeout(self) -> float:
        return self.config.connection_timeout + 10.0


def _chain_query(underlying: ContractInfo, expiry: str, exchange: str,
                 trading_class: str | None) -> Contract:
    """Contract details of every option of one expiry: no strike, no right (TWS lists the
    contracts that exist, which is what the chain must hold)."""
    query = Contract()
    query.symbol, query.secType = underlying.symbol, "OPT"
    query.lastTradeDateOrContractMonth = expiry
    query.exchange, query.currency = exchange, underlying.currency
    query.tradingClass = trading_class or ""
    return query


async def _first_price(ticker: Ticker, timeout: float) -> float:  # noqa: ASYNC109
    """The ticker's mid (or last, or close) once it has one; UnknownContract-free: a
    ticker with no price after ``timeout`` is a MarketDataTimeout."""
    with trio.move_on_after(timeout):
        async for _ in _changes(ticker):
            price = ticker.mid or ticker.last or ticker.close
            if price is not None:
                return price
    raise MarketDataTimeout(f"no price for {describe(ticker.contract)} within {timeout:g} s")


async def _changes(ticker: Ticker) -> AsyncIterator[Ticker]:
    yield ticker  # it may have a price already
    async for update in ticker.updates():
        yield update


def mask_account(account: str) -> str:
    """Enough of an account id to recognise it, never the whole of it."""
    if len(account) <= 4:
        return "*" * len(account)
    return account[:2] + "*" * (len(account) - 4) + account[-2:]


def build_tree(config: IBKRConfig, runtime: Runtime, registry: Registry,
               outbound: OutboundQueue, audit_path: Path,
               control_path: Path | None, transport: Transport | None = None) -> SupervisorSpec:
    """The supervision tree as data: a table of child specs, OTP style."""
    bus = runtime.bus
    address = registry.address
    # Owned here, not by the audit actor, so order events keep queuing while it restarts.
    order_events = bus.subscribe((ev.OrderStatus, ev.ExecDetails), capacity=100_000)
    core = SupervisorSpec(
        name="core",
        strategy=Strategy.ONE_FOR_ONE,
        children=(
            ChildSpec("bus", functools.partial(run_event_bus, bus=bus)),
            ChildSpec("audit", functools.partial(
                run_audit, trail_path=audit_path, status_feed=order_events,
                memory=TrailMemory(),
                offload=(AdaptiveFileWork(config.audit_inline_budget) if transport is None
                         else _inline)), mailbox_capacity=10_000),
        ),
    )
    session = SupervisorSpec(
        name="session",
        strategy=Strategy.ONE_FOR_ONE,
        children=(
            ChildSpec("connection", functools.partial(
                conn.run_connection, config=config, emit=bus.publish,
                memory=conn.ConnectionMemory(config.client_id),
                transport=transport or threaded_session), shutdown_timeout=10.0),
            ChildSpec("limiter", functools.partial(
                run_limiter, outbound=outbound, connection=address("connection"), bus=bus,
                max_retries=config.max_retries, send_timeout=config.request_timeout),
                mailbox_capacity=100_000),
            ChildSpec("watchdog", functools.partial(
                run_watchdog, config=config, connection=address("connection"),
                limiter=address("limiter"), bus=bus)),
            ChildSpec("order_ids", functools.partial(
                run_order_ids, book=runtime._order_ids_book, bus=bus,
                connection=address("connection"), limiter=address("limiter"),
                audit=address("audit"))),
            ChildSpec("market_data", functools.partial(
                run_market_data, memory=runtime._market_data_memory, bus=bus,
                submit=runtime.submit, is_connected=runtime._link_is_up,
                session=runtime._session_number),
                mailbox_capacity=10_000),
            ChildSpec("orders", functools.partial(
                run_orders, memory=runtime._orders_memory, bus=bus,
                addresses={name: address(name) for name in ORDER_PEERS},
                timeout=config.request_timeout), mailbox_capacity=10_000),
        ),
    )
    children: list[ChildSpec | SupervisorSpec] = [core, session]
    if control_path is not None:
        from .actors.control import run_control

        children.append(ChildSpec("control", functools.partial(
            run_control, path=control_path, target=runtime), shutdown_timeout=2.0))
    return SupervisorSpec(name="ibkr", strategy=Strategy.ONE_FOR_ONE, children=tuple(children),
                          restart=Restart.PERMANENT)


async def _inline(work: Callable[[], Any]) -> Any:
    """Blocking work done in the Trio thread (a single-thread simulation)."""
    return work()


@asynccontextmanager
async def open_runtime(config: IBKRConfig | None = None, *, connect: bool = False,
                       audit_path: Path | None = None,
                       control_path: Path | None = None,
                       transport: Transport | None = None) -> AsyncIterator[Runtime]:
    """Start the supervised runtime; stop it (reverse order, no thread left) on exit.

    With ``connect=True`` the runtime connects before yielding and raises if it cannot.
    With a ``control_path`` (or ``config.control_path``) an operator endpoint listens there.

    ``transport`` is a testing seam, not a production mode: by default every connection
    attempt is a socket and a reader thread (`threaded_session`); a test may pass
    ``protocol._inprocess.in_process(tws)`` to run the whole system in one thread against
    an in-process simulator, on a virtual clock (see docs/testing.md). Then the audit
    trail's file work runs inline too, so no thread is left to let the clock jump.
    """
    config = config or IBKRConfig()
    bus = EventBus()
    governor = PacingGovernor(target_rate=config.requests_per_second, burst=config.burst)
    outbound = OutboundQueue(governor, retry_delay=config.retry_delay)
    registry = Registry()
    runtime = Runtime(config, registry, bus)
    spec = build_tree(config, runtime, registry, outbound,
                      audit_path or config.audit_path or default_audit_path(),
                      control_path or config.control_path, transport)
    with translate_supervisor_errors():
        async with open_supervisor(spec, registry=registry) as supervisor:
            runtime._supervisor = supervisor
            if connect:
                await runtime.connect()
            yield runtime
