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

This module is the actor itself: its handler table, the pumps that feed it from the bus,
and its reactions to what TWS and the connection say. The work it hands on lives beside
it: `market_data_lookups` (contracts and chains), `market_data_lines` (holding lines and
routing ticks), `market_data_combos` (a BAG's line, keyed by its legs: TWS gives no details
for a combo), `market_data_restore` (asking again after a loss) and `market_data_stale`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from .._errors import IBKRError
from ..protocol import codes
from ..protocol import events as ev
from ..supervisor import NOREPLY, Envelope, Mailbox, serve
from ..ticker import TickerState
from .bus import EventBus
from .connection_messages import (
    ConnectionEstablished,
    ConnectionLost,
    ConnectionRecovered,
    ErrorOccurred,
    LinkLost,
    LinkRestored,
)
from .market_data_lines import MarketDataLines
from .market_data_lookups import ContractLookups, Submit
from .market_data_messages import (
    CloseTickByTick,
    GetContractDetails,
    GetMarketDataStats,
    GetOptionChainDefinition,
    MarketDataStats,
    OpenTickByTick,
    SubscribeTicker,
    Unsubscribe,
)
from .market_data_restore import (
    cancel_then_restore,
    fall_back_to_delayed,
    forget_all,
    forget_unseen_writes,
    restore,
    session_replaced,
)
from .market_data_stale import note_farm, watch_staleness
from .market_data_state import (
    MarketDataMemory,
    MarketDataSettings,
    MarketDataTimeout,
    _Wire,
    market_data_settings,
)
from .market_lines import Line
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

#: Generic tick lists TWS accepts on reqMktData that this runtime knows how to show.
KNOWN_GENERIC_TICKS = frozenset({100, 101, 104, 105, 106, 165, 221, 225, 233, 236, 258, 293,
                                 294, 295, 318, 411, 456})

# How often requests that could not be sent are tried again (seconds).
_RETRY_UNSENT = 1.0
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
        self._nursery = nursery
        self.contracts = ContractLookups(memory, submit)
        self.lines = MarketDataLines(memory, bus, submit, nursery, link_up, self.contracts)

    # -- what TWS says -------------------------------------------------------------------

    def on_control(self, event: object) -> None:
        lines = self.lines
        if isinstance(event, ev.ContractDetails | ev.SecDefOptParams
                      | ev.ContractDetailsEnd | ev.SecDefOptParamsEnd):
            self.contracts.on_answer(event)
        elif isinstance(event, ErrorOccurred):
            self._on_error(event)
        elif isinstance(event, ConnectionEstablished | ConnectionRecovered):
            lines.link_up = True
            self.memory.session = (getattr(event, "reconnects", 0), event.data_resets)
        elif isinstance(event, ConnectionLost):
            lines.link_up = False
            self.memory.delayed_session = False
            forget_all(lines, "connection to TWS lost")
        elif isinstance(event, LinkLost):
            lines.link_up = False
        elif isinstance(event, LinkRestored):
            lines.link_up = True
            if event.data_lost:
                if self.memory.session is not None:
                    self.memory.session = (self.memory.session[0], event.data_resets)
                asked = [line.req_id for line in self.memory.lines if line.req_id is not None]
                forget_all(lines, "TWS lost its market data (1101)")
                # Not only on the watchdog's RestoreRequested: a watchdog stopped over the
                # 1101 never sends it (found by the simulation). A second restore asks
                # for nothing: the lines are asked already.
                self._nursery.start_soon(cancel_then_restore, lines, asked)
        elif isinstance(event, RestoreRequested):
            self._nursery.start_soon(restore, lines)

    def _on_error(self, error: ErrorOccurred) -> None:
        info = error.info
        if info.strategy is codes.Strategy.FARM_NOTICE:
            note_farm(self.memory, self.bus, error)
            return
        if self.contracts.on_refusal(error):
            return
        line = self.memory.lines.by_req_id(error.req_id)
        if line is not None:
            self._on_line_error(line, error)
            return
        if info.is_error:
            self.lines.stream_refused(error.req_id, error.code, info.meaning)

    def _on_line_error(self, line: Line[_Wire], error: ErrorOccurred) -> None:
        info, ticker = error.info, line.payload.ticker
        reason = f"{error.code}: {info.meaning}"
        if info.strategy is codes.Strategy.MARK_SUBSCRIPTION_DEGRADED:
            ticker.error = reason  # still streaming, with less (delayed, or no greeks)
            ticker._touch(trio.current_time())
            ticker._notify()
            return
        if info.strategy is codes.Strategy.TRY_DELAYED and self.settings.allow_delayed:
            self._nursery.start_soon(fall_back_to_delayed, self.lines, line.key, error.req_id)
            return
        if info.is_error:
            self.lines.fail_line(error.req_id, error.code, reason)

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


