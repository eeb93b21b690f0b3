"""Typed inbound events: what TWS said, as immutable values.

The bridge turns every EWrapper callback into exactly one of these. Callbacks the runtime
acts on get their own class; every other callback becomes a `WrapperCallback` carrying the
method name and arguments, so nothing TWS sends is silently lost. Market-data events carry
a ``conflation_key`` (the event bus keeps only the latest per key for a slow subscriber);
events without one are delivered reliably.

ibapi hands some callbacks mutable objects (Contract, Order, OrderState, Execution). The
decoder builds a fresh one per message and nothing else keeps it, so the event owns it; code
must treat them as read-only.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import attrs

__all__ = [
    "ConnectAck",
    "ConnectionClosed",
    "ContractDetails",
    "ContractDetailsEnd",
    "CurrentTime",
    "CurrentTimeInMillis",
    "ExecDetails",
    "ExecDetailsEnd",
    "MalformedMessage",
    "ManagedAccounts",
    "MarketDataType",
    "NextValidId",
    "OpenOrder",
    "OpenOrderEnd",
    "OrderStatus",
    "Position",
    "PositionEnd",
    "ReaderStopped",
    "SecDefOptParams",
    "SecDefOptParamsEnd",
    "TickByTickAllLast",
    "TickByTickBidAsk",
    "TickByTickMidPoint",
    "TickGeneric",
    "TickOptionComputation",
    "TickPrice",
    "TickSize",
    "TickSnapshotEnd",
    "TickString",
    "TwsError",
    "TwsEvent",
    "WrapperCallback",
]


class TwsEvent:
    """Base of every inbound event (for isinstance filters on the bus)."""

    __slots__ = ()


# --- connection and session ---------------------------------------------------------


@attrs.frozen
class ConnectAck(TwsEvent):
    """The handshake finished and startApi was sent."""


@attrs.frozen
class ConnectionClosed(TwsEvent):
    """ibapi noticed the socket is gone (or disconnect() was called)."""


@attrs.frozen
class NextValidId(TwsEvent):
    order_id: int


@attrs.frozen
class ManagedAccounts(TwsEvent):
    accounts: tuple[str, ...]


@attrs.frozen
class CurrentTime(TwsEvent):
    time: int


@attrs.frozen
class CurrentTimeInMillis(TwsEvent):
    time_ms: int


@attrs.frozen
class TwsError(TwsEvent):
    """An ERR_MSG from TWS, or an error ibapi raised itself (502, 504, ...).

    Many codes are notices, not errors: `ibkr_connector.protocol.codes` says which.
    """

    req_id: int
    code: int
    message: str
    error_time: int = 0
    advanced_order_reject_json: str = ""


# --- market data --------------------------------------------------------------------


@attrs.frozen
class TickPrice(TwsEvent):
    """One TICK_PRICE frame: the price and, for bid, ask and last (live or delayed: tick
    types 1, 2, 4, 66, 67, 68), the size the same frame carries.

    ibapi reports such a frame as two callbacks (``tickPrice``, then ``tickSize`` with
    the matching size tick type 0, 3, 5, 69, 70, 71); here it is one event, and no
    `TickSize` is made for it: a `TickSize` always comes from a TICK_SIZE frame, a change
    of size alone. ``size`` is None for the tick types that carry none (high, low,
    close...) and ibapi's ``UNSET_DECIMAL`` when TWS left it unset.
    """

    req_id: int
    tick_type: int
    price: float
    can_auto_execute: bool = False
    past_limit: bool = False
    pre_open: bool = False
    size: Decimal | None = None

    @property
    def conflation_key(self) -> tuple[str, int, int]:
        return ("price", self.req_id, self.tick_type)


@attrs.frozen
class TickSize(TwsEvent):
    req_id: int
    tick_type: int
    size: Decimal

    @property
    def conflation_key(self) -> tuple[str, int, int]:
        return ("size", self.req_id, self.tick_type)


@attrs.frozen
class TickString(TwsEvent):
    req_id: int
    tick_type: int
    value: str

    @property
    def conflation_key(self) -> tuple[str, int, int]:
        return ("string", self.req_id, self.tick_type)


@attrs.frozen
class TickGeneric(TwsEvent):
    req_id: int
    tick_type: int
    value: float

    @property
    def conflation_key(self) -> tuple[str, int, int]:
        return ("generic", self.req_id, self.tick_type)


@attrs.frozen
class TickOptionComputation(TwsEvent):
    """Option greeks: tick types 10-13 (bid, ask, last, model), 80-83 delayed."""

    req_id: int
    tick_type: int
    tick_attrib: int
    implied_vol: float | None
    delta: float | None
    option_price: float | None
    pv_dividend: float | None
    gamma: float | None
    vega: float | None
    theta: float | None
    underlying_price: float | None

    @property
    def conflation_key(self) -> tuple[str, int, int]:
        return ("greeks", self.req_id, self.tick_type)


@attrs.frozen
class TickByTickAllLast(TwsEvent):
    """A tick-by-tick trade (``tick_type`` 1: Last, 2: AllLast)."""

    req_id: int
    tick_type: int
    time: int
    price: float
    size: Decimal
    past_limit: bool
    unreported: bool
    exchange: str
    special_conditions: str

    @property
    def conflation_key(self) -> tuple[str, int]:
        return ("tbt-last", self.req_id)


@attrs.frozen
class TickByTickBidAsk(TwsEvent):
    req_id: int
    time: int
    bid_price: float
    ask_price: float
    bid_size: Decimal
    ask_size: Decimal
    bid_past_low: bool
    ask_past_high: bool

    @property
    def conflation_key(self) -> tuple[str, int]:
        return ("tbt-bidask", self.req_id)


@attrs.frozen
class TickByTickMidPoint(TwsEvent):
    req_id: int
    time: int
    mid_point: float

    @property
    def conflation_key(self) -> tuple[str, int]:
        return ("tbt-midpoint", self.req_id)


@attrs.frozen
class TickSnapshotEnd(TwsEvent):
    req_id: int


@attrs.frozen
class MarketDataType(TwsEvent):
    req_id: int
    market_data_type: int


# --- orders, executions, positions, contracts -------------------------------------------


@attrs.frozen
class OrderStatus(TwsEvent):
    order_id: int
    status: str
    filled: Decimal
    remaining: Decimal
    avg_fill_price: float
    perm_id: int
    parent_id: int
    last_fill_price: float
    client_id: int
    why_held: str
    mkt_cap_price: float


@attrs.frozen
class OpenOrder(TwsEvent):
    order_id: int
    contract: Any
    order: Any
    order_state: Any


@attrs.frozen
class OpenOrderEnd(TwsEvent):
    pass


@attrs.frozen
class ExecDetails(TwsEvent):
    req_id: int
    contract: Any
    execution: Any


@attrs.frozen
class ExecDetailsEnd(TwsEvent):
    req_id: int


@attrs.frozen
class Position(TwsEvent):
    account: str
    contract: Any
    position: Decimal
    avg_cost: float


@attrs.frozen
class PositionEnd(TwsEvent):
    pass


@attrs.frozen
class ContractDetails(TwsEvent):
    req_id: int
    details: Any


@attrs.frozen
class ContractDetailsEnd(TwsEvent):
    req_id: int


@attrs.frozen
class SecDefOptParams(TwsEvent):
    """One ``securityDefinitionOptionParameter``: a trading class's expiries and strikes
    (the union over its expiries: not every pair is a listed contract)."""

    req_id: int
    exchange: str
    underlying_con_id: int
    trading_class: str
    multiplier: str
    expirations: frozenset[str]
    strikes: frozenset[float]


@attrs.frozen
class SecDefOptParamsEnd(TwsEvent):
    req_id: int


# --- everything else, and the bridge's own events ------------------------------------


@attrs.frozen
class WrapperCallback(TwsEvent):
    """Any EWrapper callback without a class of its own: the method name and arguments."""

    method: str
    args: tuple[Any, ...]


@attrs.frozen
class MalformedMessage(TwsEvent):
    """A frame ibapi could not decode. The session's reader stops on it (as ibapi's run()
    loop would); the connection restarts."""

    detail: str


@attrs.frozen
class ReaderStopped(TwsEvent):
    """The session's reader thread has ended; no further events come from this client."""

    client_serial: int

