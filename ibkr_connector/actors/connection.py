"""The connection actor: the one owner of the socket to TWS.

It holds the current `TwsSession` (one EClient per attempt), is the only code that writes
to the wire, and turns what happens to the socket into connection events:

- `ConnectionEstablished` the first time TWS accepts us (nextValidId and accounts arrived);
- `ConnectionRecovered` when that happens again after a loss;
- `ConnectionLost` when the socket goes (closed, 502/504, a frame ibapi cannot decode, or a
  `Abandon` from the watchdog whose probe went unanswered);
- `LinkLost` / `LinkRestored` for 1100 / 1101 / 1102: TWS lost *its* link to IB while our
  socket stayed up, so we keep the socket and wait;
- `ErrorOccurred` for every TWS error, classified by `protocol.codes`.

Every inbound TWS event is also emitted unchanged, for the router and the bus. `emit` must
not block (the bus's publish, or a channel's ``send_nowait``).

It does not reconnect by itself: deciding *when* to reconnect (backoff, the daily restart
window) is the watchdog's job; this actor only knows *how*. Its vocabulary (states, events,
messages) lives in `connection_messages` and is re-exported here.
"""

from __future__ import annotations

import collections
import collections.abc
import logging
import math
from collections.abc import Callable

import attrs
import trio

from ..config import IBKRConfig
from ..protocol import codes
from ..protocol import events as ev
from ..protocol.bridge import EventBridge
from ..protocol.client import (
    ConnectFailed,
    ConnectTimeout,
    NotConnected,
    RequestRefused,
    SendFailed,
    TwsSession,
)
from ..protocol.requests import CancelMktData, PlaceOrder, ReqMktData, Request
from ..supervisor import Envelope, Mailbox
from .connection_messages import (
    Abandon,
    ClientIdInUse,
    Connect,
    ConnectionEstablished,
    ConnectionLost,
    ConnectionRecovered,
    ConnectionState,
    ConnectionStatus,
    Disconnect,
    EnsureConnected,
    ErrorOccurred,
    GetStatus,
    IsConnected,
    LinkLost,
    LinkRestored,
    Send,
)

__all__ = [
    "Abandon",
    "ConnectionMemory",
    "ClientIdInUse",
    "Connect",
    "ConnectionActor",
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
    "run_connection",
]

log = logging.getLogger(__name__)

Emit = Callable[[object], None]


# --- the actor -------------------------------------------------------------------------


@attrs.define
class _Handshake:
    """What the pump has seen of the current attempt's start-up."""

    done: trio.Event = attrs.Factory(trio.Event)
    next_order_id: int | None = None
    accounts: tuple[str, ...] | None = None
    failure: ConnectFailed | None = None

    def check(self) -> None:
        if self.next_order_id is not None and self.accounts is not None:
            self.done.set()

    pump_done: trio.Event = attrs.Factory(trio.Event)
    _rank: int = -1

    def fail(self, failure: ConnectFailed, rank: int = 0) -> None:
        """Record why start-up failed. Events arrive in ibapi's order, not in order of
        meaning (the socket's close is seen before the 326 that explains it), so the
        most specific reason wins: 326 (2) > a TWS error (1) > the socket closing (0)."""
        if rank > self._rank:
            self.failure, self._rank = failure, rank
        self.done.set()


@attrs.define
class ConnectionMemory:
    """What the connection remembers across restarts of its actor; owned by the runtime.

    A restarted connection actor gets a fresh EClient, not a fresh intent: whether the
    program wants to be connected (so the watchdog brings it back), whether it ever was (so
    the next connect is a recovery, and every actor restores its state), how many
    reconnects so far, and which client id TWS accepted.
    """

    client_id: int
    wanted: bool = False
    ever_connected: bool = False
    reconnects: int = 0