async def run_market_data(
    mailbox: Mailbox,
    *,
    memory: MarketDataMemory,
    bus: EventBus,
    submit: Submit,
    is_connected: Callable[[], Awaitable[bool]],
    session: Callable[[], Awaitable[tuple[int, int] | None]] | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """The supervised actor: serve the market-data calls; keep lines alive.

    ``session`` says which session the connection is on (its reconnect count and its
    1101 count; None while down): a session replaced, or a 1101, while this actor was
    stopped left TWS with none of the lines, and only the source can say so (the edges
    went by unseen)."""
    ticks = bus.subscribe(_TICK_EVENTS, capacity=100_000)
    stream_ticks = bus.subscribe(_STREAM_EVENTS, capacity=100_000, conflate=False)
    control = bus.subscribe(_CONTROL_EVENTS, capacity=100_000)
    with ticks, stream_ticks, control:
        async with trio.open_nursery() as nursery:
            # The link's state at the source: an edge published while we were down is lost.
            actor = MarketDataActor(memory, bus, submit, nursery, await is_connected())
            nursery.start_soon(_pump_ticks, ticks, actor.lines)
            nursery.start_soon(_pump, stream_ticks, actor.lines.on_stream_tick)
            nursery.start_soon(_pump, control, actor.on_control)
            nursery.start_soon(watch_staleness, memory, bus, actor.settings.stale_after)
            nursery.start_soon(_retry_unsent, actor.lines)
            if session is not None:
                session_replaced(actor.lines, await session())
            if actor.lines.link_up:
                forget_unseen_writes(memory)
                nursery.start_soon(restore, actor.lines)
            task_status.started()
            await serve(mailbox, _handlers(actor, nursery))
            nursery.cancel_scope.cancel()


async def _retry_unsent(lines: MarketDataLines) -> None:
    """Once a second, send the line requests and cancels that could not go out (found by
    the soak: with the limiter stopped, a restore failed its ticker for good and an
    unsubscribed line stayed live at TWS for good)."""
    memory = lines.memory
    while True:
        if not (memory.unsent_asks or memory.unsent_cancels):
            lines.unsent_added = trio.Event()
            await lines.unsent_added.wait()
        await trio.sleep(_RETRY_UNSENT)
        if lines.link_up:
            await lines.send_unsent()


async def _pump_ticks(subscription: Any, lines: MarketDataLines) -> None:
    """Apply every tick already queued, then wake readers once: a batch costs one
    wake-up per changed ticker, however many ticks it held."""
    while True:
        try:
            event = await subscription.receive()
        except trio.EndOfChannel:
            return
        now = trio.current_time()
        lines.on_tick(event, now)
        while True:
            try:
                event = subscription.receive_nowait()
            except trio.WouldBlock:
                break
            lines.on_tick(event, now)
        lines.flush()


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
        return await actor.contracts.details(message.contract)

    details_in_task = in_task(details)

    async def cached_details(message: GetContractDetails, envelope: Envelope) -> object:
        # A cache hit (every order after the first for its instrument) is answered here:
        # no task on an order's way to the wire.
        cached = actor.memory.cache.details(message.contract)
        return cached if cached is not None else await details_in_task(message, envelope)

    async def chain(message: GetOptionChainDefinition, _envelope: Envelope) -> object:
        return await actor.contracts.chain(message.underlying)

    async def subscribe(message: SubscribeTicker, envelope: Envelope) -> object:
        await actor.lines.subscribe(message, envelope)
        return NOREPLY  # answered inside, before the wire requests go out

    async def unsubscribe(message: Unsubscribe, _envelope: Envelope) -> object:
        await actor.lines.unsubscribe(message.contract)
        return None

    async def close_stream(message: CloseTickByTick, _envelope: Envelope) -> object:
        await actor.lines.close_stream(message.stream_id)
        return None

    async def stats(_message: GetMarketDataStats, _envelope: Envelope) -> object:
        return actor.stats()

    return {
        GetContractDetails: cached_details,
        GetOptionChainDefinition: in_task(chain),
        SubscribeTicker: in_task(subscribe),
        Unsubscribe: in_task(unsubscribe),
        OpenTickByTick: in_task(actor.lines.open_stream),
        CloseTickByTick: close_stream,
        GetMarketDataStats: stats,
    }

