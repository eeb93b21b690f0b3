"""The connection actor's vocabulary: its states, the events it emits, the messages it serves.

Kept apart from the actor so that other actors and user code can depend on the words
without the machinery (threads, ibapi). Everything here is a frozen value.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

import attrs

from .._errors import IBKRError
from ..protocol import codes
from ..protocol.client import ConnectFailed, NotConnected
from ..protocol.farms import FarmState
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
    "ErrorOccurred",
    "GetStatus",
    "IsConnected",
    "LinkDown",
    "LinkLost",
    "LinkRestored",
    "OrderIdsOutOfSync",
    "Send",
]


class ConnectionState(enum.Enum):
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    # Our socket is up but TWS has lost its link to IB (1100): wait for 1101/1102.
    LINK_DOWN = "link-down"


class ClientIdInUse(ConnectFailed, IBKRError):
    """TWS answered 326: another API client already uses this client id.

    Raised once the ids `IBKRConfig.client_id_retries` allows are used up; the connection
    is then no longer wanted, so the watchdog does not loop on a refused id."""


class LinkDown(NotConnected, IBKRError):
    """A request offered while TWS has lost its link to IB (1100). It was not sent: the
    limiter holds it (it is a `NotConnected`) until 1101/1102 restore the link."""


# --- events this actor emits ------------------------------------------------------------


@attrs.frozen
class ConnectionEstablished:
    server_version: int
    client_id: int
    accounts: tuple[str, ...]
    next_order_id: int
    connection_time: str
    # How many 1101s (TWS lost its market data) so far: with the reconnect count, it names
    # the "data session" whose lines TWS still holds (see ConnectionStatus.data_resets).
    data_resets: int = 0


@attrs.frozen
class ConnectionRecovered:
    server_version: int
    client_id: int
    accounts: tuple[str, ...]
    next_order_id: int
    connection_time: str
    reconnects: int
    data_resets: int = 0


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
    data_resets: int = 0  # counting this one, if it is a 1101


@attrs.frozen
class OrderIdsOutOfSync:
    """103: TWS refused ``order_id`` as already used. The order-id owner must fetch the
    next valid id (``reqIds``) before the next placement; the refused order is never
    re-sent."""

    order_id: int


@attrs.frozen
class ErrorOccurred:
    code: int
    message: str
    req_id: int
    info: codes.CodeInfo


# --- messages it serves -------------------------------------------------------------------


@attrs.frozen
class Connect:
    """Call: connect unless connected. Replies with `ConnectionStatus` (at once, starting
    nothing, when the socket is already up), or fails with `ConnectFailed`. A Connect
    that arrives during an attempt waits for that attempt's outcome; the actor keeps
    answering its other messages meanwhile."""


@attrs.frozen
class Disconnect:
    """Call: close the socket on purpose; the watchdog will not reconnect."""


@attrs.frozen
class IsConnected:
    """Call: reply True when requests can go out now: the socket is up, TWS accepted us,
    and TWS has its link to IB (False during 1100's ``link-down``)."""


@attrs.frozen
class Send:
    """Call: write one request. Replies None once it is written; fails `NotConnected`
    (certainly not sent: the caller keeps it; `LinkDown` during 1100) or `SendFailed`
    (the write broke off: delivery unknown, and the session is dropped)."""

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
    # The last error as "code: meaning" from the codes table (or our own reason): never
    # TWS's text, which can quote accounts, prices and quantities.
    last_error: str | None
    messages_sent: int
    # Market-data lines this session holds at TWS (reqMktData not yet cancelled or
    # failed): the scarce resource, 100 by default.
    market_data_lines: int = 0
    # How long TWS took to acknowledge placed orders (first orderStatus/openOrder), over
    # the last orders this session placed; None until one has been measured.
    order_ack_p50_ms: float | None = None
    order_ack_p99_ms: float | None = None
    # Data-farm health from TWS's farm notices (2103-2108, 2119, 2157, 2158) in this
    # session: farm name ("usfarm", "ushmds", ...) -> its latest state.
    farms: Mapping[str, FarmState] = attrs.field(factory=dict)
    # 2110: TWS's own link to IB's servers is degraded (TWS restores it itself); cleared
    # by 1101/1102, a farm's OK notice, or a new session.
    upstream_degraded: bool = False
    # 1101s (TWS's link back, its market data lost) over the runtime's life: each one, like
    # a new session, leaves TWS with none of our lines. An actor that was stopped over one
    # learns of it here (the event went by unseen).
    data_resets: int = 0
