"""The simulated TWS as a Trio TCP server, with the fault-injection API.

The thin I/O shell around the sans-IO layers: it accepts connections, feeds each
``ClientSession`` the bytes it reads and writes what the session answers. Each connection
runs two tasks, a reader (which also drives the session) and a writer (which applies the
reply delay and coalesces frames); everything it starts lives in the nursery of
``open_simulator``, so nothing outlives the ``async with`` block.

Bad client input never takes the server down: a protocol error, a reset socket or a bug
while answering one client is logged and closes that connection only.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs
import trio

from ibkr_connector.simulator import _messages as msg
from ibkr_connector.simulator._config import SimulatorConfig
from ibkr_connector.simulator._connection import ClientConnection
from ibkr_connector.simulator._faults import MALFORMED_KINDS, malformed_frame, tick_flood
from ibkr_connector.simulator._market import SimMarket
from ibkr_connector.simulator._orders import DEFAULT_REJECT_REASON, OrderEngine
from ibkr_connector.simulator._session import ClientSession, ReceivedMessage, SimulatorState

__all__ = ["TwsSimulator", "open_simulator"]

logger = logging.getLogger(__name__)

_FLOOD_BATCH = 2048
_LOOPBACK = ("127.0.0.1", "::1", "localhost")


@asynccontextmanager
async def open_simulator(config: SimulatorConfig | None = None) -> AsyncIterator[TwsSimulator]:
    """Run a simulated TWS for the duration of the block.

    Listening has started when the block is entered (``sim.port`` is the bound port). On
    exit every connection is closed and every background task cancelled.
    """
    config = config or SimulatorConfig()
    # Bind before the nursery exists, so a port in use raises a plain OSError here
    # rather than one wrapped in an exception group.
    listeners = await _bind(config.host, config.port)
    try:
        async with trio.open_nursery() as nursery:
            sim = TwsSimulator(config, nursery)
            sim._serve_listeners(listeners)
            listeners = []
            try:
                yield sim
            finally:
                nursery.cancel_scope.cancel()
    finally:
        for listener in listeners:
            listener.socket.close()


async def _bind(host: str, port: int) -> list[trio.SocketListener]:
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound = listeners[0].socket.getsockname()[1]
    # With port 0 each address family gets its own port: keep the first family only.
    keep = [ln for ln in listeners if ln.socket.getsockname()[1] == bound]
    for listener in listeners:
        if listener not in keep:
            listener.socket.close()
    return keep


@attrs.define
class _Listening:
    scope: trio.CancelScope
    stopped: trio.Event


class TwsSimulator:
    """A running simulated TWS. Create it with ``open_simulator``."""

    def __init__(self, config: SimulatorConfig, nursery: trio.Nursery) -> None:
        self.config = config
        self.host = config.host
        self.port = config.port
        self._nursery = nursery
        self._state = SimulatorState(config, trio.current_time(), time.time())
        self._connections: set[ClientConnection] = set()
        self._changed = trio.Event()
        self._listening: _Listening | None = None
        self._outage: trio.CancelScope | None = None
        self._reply_delay = 0.0
        nursery.start_soon(self._run_market)
        self._orders_changed = trio.Event()
        self._state.orders.on_change = self._orders_changed.set
        nursery.start_soon(self._run_orders)
        self._silent = False
        if self.host not in _LOOPBACK:
            logger.warning("simulator listening on non-loopback host %s", self.host)

    # -- observation ------------------------------------------------------------------------

    @property
    def received(self) -> list[ReceivedMessage]:
        """Every client message after the handshake, in arrival order (live list)."""
        return self._state.received

    @property
    def listening(self) -> bool:
        return self._listening is not None

    def connected_client_ids(self) -> frozenset[int]:
        """Client ids of connections that completed ``startApi`` and are still open."""
        return frozenset(self._state.sessions)

    async def wait_for_clients(self, n: int) -> None:
        """Block until at least ``n`` clients have completed ``startApi`` and are connected.
        Cancellable; it has no timeout of its own."""
        while len(self._state.sessions) < n:
            await self._changed.wait()

    def max_messages_in_window(self, window: float = 1.0, client_id: int | None = None) -> int:
        """The most client messages (refused ones included) seen in any ``window`` s."""
        return self._state.max_messages_in_window(window, client_id)

    def live_subscriptions(self, client_id: int | None = None) -> frozenset[int]:
        """Ticker ids of open ``reqMktData`` subscriptions (of one client, or all)."""
        return self._state.live_subscriptions(client_id)

    def reply_delay(self) -> float:
        return self._reply_delay

    @property
    def orders(self) -> OrderEngine:
        """IB's side of the orders: every order, execution and position (observation)."""
        return self._state.orders.engine

    @property
    def market(self) -> SimMarket:
        """The simulated market every connection sees (instruments, quotes, faults)."""
        return self._state.market

    # -- faults --------------------------------------------------------------------------------

    async def drop_all(self) -> None:
        """Close every client connection at once (as a crashing TWS would) and wait until
        they are closed. Listening goes on."""
        connections = list(self._connections)
        for connection in connections:
            connection.abort()
        for connection in connections:
            await connection.closed.wait()

    async def refuse_for(self, seconds: float) -> None:
        """A TWS restart: stop listening (connects are refused at TCP level), drop every
        connection, and listen again on the same port after ``seconds`` of Trio time.
        Returns once the port is closed; the restart runs in the background. Overlapping
        calls extend the outage to the latest end."""
        if seconds < 0:
            raise ValueError("seconds must be >= 0")
        until = trio.current_time() + seconds
        await self._stop_listening()
        await self.drop_all()
        if self._outage is None:
            self._outage = trio.CancelScope(deadline=until)
            self._nursery.start_soon(self._restart_when_due, self._outage)
        else:
            self._outage.deadline = max(self._outage.deadline, until)

    async def send_error(self, code: int, message: str = "", *, req_id: int = -1,
                         client_id: int | None = None) -> None:
        """Send ``ERR_MSG`` to one client or all (e.g. 1100, 1101, 1102, 2103, 2110).
        An empty ``message`` uses TWS's wording for ``code``. With 1101 ("data lost") the
        client's market-data lines and streams are gone, as at TWS."""
        text = message or msg.DEFAULT_ERROR_TEXT.get(code, f"Simulated error {code}")
        for connection in self._targets(client_id):
            if code == 1101:
                connection.session.market_data.close()
            data = connection.session.error(req_id, code, text, trio.current_time())
            await connection.send(data)

    def stall_handshakes(self, stalled: bool = True) -> None:
        """Accept new connections but never answer them (True), as a TWS waiting at a
        login, 2FA or "accept incoming connection" prompt does; False serves new
        connections again. A stalled connection stays silent until the client closes it."""
        self._silent = stalled

    def set_reply_delay(self, seconds: float) -> None:
        """Delay every reply (not pushed data) by ``seconds``; 0 clears. Order is kept."""
        if seconds < 0 or not math.isfinite(seconds):
            raise ValueError("reply delay must be a finite number >= 0")
        self._reply_delay = seconds

    def drop_next_order_ack(self) -> None:
        """The next ``placeOrder`` reaches IB (the order exists and may fill) but the
        connection drops before its acknowledgement is written: delivery unknown."""
        self._state.orders.drop_next_ack = True

    def set_order_ack_delay(self, seconds: float) -> None:
        """Hold back the answers to ``placeOrder`` and ``cancelOrder`` (acks, statuses,
        immediate fills) by ``seconds``; 0 clears."""
        if seconds < 0 or not math.isfinite(seconds):
            raise ValueError("ack delay must be a finite number >= 0")
        self._state.orders.ack_delay = seconds

    def reject_next_order(self, reason: str = DEFAULT_REJECT_REASON) -> None:
        """Reject the next new order: 201 "Order rejected - reason:<reason>", then
        ``Inactive``."""
        self._state.orders.engine.reject_next = reason

    def stall_ticker(self, symbol: str, stalled: bool = True) -> None:
        """Stop (or resume) streaming ``symbol`` and its options: lines stay open and
        silent, as a stuck TWS ticker does. ValueError for a symbol the market lacks."""
        self.market.stall(symbol, stalled)

    def halt(self, symbol: str, halted: bool = True) -> None:
        """Halt (or resume) ``symbol`` and its options: prices freeze, and subscribers get
        the halted tick (49) as 1, then 0 on resume."""
        self.market.halt(symbol, halted)

    def widen_spreads(self, symbol: str, factor: float) -> None:
        """Quote ``symbol`` and its options ``factor`` times wider (1 restores)."""
        self.market.set_spread_factor(symbol, factor)

    async def data_farm_outage(self, down: bool = True) -> None:
        """A market-data farm outage: every client gets 2103 and no ticks flow until it
        ends (``down=False``), when they get 2104 and every line catches up at once."""
        if self.market.farm_down == down:
            return
        self.market.farm_down = down
        await self.send_error(2103 if down else 2104)

    async def send_malformed(self, *, client_id: int | None = None,
                             kind: str = "bad_msg_id") -> None:
        """Write one malformed frame (kinds: ``MALFORMED_KINDS``) to one client or all."""
        if kind not in MALFORMED_KINDS:
            raise ValueError(f"unknown malformed kind {kind!r}; choose from "
                             f"{', '.join(MALFORMED_KINDS)}")
        for connection in self._targets(client_id):
            await connection.send(malformed_frame(kind, self._state.rng))

    async def push_tick_price(self, req_id: int, tick_type: int, price: float, *,
                              client_id: int | None = None, size: float = 0) -> None:
        """Send one ``TICK_PRICE`` for ``req_id`` to ``client_id``, or to every client with
        ``req_id`` subscribed (none: nothing is sent, as TWS sends no data unasked)."""
        data = msg.tick_price(req_id, tick_type, price, size)
        for connection in self._subscribers(req_id, client_id):
            await connection.send(data)

    async def flood_tick_prices(self, req_id: int, n: int, *,
                                client_id: int | None = None) -> None:
        """Write ``n`` ``TICK_PRICE`` frames as fast as the socket takes them, in batches
        of a few thousand frames per write. Returns when all are handed to the writer."""
        for connection in self._subscribers(req_id, client_id):
            for start in range(0, n, _FLOOD_BATCH):
                count = min(_FLOOD_BATCH, n - start)
                await connection.send(tick_flood(req_id, start, count))

    # -- internals -----------------------------------------------------------------------------

    def _targets(self, client_id: int | None) -> list[ClientConnection]:
        if client_id is None:
            return [c for c in self._connections if c.session.registered]
        session = self._state.sessions.get(client_id)
        if session is None:
            raise LookupError(f"no connected client with id {client_id}")
        return [c for c in self._connections if c.session is session]

    def _subscribers(self, req_id: int, client_id: int | None) -> list[ClientConnection]:
        if client_id is not None:
            return self._targets(client_id)
        return [c for c in self._targets(None) if req_id in c.session.subscriptions]

    async def _run_market(self) -> None:
        """Walk the market on its grid and stream what changed to every client.

        While no client holds a line or a stream, it waits for one instead of ticking: a
        market nobody watches must not keep a `MockClock` from jumping (the walk itself
        does not depend on how often it is advanced)."""
        interval = self.config.market_tick_interval
        next_tick = trio.current_time()
        while True:
            while not self._anyone_watching():
                changed = self._changed
                await changed.wait()
                next_tick = trio.current_time()
            next_tick = max(next_tick + interval, trio.current_time())
            await trio.sleep_until(next_tick)
            self.market.advance(trio.current_time())
            connections = [c for c in self._connections if c.session.registered]
            for connection in connections:
                connection.post(action.data for action in connection.session.market_updates())
            for connection in connections:
                await connection.wait_for_room()

    def _anyone_watching(self) -> bool:
        return any(c.session.registered and (c.session.market_data.lines
                                             or c.session.market_data.streams)
                   for c in self._connections)

    async def _run_orders(self) -> None:
        """Fill working orders as the market moves and deliver what the order desk posted
        (other clients' updates, delayed acks). Sleeps while there is nothing to do."""
        desk = self._state.orders
        while True:
            now = trio.current_time()
            desk.tick(now)
            # Everything taken from the outbox is queued before this task yields: a reply
            # a reader queues meanwhile was produced later and must come after it.
            receivers = set()
            for notice in desk.due(now):
                session = self._state.sessions.get(notice.client_id)
                connection = next((c for c in self._connections if c.session is session), None)
                if session is not None and connection is not None:
                    connection.post((desk.encode(notice.message, session.server_version, now),))
                    receivers.add(connection)
            for connection in receivers:
                await connection.wait_for_room()
            wake = desk.next_wakeup(trio.current_time())
            self._orders_changed = trio.Event()
            desk.on_change = self._orders_changed.set
            with trio.move_on_at(math.inf if wake is None else wake):
                await self._orders_changed.wait()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def _listen(self) -> None:
        self._serve_listeners(await _bind(self.host, self.port))

    def _serve_listeners(self, listeners: list[trio.SocketListener]) -> None:
        self.port = listeners[0].socket.getsockname()[1]
        listening = _Listening(trio.CancelScope(), trio.Event())
        self._listening = listening
        self._nursery.start_soon(self._accept_loop, listeners, listening)
        logger.info("simulated TWS listening on %s:%d (server version %d)", self.host,
                    self.port, self.config.server_version)

    async def _stop_listening(self) -> None:
        listening, self._listening = self._listening, None
        if listening is not None:
            listening.scope.cancel()
            await listening.stopped.wait()
            logger.info("simulated TWS stopped listening on port %d", self.port)

    async def _restart_when_due(self, outage: trio.CancelScope) -> None:
        try:
            # The outage is a cancel scope whose deadline later refuse_for calls extend.
            with outage:
                await trio.sleep_forever()
            while self._listening is None:
                try:
                    await self._listen()
                except OSError as exc:
                    logger.warning("cannot listen again on port %d yet: %s", self.port, exc)
                    await trio.sleep(0.1)
        finally:
            self._outage = None

    async def _accept_loop(self, listeners: list[trio.SocketListener],
                           listening: _Listening) -> None:
        try:
            with listening.scope:
                async with trio.open_nursery() as nursery:
                    for listener in listeners:
                        nursery.start_soon(self._accept_from, listener)
        finally:
            for listener in listeners:
                listener.socket.close()  # synchronous: must complete even when cancelled
            listening.stopped.set()

    async def _accept_from(self, listener: trio.SocketListener) -> None:
        while True:
            try:
                stream = await listener.accept()
            except OSError as exc:  # e.g. out of file descriptors: back off, keep serving
                logger.warning("accept failed: %s", exc)
                await trio.sleep(0.1)
                continue
            self._nursery.start_soon(self._serve, stream)

    async def _serve(self, stream: trio.abc.Stream) -> None:
        if self._silent:
            await _stay_silent(stream)
            return
        connection = ClientConnection(stream, ClientSession(self._state), self._delay_for)
        self._connections.add(connection)
        try:
            await connection.run(on_change=self._notify)
        finally:
            self._connections.discard(connection)
            self._notify()

    def _delay_for(self) -> float:
        return self._reply_delay


async def _stay_silent(stream: trio.abc.Stream) -> None:
    """Read and discard until the client goes: an accepted socket nobody answers."""
    async with stream:
        try:
            while await stream.receive_some(4096):
                pass
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
