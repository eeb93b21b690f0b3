"""TWS message codes as data: what each code means and what the runtime does about it.

Layer: ``protocol/``, the TWS wire as the rest of the code sees it. TWS reports errors,
warnings and plain notices through the same ``EWrapper.error`` callback, so "it arrived
through ``error()``" says nothing about severity. The bridge turns each callback into an
event carrying ``(req_id, code, message)``; the actors look the code up here and act on
the :class:`Strategy` (connection: reconnect or wait for TWS; limiter: back off;
market_data: mark a subscription failed; orders: reject, cancel, resync ids). One table
instead of ``if code == ...`` chains keeps those decisions consistent across actors and lets
``docs/errors.md`` document every code (a test checks the doc lists them all).

Sources: ibapi 10.50 (``errors.py``, ``client.py``, ``decoder.py``) for the 501-593 codes
ibapi raises on this side of the socket; IB's published message codes for TWS's own codes.
A code carrying an order id is advice about that order; the order's state itself comes
from ``orderStatus``/``openOrder`` and reconciliation, and nothing here ever re-sends one.

Data-farm notices (2103-2158) are listed here like any code; decoding which farm and what
state is :mod:`.farms` (``farm_status``, re-exported here).

Sans-IO: no I/O, no logging calls, no state. Every function is a pure lookup and safe to
call from any thread or task; nothing here blocks or can be cancelled half-way.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from logging import DEBUG, ERROR, INFO, WARNING
from types import MappingProxyType
from typing import Any

import attrs

from .farms import FarmKind, FarmState, FarmStatus, farm_status, with_farm_status

__all__ = [
    "CODES",
    "TABLE",
    "Category",
    "CodeInfo",
    "FarmKind",
    "FarmState",
    "FarmStatus",
    "Strategy",
    "classify",
    "farm_status",
    "is_connectivity_loss",
    "with_farm_status",
]


class Category(enum.Enum):
    """What a code is about, i.e. which part of the runtime cares."""

    CONNECTIVITY = "connectivity"  # the socket to TWS, or TWS's own link to IB
    PROTOCOL = "protocol"  # the byte stream: undecodable inbound or failed outbound message
    PACING = "pacing"  # the 50 messages/s limit
    ORDER = "order"
    MARKET_DATA = "market_data"
    HISTORICAL = "historical"
    CONTRACT = "contract"
    ACCOUNT = "account"
    REQUEST = "request"  # TWS could not read/validate/process a request of any kind
    CLIENT = "client"  # ibapi refused our call before anything reached the socket
    INFORMATION = "information"  # notices: data-farm status and other FYIs
    SYSTEM = "system"  # unlisted codes outside the request ranges


class Strategy(enum.Enum):
    """What the runtime does when a code arrives; each member names the action."""

    # Information only: log below WARNING, change nothing.
    IGNORE = "ignore"
    # No automatic action; log at the code's level (WARNING or above) for an operator.
    WARN = "warn"
    # A data farm changed state: update farm health (see farm_status). Never an error.
    FARM_NOTICE = "farm_notice"
    # TWS's link to IB broke and TWS restores it itself: mark upstream degraded, keep socket.
    LINK_NOTICE = "link_notice"
    # The socket to TWS is gone: connection_lost; the watchdog reconnects with backoff.
    RECONNECT = "reconnect"
    # The stream can't be trusted: fail the request, drop the socket ourselves, then RECONNECT.
    RESET_CONNECTION = "reset_connection"
    # 1100: keep the socket (reconnecting can't help), hold traffic, wait for 1101/1102.
    WAIT_FOR_RESTORE = "wait_for_restore"
    # 1101: TWS is back but dropped our subscriptions: every actor re-requests its state.
    RESTORE_SUBSCRIPTIONS = "restore_subscriptions"
    # 1102: TWS is back and kept everything: resume, re-request nothing.
    RESUME = "resume"
    # 326: TWS refuses the client id and closes: clear error, or next id if configured.
    CLIENT_ID_IN_USE = "client_id_in_use"
    # 100: the limiter slows down and re-queues the request (bounded retries, then fails it).
    BACKOFF_AND_RETRY = "backoff_and_retry"
    # The one request that carried the id fails with a typed error; nothing else changes.
    FAIL_REQUEST = "fail_request"
    # 201: the order is Rejected; never re-sent automatically.
    REJECT_ORDER = "reject_order"
    # 202: the order is Cancelled (by us or by IB).
    ORDER_CANCELLED = "order_cancelled"
    # A cancel was refused: the cancel call fails; the order keeps its state (re-checked).
    CANCEL_REFUSED = "cancel_refused"
    # 103: the order is rejected; fetch the next valid id (reqIds) before the next placement.
    RESYNC_ORDER_IDS = "resync_order_ids"
    # The subscription is dead: mark it failed and tell its subscribers.
    MARK_SUBSCRIPTION_FAILED = "mark_subscription_failed"
    # No live permission, delayed data on offer (354, 10089): the market-data actor switches
    # the session to delayed and asks again if the configuration allows, else marks failed.
    TRY_DELAYED = "try_delayed"
    # The subscription lives but delivers less (delayed or partial): flag it to subscribers.
    MARK_SUBSCRIPTION_DEGRADED = "mark_subscription_degraded"


def _one_line(_instance: Any, attribute: attrs.Attribute[str], value: str) -> None:
    if not value.strip() or "\n" in value:
        raise ValueError(f"{attribute.name} must be one non-empty line, got {value!r}")


def _level_matches_severity(instance: CodeInfo, _attr: attrs.Attribute[int], level: int) -> None:
    # The promise of is_error: a notice is never logged as an error, an error never hidden.
    if instance.is_error and level < WARNING:
        raise ValueError(f"code {instance.code} is an error but logs below WARNING")
    if not instance.is_error and level > WARNING:
        raise ValueError(f"code {instance.code} is a notice but logs above WARNING")


@attrs.frozen
class CodeInfo:
    """One code: what it means, what it is about, and what the runtime does.

    ``is_error`` is False for notices and state changes (farm status, 1100-1102, warnings
    about an order TWS still processes): those are never logged as errors. ``log_level``
    is the :mod:`logging` level the runtime uses; it is at most WARNING for notices and at
    least WARNING for errors (checked on construction).
    """

    code: int
    category: Category
    strategy: Strategy
    meaning: str = attrs.field(validator=_one_line)
    is_error: bool
    log_level: int = attrs.field(validator=_level_matches_severity)


_C, _S = Category, Strategy
_ERR, _NOTE = True, False


def _send_failures(*rows: tuple[int, str]) -> Iterable[CodeInfo]:
    # ibapi reports any exception while building *or writing* a request as "<request>
    # Sending Error". The code can't tell an encoding bug from a half-written frame, and a
    # half-written frame desynchronises TWS's parser: only a fresh connection is safe.
    for code, request in rows:
        meaning = f"{request} sending error: building or writing the request raised (ibapi)"
        yield CodeInfo(code, _C.PROTOCOL, _S.RESET_CONNECTION, meaning, _ERR, ERROR)


_Row = tuple[int, Category, Strategy, bool, int, str]


def _rows(*rows: _Row) -> Iterable[CodeInfo]:
    # Rows read (code, category, strategy, is_error, log_level) then the meaning.
    for code, category, strategy, is_error, log_level, meaning in rows:
        yield CodeInfo(code, category, strategy, meaning, is_error, log_level)


#: The literal table: every code the runtime handles deliberately, grouped by category.
TABLE: tuple[CodeInfo, ...] = (
    *_rows(  # --- connectivity: the socket to TWS and TWS's own link to IB
        (326, _C.CONNECTIVITY, _S.CLIENT_ID_IN_USE, _ERR, ERROR,
         "Unable to connect: the client id is already in use"),
        (502, _C.CONNECTIVITY, _S.RECONNECT, _ERR, WARNING,
         "Couldn't connect to TWS: not running, API off, wrong port or too many clients (ibapi)"),
        (504, _C.CONNECTIVITY, _S.RECONNECT, _ERR, WARNING,
         "Not connected: a request was made while the socket to TWS is down (ibapi)"),
        (520, _C.CONNECTIVITY, _S.RECONNECT, _ERR, ERROR,
         "Failed to create socket (ibapi)"),
        (1100, _C.CONNECTIVITY, _S.WAIT_FOR_RESTORE, _NOTE, WARNING,
         "Connectivity between IB and TWS has been lost; the socket to TWS stays open"),
        (1101, _C.CONNECTIVITY, _S.RESTORE_SUBSCRIPTIONS, _NOTE, INFO,
         "Connectivity between IB and TWS restored, data lost: requests must be re-sent"),
        (1102, _C.CONNECTIVITY, _S.RESUME, _NOTE, INFO,
         "Connectivity between IB and TWS restored, data maintained"),
        (1300, _C.CONNECTIVITY, _S.RECONNECT, _ERR, ERROR,
         "TWS socket port was reset; this connection is dropped (reconnect on new port)"),
        # REAL-TWS: 2110 keeps the socket open and ends with 1101/1102 or a farm OK notice
        (2110, _C.CONNECTIVITY, _S.LINK_NOTICE, _NOTE, WARNING,
         "Connectivity between TWS and IB's servers is broken; TWS restores it itself"),
    ),
    *_rows(  # --- protocol: the byte stream between ibapi and TWS
        (505, _C.PROTOCOL, _S.RESET_CONNECTION, _ERR, ERROR,
         "Fatal error: unknown message id, ibapi dropped an inbound message"),
        (507, _C.PROTOCOL, _S.RECONNECT, _ERR, ERROR,
         "Bad message length: ibapi stopped reading and disconnected (ibapi)"),
        (508, _C.PROTOCOL, _S.RESET_CONNECTION, _ERR, ERROR,
         "Bad message: ibapi could not parse an inbound message and dropped it"),
    ),
    *_send_failures(
        (510, "reqMktData"), (511, "cancelMktData"), (512, "placeOrder"),
        (513, "reqAccountUpdates"), (514, "reqExecutions"), (515, "cancelOrder"),
        (516, "reqOpenOrders"), (518, "reqContractDetails"),
        (527, "reqHistoricalData"), (528, "cancelHistoricalData"),
        (531, "reqCurrentTime"), (538, "reqGlobalCancel"), (539, "reqMarketDataType"),
        (540, "reqPositions"), (541, "cancelPositions"), (542, "reqAccountSummary"),
        (543, "cancelAccountSummary"), (550, "startApi"),
        (557, "reqSecDefOptParams"), (576, "reqTickByTickData"),
        (577, "cancelTickByTickData"), (578, "reqCompletedOrders"),
        (587, "reqCurrentTimeInMillis"), (590, "cancelContractData"),
    ),
    *_rows(  # --- pacing
        (100, _C.PACING, _S.BACKOFF_AND_RETRY, _ERR, WARNING,
         "Max rate of messages per second (50) exceeded; TWS may disconnect"),
    ),
    *_rows(  # --- orders
        (103, _C.ORDER, _S.RESYNC_ORDER_IDS, _ERR, ERROR,
         "Duplicate order id: not above the last order id this client used"),
        (104, _C.ORDER, _S.FAIL_REQUEST, _ERR, WARNING,
         "Can't modify a filled order"),
        (105, _C.ORDER, _S.FAIL_REQUEST, _ERR, ERROR,
         "Order being modified does not match the original order"),
        (109, _C.ORDER, _S.FAIL_REQUEST, _ERR, ERROR,
         "Price outside the percentage range of TWS's order precautions; not transmitted"),
        (110, _C.ORDER, _S.FAIL_REQUEST, _ERR, ERROR,
         "Price does not conform to the contract's minimum price variation (tick)"),
        # REAL-TWS: current builds answer a cancel of an unknown id with 10147, older ones with 135
        (135, _C.ORDER, _S.CANCEL_REFUSED, _ERR, WARNING,
         "Can't find order with this id (to cancel it)"),
        (161, _C.ORDER, _S.CANCEL_REFUSED, _ERR, WARNING,
         "Cancel attempted when the order is not in a cancellable state"),
        (163, _C.ORDER, _S.FAIL_REQUEST, _ERR, ERROR,
         "Price would violate the percentage constraint of TWS's order settings"),
        (201, _C.ORDER, _S.REJECT_ORDER, _ERR, ERROR,
         "Order rejected; the reason follows in the message"),
        (202, _C.ORDER, _S.ORDER_CANCELLED, _NOTE, INFO,
         "Order cancelled; the reason follows in the message"),
        (361, _C.ORDER, _S.FAIL_REQUEST, _ERR, ERROR,
         "Invalid trigger price"),
        (362, _C.ORDER, _S.FAIL_REQUEST, _ERR, ERROR,
         "Invalid adjusted stop price (an order price error, not market data)"),
        (383, _C.ORDER, _S.FAIL_REQUEST, _ERR, ERROR,
         "Size violates the size constraint of TWS's default order settings"),
        (387, _C.ORDER, _S.FAIL_REQUEST, _ERR, ERROR,
         "Unsupported order type for this exchange and security type"),
        (399, _C.ORDER, _S.WARN, _NOTE, WARNING,
         "Order message error: a warning about an order TWS still processes"),
        (404, _C.ORDER, _S.WARN, _NOTE, WARNING,
         "Shares not available for short sale; TWS holds the order while locating them"),
        (2102, _C.ORDER, _S.FAIL_REQUEST, _ERR, WARNING,
         "Unable to modify this order as it is still being processed"),
        (2109, _C.ORDER, _S.IGNORE, _NOTE, INFO,
         "Outside-RTH attribute ignored for this order type/destination; order processed"),
        (10147, _C.ORDER, _S.CANCEL_REFUSED, _ERR, WARNING,
         "Order to be cancelled was not found"),
        (10148, _C.ORDER, _S.CANCEL_REFUSED, _ERR, WARNING,
         "Order can not be cancelled in its current state (state in the message)"),
    ),
    *_rows(  # --- contracts
        (200, _C.CONTRACT, _S.FAIL_REQUEST, _ERR, WARNING,
         "No security definition found for the request, or the contract is ambiguous"),
        (203, _C.CONTRACT, _S.FAIL_REQUEST, _ERR, ERROR,
         "Security not available or allowed for this account (or needs a currency)"),
        (312, _C.CONTRACT, _S.FAIL_REQUEST, _ERR, ERROR,
         "The combo details are invalid"),
        (313, _C.CONTRACT, _S.FAIL_REQUEST, _ERR, ERROR,
         "The combo details for a leg are invalid"),
        (314, _C.CONTRACT, _S.FAIL_REQUEST, _ERR, ERROR,
         "Security type BAG requires combo leg details"),
    ),
    *_rows(  # --- market data
        (101, _C.MARKET_DATA, _S.MARK_SUBSCRIPTION_FAILED, _ERR, ERROR,
         "Max number of tickers (market data lines) has been reached"),
        (102, _C.MARKET_DATA, _S.FAIL_REQUEST, _ERR, ERROR,
         "Duplicate ticker id: already used by an active request"),
        (300, _C.MARKET_DATA, _S.IGNORE, _NOTE, INFO,
         "Can't find EId with ticker id: cancel of a request TWS no longer has"),
        (309, _C.MARKET_DATA, _S.MARK_SUBSCRIPTION_FAILED, _ERR, ERROR,
         "Max number of market depth requests has been reached"),
        (310, _C.MARKET_DATA, _S.IGNORE, _NOTE, INFO,
         "Can't find the subscribed market depth with this ticker id"),
        # 316, 317, 10225, 10182 are about streams the runtime never requests (market
        # depth, real-time bars, keepUpToDate history): logged, nothing to act on.
        (316, _C.MARKET_DATA, _S.WARN, _NOTE, WARNING,
         "Market depth data has been halted; re-subscribe"),
        (317, _C.MARKET_DATA, _S.IGNORE, _NOTE, INFO,
         "Market depth data has been reset; empty the book before new entries"),
        # REAL-TWS: 354 / 10089 are the codes for no live permission when delayed data is on offer
        (354, _C.MARKET_DATA, _S.TRY_DELAYED, _ERR, ERROR,
         "Requested market data is not subscribed (no live data permission)"),
        (420, _C.MARKET_DATA, _S.FAIL_REQUEST, _ERR, ERROR,
         "Invalid real-time query (pacing violation or missing permissions)"),
        (10089, _C.MARKET_DATA, _S.TRY_DELAYED, _ERR, ERROR,
         "Requested market data requires an additional subscription for API use"),
        # REAL-TWS: 10090 (underlying unsubscribed) keeps streaming, without live greeks
        (10090, _C.MARKET_DATA, _S.MARK_SUBSCRIPTION_DEGRADED, _NOTE, WARNING,
         "Part of the requested market data is not subscribed; other ticks still flow"),
        (10091, _C.MARKET_DATA, _S.MARK_SUBSCRIPTION_DEGRADED, _NOTE, WARNING,
         "Part of the requested market data requires an additional API subscription"),
        (10167, _C.MARKET_DATA, _S.MARK_SUBSCRIPTION_DEGRADED, _NOTE, WARNING,
         "Requested market data is not subscribed; displaying delayed market data"),
        (10168, _C.MARKET_DATA, _S.MARK_SUBSCRIPTION_FAILED, _ERR, ERROR,
         "Requested market data is not subscribed; delayed market data is not enabled"),
        (10186, _C.MARKET_DATA, _S.MARK_SUBSCRIPTION_FAILED, _ERR, ERROR,
         "Requested market data is not subscribed; delayed market data is not enabled"),
        (10189, _C.MARKET_DATA, _S.MARK_SUBSCRIPTION_FAILED, _ERR, ERROR,
         "Failed to request tick-by-tick data (no permissions, or session on another IP)"),
        (10190, _C.MARKET_DATA, _S.MARK_SUBSCRIPTION_FAILED, _ERR, ERROR,
         "Max number of tick-by-tick requests has been reached"),
        (10197, _C.MARKET_DATA, _S.MARK_SUBSCRIPTION_FAILED, _ERR, ERROR,
         "No market data during a competing live session (user logged in elsewhere)"),
        (10225, _C.MARKET_DATA, _S.WARN, _NOTE, WARNING,
         "Bust event: the real-time bars subscription was deactivated; re-subscribe"),
    ),
    *_rows(  # --- historical data
        (162, _C.HISTORICAL, _S.FAIL_REQUEST, _ERR, WARNING,
         "Historical market data service error (pacing violation, no data, cancelled)"),
        (165, _C.HISTORICAL, _S.IGNORE, _NOTE, INFO,
         "Historical market data service query message (informational)"),
        (166, _C.HISTORICAL, _S.FAIL_REQUEST, _ERR, ERROR,
         "HMDS expired contract violation: no historical data for this expired contract"),
        (366, _C.HISTORICAL, _S.IGNORE, _NOTE, INFO,
         "No historical data query found for this ticker id"),
        (386, _C.HISTORICAL, _S.FAIL_REQUEST, _ERR, ERROR,
         "Duplicate ticker id for a historical data query"),
        (10182, _C.HISTORICAL, _S.WARN, _NOTE, WARNING,
         "Failed to request live updates (disconnected): a keepUpToDate stream stopped"),
        (10187, _C.HISTORICAL, _S.FAIL_REQUEST, _ERR, ERROR,
         "Failed to request historical ticks: no market data permissions"),
    ),
    *_rows(  # --- account
        (2100, _C.ACCOUNT, _S.WARN, _NOTE, WARNING,
         "New account data requested: this client was unsubscribed from account updates"),
        (2101, _C.ACCOUNT, _S.FAIL_REQUEST, _ERR, ERROR,
         "Unable to subscribe to the account: other clients watch a different account"),
    ),
    *_rows(  # --- requests of any kind that TWS could not handle
        (320, _C.REQUEST, _S.FAIL_REQUEST, _ERR, ERROR,
         "Server error when reading an API client request"),
        (321, _C.REQUEST, _S.FAIL_REQUEST, _ERR, ERROR,
         "Server error when validating an API client request"),
        (322, _C.REQUEST, _S.FAIL_REQUEST, _ERR, ERROR,
         "Server error when processing an API client request"),
    ),
    *_rows(  # --- ibapi refused the call before anything reached the socket
        (501, _C.CLIENT, _S.RESET_CONNECTION, _ERR, ERROR,
         "Already connected: connect() called on a connected EClient (ibapi)"),
        (503, _C.CLIENT, _S.FAIL_REQUEST, _ERR, ERROR,
         "TWS is out of date: its server version lacks this request (ibapi)"),
        (579, _C.CLIENT, _S.FAIL_REQUEST, _ERR, ERROR,
         "Invalid symbol in string: a field is not printable ASCII (ibapi)"),
        (585, _C.CLIENT, _S.FAIL_REQUEST, _ERR, ERROR,
         "FA profiles are not supported any more; use FA groups (ibapi)"),
        (588, _C.CLIENT, _S.FAIL_REQUEST, _ERR, ERROR,
         "Error encoding protobuf: the request could not be encoded (ibapi)"),
    ),
    *_rows(  # --- data-farm notices (see farm_status)
        (2103, _C.INFORMATION, _S.FARM_NOTICE, _NOTE, WARNING,
         "A market data farm connection is broken"),
        (2104, _C.INFORMATION, _S.FARM_NOTICE, _NOTE, INFO,
         "Market data farm connection is OK"),
        (2105, _C.INFORMATION, _S.FARM_NOTICE, _NOTE, WARNING,
         "A historical data (HMDS) farm connection is broken"),
        (2106, _C.INFORMATION, _S.FARM_NOTICE, _NOTE, INFO,
         "Historical data (HMDS) farm connection is OK"),
        (2107, _C.INFORMATION, _S.FARM_NOTICE, _NOTE, DEBUG,
         "Historical data (HMDS) farm connection is inactive, available on demand"),
        (2108, _C.INFORMATION, _S.FARM_NOTICE, _NOTE, DEBUG,
         "Market data farm connection is inactive, available on demand"),
        (2119, _C.INFORMATION, _S.FARM_NOTICE, _NOTE, DEBUG,
         "Market data farm is connecting"),
        (2157, _C.INFORMATION, _S.FARM_NOTICE, _NOTE, WARNING,
         "Security definition (sec-def) farm connection is broken"),
        (2158, _C.INFORMATION, _S.FARM_NOTICE, _NOTE, INFO,
         "Security definition (sec-def) farm connection is OK"),
    ),
)


def _index(table: Iterable[CodeInfo]) -> Mapping[int, CodeInfo]:
    index: dict[int, CodeInfo] = {}
    for info in table:
        if info.code in index:
            raise ValueError(f"code {info.code} is listed twice")
        index[info.code] = info
    return MappingProxyType(index)


#: Every code the runtime handles deliberately, built from :data:`TABLE`. Read-only.
CODES: Mapping[int, CodeInfo] = _index(TABLE)


@attrs.frozen
class _RangeDefault:
    codes: range
    category: Category
    strategy: Strategy
    is_error: bool
    log_level: int
    meaning: str


# Unlisted codes fall back on IB's numbering: 100-499 are errors about one request or
# order, 500-599 are raised inside ibapi (nearly all "Sending Error"), 1100-1999 are TWS
# system messages, 2100-2199 are warnings, 10000 and up are newer TWS errors.
_RANGE_DEFAULTS = (
    _RangeDefault(range(100, 500), _C.REQUEST, _S.FAIL_REQUEST, _ERR, ERROR,
                  "Unlisted TWS error about one request or order (range 100-499)"),
    _RangeDefault(range(500, 600), _C.PROTOCOL, _S.RESET_CONNECTION, _ERR, ERROR,
                  "Unlisted ibapi client-side error, mostly 'Sending Error' (range 500-599)"),
    _RangeDefault(range(1100, 2000), _C.SYSTEM, _S.WARN, _NOTE, WARNING,
                  "Unlisted TWS system message (range 1100-1999)"),
    _RangeDefault(range(2100, 2200), _C.INFORMATION, _S.WARN, _NOTE, WARNING,
                  "Unlisted TWS warning (range 2100-2199)"),
    _RangeDefault(range(10000, 2**63), _C.REQUEST, _S.FAIL_REQUEST, _ERR, ERROR,
                  "Unlisted TWS error about one request or order (range 10000 and up)"),
)
_OUTSIDE_RANGES = _RangeDefault(
    range(0), _C.SYSTEM, _S.WARN, _ERR, ERROR, "Code outside IB's documented ranges"
)


def classify(code: int) -> CodeInfo:
    """Return what ``code`` means and what the runtime does about it.

    Listed codes come from :data:`CODES`. Any other code gets a default chosen by IB's
    numeric range (see ``docs/errors.md``): request errors fail their request, ibapi
    client-side errors reset the connection, system messages and warnings are logged at
    WARNING with no action, and anything outside the documented ranges is logged as an
    error with no action. Never raises.
    """
    info = CODES.get(code)
    if info is not None:
        return info
    default = next((d for d in _RANGE_DEFAULTS if code in d.codes), _OUTSIDE_RANGES)
    return CodeInfo(
        code, default.category, default.strategy, default.meaning, default.is_error,
        default.log_level,
    )


_LOSS_STRATEGIES = frozenset(
    {_S.RECONNECT, _S.RESET_CONNECTION, _S.CLIENT_ID_IN_USE, _S.WAIT_FOR_RESTORE,
     _S.LINK_NOTICE}
)


def is_connectivity_loss(code: int) -> bool:
    """True when, after ``code``, requests cannot reach IB through the current connection.

    That is: the socket to TWS is gone or about to be dropped (502, 504, 326, 1300, ...),
    or TWS has lost its own link to IB (1100, 2110). The strategy says which, and so
    whether to reconnect (RECONNECT/RESET_CONNECTION) or wait with the socket open
    (WAIT_FOR_RESTORE/LINK_NOTICE). A single broken data farm is not a loss.
    """
    return classify(code).strategy in _LOSS_STRATEGIES