class ConnectionActor:
    """State and behaviour of the connection; `run_connection` serves it from a mailbox."""

    def __init__(self, config: IBKRConfig, emit: Emit,
                 memory: ConnectionMemory | None = None) -> None:
        self.config = config
        self.emit = emit
        self.memory = memory if memory is not None else ConnectionMemory(config.client_id)
        self.state = ConnectionState.DISCONNECTED
        self.session: TwsSession | None = None
        self.next_order_id: int | None = None
        self.accounts: tuple[str, ...] = ()
        self.connected_since: float | None = None
        self.last_error: str | None = None
        self.messages_sent = 0
        self.market_data_lines: set[int] = set()
        self._orders_in_flight: dict[int, float] = {}  # order id -> when it was written
        self.order_ack_latencies: collections.deque[float] = collections.deque(maxlen=500)
        self._handshake: _Handshake | None = None
        self._nursery: trio.Nursery | None = None

    @property
    def wanted(self) -> bool:
        return self.memory.wanted

    @property
    def reconnects(self) -> int:
        return self.memory.reconnects

    @property
    def client_id(self) -> int:
        return self.memory.client_id

    # -- lifecycle ------------------------------------------------------------------------

    def attach(self, nursery: trio.Nursery) -> None:
        """Give the actor the nursery its per-session pump tasks run in."""
        self._nursery = nursery

    async def shutdown(self) -> None:
        """Close any session, joining its threads (used on actor stop and crash).

        A live connection that ends this way is reported as lost, so the watchdog brings
        it back when this actor's next incarnation is running.
        """
        was_up = self.is_connected()
        session, self.session = self.session, None
        if session is not None:
            with trio.CancelScope(shield=True):
                await session.close()
        self.state = ConnectionState.DISCONNECTED
        if was_up:
            self.emit(ConnectionLost("connection actor stopped", requested=not self.memory.wanted))

    # -- commands -----------------------------------------------------------------------------

    def is_connected(self) -> bool:
        return self.state in (ConnectionState.CONNECTED, ConnectionState.LINK_DOWN)

    async def connect(self) -> ConnectionStatus:
        """Connect unless connected. On 326 try the next client id if configured to."""
        self.memory.wanted = True
        if self.is_connected():
            return self.status()
        attempts = 1 + self.config.client_id_retries
        for attempt in range(attempts):
            try:
                await self._connect_once()
                return self.status()
            except ClientIdInUse:
                if attempt + 1 == attempts:
                    raise
                self.memory.client_id += 1
                log.warning("client id in use; trying client id %d", self.memory.client_id)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _connect_once(self) -> None:
        assert self._nursery is not None, "attach() first"
        cfg = self.config
        self.state = ConnectionState.CONNECTING
        session = TwsSession(EventBridge())
        handshake = _Handshake()
        self.session, self._handshake = session, handshake
        self._nursery.start_soon(self._pump, session, handshake)
        try:
            with trio.fail_after(cfg.connection_timeout):
                await session.open(cfg.host, cfg.port, self.memory.client_id,
                                   timeout=cfg.connection_timeout)
                await handshake.done.wait()
        except trio.TooSlowError:
            await self._fail_attempt(session, ConnectTimeout(
                f"TWS at {cfg.host}:{cfg.port} did not accept the client within "
                f"{cfg.connection_timeout:g} s"))
        except ConnectFailed as exc:
            await self._fail_attempt(session, exc)
        except BaseException:
            with trio.CancelScope(shield=True):
                await self._drop(session)
            raise
        if handshake.failure is not None:
            await self._fail_attempt(session, handshake.failure)
        self._established(session, handshake)

    async def _fail_attempt(self, session: TwsSession, failure: ConnectFailed) -> None:
        # Close first: joining the run thread makes ibapi decode whatever TWS sent before
        # it hung up (a 326, say), and the pump has seen all of it once it finishes.
        await self._drop(session)
        handshake = self._handshake
        if handshake is not None:
            with trio.move_on_after(5.0):
                await handshake.pump_done.wait()
            handshake.fail(failure, rank=-1 if isinstance(failure, ConnectTimeout) else 0)
            failure = handshake.failure or failure
        self.last_error = str(failure)
        raise failure

    def _established(self, session: TwsSession, handshake: _Handshake) -> None:
        assert handshake.next_order_id is not None and handshake.accounts is not None
        self.state = ConnectionState.CONNECTED
        self.next_order_id = handshake.next_order_id
        self.accounts = handshake.accounts
        self.connected_since = trio.current_time()
        fields = dict(
            server_version=session.server_version or 0,
            client_id=self.memory.client_id,
            accounts=handshake.accounts,
            next_order_id=handshake.next_order_id,
            connection_time=session.connection_time or "",
        )
        if self.memory.ever_connected:
            self.memory.reconnects += 1
            log.info("reconnected to TWS (server version %s, reconnect #%d)",
                     fields["server_version"], self.memory.reconnects)
            self.emit(ConnectionRecovered(reconnects=self.memory.reconnects, **fields))  # type: ignore[arg-type]
        else:
            self.memory.ever_connected = True
            log.info("connected to TWS (server version %s, %d account(s))",
                     fields["server_version"], len(handshake.accounts))
            self.emit(ConnectionEstablished(**fields))  # type: ignore[arg-type]

    async def disconnect(self) -> None:
        self.memory.wanted = False
        session = self.session
        if session is not None:
            await self._drop(session)
            self.emit(ConnectionLost("disconnect requested", requested=True))

    async def abandon(self, reason: str) -> None:
        session = self.session
        if session is not None and self.is_connected():
            await self._lost(session, reason)

    async def send(self, request: Request) -> None:
        session = self.session
        if session is None or not self.is_connected():
            raise NotConnected("not connected to TWS")
        try:
            await session.send(request)
        except SendFailed as exc:
            # A frame may be half-written: nothing more can go down this socket.
            await self._lost(session, str(exc))
            raise
        self.messages_sent += 1
        self._account_for(request)

    def _account_for(self, request: Request) -> None:
        """Keep the metrics that only the single writer can keep exactly."""
        if isinstance(request, ReqMktData) and not request.snapshot:
            self.market_data_lines.add(request.req_id)
        elif isinstance(request, CancelMktData):
            self.market_data_lines.discard(request.req_id)
        elif isinstance(request, PlaceOrder):
            self._orders_in_flight[request.order_id] = trio.current_time()

    def _order_acknowledged(self, order_id: int) -> None:
        sent_at = self._orders_in_flight.pop(order_id, None)
        if sent_at is not None:
            self.order_ack_latencies.append(trio.current_time() - sent_at)

    def status(self) -> ConnectionStatus:
        session = self.session
        return ConnectionStatus(
            state=self.state,
            host=self.config.host,
            port=self.config.port,
            client_id=self.memory.client_id,
            server_version=session.server_version if session is not None else None,
            accounts=self.accounts,
            next_order_id=self.next_order_id,
            connected_since=self.connected_since if self.is_connected() else None,
            reconnects=self.memory.reconnects,
            wanted=self.memory.wanted,
            last_error=self.last_error,
            messages_sent=self.messages_sent,
            market_data_lines=len(self.market_data_lines),
            order_ack_p50_ms=_percentile_ms(self.order_ack_latencies, 0.50),
            order_ack_p99_ms=_percentile_ms(self.order_ack_latencies, 0.99),
        )

    # -- the inbound side -------------------------------------------------------------------------

    async def _pump(self, session: TwsSession, handshake: _Handshake) -> None:
        """Drain one session's bridge until its run thread stops.

        One pump per session, so a late event from a dead session can never be mistaken
        for news about the current one.
        """
        try:
            await self._drain(session, handshake)
        finally:
            handshake.pump_done.set()

    async def _drain(self, session: TwsSession, handshake: _Handshake) -> None:
        bridge = session.bridge
        reason = "connection closed by TWS"
        while True:
            batch = await bridge.receive_batch()
            emit = self.emit
            for event in batch:
                # The hot path: a tick costs one set lookup here, then the bus.
                if type(event) in _SESSION_EVENTS:
                    if isinstance(event, ev.ReaderStopped):
                        await self._session_ended(session, handshake, reason)
                        return
                    if isinstance(event, ev.MalformedMessage):
                        # run() has already disconnected (ConnectionClosed came first); the
                        # session ends at ReaderStopped, with this as the reason.
                        reason = "malformed message from TWS: " + event.detail
                    self._inbound(session, handshake, event)
                emit(event)

    def _inbound(self, session: TwsSession, handshake: _Handshake, event: ev.TwsEvent) -> None:
        """What the connection itself learns from an event before it goes to the bus."""
        if isinstance(event, ev.NextValidId):
            handshake.next_order_id = event.order_id
            if session is self.session and self.is_connected():
                self.next_order_id = event.order_id
            handshake.check()
        elif isinstance(event, ev.ManagedAccounts):
            handshake.accounts = event.accounts
            handshake.check()
        elif isinstance(event, ev.TwsError):
            self._tws_error(session, handshake, event)
        elif isinstance(event, ev.OrderStatus | ev.OpenOrder):
            self._order_acknowledged(event.order_id)

    def _tws_error(self, session: TwsSession, handshake: _Handshake, error: ev.TwsError) -> None:
        info = codes.classify(error.code)
        log.log(info.log_level, "TWS %s %d: %s", "error" if info.is_error else "notice",
                error.code, error.message)
        if info.is_error:
            self.last_error = f"{error.code}: {error.message}"
        self.emit(ErrorOccurred(error.code, error.message, error.req_id, info))
        strategy = info.strategy
        if strategy is codes.Strategy.MARK_SUBSCRIPTION_FAILED or error.code in (101, 322):
            self.market_data_lines.discard(error.req_id)
        if strategy in (codes.Strategy.REJECT_ORDER, codes.Strategy.FAIL_REQUEST):
            self._orders_in_flight.pop(error.req_id, None)
        if strategy is codes.Strategy.CLIENT_ID_IN_USE:
            handshake.fail(ClientIdInUse(
                f"client id {self.memory.client_id} is already in use at "
                f"{self.config.host}:{self.config.port} (TWS error 326)"), rank=2)
        elif not handshake.done.is_set() and strategy is codes.Strategy.RECONNECT:
            handshake.fail(ConnectFailed(
                f"cannot connect to TWS at {self.config.host}:{self.config.port}: "
                f"{error.message} ({error.code})"), rank=1)
        elif strategy is codes.Strategy.WAIT_FOR_RESTORE and session is self.session:
            if self.state is ConnectionState.CONNECTED:
                self.state = ConnectionState.LINK_DOWN
                self.emit(LinkLost(error.message))
        elif (strategy is codes.Strategy.RESET_CONNECTION and handshake.done.is_set()
              and session is self.session and self.is_connected()):
            # The stream can no longer be trusted (a lost inbound message, a half-written
            # request): drop the socket ourselves; the watchdog reconnects and reconciles.
            assert self._nursery is not None
            reason = f"TWS error {error.code}: {error.message}"
            self._nursery.start_soon(self._lost, session, reason)
        elif strategy in (codes.Strategy.RESTORE_SUBSCRIPTIONS, codes.Strategy.RESUME):
            if session is self.session and self.state is ConnectionState.LINK_DOWN:
                self.state = ConnectionState.CONNECTED
            if session is self.session and self.is_connected():
                data_lost = strategy is codes.Strategy.RESTORE_SUBSCRIPTIONS
                self.emit(LinkRestored(data_lost, error.message))

    async def _session_ended(self, session: TwsSession, handshake: _Handshake, reason: str) -> None:
        # Still starting up: connect() has not declared the session established, even if
        # nextValidId and the accounts are in (they may share a batch with the fatal frame,
        # all processed before connect() resumes). Fail the start-up, however far it got.
        starting = session is self.session and self.state is ConnectionState.CONNECTING
        if starting or not handshake.done.is_set():
            handshake.fail(ConnectFailed(
                f"TWS at {self.config.host}:{self.config.port} closed the connection during "
                f"start-up ({reason})"), rank=1)
            return
        if session is self.session and self.is_connected():
            await self._lost(session, reason)

    async def _lost(self, session: TwsSession, reason: str) -> None:
        if session is not self.session:
            return  # already dropped (two reasons raced)
        log.warning("connection to TWS lost: %s", reason)
        self.last_error = reason
        await self._drop(session)
        self.emit(ConnectionLost(reason))

    async def _drop(self, session: TwsSession) -> None:
        if self.session is session:
            self.session = None
            self.state = ConnectionState.DISCONNECTED
            self.connected_since = None
            # TWS forgets a client's market data with its socket.
            self.market_data_lines.clear()
            self._orders_in_flight.clear()
        with trio.CancelScope(shield=True):
            await session.close()


