"""Restoring the market-data lines after TWS forgot them.

A lost socket, a 1101 or a session replaced while the actor was stopped leaves TWS with
none of our lines; a 354 / 10089 asks for the session to switch to delayed data. In each
case every line is asked for again, through the limiter, under a new id, and the *same*
`Ticker` objects go on: subscribers never resubscribe. Kept apart from the line
bookkeeping (`market_data_lines`), which it drives: this is what a loss does to it.
"""

from __future__ import annotations

from collections.abc import Hashable

from .._errors import IBKRError
from ..protocol.requests import CancelMktData, ReqMarketDataType
from .market_data_lines import MarketDataLines
from .market_data_messages import SubscriptionRestored
from .market_data_stale import mark_stale
from .market_data_state import MarketDataMemory, _Wire
from .market_lines import LineBook

__all__ = ["cancel_then_restore", "fall_back_to_delayed", "forget_all",
           "forget_unseen_writes", "restore", "session_replaced"]


def forget_all(lines: MarketDataLines, why: str) -> None:
    """TWS has none of the lines: abandon unwritten requests and mark the tickers stale."""
    memory = lines.memory
    lines.abandon_unwritten()
    memory.unsent_cancels.clear()  # TWS holds none of the lines they were for
    memory.unsent_asks.clear()  # the restore asks anew, under new ids
    memory.lines.forget_all()
    memory.streams.forget_all()
    for line in memory.lines:
        line.payload.sent = None
    mark_stale(memory.lines, lines.bus, f"stale: {why}")


def session_replaced(lines: MarketDataLines, session: tuple[int, int] | None) -> None:
    """On start: TWS's session is not the one the lines were asked in (it was lost, and
    maybe restored, or TWS lost its market data in a 1101, while this actor was
    stopped): TWS has none of them."""
    memory = lines.memory
    if session != memory.session:
        memory.session = session
        memory.delayed_session = False
        forget_all(lines, "connection replaced while market data was stopped")


def forget_unseen_writes(memory: MarketDataMemory) -> None:
    """On start with the link up: lines this actor's last incarnation took but never saw
    written are forgotten, so the restore asks for them (once) under new ids."""
    for line in memory.lines:
        if line.has_slot and line.req_id is not None and line.payload.sent is None:
            memory.lines.forget_line(line.key)


async def cancel_then_restore(lines: MarketDataLines, asked: list[int]) -> None:
    """After 1101: cancel the ids the lines had, then ask anew. The socket stayed, and
    a request written just before the 1101 reached us may have reached TWS after its
    loss, so its line is live there (found by the simulation); a cancel of an id TWS
    no longer has is answered with 300, which changes nothing."""
    for req_id in asked:
        try:
            await lines.submit_for_session(CancelMktData(req_id))
        except IBKRError:
            pass
    await restore(lines)


async def restore(lines: MarketDataLines) -> None:
    """Ask again for every line TWS no longer has (new ids), through the limiter."""
    memory = lines.memory
    if memory.delayed_session is False and _any_delayed(memory.lines):
        await lines.submit(ReqMarketDataType(3))
        memory.delayed_session = True
    wants = memory.lines.restore()
    await lines.send_wants(wants)
    for want in wants:
        if not want.cancel:
            lines.bus.publish(SubscriptionRestored(want.line.key, want.req_id))
    for stream_want in memory.streams.restore():
        await lines.send_stream_want(stream_want)


async def fall_back_to_delayed(lines: MarketDataLines, key: Hashable, req_id: int) -> None:
    """No live permission (354 / 10089): switch the session to delayed data, once, and
    ask for the line again."""
    book = lines.memory.lines
    line = book.get(key)
    if line is None or line.req_id != req_id:
        return
    if not lines.memory.delayed_session:
        # REAL-TWS: after type 3 a re-request streams delayed data (10167)
        # Type 3: live where subscribed, delayed otherwise (TWS then says 10167).
        await lines.submit(ReqMarketDataType(3))
        lines.memory.delayed_session = True
    book.forget_line(key)
    await lines.send_wants(book.restore())


def _any_delayed(lines: LineBook[_Wire]) -> bool:
    return any(line.payload.ticker.is_delayed for line in lines)
