"""Typed outbound requests: what we may ask of TWS, validated before it reaches the wire.

Each request is a frozen attrs value that knows its pacing priority and how to call
ibapi's EClient. Nothing outside the connection actor calls EClient; everything else builds
one of these and hands it to the limiter. Validation happens at construction, so a bad
request is a `RequestError` in the caller's stack, not a TWS error seconds later.

Every request here is one wire message, which is what IB's 50 msg/s limit counts.
"""

from __future__ import annotations

import enum
from typing import Any, ClassVar

import attrs
from ibapi.contract import Contract
from ibapi.execution import ExecutionFilter
from ibapi.order import Order
from ibapi.order_cancel import OrderCancel

from .._errors import IBKRError

__all__ = [
    "CancelMktData",
    "CancelOrder",
    "CancelTickByTickData",
    "Priority",
    "PlaceOrder",
    "ReqAllOpenOrders",
    "ReqCompletedOrders",
    "ReqContractDetails",
    "ReqCurrentTime",
    "ReqCurrentTimeInMillis",
    "ReqExecutions",
    "ReqIds",
    "ReqMarketDataType",
    "ReqMktData",
    "ReqOpenOrders",
    "ReqPositions",
    "ReqSecDefOptParams",
    "ReqTickByTickData",
    "Request",
    "RequestError",
]


class RequestError(IBKRError, ValueError):
    """A request is malformed; it was not sent."""


class Priority(enum.IntEnum):
    """Pacing priority, lowest value first. A cancel must never wait behind market data."""

    CANCEL = 0
    """cancelOrder and the cancel*/unsubscribe family: they reduce risk and load."""
    ORDER = 1
    """placeOrder, including modifications of an existing order id."""
    MARKET_DATA = 2
    """reqMktData, reqTickByTickData and similar streaming subscriptions."""
    INFO = 3
    """History, contract details, option chains, account and other information."""


