"""What the market-data actor keeps across its own restarts, and its settings.

The lines (who holds what, under which request id), the contract cache, the request-id
counter and whether the session was switched to delayed data are created by the runtime
and handed to each incarnation of the actor, as the tree owns mailboxes: a crash of the
actor must not make TWS's lines unknown to us, nor hand out a request id twice.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Iterator
from pathlib import Path
from typing import Any

import attrs
import trio

from .._errors import IBKRError
from ..ticker import Ticker
from .contract_cache import ContractCache
from .market_data_messages import ContractInfo
from .market_lines import LineBook

__all__ = ["MarketDataMemory", "MarketDataSettings", "MarketDataTimeout", "RateMeter",
           "market_data_settings"]

# Request ids start high so that an id quoted in a TWS error is never mistaken for an
# order id (those start near 1 and grow by one per order).
_FIRST_REQUEST_ID = 1_000_000_000


class MarketDataTimeout(IBKRError, TimeoutError):
    """TWS did not answer a contract or chain request in time (nothing is held)."""


@attrs.frozen
class MarketDataSettings:
    """What the market-data actor needs of the configuration."""

    line_budget: int = 100
    tick_by_tick_budget: int = 5
    allow_delayed: bool = True
    cache_ttl: float = 24 * 3600.0
    cache_path: Path | None = None
    stale_after: float = 60.0
    request_timeout: float = 30.0


def market_data_settings(config: Any) -> MarketDataSettings:
    """The settings from an `IBKRConfig` (its ``market_data`` section when it has one)."""
    section = getattr(config, "market_data", None)
    if section is None:
        return MarketDataSettings(request_timeout=config.request_timeout)
    cache_path = section.contract_cache_path
    return MarketDataSettings(
        line_budget=section.max_market_data_lines,
        tick_by_tick_budget=section.max_tick_by_tick_streams,
        allow_delayed=section.allow_delayed_market_data,
        cache_ttl=section.contract_cache_ttl,
        cache_path=cache_path,
        stale_after=section.ticker_stale_after,
        request_timeout=config.request_timeout,
    )


@attrs.define(eq=False)
class _Wire:
    """What a market-data line asks TWS for, and the ticker its ticks go to."""

    info: ContractInfo
    ticker: Ticker
    generic_ticks: str
    sent: int | None = None  # the req id the limiter confirmed written


@attrs.define(eq=False)
class _Stream:
    info: ContractInfo
    kind: str
    holders: dict[int, trio.MemorySendChannel[object]] = attrs.Factory(dict)
    sent: int | None = None


@attrs.define
class RateMeter:
    """Events in total and in the last whole second: two integers and a timestamp per
    event, cheap enough for every tick (a sliding window would keep every timestamp)."""

    total: int = 0
    _second: float = 0.0
    _in_second: int = 0
    _last_second: int = 0

    def record(self, now: float) -> None:
        self.total += 1
        if now - self._second >= 1.0:
            self._last_second = self._in_second if now - self._second < 2.0 else 0
            self._second, self._in_second = now, 0
        self._in_second += 1

    def per_second(self, now: float) -> int:
        """Events in the last complete second (0 if the meter has been quiet since)."""
        if now - self._second >= 2.0:
            return 0
        if now - self._second >= 1.0:
            return self._in_second
        return self._last_second


@attrs.define(eq=False)
class MarketDataMemory:
    """The actor's state that must survive its restart; created by the runtime."""

    settings: MarketDataSettings
    lines: LineBook[_Wire] = attrs.field(init=False)
    streams: LineBook[_Stream] = attrs.field(init=False)
    cache: ContractCache = attrs.field(init=False)
    delayed_session: bool = False
    #: The session (reconnect count, 1101 count) the lines were asked in; None: none yet.
    session: tuple[int, int] | None = None
    farms_down: set[str] = attrs.Factory(set)
    #: Cancels of lines and streams TWS still holds that could not be sent (the limiter
    #: stopped, say), by request id: sent again until they go out or TWS forgets the lines.
    unsent_cancels: dict[int, Any] = attrs.Factory(dict)
    #: Line requests that could not be sent because the way to the wire was down (the
    #: limiter stopped or restarting), by request id, with their line's key: sent again
    #: while the line still wants that id. A line is not failed for an outage of ours.
    unsent_asks: dict[int, tuple[Hashable, Any]] = attrs.Factory(dict)
    ticks: RateMeter = attrs.Factory(RateMeter)
    _ids: Iterator[int] = attrs.Factory(lambda: itertools.count(_FIRST_REQUEST_ID))
    _stream_ids: Iterator[int] = attrs.Factory(lambda: itertools.count(1))

    def __attrs_post_init__(self) -> None:
        s = self.settings
        self.lines = LineBook(s.line_budget, self.next_req_id)
        self.streams = LineBook(s.tick_by_tick_budget, self.next_req_id)
        self.cache = ContractCache(s.cache_ttl, s.cache_path)

    def next_req_id(self) -> int:
        return next(self._ids)

    def next_stream_id(self) -> int:
        return next(self._stream_ids)
