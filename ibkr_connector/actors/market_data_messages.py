"""The market-data actor's vocabulary: the calls it serves, the events it publishes, its
errors, and the typed results (contract info, chain definitions) it hands back.

Kept apart from the actor so user code and other actors can depend on the words without
the machinery. Every message and event is a frozen value.
"""

from __future__ import annotations

import enum
from collections.abc import Hashable

import attrs
from ibapi.contract import Contract

from .._errors import IBKRError
from ..ticker import Ticker

__all__ = [
    "ChainDefinition",
    "ContractInfo",
    "GetContractDetails",
    "GetMarketDataStats",
    "GetOptionChainDefinition",
    "MarketDataStats",
    "OpenTickByTick",
    "CloseTickByTick",
    "SubscribeTicker",
    "SubscriptionFailed",
    "SubscriptionRestored",
    "TickByTickKind",
    "TickerStale",
    "TickerUpdated",
    "UnknownContract",
    "Unsubscribe",
]


class UnknownContract(IBKRError, LookupError):
    """TWS has no instrument matching the contract (its error 200), or the runtime knows
    before asking (an expiry or strike the chain does not list)."""


class TickByTickKind(enum.Enum):
    """TWS's tick-by-tick types, spelt as the wire wants them (case matters)."""

    LAST = "Last"
    ALL_LAST = "AllLast"
    BID_ASK = "BidAsk"
    MID_POINT = "MidPoint"


@attrs.frozen
class ContractInfo:
    """What TWS's contract details say of one instrument, typed; ``contract`` is the fully
    qualified ibapi Contract (conId set) to use in every later request."""

    contract: Contract = attrs.field(eq=False, repr=False)
    con_id: int
    symbol: str
    sec_type: str
    expiry: str
    strike: float | None
    right: str
    multiplier: str
    exchange: str
    primary_exchange: str
    currency: str
    local_symbol: str
    trading_class: str
    min_tick: float
    under_con_id: int
    long_name: str
    time_zone: str
    valid_exchanges: tuple[str, ...]
    order_types: tuple[str, ...]


@attrs.frozen
class ChainDefinition:
    """``reqSecDefOptParams`` for one underlying: per trading class, the union of strikes
    over every expiry (not every strike exists for every expiry)."""

    underlying_con_id: int
    exchange: str
    trading_class: str
    multiplier: str
    expirations: tuple[str, ...]
    strikes: tuple[float, ...]


# --- calls -----------------------------------------------------------------------------


@attrs.frozen
class GetContractDetails:
    """Call: reply with a tuple of `ContractInfo` (cached), or fail `UnknownContract`."""

    contract: Contract = attrs.field(eq=False)


@attrs.frozen
class GetOptionChainDefinition:
    """Call: reply with a tuple of `ChainDefinition` for an underlying (cached)."""

    underlying: ContractInfo


@attrs.frozen
class SubscribeTicker:
    """Call: hold a line for ``contract`` (resolved first); reply with its `Ticker`.

    ``priority`` (lower first) and ``wait`` decide what happens past the line budget."""

    contract: Contract = attrs.field(eq=False)
    generic_ticks: tuple[int, ...] = ()
    priority: int = 0
    wait: bool = False


@attrs.frozen
class Unsubscribe:
    """Call: drop one hold on ``contract``'s line; a contract not held is a no-op."""

    contract: Contract = attrs.field(eq=False)


@attrs.frozen
class OpenTickByTick:
    """Call: open a tick-by-tick stream; reply with a trio receive channel of its ticks."""

    contract: Contract = attrs.field(eq=False)
    kind: TickByTickKind
    capacity: int = 10_000


@attrs.frozen
class CloseTickByTick:
    """Cast: the holder of stream ``stream_id`` is done with it."""

    stream_id: int


@attrs.frozen
class GetMarketDataStats:
    """Call: reply with `MarketDataStats`."""


@attrs.frozen
class MarketDataStats:
    lines_in_use: int
    line_budget: int
    lines_waiting: int
    tick_by_tick_streams: int
    tick_by_tick_budget: int
    ticks_per_s: float
    ticks_total: int
    stale_tickers: int
    cached_contracts: int


# --- events on the bus ---------------------------------------------------------------


@attrs.frozen
class TickerUpdated:
    """A ticker changed. Conflated per contract on the bus: a slow reader sees the latest."""

    key: Hashable
    ticker: Ticker = attrs.field(eq=False)

    @property
    def conflation_key(self) -> tuple[str, Hashable]:
        return ("ticker", self.key)


@attrs.frozen
class SubscriptionRestored:
    """A line was asked for again after TWS forgot it (reconnect, 1101)."""

    key: Hashable
    req_id: int


@attrs.frozen
class SubscriptionFailed:
    """TWS refused a line for good; its ticker is `FAILED` and says why."""

    key: Hashable
    code: int
    reason: str


@attrs.frozen
class TickerStale:
    """A ticker stopped updating (its farm is down, or past the staleness bound)."""

    key: Hashable
    reason: str