def _request_id(instance: object, attribute: attrs.Attribute[Any], value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        name = f"{type(instance).__name__}.{attribute.name}"
        raise RequestError(f"{name} must be an int >= 0, got {value!r}")


def _contract(instance: object, attribute: attrs.Attribute[Any], value: Contract) -> None:
    if not isinstance(value, Contract):
        raise RequestError(f"{type(instance).__name__}.{attribute.name} must be an ibapi Contract")
    if not (value.conId or value.symbol or value.localSymbol):
        raise RequestError(
            f"{type(instance).__name__}.{attribute.name} needs a conId, symbol or localSymbol"
        )
    for name, text in vars(value).items():
        if isinstance(text, str) and not _wire_safe(text):
            # ibapi would refuse the whole request at send time (error 584, nothing sent).
            raise RequestError(
                f"{type(instance).__name__}.{attribute.name}.{name} must be printable ASCII, "
                f"got {text!r}")


def _wire_safe(text: str) -> bool:
    return text.isascii() and text.isprintable()


def _price(value: float) -> str | None:
    # ibapi marks "no price" with UNSET_DOUBLE; keep the audit readable and exact.
    return None if value is None or value >= 1.7e308 else repr(value)


def _contract_fields(contract: Contract) -> dict[str, Any]:
    legs = [
        {"con_id": leg.conId, "ratio": leg.ratio, "action": leg.action,
         "exchange": leg.exchange}
        for leg in (contract.comboLegs or [])
    ]
    return {
        "con_id": contract.conId, "symbol": contract.symbol, "sec_type": contract.secType,
        "expiry": contract.lastTradeDateOrContractMonth, "strike": _price(contract.strike),
        "right": contract.right, "multiplier": contract.multiplier,
        "exchange": contract.exchange, "currency": contract.currency, "legs": legs,
    }


class Request:
    """Base of every outbound request."""

    __slots__ = ()
    priority: ClassVar[Priority] = Priority.INFO

    def apply(self, client: Any) -> None:
        """Call the EClient method for this request. Only the connection actor calls this."""
        raise TypeError(f"{type(self).__name__} does not define apply()")

    @property
    def request_id(self) -> int | None:
        """The id TWS will quote back in replies and errors (tickerId, reqId or orderId)."""
        return None


@attrs.frozen
class ReqCurrentTime(Request):
    """The watchdog's health probe: cheap, always answered, no state on the server."""

    def apply(self, client: Any) -> None:
        client.reqCurrentTime()


@attrs.frozen
class ReqCurrentTimeInMillis(Request):
    def apply(self, client: Any) -> None:
        client.reqCurrentTimeInMillis()


@attrs.frozen
class ReqIds(Request):
    num_ids: int = attrs.field(default=1, validator=_request_id)

    def apply(self, client: Any) -> None:
        client.reqIds(self.num_ids)


@attrs.frozen
class ReqMarketDataType(Request):
    priority: ClassVar[Priority] = Priority.MARKET_DATA
    market_data_type: int = attrs.field(validator=attrs.validators.in_((1, 2, 3, 4)))

    def apply(self, client: Any) -> None:
        client.reqMarketDataType(self.market_data_type)


@attrs.frozen
class ReqMktData(Request):
    priority: ClassVar[Priority] = Priority.MARKET_DATA
    req_id: int = attrs.field(validator=_request_id)
    contract: Contract = attrs.field(validator=_contract, eq=False)
    generic_ticks: str = ""
    snapshot: bool = False
    regulatory_snapshot: bool = False

    def apply(self, client: Any) -> None:
        client.reqMktData(
            self.req_id, self.contract, self.generic_ticks, self.snapshot,
            self.regulatory_snapshot, [],
        )

    @property
    def request_id(self) -> int:
        return self.req_id


@attrs.frozen
class CancelMktData(Request):
    priority: ClassVar[Priority] = Priority.CANCEL
    req_id: int = attrs.field(validator=_request_id)

    def apply(self, client: Any) -> None:
        client.cancelMktData(self.req_id)

    @property
    def request_id(self) -> int:
        return self.req_id


@attrs.frozen
class ReqContractDetails(Request):
    req_id: int = attrs.field(validator=_request_id)
    contract: Contract = attrs.field(validator=_contract, eq=False)

    def apply(self, client: Any) -> None:
        client.reqContractDetails(self.req_id, self.contract)

    @property
    def request_id(self) -> int:
        return self.req_id


@attrs.frozen
class ReqSecDefOptParams(Request):
    req_id: int = attrs.field(validator=_request_id)
    underlying_symbol: str = attrs.field(validator=attrs.validators.min_len(1))
    underlying_sec_type: str = attrs.field(validator=attrs.validators.min_len(1))
    underlying_con_id: int = attrs.field(validator=_request_id)
    fut_fop_exchange: str = ""

    def apply(self, client: Any) -> None:
        client.reqSecDefOptParams(
            self.req_id, self.underlying_symbol, self.fut_fop_exchange,
            self.underlying_sec_type, self.underlying_con_id,
        )

    @property
    def request_id(self) -> int:
        return self.req_id


_TICK_BY_TICK_TYPES = ("Last", "AllLast", "BidAsk", "MidPoint")


@attrs.frozen
class ReqTickByTickData(Request):
    """One tick-by-tick stream (``tick_type`` as the wire spells it: Last, AllLast, BidAsk,
    MidPoint). TWS caps these separately from market-data lines (10190 past the cap)."""

    priority: ClassVar[Priority] = Priority.MARKET_DATA
    req_id: int = attrs.field(validator=_request_id)
    contract: Contract = attrs.field(validator=_contract, eq=False)
    tick_type: str = attrs.field(validator=attrs.validators.in_(_TICK_BY_TICK_TYPES))
    number_of_ticks: int = attrs.field(default=0, validator=attrs.validators.in_(range(1001)))
    ignore_size: bool = False

    def apply(self, client: Any) -> None:
        client.reqTickByTickData(self.req_id, self.contract, self.tick_type,
                                 self.number_of_ticks, self.ignore_size)

    @property
    def request_id(self) -> int:
        return self.req_id


@attrs.frozen
class CancelTickByTickData(Request):
    priority: ClassVar[Priority] = Priority.CANCEL
    req_id: int = attrs.field(validator=_request_id)

    def apply(self, client: Any) -> None:
        client.cancelTickByTickData(self.req_id)

    @property
    def request_id(self) -> int:
        return self.req_id


@attrs.frozen
class PlaceOrder(Request):
    """Place (or, with an existing order id, modify) an order."""

    priority: ClassVar[Priority] = Priority.ORDER
    order_id: int = attrs.field(validator=_request_id)
    contract: Contract = attrs.field(validator=_contract, eq=False)
    order: Order = attrs.field(eq=False)

    @order.validator
    def _check_order(self, attribute: attrs.Attribute[Any], value: Order) -> None:
        if not isinstance(value, Order):
            raise RequestError("PlaceOrder.order must be an ibapi Order")
        if value.action not in ("BUY", "SELL"):
            raise RequestError(f"PlaceOrder.order.action must be BUY or SELL, got {value.action!r}")
        if not value.totalQuantity or value.totalQuantity <= 0:
            raise RequestError("PlaceOrder.order.totalQuantity must be > 0")
        if not value.orderType:
            raise RequestError("PlaceOrder.order.orderType must be set")

    def apply(self, client: Any) -> None:
        client.placeOrder(self.order_id, self.contract, self.order)

    def audit_fields(self) -> dict[str, Any]:
        """Everything that defines this intent, for the audit trail (never for a log)."""
        o, c = self.order, self.contract
        return {
            "order_id": self.order_id,
            "action": o.action,
            "quantity": str(o.totalQuantity),
            "order_type": o.orderType,
            "limit_price": _price(o.lmtPrice),
            "aux_price": _price(o.auxPrice),
            "tif": o.tif,
            "account": o.account,
            "transmit": bool(o.transmit),
            "parent_id": o.parentId,
            "what_if": bool(o.whatIf),
            "contract": _contract_fields(c),
        }

    @property
    def request_id(self) -> int:
        return self.order_id


@attrs.frozen
class CancelOrder(Request):
    priority: ClassVar[Priority] = Priority.CANCEL
    order_id: int = attrs.field(validator=_request_id)

    def apply(self, client: Any) -> None:
        client.cancelOrder(self.order_id, OrderCancel())

    def audit_fields(self) -> dict[str, Any]:
        return {"order_id": self.order_id}

    @property
    def request_id(self) -> int:
        return self.order_id


@attrs.frozen
class ReqOpenOrders(Request):
    def apply(self, client: Any) -> None:
        client.reqOpenOrders()


@attrs.frozen
class ReqAllOpenOrders(Request):
    """Every client's open orders (others' are shown read-only), then ``openOrderEnd``."""

    def apply(self, client: Any) -> None:
        client.reqAllOpenOrders()


@attrs.frozen
class ReqCompletedOrders(Request):
    """The day's finished orders (``completedOrder`` each, then ``completedOrdersEnd``);
    with ``api_only`` those placed through the API only."""

    api_only: bool = True

    def apply(self, client: Any) -> None:
        client.reqCompletedOrders(self.api_only)


@attrs.frozen
class ReqExecutions(Request):
    """Executions of the day, or those at or after ``since`` (TWS's execution time text,
    "YYYYMMDD HH:MM:SS [zone]"), then ``execDetailsEnd``."""

    req_id: int = attrs.field(validator=_request_id)
    since: str = attrs.field(default="", validator=attrs.validators.instance_of(str))

    def apply(self, client: Any) -> None:
        execution_filter = ExecutionFilter()
        execution_filter.time = self.since
        client.reqExecutions(self.req_id, execution_filter)

    @property
    def request_id(self) -> int:
        return self.req_id


@attrs.frozen
class ReqPositions(Request):
    def apply(self, client: Any) -> None:
        client.reqPositions()