# Events the connection itself acts on; every other event (market data above all) goes
# straight to the bus.
_SESSION_EVENTS: frozenset[type] = frozenset({
    ev.NextValidId, ev.ManagedAccounts, ev.TwsError, ev.OrderStatus, ev.OpenOrder,
    ev.MalformedMessage, ev.ReaderStopped,
})


def _percentile_ms(samples: collections.abc.Collection[float], q: float) -> float | None:
    if not samples:
        return None
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))  # nearest rank
    return round(ordered[index] * 1000, 3)


async def run_connection(
    mailbox: Mailbox,
    config: IBKRConfig,
    emit: Emit,
    *,
    memory: ConnectionMemory | None = None,
    task_status: trio.TaskStatus[ConnectionActor] = trio.TASK_STATUS_IGNORED,
) -> None:
    """The supervised actor: serve Connect/Disconnect/Send/... from *mailbox*.

    A restart builds a fresh `ConnectionActor` (and so a fresh EClient) around the same
    `ConnectionMemory`; whether it then reconnects is the watchdog's decision. On stop or
    crash the session is closed and its threads are joined before this returns.
    """
    actor = ConnectionActor(config, emit, memory)
    async with trio.open_nursery() as nursery:
        actor.attach(nursery)
        try:
            task_status.started(actor)
            async for envelope in mailbox:
                await _handle(actor, envelope)
        finally:
            await actor.shutdown()
            nursery.cancel_scope.cancel()


async def _handle(actor: ConnectionActor, envelope: Envelope) -> None:
    message = envelope.message
    try:
        if isinstance(message, Send):
            await actor.send(message.request)
            result: object = None
        elif isinstance(message, Connect | EnsureConnected):
            result = await actor.connect()
        elif isinstance(message, Disconnect):
            await actor.disconnect()
            result = None
        elif isinstance(message, IsConnected):
            result = actor.is_connected()
        elif isinstance(message, GetStatus):
            result = actor.status()
        elif isinstance(message, Abandon):
            await actor.abandon(message.reason)
            result = None
        else:
            raise TypeError(f"connection actor got an unknown message {message!r}")
    except (ConnectFailed, NotConnected, RequestRefused, SendFailed, TypeError) as exc:
        envelope.fail(exc)
        return
    envelope.reply(result)
