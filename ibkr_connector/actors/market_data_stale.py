"""Stale marking of the market-data actor: a silent stall is never silent.

A ticker stops updating for three reasons TWS will not always announce: its data farm
is down (2103), TWS forgot the lines (a lost socket, 1101), or nothing has come for
``stale_after`` seconds. Each marks the streaming and pending tickers `STALE` and
publishes `TickerStale`; the next tick clears it. Kept apart from the line bookkeeping:
staleness changes what a ticker says, never which lines are held.
"""

from __future__ import annotations

import trio

from ..protocol import codes
from ..ticker import TickerState
from .bus import EventBus
from .connection_messages import ErrorOccurred
from .market_data_messages import TickerStale
from .market_data_state import MarketDataMemory, _Wire
from .market_lines import LineBook

__all__ = ["mark_stale", "note_farm", "watch_staleness"]


def mark_stale(lines: LineBook[_Wire], bus: EventBus, reason: str) -> None:
    """Every ticker that streams or waits for its first tick is stale for ``reason``."""
    now = trio.current_time()
    for line in lines:
        ticker = line.payload.ticker
        if ticker.state in (TickerState.STREAMING, TickerState.PENDING):
            ticker._set_state(TickerState.STALE, reason, now)
            bus.publish(TickerStale(line.key, reason))


def note_farm(memory: MarketDataMemory, bus: EventBus, error: ErrorOccurred) -> None:
    """A farm notice: keep the set of market-data farms down; a broken one stales all."""
    status = codes.farm_status(error.code, error.message)
    if status is None or status.kind is not codes.FarmKind.MARKET_DATA:
        return
    name = status.farm or status.kind.value
    if status.state is codes.FarmState.BROKEN:
        memory.farms_down.add(name)
        mark_stale(memory.lines, bus, f"stale: market data farm {name} is down")
    else:
        memory.farms_down.discard(name)


async def watch_staleness(memory: MarketDataMemory, bus: EventBus, bound: float) -> None:
    """Mark stale every streaming ticker with no update for ``bound`` seconds (0: never)."""
    if bound <= 0:
        return
    while True:
        await trio.sleep(max(bound / 4, 0.25))
        now = trio.current_time()
        for line in memory.lines:
            ticker = line.payload.ticker
            if (ticker.state is TickerState.STREAMING and ticker.last_update is not None
                    and now - ticker.last_update > bound):
                reason = f"stale: no update for {bound:g} s"
                ticker._set_state(TickerState.STALE, reason, now)
                bus.publish(TickerStale(line.key, reason))
