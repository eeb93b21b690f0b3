"""The lines the market-data actor holds at TWS: tickers, tick-by-tick streams, and ticks.

`market_lines.LineBook` decides, without I/O, who holds a line under which request id;
this module does what those decisions ask of TWS and of the subscribers: it writes the
line requests through the limiter (never late, for a session TWS has forgotten), routes
each tick into its shared `Ticker` or stream, and fails a line TWS refuses, handing its
slot to the next waiter. Kept apart from the actor's reactions to the connection (see
`market_data_restore`) and from contract lookups (`market_data_lookups`).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import trio

from .._errors import IBKRError
from ..contracts import ContractError
from ..protocol.requests import (
    CancelMktData,
    CancelTickByTickData,
    ReqMktData,
    ReqTickByTickData,
    Request,
)
from ..supervisor import NOREPLY, Envelope, SupervisorError
from ..ticker import Ticker, TickerState, apply_tick
from .bus import EventBus
from .market_data_combos import combo_info, combo_key, is_combo
from .market_data_lookups import ContractLookups, Submit
from .market_data_messages import (
    OpenTickByTick,
    SubscribeTicker,
    SubscriptionFailed,
    TickerUpdated,
)
from .market_data_state import MarketDataMemory, MarketDataTimeout, _Stream, _Wire
from .market_lines import Want

__all__ = ["MarketDataLines"]


class MarketDataLines:
    """Subscribe, unsubscribe and route ticks; one TWS line per contract (or stream kind)."""

    def __init__(self, memory: MarketDataMemory, bus: EventBus, submit: Submit,
                 nursery: trio.Nursery, link_up: bool, contracts: ContractLookups) -> None:
        self.memory = memory
        self.bus = bus
        self.submit = submit
        self.contracts = contracts
        self._nursery = nursery
        self.link_up = link_up
        self._dirty: dict[Hashable, Ticker] = {}
        # Line requests not yet written. When TWS forgets the lines (a lost connection,
        # 1101) they are abandoned: the restore asks again under new ids, and a request of
        # the old session written after the reconnect would hold a second line under an id
        # nobody knows (found by the simulation: a subscribe racing a drop, a restore cut
        # short by a crash).
        self._unwritten: set[trio.CancelScope] = set()
        # Set when a request could not be sent (see `send_unsent`): wakes the retry loop,
        # which otherwise sleeps without a timer (a timer per second would keep a virtual
        # clock from jumping).
        self.unsent_added = trio.Event()

    # -- tickers -------------------------------------------------------------------------

    async def subscribe(self, message: SubscribeTicker, envelope: Envelope) -> Ticker:
        ticks = ",".join(str(t) for t in sorted(set(message.generic_ticks)))
        key: Hashable
        if is_combo(message.contract):
            # TWS gives no contract details for a BAG (321): its legs are its identity.
            info, key = combo_info(message.contract), combo_key(message.contract)
        else:
            info = await self.contracts.resolve(message.contract)
            key = ("conid", info.con_id)
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
        await self.send_wants(wants)
        return line.payload.ticker

    async def unsubscribe(self, contract: Any) -> None:
        key = self._known_key(contract)
        if key is None:
            return  # never subscribed (or already gone): a clear no-op
        line = self.memory.lines.get(key)
        wants = self.memory.lines.release(key, link_up=self.link_up)
        if line is not None and self.memory.lines.get(key) is None:
            line.payload.ticker._set_state(TickerState.CLOSED, None, trio.current_time())
        await self.send_wants(wants)

    def _known_key(self, contract: Any) -> Hashable | None:
        if is_combo(contract):
            try:
                return combo_key(contract)
            except ContractError:
                return None  # never a line
        if getattr(contract, "conId", 0):
            return ("conid", int(contract.conId))
        cached = self.memory.cache.details(contract)
        if cached is None or len(cached) != 1:
            return None
        return ("conid", cached[0].con_id)

    async def send_wants(self, wants: list[Want[_Wire]]) -> None:
        for want in wants:
            wire = want.line.payload
            if want.cancel:
                request: Request = CancelMktData(want.req_id)
            elif want.line.req_id != want.req_id:
                continue  # stale: TWS forgot the lines since, and they are asked anew
            else:
                request = ReqMktData(want.req_id, wire.info.contract, wire.generic_ticks)
            try:
                if not await self.submit_for_session(request):
                    continue
            except IBKRError as exc:
                if want.cancel:
                    self.memory.unsent_cancels[want.req_id] = request
                    self.unsent_added.set()
                elif isinstance(exc, SupervisorError):
                    # The limiter was down, not TWS refusing: ask again once it is back
                    # (found by the soak: a restore during an operator's stop of the
                    # limiter failed the ticker for good).
                    self.memory.unsent_asks[want.req_id] = (want.line.key, request)
                    self.unsent_added.set()
                else:
                    self.fail_line(want.req_id, 0, f"not sent: {type(exc).__name__}")
                continue
            if not want.cancel:
                wire.sent = want.req_id

    async def submit_for_session(self, request: Request) -> bool:
        """Submit a line request; False if TWS forgot the lines before it was written
        (then it was abandoned, never written late)."""
        scope = trio.CancelScope()
        self._unwritten.add(scope)
        try:
            with scope:
                await self.submit(request)
                return True
            return False
        finally:
            self._unwritten.discard(scope)

    def abandon_unwritten(self) -> None:
        """TWS forgot the lines: no request of its old session may be written now."""
        for scope in self._unwritten:
            scope.cancel()

    def fail_line(self, req_id: int, code: int, reason: str) -> None:
        line, promoted = self.memory.lines.refused(req_id, link_up=self.link_up)
        if line is None:
            return
        now = trio.current_time()
        line.payload.ticker._set_state(TickerState.FAILED, reason, now)
        self.bus.publish(SubscriptionFailed(line.key, code, reason))
        if promoted:
            self._nursery.start_soon(self.send_wants, promoted)

    # -- tick-by-tick ----------------------------------------------------------------------

    async def open_stream(self, message: OpenTickByTick, envelope: Envelope) -> object:
        info = await self.contracts.resolve(message.contract)
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
            await self.send_stream_want(want)
        return NOREPLY

    async def close_stream(self, stream_id: int) -> None:
        for line in self.memory.streams:
            send = line.payload.holders.pop(stream_id, None)
            if send is None:
                continue
            send.close()
            for want in self.memory.streams.release(line.key, link_up=self.link_up):
                await self.send_stream_want(want)
            return

    async def send_stream_want(self, want: Want[_Stream]) -> None:
        stream = want.line.payload
        request: Request = (CancelTickByTickData(want.req_id) if want.cancel else
                            ReqTickByTickData(want.req_id, stream.info.contract, stream.kind))
        try:
            if not await self.submit_for_session(request):
                return
        except IBKRError:
            if want.cancel:
                self.memory.unsent_cancels[want.req_id] = request
                self.unsent_added.set()
            return
        if not want.cancel:
            stream.sent = want.req_id

    async def send_unsent(self) -> None:
        """Send again the requests that could not go out: line requests whose line still
        wants that id, then cancels (until they go out, TWS streams to a line nobody reads
        and counts it against the line limit)."""
        asks, lines = self.memory.unsent_asks, self.memory.lines
        for req_id, (key, request) in list(asks.items()):
            line = lines.get(key)
            if line is None or line.req_id != req_id:
                asks.pop(req_id, None)  # released or asked anew since: not wanted
                continue
            try:
                written = await self.submit_for_session(request)
            except IBKRError:
                return  # still no way to the wire: the next round tries again
            asks.pop(req_id, None)
            if written and line.req_id == req_id:
                line.payload.sent = req_id
        cancels = self.memory.unsent_cancels
        for req_id, request in list(cancels.items()):
            try:
                await self.submit_for_session(request)  # False: TWS forgot the line anyway
            except IBKRError:
                return  # still no way to the wire: the next round tries again
            cancels.pop(req_id, None)

    def stream_refused(self, req_id: int, code: int, meaning: str) -> None:
        """TWS refused a tick-by-tick stream (if ``req_id`` is one): end its readers'."""
        stream = self.memory.streams.by_req_id(req_id)
        if stream is None:
            return
        self.memory.streams.refused(req_id, link_up=self.link_up)
        for send in stream.payload.holders.values():
            send.close()
        stream.payload.holders.clear()
        self.bus.publish(SubscriptionFailed(stream.key, code, meaning))

    # -- ticks -----------------------------------------------------------------------------

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
