"""The connection actor's vocabulary: its states, the events it emits, the messages it serves.

Kept apart from the actor so that other actors and user code can depend on the words
without the machinery (threads, ibapi). Everything here is a frozen value.
"""

from __future__ import annotations

import enum

import attrs

from ..protocol import codes
from ..protocol.client import ConnectFailed
from ..protocol.requests import Request

__all__ = [
    "Abandon",
    "ClientIdInUse",
    "Connect",
    "ConnectionEstablished",
    "ConnectionLost",
    "ConnectionRecovered",
    "ConnectionState",
    "ConnectionStatus",
    "Disconnect",
    "EnsureConnected",
    "ErrorOccurred",
    "GetStatus",
    "IsConnected",
    "LinkLost",
    "LinkRestored",
    "Send",
]


class ConnectionState(enum.Enum):
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    # Our socket is up but TWS has lost its link to IB (1100): wait for 1101/1102.
    LINK_DOWN = "link-down"


class ClientIdInUse(ConnectFailed):
    """TWS answered 326: another API client already uses this client id."""


# --- events this actor emits ------------------------------------------------------------


@attrs.frozen
class ConnectionEstablished:
    server_version: int
    client_id: int
    accounts: tuple[str, ...]
    next_order_id: int
    connection_time: str


@attrs.frozen
class ConnectionRecovered:
    server_version: int
    client_id: int
    accounts: tuple[str, ...]
    next_order_id: int
    connection_time: str
    reconnects: int


@attrs.frozen
class ConnectionLost:
    reason: str
    # True when our own side asked for it (disconnect); the watchdog then stays put.
    requested: bool = False


@attrs.frozen
class LinkLost:
    """1100: TWS lost its connection to IB; our socket is still up."""

    message: str


@attrs.frozen
class LinkRestored:
    """1101 (data_lost: re-subscribe everything) or 1102 (data kept)."""

    data_lost: bool
    message: str


@attrs.frozen
class ErrorOccurred:
    code: int
    message: str
    req_id: int
    info: codes.CodeInfo


# --- messages it serves -------------------------------------------------------------------


@attrs.frozen
class Connect:
    """Call: connect if not connected. Replies with `ConnectionStatus`, or fails."""


@attrs.frozen
class Disconnect:
    """Call: close the socket on purpose; the watchdog will not reconnect."""


@attrs.frozen
class EnsureConnected:
    """Call: like Connect, but a no-op reply when already connected."""


@attrs.frozen
class IsConnected:
    """Call: reply True when the socket is up and TWS accepted us."""


@attrs.frozen
class Send:
    """Call: write one request. Replies None once it is written; fails `NotConnected`
    (certainly not sent: the caller keeps it) or `SendFailed` (the write broke off:
    delivery unknown, and the session is dropped)."""

    request: Request


@attrs.frozen
class Abandon:
    """Cast: the session is judged dead (e.g. a missed health probe): drop it."""

    reason: str


@attrs.frozen
class GetStatus:
    """Call: reply with a `ConnectionStatus`."""


@attrs.frozen
class ConnectionStatus:
    state: ConnectionState
    host: str
    port: int
    client_id: int
    server_version: int | None
    accounts: tuple[str, ...]
    next_order_id: int | None
    connected_since: float | None  # trio time
    reconnects: int
    wanted: bool
    last_error: str | None
    messages_sent: int
    # Market-data lines this session holds at TWS (reqMktData not yet cancelled or
    # failed): the scarce resource, 100 by default.
    market_data_lines: int = 0
    # How long TWS took to acknowledge placed orders (first orderStatus/openOrder), over
    # the last orders this session placed; None until one has been measured.
    order_ack_p50_ms: float | None = None
    order_ack_p99_ms: float | None = None
