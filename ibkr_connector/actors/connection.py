"""The connection actor: the one owner of the socket to TWS.

It holds the current `TwsSession` (one EClient per attempt), is the only code that writes
to the wire, and turns what happens to the socket into connection events:

- `ConnectionEstablished` the first time TWS accepts us (nextValidId and accounts arrived);
- `ConnectionRecovered` when that happens again after a loss;
- `ConnectionLost` when the socket goes (closed, 502/504, a frame ibapi cannot decode, or a
  `Abandon` from the watchdog whose probe went unanswered);
- `LinkLost` / `LinkRestored` for 1100 / 1101 / 1102: TWS lost *its* link to IB while our
  socket stayed up, so we keep the socket, refuse sends (`LinkDown`) and wait;
- `OrderIdsOutOfSync` for 103, for the order-id owner;
- `ErrorOccurred` for every TWS error, classified by `protocol.codes`.

Every inbound TWS event is also emitted unchanged, for the router and the bus. `emit` must
not block (the bus's publish, or a channel's ``send_nowait``).

A connection attempt runs in a task of its own, so the mailbox keeps being served while
TWS sits on a handshake (a login or 2FA prompt): `GetStatus` answers ``connecting``, a
`Send` fails `NotConnected`, a second `Connect` waits for the same attempt.

It does not reconnect by itself: deciding *when* to reconnect (backoff, the daily restart
window) is the watchdog's job; this actor only knows *how*. Its vocabulary (states, events,
messages) lives in `connection_messages` and is re-exported here; how it reacts to each
TWS code is `connection_codes`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import trio

from ..allow_list import HostNotAllowed, check_host
from ..config import IBKRConfig
from ..protocol import events as ev
from ..protocol.client import (
    ConnectFailed,
    ConnectTimeout,
    NotConnected,
    RequestRefused,
    SendFailed,
    Transport,
    TwsSession,
    threaded_session,
)
from ..protocol.farms import FarmState
from ..protocol.requests import Request
from ..supervisor import NOREPLY, Envelope, Mailbox, serve
from .connection_codes import react_to_error
from .connection_machine import ConnectionMachine, SessionEnd, Writable
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
    ErrorOccurred,
    GetStatus,
    IsConnected,
    LinkDown,
    LinkLost,
    LinkRestored,
    OrderIdsOutOfSync,
    Send,
)
from .connection_session import Attempt, ConnectionMemory, Handshake, WriterMetrics

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
    "ErrorOccurred",
    "GetStatus",
    "IsConnected",
    "LinkDown",
    "LinkLost",
    "LinkRestored",
    "OrderIdsOutOfSync",
    "Send",
    "run_connection",
]

log = logging.getLogger(__name__)

Emit = Callable[[object], None]

# The errors a caller of this actor is promised: they fail the call, the actor carries on.
# Anything else raised by a handler is a bug and crashes the actor (supervision's job).
EXPECTED_ERRORS: tuple[type[BaseException], ...] = (
    ConnectFailed, NotConnected, RequestRefused, SendFailed,
)


class ConnectionActor:
    """State and behaviour of the connection; `run_connection` serves it from a mailbox."""

    def __init__(self, config: IBKRConfig, emit: Emit,
                 memory: ConnectionMemory | None = None,
                 transport: Transport = threaded_session) -> None:
        self.config = config
        self.transport = transport  # how each attempt reaches TWS (tests may swap it)
        self.emit = emit
        self.memory = memory if memory is not None else ConnectionMemory(config.client_id)
        self.machine = ConnectionMachine(self.memory)  # the states, sans-IO
        self.session: TwsSession | None = None
        self.next_order_id: int | None = None
        self.accounts: tuple[str, ...] = ()
        self.connected_since: float | None = None
        self.last_error: str | None = None
        self.metrics = WriterMetrics()
        self.farms: dict[str, FarmState] = {}
        self.upstream_degraded = False
        self._handshake: Handshake | None = None
        self._attempt: Attempt | None = None
        self._nursery: trio.Nursery | None = None

    @property
    def state(self) -> ConnectionState:
        return self.machine.state

    @property
    def wanted(self) -> bool:
        return self.memory.wanted

    @property
    def reconnects(self) -> int:
        return self.memory.reconnects

    @property
    def client_id(self) -> int:
        return self.memory.client_id

    @property
    def nursery(self) -> trio.Nursery:
        assert self._nursery is not None, "attach() first"
        return self._nursery

    # -- lifecycle ------------------------------------------------------------------------

    def attach(self, nursery: trio.Nursery) -> None:
        """Give the actor the nursery its attempt and per-session pump tasks run in."""
        self._nursery = nursery

    async def shutdown(self) -> None:
        """Close any session, joining its threads (used on actor stop and crash).

        A live connection that ends this way is reported as lost, so the watchdog brings
        it back when this actor's next incarnation is running.
        """
        was_up = self.session_up()
        if self._attempt is not None:
            self._attempt.scope.cancel()
        session, self.session = self.session, None
        if session is not None:
            with trio.CancelScope(shield=True):
                await session.close()
        self.machine.dropped()
        if was_up:
            self.emit(ConnectionLost("connection actor stopped", requested=not self.memory.wanted))

    # -- commands -----------------------------------------------------------------------------

    def is_connected(self) -> bool:
        """Requests can go out now (not while connecting, nor during 1100's link-down)."""
        return self.machine.writable() is Writable.ALLOWED

    def session_up(self) -> bool:
        """The socket is up and TWS accepted us, whether or not TWS has its link to IB."""
        return self.machine.session_up()

    def start_connecting(self) -> Attempt:
        """The running attempt, or a new one started in the actor's nursery."""
        self.memory.wanted = True
        if self._attempt is None:
            self._attempt = Attempt()
            self.nursery.start_soon(self._run_attempt, self._attempt)
        return self._attempt

    async def connect(self) -> ConnectionStatus:
        """Connect unless connected (then reply at once). On 326 try the next client id if
        configured to; when no id is left, the connection is no longer wanted."""
        if self.session_up():
            self.memory.wanted = True
            return self.status()
        attempt = self.start_connecting()
        await attempt.done.wait()
        status = attempt.outcome()
        assert isinstance(status, ConnectionStatus)
        return status

    async def _run_attempt(self, attempt: Attempt) -> None:
        try:
            with attempt.scope:
                attempt.status = await self._connect_with_client_ids()
        except ConnectFailed as exc:
            attempt.failure = exc
        finally:
            self._attempt = None
            attempt.finish()

    async def _connect_with_client_ids(self) -> ConnectionStatus:
        try:  # before any socket: a remote host must be allowed (docs/security.md)
            check_host(self.config.host, self.config.allow_remote_hosts)
        except HostNotAllowed as exc:
            self.memory.wanted, self.last_error = False, str(exc)  # retrying cannot help
            log.error("%s", exc)
            raise
        attempts = 1 + self.config.client_id_retries
        for attempt in range(attempts):
            try:
                await self._connect_once()
                return self.status()
            except ClientIdInUse:
                if not self.machine.client_id_refused(attempts - attempt - 1):
                    log.error("client id %d is in use and no retry is left "
                              "(client_id_retries=%d): not connecting until asked again",
                              self.memory.client_id, self.config.client_id_retries)
                    raise
                log.warning("client id in use; trying client id %d", self.memory.client_id)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _connect_once(self) -> None:
        cfg = self.config
        self.machine.attempt_started()
        session = self.transport()
        handshake = Handshake()
        self.session, self._handshake = session, handshake
        self.farms, self.upstream_degraded = {}, False
        self.nursery.start_soon(self._pump, session, handshake)
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
            handshake.fail(failure, rank=Handshake.TIMED_OUT if isinstance(
                failure, ConnectTimeout) else Handshake.OTHER)
            failure = handshake.failure or failure
        self.last_error = str(failure)
        raise failure

    def _established(self, session: TwsSession, handshake: Handshake) -> None:
        assert handshake.next_order_id is not None and handshake.accounts is not None
        recovered = self.machine.established()
        self.next_order_id = handshake.next_order_id
        self.accounts = handshake.accounts
        self.connected_since = trio.current_time()
        fields = dict(
            server_version=session.server_version or 0,
            client_id=self.memory.client_id,
            accounts=handshake.accounts,
            next_order_id=handshake.next_order_id,
            connection_time=session.connection_time or "",
            data_resets=self.memory.data_resets,
        )
        if recovered:
            log.info("reconnected to TWS (server version %s, reconnect #%d)",
                     fields["server_version"], self.memory.reconnects)
            self.emit(ConnectionRecovered(reconnects=self.memory.reconnects, **fields))  # type: ignore[arg-type]
        else:
            log.info("connected to TWS (server version %s, %d account(s))",
                     fields["server_version"], len(handshake.accounts))
            self.emit(ConnectionEstablished(**fields))  # type: ignore[arg-type]

    async def disconnect(self) -> None:
        """Close the socket on purpose (ending an attempt in progress); not wanted after."""
        self.memory.wanted = False
        attempt = self._attempt
        if attempt is not None:
            attempt.scope.cancel()
            await attempt.done.wait()
        was_up = self.session_up()
        session = self.session
        if session is not None:
            await self._drop(session)
        if was_up:
            self.emit(ConnectionLost("disconnect requested", requested=True))

    async def abandon(self, reason: str) -> None:
        session = self.session
        if session is not None and self.session_up():
            await self.lost(session, reason)

    async def send(self, request: Request) -> None:
        session = self.session
        if session is None or not self.is_connected():
            if self.machine.writable() is Writable.LINK_DOWN:
                raise LinkDown("TWS has lost its link to IB (1100); waiting for 1101/1102")
            raise NotConnected(f"not connected to TWS ({self.state.value})")
        try:
            await session.send(request)
        except SendFailed as exc:
            # A frame may be half-written: nothing more can go down this socket.
            await self.lost(session, str(exc))
            raise
        self.metrics.written(request, trio.current_time())

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
            connected_since=self.connected_since if self.session_up() else None,
            reconnects=self.memory.reconnects,
            wanted=self.memory.wanted,
            last_error=self.last_error,
            messages_sent=self.metrics.messages_sent,
            market_data_lines=len(self.metrics.market_data_lines),
            order_ack_p50_ms=self.metrics.ack_ms(0.50),
            order_ack_p99_ms=self.metrics.ack_ms(0.99),
            farms=dict(self.farms),
            upstream_degraded=self.upstream_degraded,
            data_resets=self.memory.data_resets,
        )

    # -- the inbound side -------------------------------------------------------------------------

    async def _pump(self, session: TwsSession, handshake: Handshake) -> None:
        """Drain one session's bridge until its run thread stops.

        One pump per session, so a late event from a dead session can never be mistaken
        for news about the current one.
        """
        try:
            await self._drain(session, handshake)
        finally:
            handshake.pump_done.set()

    async def _drain(self, session: TwsSession, handshake: Handshake) -> None:
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
                        # session ends at ReaderStopped, with this as the reason. What
                        # ibapi choked on may quote a price: DEBUG only.
                        reason = "malformed message from TWS"
                        log.debug("malformed message from TWS: %s", event.detail)
                    self._inbound(session, handshake, event)
                emit(event)

    def _inbound(self, session: TwsSession, handshake: Handshake, event: ev.TwsEvent) -> None:
        """What the connection itself learns from an event before it goes to the bus."""
        # REAL-TWS: TWS sends nextValidId and managedAccounts at every start, after a restart too
        if isinstance(event, ev.NextValidId):
            handshake.next_order_id = event.order_id
            if session is self.session and self.session_up():
                self.next_order_id = event.order_id
            handshake.check()
        elif isinstance(event, ev.ManagedAccounts):
            handshake.accounts = event.accounts
            handshake.check()
        elif isinstance(event, ev.TwsError):
            react_to_error(self, session, handshake, event)
        elif isinstance(event, ev.OrderStatus | ev.OpenOrder):
            self.metrics.acknowledged(event.order_id, trio.current_time())

    async def _session_ended(self, session: TwsSession, handshake: Handshake, reason: str) -> None:
        # Still starting up: connect() has not declared the session established, even if
        # nextValidId and the accounts are in (they may share a batch with the fatal frame,
        # all processed before connect() resumes). Fail the start-up, however far it got.
        end = self.machine.session_ended(current=session is self.session,
                                         handshake_done=handshake.done.is_set())
        if end is SessionEnd.FAIL_STARTUP:
            handshake.fail(ConnectFailed(
                f"TWS at {self.config.host}:{self.config.port} closed the connection during "
                f"start-up ({reason})"), rank=Handshake.CLOSED)
        elif end is SessionEnd.LOST:
            await self.lost(session, reason)

    async def lost(self, session: TwsSession, reason: str) -> None:
        """Drop *session* and report it lost. *reason* is ours (a code and its meaning,
        never TWS's text), because it is logged and shown to operators."""
        if session is not self.session:
            return  # already dropped (two reasons raced)
        log.warning("connection to TWS lost: %s", reason)
        self.last_error = reason
        await self._drop(session)
        self.emit(ConnectionLost(reason))

    async def _drop(self, session: TwsSession) -> None:
        if self.session is session:
            self.session = None
            self.machine.dropped()
            self.connected_since = None
            self.metrics.session_dropped()
            self.farms, self.upstream_degraded = {}, False
        with trio.CancelScope(shield=True):
            await session.close()


