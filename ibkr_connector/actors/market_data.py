"""The market-data actor: contracts, chains, live tickers and tick-by-tick streams.

It owns every market-data request this runtime makes. A user asks for a `Ticker`; the actor
resolves the contract (contract details, cached), holds one TWS line for it however many
subscribers there are, routes every tick of that line into the shared `Ticker`, and keeps
the line alive across everything TWS does to it:

- the line budget (`LineBook`) is ours: past it a subscription waits by priority or fails
  with `LineBudgetExhausted`, so TWS's 101 / 10190 are never reached;
- a lost socket or a 1101 makes TWS forget every line; on `RestoreRequested` each is asked
  for again through the limiter under a new id, and the *same* Ticker objects go on;
- 354 / 10089 (no live permission) switch the session to delayed data when the settings
  allow it, and the ticker says it is delayed; 10090 / 10091 / 10167 leave it streaming,
  with the degradation noted; anything else that refuses a line fails its ticker with the
  code's meaning;
- a ticker that stops updating (its data farm is down, or no tick for ``stale_after``) is
  marked stale and `TickerStale` is published: a silent stall is never silent.

State that must outlive a restart of this actor (the lines, the cache, the request-id
counter) is a `MarketDataMemory` owned by the runtime. Requests leave through ``submit``
(the runtime's path through the limiter); answers arrive from the bus.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

import attrs
import trio

from .._errors import IBKRError
from ..contracts import ContractError, describe
from ..protocol import codes
from ..protocol import events as ev
from ..protocol.requests import (
    CancelMktData,
    CancelTickByTickData,
    ReqContractDetails,
    ReqMarketDataType,
    ReqMktData,
    ReqSecDefOptParams,
    ReqTickByTickData,
    Request,
)
from ..supervisor import NOREPLY, Envelope, Mailbox, serve
from ..ticker import Ticker, TickerState, apply_tick
from .bus import EventBus
from .connection_messages import (
    ConnectionEstablished,
    ConnectionLost,
    ConnectionRecovered,
    ErrorOccurred,
    LinkLost,
    LinkRestored,
)
from .contract_cache import contract_info
from .market_data_messages import (
    ChainDefinition,
    CloseTickByTick,
    ContractInfo,
    GetContractDetails,
    GetMarketDataStats,
    GetOptionChainDefinition,
    MarketDataStats,
    OpenTickByTick,
    SubscribeTicker,
    SubscriptionFailed,
    SubscriptionRestored,
    TickerStale,
    TickerUpdated,
    UnknownContract,
    Unsubscribe,
)
from .market_data_state import (
    MarketDataMemory,
    MarketDataSettings,
    MarketDataTimeout,
    _Stream,
    _Wire,
    market_data_settings,
)
from .market_lines import Line, LineBook, Want
from .watchdog import RestoreRequested

__all__ = [
    "KNOWN_GENERIC_TICKS",
    "MarketDataActor",
    "MarketDataMemory",
    "MarketDataSettings",
    "MarketDataTimeout",
    "market_data_settings",
    "run_market_data",
]

log = logging.getLogger(__name__)

Submit = Callable[[Request], Awaitable[None]]

#: Generic tick lists TWS accepts on reqMktData that this runtime knows how to show.
KNOWN_GENERIC_TICKS = frozenset({100, 101, 104, 105, 106, 165, 221, 225, 233, 236, 258, 293,
                                 294, 295, 318, 411, 456})
@attrs.define(eq=False)
class _Collect:
    """Answers to one contract-details or chain request, gathered from the bus."""

    items: list[Any] = attrs.Factory(list)
    done: trio.Event = attrs.Factory(trio.Event)
    error: IBKRError | None = None


_TICK_EVENTS = (ev.TickPrice, ev.TickSize, ev.TickGeneric, ev.TickOptionComputation,
                ev.MarketDataType)
_STREAM_EVENTS = (ev.TickByTickAllLast, ev.TickByTickBidAsk, ev.TickByTickMidPoint)
_CONTROL_EVENTS = (ev.ContractDetails, ev.ContractDetailsEnd, ev.SecDefOptParams,
                   ev.SecDefOptParamsEnd, ErrorOccurred, ConnectionEstablished,
                   ConnectionRecovered, ConnectionLost, LinkLost, LinkRestored,
                   RestoreRequested)


class MarketDataActor:
    """The behaviour; `run_market_data` serves it from a mailbox."""

    def __init__(self, memory: MarketDataMemory, bus: EventBus, submit: Submit,
                 nursery: trio.Nursery, link_up: bool) -> None:
        self.memory = memory
        self.settings = memory.settings
        self.bus = bus
        self._submit = submit
        self._nursery = nursery
        self.link_up = link_up
        self._pending: dict[int, _Collect] = {}
        self._dirty: dict[Hashable, Ticker] = {}
        # Line requests not yet written. When TWS forgets the lines (a lost connection,
        # 1101) they are abandoned: the restore asks again under new ids, and a request of
        # the old session written after the reconnect would hold a second line under an id
        # nobody knows (found by the simulation: a subscribe racing a drop, a restore cut
        # short by a crash).
        self._unwritten: set[trio.CancelScope] = set()

    # -- contracts and chains ----------------------------------------------------------

    async def details(self, contract: Any) -> tuple[ContractInfo, ...]:
        cached = self.memory.cache.details(contract)
        if cached is not None:
            return cached
        req_id = self.memory.next_req_id()
        items = await self._ask(req_id, ReqContractDetails(req_id, contract),
                                f"contract details of {describe(contract)}")
        infos = tuple(contract_info(d) for d in items)
        if not infos:
            raise UnknownContract(f"TWS knows no instrument matching {describe(contract)}")
        self.memory.cache.store_details(contract, infos)
        return infos

    async def resolve(self, contract: Any) -> ContractInfo:
        """Exactly one instrument, or a typed error before any market-data request."""
        _refuse_expired(contract)
        infos = await self.details(contract)
        if len(infos) != 1:
            raise UnknownContract(
                f"{describe(contract)} is ambiguous: {len(infos)} instruments match; "
                "add the exchange, trading class or conId")
        return infos[0]

    async def chain(self, underlying: ContractInfo) -> tuple[ChainDefinition, ...]:
        cached = self.memory.cache.chain(underlying.con_id)
        if cached is not None:
            return cached
        req_id = self.memory.next_req_id()
        items = await self._ask(req_id, ReqSecDefOptParams(
            req_id, underlying.symbol, underlying.sec_type, underlying.con_id),
            f"option chain of {underlying.symbol}")
        chain = tuple(ChainDefinition(
            underlying_con_id=int(p.underlying_con_id), exchange=p.exchange,
            trading_class=p.trading_class, multiplier=p.multiplier,
            expirations=tuple(sorted(p.expirations)), strikes=tuple(sorted(p.strikes)))
            for p in items)
        self.memory.cache.store_chain(underlying.con_id, chain)
        return chain

    async def _ask(self, req_id: int, request: Request, what: str) -> list[Any]:
        collect = self._pending[req_id] = _Collect()
        try:
            await self._submit(request)
            with trio.move_on_after(self.settings.request_timeout):
                await collect.done.wait()
        finally:
            del self._pending[req_id]
        if collect.error is not None:
            raise collect.error
        if not collect.done.is_set():
            raise MarketDataTimeout(
                f"TWS did not answer the request for {what} within "
                f"{self.settings.request_timeout:g} s")
        return collect.items

    # -- tickers -------------------------------------------------------------------------

    async def subscribe(self, message: SubscribeTicker, envelope: Envelope) -> Ticker:
        ticks = ",".join(str(t) for t in sorted(set(message.generic_ticks)))
        info = await self.resolve(message.contract)
        key: Hashable = ("conid", info.con_id)
        if envelope.abandoned:
            # The caller gave up while we resolved: hold nothing for nobody.
            raise MarketDataTimeout("the subscriber stopped waiting")
        lines = self.memory.lines
        existing = lines.get(key)
        payload = existing.payload if existing is not None else _Wire(
            info, Ticker(info.contract), ticks)
        line, wants = lines.acquire(key, payload, priority=message.priority,
                                    wait=message.wait, link_up=self.link_up)
        if line.payload.ticker.state is TickerState.CLOSED:
            line.payload.ticker._set_state(TickerState.PENDING, None, trio.current_time())
        envelope.reply(line.payload.ticker)  # the hold is the caller's from here on
        await self._send_wants(wants)
        return line.payload.ticker

    async def unsubscribe(self, contract: Any) -> None:
        key = self._known_key(contract)
        if key is None:
            return  # never subscribed (or already gone): a clear no-op
        line = self.memory.lines.get(key)
        wants = self.memory.lines.release(key, link_up=self.link_up)
        if line is not None and self.memory.lines.get(key) is None:
            line.payload.ticker._set_state(TickerState.CLOSED, None, trio.current_time())
        await self._send_wants(wants)

    def _known_key(self, contract: Any) -> Hashable | None:
        if getattr(contract, "conId", 0):
            return ("conid", int(contract.conId))
        cached = self.memory.cache.details(contract)
        if cached is None or len(cached) != 1:
            return None
        return ("conid", cached[0].con_id)

    async def _send_wants(self, wants: list[Want[_Wire]]) -> None:
        for want in wants:
            wire = want.line.payload
            if want.cancel:
                request: Request = CancelMktData(want.req_id)
            elif want.line.req_id != want.req_id:
                continue  # stale: TWS forgot the lines since, and they are asked anew
            else:
                request = ReqMktData(want.req_id, wire.info.contract, wire.generic_ticks)
            try:
                if not await self._submit_for_session(request):
                    continue
            except IBKRError as exc:
                if not want.cancel:
                    self._fail_line(want.req_id, 0, f"not sent: {type(exc).__name__}")
                continue
            if not want.cancel:
                wire.sent = want.req_id

    async def _submit_for_session(self, request: Request) -> bool:
        """Submit a line request; False if TWS forgot the lines before it was written
        (then it was abandoned, never written late)."""
        scope = trio.CancelScope()
        self._unwritten.add(scope)
        try:
            with scope:
                await self._submit(request)
                return True
            return False
        finally:
            self._unwritten.discard(scope)

    def _fail_line(self, req_id: int, code: int, reason: str) -> None:
        line, promoted = self.memory.lines.refused(req_id, link_up=self.link_up)
        if line is None:
            return
        now = trio.current_time()
        line.payload.ticker._set_state(TickerState.FAILED, reason, now)
        self.bus.publish(SubscriptionFailed(line.key, code, reason))
        if promoted:
            self._nursery.start_soon(self._send_wants, promoted)

    # -- tick-by-tick ----------------------------------------------------------------------

    async def open_stream(self, message: OpenTickByTick, envelope: Envelope) -> object:
        info = await self.resolve(message.contract)
        key = ("tbt", info.con_id, message.kind.value)
        streams = self.memory.streams
        existing = streams.get(key)
        payload = existing.payload if existing is not None else _Stream(info, message.kind.value)
        line, wants = streams.acquire(key, payload, link_up=self.link_up)
        send, receive = trio.open_memory_channel[object](message.capacity)
        stream_id = self.memory.next_stream_id()
        line.payload.holders[stream_id] = send
        envelope.reply((stream_id, receive))
        for want in wants:
            await self._send_stream_want(want)
        return NOREPLY

    async def close_stream(self, stream_id: int) -> None:
        for line in self.memory.streams:
            send = line.payload.holders.pop(stream_id, None)
            if send is None:
                continue
            send.close()
            for want in self.memory.streams.release(line.key, link_up=self.link_up):
                await self._send_stream_want(want)
            return

    async def _send_stream_want(self, want: Want[_Stream]) -> None:
        stream = want.line.payload
        request: Request = (CancelTickByTickData(want.req_id) if want.cancel else
                            ReqTickByTickData(want.req_id, stream.info.contract, stream.kind))
        try:
            if not await self._submit_for_session(request):
                return
        except IBKRError:
            return
        if not want.cancel:
            stream.sent = want.req_id

    # -- what TWS says -------------------------------------------------------------------

    def on_tick(self, event: Any, now: float) -> None:
        line = self.memory.lines.by_req_id(event.req_id)
        if line is None:
            return
        self.memory.ticks.record(now)
        ticker = line.payload.ticker
        was_stale = ticker.state is TickerState.STALE
        if apply_tick(ticker, event, now):
            if was_stale and ticker.error is not None and ticker.error.startswith("stale"):
                ticker.error = None
            self._dirty[line.key] = ticker

    def flush(self) -> None:
        """End of a batch of ticks: wake each changed ticker's readers and publish one
        `TickerUpdated` per changed ticker (a quote is often five ticks: one update)."""
        dirty, self._dirty = self._dirty, {}
        publish = self.bus.publish
        for key, ticker in dirty.items():
            ticker._notify()
            publish(TickerUpdated(key, ticker))

    def on_stream_tick(self, event: Any) -> None:
        line = self.memory.streams.by_req_id(event.req_id)
        if line is None:
            return
        self.memory.ticks.record(trio.current_time())
        for stream_id, send in list(line.payload.holders.items()):
            try:
                send.send_nowait(event)
            except trio.WouldBlock:
                # A reader this far behind must know it missed ticks: its stream ends.
                send.close()
                del line.payload.holders[stream_id]
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                del line.payload.holders[stream_id]

    def on_control(self, event: object) -> None:
        if isinstance(event, ev.ContractDetails | ev.SecDefOptParams):
            collect = self._pending.get(event.req_id)
            if collect is not None:
                collect.items.append(event.details if isinstance(event, ev.ContractDetails)
                                     else event)
        elif isinstance(event, ev.ContractDetailsEnd | ev.SecDefOptParamsEnd):
            collect = self._pending.get(event.req_id)
            if collect is not None:
                collect.done.set()
        elif isinstance(event, ErrorOccurred):
            self._on_error(event)
        elif isinstance(event, ConnectionEstablished | ConnectionRecovered):
            self.link_up = True
            self.memory.session = getattr(event, "reconnects", 0)
        elif isinstance(event, ConnectionLost):
            self.link_up = False
            self.memory.delayed_session = False
            self._forget_all("connection to TWS lost")
        elif isinstance(event, LinkLost):
            self.link_up = False
        elif isinstance(event, LinkRestored):
            self.link_up = True
            if event.data_lost:
                asked = [line.req_id for line in self.memory.lines if line.req_id is not None]
                self._forget_all("TWS lost its market data (1101)")
                # Not only on the watchdog's RestoreRequested: a watchdog stopped over the
                # 1101 never sends it (found by the simulation). A second restore asks
                # for nothing: the lines are asked already.
                self._nursery.start_soon(self._cancel_then_restore, asked)
        elif isinstance(event, RestoreRequested):
            self._nursery.start_soon(self.restore)

    def _on_error(self, error: ErrorOccurred) -> None:
        info = error.info
        if info.strategy is codes.Strategy.FARM_NOTICE:
            self._on_farm_notice(error)
            return
        collect = self._pending.get(error.req_id)
        if collect is not None and info.is_error:
            collect.error = UnknownContract(
                f"TWS refused the request ({error.code}: {info.meaning})")
            collect.done.set()
            return
        line = self.memory.lines.by_req_id(error.req_id)
        if line is not None:
            self._on_line_error(line, error)
            return
        stream = self.memory.streams.by_req_id(error.req_id)
        if stream is not None and info.is_error:
            self.memory.streams.refused(error.req_id, link_up=self.link_up)
            for send in stream.payload.holders.values():
                send.close()
            stream.payload.holders.clear()
            self.bus.publish(SubscriptionFailed(stream.key, error.code, info.meaning))

    def _on_line_error(self, line: Line[_Wire], error: ErrorOccurred) -> None:
        info, ticker = error.info, line.payload.ticker
        reason = f"{error.code}: {info.meaning}"
        if info.strategy is codes.Strategy.MARK_SUBSCRIPTION_DEGRADED:
            ticker.error = reason  # still streaming, with less (delayed, or no greeks)
            ticker._touch(trio.current_time())
            ticker._notify()
            return
        if info.strategy is codes.Strategy.TRY_DELAYED and self.settings.allow_delayed:
            self._nursery.start_soon(self._fall_back_to_delayed, line.key, error.req_id)
            return
        if info.is_error:
            self._fail_line(error.req_id, error.code, reason)

    async def _fall_back_to_delayed(self, key: Hashable, req_id: int) -> None:
        lines = self.memory.lines
        line = lines.get(key)
        if line is None or line.req_id != req_id:
            return
        if not self.memory.delayed_session:
            # REAL-TWS: after type 3 a re-request streams delayed data (10167)
            # Type 3: live where subscribed, delayed otherwise (TWS then says 10167).
            await self._submit(ReqMarketDataType(3))
            self.memory.delayed_session = True
        lines.forget_line(key)
        await self._send_wants(lines.restore())

    def _on_farm_notice(self, error: ErrorOccurred) -> None:
        status = codes.farm_status(error.code, error.message)
        if status is None or status.kind is not codes.FarmKind.MARKET_DATA:
            return
        name = status.farm or status.kind.value
        if status.state is codes.FarmState.BROKEN:
            self.memory.farms_down.add(name)
            self._mark_stale(f"stale: market data farm {name} is down")
        else:
            self.memory.farms_down.discard(name)

    def session_replaced(self, session: int | None) -> None:
        """On start: TWS's session is not the one the lines were asked in (it was lost,
        and maybe restored, while this actor was stopped): TWS has none of them."""
        if session != self.memory.session:
            self.memory.session = session
            self.memory.delayed_session = False
            self._forget_all("connection replaced while market data was stopped")

    def _forget_all(self, why: str) -> None:
        for scope in self._unwritten:
            scope.cancel()
        self.memory.lines.forget_all()
        self.memory.streams.forget_all()
        for line in self.memory.lines:
            line.payload.sent = None
        self._mark_stale(f"stale: {why}")

    def _mark_stale(self, reason: str) -> None:
        now = trio.current_time()
        for line in self.memory.lines:
            ticker = line.payload.ticker
            if ticker.state in (TickerState.STREAMING, TickerState.PENDING):
                ticker._set_state(TickerState.STALE, reason, now)
                self.bus.publish(TickerStale(line.key, reason))

    async def _cancel_then_restore(self, asked: list[int]) -> None:
        """After 1101: cancel the ids the lines had, then ask anew. The socket stayed, and
        a request written just before the 1101 reached us may have reached TWS after its
        loss, so its line is live there (found by the simulation); a cancel of an id TWS
        no longer has is answered with 300, which changes nothing."""
        for req_id in asked:
            try:
                await self._submit_for_session(CancelMktData(req_id))
            except IBKRError:
                pass
        await self.restore()

    async def restore(self) -> None:
        """Ask again for every line TWS no longer has (new ids), through the limiter."""
        if self.memory.delayed_session is False and _any_delayed(self.memory.lines):
            await self._submit(ReqMarketDataType(3))
            self.memory.delayed_session = True
        wants = self.memory.lines.restore()
        await self._send_wants(wants)
        for want in wants:
            if not want.cancel:
                self.bus.publish(SubscriptionRestored(want.line.key, want.req_id))
        for stream_want in self.memory.streams.restore():
            await self._send_stream_want(stream_want)

    async def watch_staleness(self) -> None:
        bound = self.settings.stale_after
        if bound <= 0:
            return
        while True:
            await trio.sleep(max(bound / 4, 0.25))
            now = trio.current_time()
            for line in self.memory.lines:
                ticker = line.payload.ticker
                if (ticker.state is TickerState.STREAMING and ticker.last_update is not None
                        and now - ticker.last_update > bound):
                    reason = f"stale: no update for {bound:g} s"
                    ticker._set_state(TickerState.STALE, reason, now)
                    self.bus.publish(TickerStale(line.key, reason))

    def stats(self) -> MarketDataStats:
        m = self.memory
        return MarketDataStats(
            lines_in_use=m.lines.in_use, line_budget=m.lines.budget,
            lines_waiting=m.lines.waiting, tick_by_tick_streams=m.streams.in_use,
            tick_by_tick_budget=m.streams.budget,
            ticks_per_s=float(m.ticks.per_second(trio.current_time())),
            ticks_total=m.ticks.total,
            stale_tickers=sum(1 for line in m.lines
                              if line.payload.ticker.state is TickerState.STALE),
            cached_contracts=len(m.cache))


def _any_delayed(lines: LineBook[_Wire]) -> bool:
    return any(line.payload.ticker.is_delayed for line in lines)


def _refuse_expired(contract: Any) -> None:
    expiry = getattr(contract, "lastTradeDateOrContractMonth", "")
    if contract.secType in ("OPT", "FOP") and len(expiry) == 8 and expiry.isdigit():
        if expiry < datetime.date.today().strftime("%Y%m%d"):
            raise ContractError(f"{describe(contract)} expired on {expiry}")


async def run_market_data(
    mailbox: Mailbox,
    *,
    memory: MarketDataMemory,
    bus: EventBus,
    submit: Submit,
    is_connected: Callable[[], Awaitable[bool]],
    session: Callable[[], Awaitable[int | None]] | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """The supervised actor: serve the market-data calls; keep lines alive.

    ``session`` says which session the connection is on (its reconnect count; None while
    down): a session replaced while this actor was stopped left TWS with none of the
    lines, and only the source can say so (the edges went by unseen)."""
    ticks = bus.subscribe(_TICK_EVENTS, capacity=100_000)
    stream_ticks = bus.subscribe(_STREAM_EVENTS, capacity=100_000, conflate=False)
    control = bus.subscribe(_CONTROL_EVENTS, capacity=100_000)
    with ticks, stream_ticks, control:
        async with trio.open_nursery() as nursery:
            # The link's state at the source: an edge published while we were down is lost.
            actor = MarketDataActor(memory, bus, submit, nursery, await is_connected())
            nursery.start_soon(_pump_ticks, ticks, actor)
            nursery.start_soon(_pump, stream_ticks, actor.on_stream_tick)
            nursery.start_soon(_pump, control, actor.on_control)
            nursery.start_soon(actor.watch_staleness)
            if session is not None:
                actor.session_replaced(await session())
            if actor.link_up:
                # Lines this actor's last incarnation took but never saw written.
                for line in memory.lines:
                    if line.has_slot and line.req_id is not None and line.payload.sent is None:
                        memory.lines.forget_line(line.key)
                nursery.start_soon(actor.restore)
            task_status.started()
            await serve(mailbox, _handlers(actor, nursery))
            nursery.cancel_scope.cancel()


async def _pump_ticks(subscription: Any, actor: MarketDataActor) -> None:
    """Apply every tick already queued, then wake readers once: a batch costs one
    wake-up per changed ticker, however many ticks it held."""
    while True:
        try:
            event = await subscription.receive()
        except trio.EndOfChannel:
            return
        now = trio.current_time()
        actor.on_tick(event, now)
        while True:
            try:
                event = subscription.receive_nowait()
            except trio.WouldBlock:
                break
            actor.on_tick(event, now)
        actor.flush()


async def _pump(subscription: Any, handle: Callable[[Any], None]) -> None:
    async for event in subscription:
        handle(event)


def _handlers(actor: MarketDataActor, nursery: trio.Nursery) -> dict[type, Any]:
    def in_task(work: Callable[[Any, Envelope], Awaitable[object]]) -> Any:
        async def handler(message: Any, envelope: Envelope) -> object:
            async def run() -> None:
                try:
                    result = await work(message, envelope)
                except (IBKRError, ValueError) as exc:
                    envelope.fail(exc)
                    return
                if result is not NOREPLY:
                    envelope.reply(result)

            nursery.start_soon(run)
            return NOREPLY

        return handler

    async def details(message: GetContractDetails, _envelope: Envelope) -> object:
        return await actor.details(message.contract)

    details_in_task = in_task(details)

    async def cached_details(message: GetContractDetails, envelope: Envelope) -> object:
        # A cache hit (every order after the first for its instrument) is answered here:
        # no task on an order's way to the wire.
        cached = actor.memory.cache.details(message.contract)
        return cached if cached is not None else await details_in_task(message, envelope)

    async def chain(message: GetOptionChainDefinition, _envelope: Envelope) -> object:
        return await actor.chain(message.underlying)

    async def subscribe(message: SubscribeTicker, envelope: Envelope) -> object:
        await actor.subscribe(message, envelope)
        return NOREPLY  # answered inside, before the wire requests go out

    async def unsubscribe(message: Unsubscribe, _envelope: Envelope) -> object:
        await actor.unsubscribe(message.contract)
        return None

    async def close_stream(message: CloseTickByTick, _envelope: Envelope) -> object:
        await actor.close_stream(message.stream_id)
        return None

    async def stats(_message: GetMarketDataStats, _envelope: Envelope) -> object:
        return actor.stats()

    return {
        GetContractDetails: cached_details,
        GetOptionChainDefinition: in_task(chain),
        SubscribeTicker: in_task(subscribe),
        Unsubscribe: in_task(unsubscribe),
        OpenTickByTick: in_task(actor.open_stream),
        CloseTickByTick: close_stream,
        GetMarketDataStats: stats,
    }