# Events the connection itself acts on; every other event (market data above all) goes
# straight to the bus.
_SESSION_EVENTS: frozenset[type] = frozenset({
    ev.NextValidId, ev.ManagedAccounts, ev.TwsError, ev.OrderStatus, ev.OpenOrder,
    ev.MalformedMessage, ev.ReaderStopped,
})


async def run_connection(
    mailbox: Mailbox,
    config: IBKRConfig,
    emit: Emit,
    *,
    memory: ConnectionMemory | None = None,
    transport: Transport = threaded_session,
    task_status: trio.TaskStatus[ConnectionActor] = trio.TASK_STATUS_IGNORED,
) -> None:
    """The supervised actor: serve Connect/Disconnect/Send/... from *mailbox*.

    A restart builds a fresh `ConnectionActor` (and so a fresh EClient) around the same
    `ConnectionMemory`; whether it then reconnects is the watchdog's decision. On stop or
    crash the session is closed and its threads are joined before this returns.
    """
    actor = ConnectionActor(config, emit, memory, transport)

    async def on_connect(_: Connect, envelope: Envelope) -> object:
        if actor.session_up():
            actor.memory.wanted = True
            return actor.status()
        actor.start_connecting().waiters.append(envelope)
        return NOREPLY  # answered by the attempt; the mailbox is served meanwhile

    async def on_send(message: Send, _: Envelope) -> None:
        await actor.send(message.request)

    async def on_disconnect(_: Disconnect, __: Envelope) -> None:
        await actor.disconnect()

    async def on_is_connected(_: IsConnected, __: Envelope) -> bool:
        return actor.is_connected()

    async def on_status(_: GetStatus, __: Envelope) -> ConnectionStatus:
        return actor.status()

    async def on_abandon(message: Abandon, _: Envelope) -> None:
        await actor.abandon(message.reason)

    async with trio.open_nursery() as nursery:
        actor.attach(nursery)
        try:
            task_status.started(actor)
            await serve(mailbox, {
                Send: on_send, Connect: on_connect, Disconnect: on_disconnect,
                IsConnected: on_is_connected, GetStatus: on_status, Abandon: on_abandon,
            }, expected=EXPECTED_ERRORS)
        finally:
            await actor.shutdown()
            nursery.cancel_scope.cancel()
