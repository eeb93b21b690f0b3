"""Per-client TWS behaviour, sans-IO: what the simulated TWS answers to each message.

The layer between the codec and the Trio server. ``SimulatorState`` is what one simulated
TWS shares between its connections (client-id registry, order ids, the record of every
received message); ``ClientSession`` is one connection: it feeds the codec, applies the
rate rule and turns each event into actions (``Send`` bytes, ``Close``). Time is passed
in, so the whole layer runs in tests without sockets or a clock.

Choices where TWS's behaviour is not written down:

* an unknown message id (not in ``ibapi.message.OUT``) is answered with error 320
  ("Server error when reading an API client request", reqId -1) and skipped; the frame is
  length-delimited, so the stream stays in sync and the connection stays open;
* a known request whose fields cannot be read is answered with 320 (its id if readable);
* after ``START_API`` TWS sends ``MANAGED_ACCTS``, ``NEXT_VALID_ID`` and the farm notices
  2104/2106/2158 (reqId -1), in that order;
* the next valid order id is kept per client id across reconnects, like TWS does.
"""

from __future__ import annotations

import datetime
import logging
import random
from collections.abc import Callable

import attrs

from ibkr_connector.simulator import _messages as msg
from ibkr_connector.simulator._codec import (
    NEED_DATA,
    ClientMessage,
    ConnectionClosed,
    Event,
    Handshake,
    ServerCodec,
    StartApi,
)
from ibkr_connector.simulator._config import MIN_SERVER_VERSION, SimulatorConfig
from ibkr_connector.simulator._market import SimMarket
from ibkr_connector.simulator._market_data import MarketDataSession
from ibkr_connector.simulator._order_desk import ORDER_REQUESTS, OrderDesk
from ibkr_connector.simulator._pacing import SlidingWindow, max_in_window
from ibkr_connector.simulator._requests import (
    KNOWN_REQUESTS,
    Out,
    RequestFieldError,
    request_id_of,
)

__all__ = ["ClientSession", "Close", "ReceivedMessage", "Send", "SimulatorState"]

logger = logging.getLogger(__name__)

_PACE_OPTION = "+PACEAPI"


@attrs.frozen
class ReceivedMessage:
    """One client message as it reached the simulator (after the handshake).

    ``time`` is ``trio.current_time()`` at arrival; ``client_id`` is the id the connection
    gave in ``START_API``; ``rejected_for_pacing`` is True when it was answered with error
    100 and not processed.
    """

    time: float
    client_id: int
    msg_id: int
    fields: tuple[str, ...]
    rejected_for_pacing: bool


@attrs.frozen
class Send:
    """Write ``data`` to the client; ``reply`` ones obey the configured reply delay."""

    data: bytes
    reply: bool = True


@attrs.frozen
class Close:
    """Flush what was sent so far, then close the connection."""

    reason: str


Action = Send | Close


class SimulatorState:
    """The state one simulated TWS shares between all its client connections."""

    def __init__(self, config: SimulatorConfig, now: float, wall_clock: float) -> None:
        self.config = config
        self.received: list[ReceivedMessage] = []
        self.sessions: dict[int, ClientSession] = {}
        self.rng = random.Random(config.seed)
        self._start = now
        self._wall_start = config.start_time if config.start_time is not None else wall_clock
        self.market = SimMarket(seed=config.seed, start=now, wall_start=self._wall_start,
                                tick_interval=config.market_tick_interval)
        #: Orders, executions, positions and order ids: IB's side, shared by connections.
        self.orders = OrderDesk.for_config(config, self.market, self.wall_time)

    def wall_time(self, now: float) -> float:
        """Simulated Unix time: the configured start plus elapsed Trio time."""
        return self._wall_start + (now - self._start)

    def time_ms(self, now: float) -> int:
        return int(self.wall_time(now) * 1000)

    def connection_time(self, now: float) -> str:
        stamp = datetime.datetime.fromtimestamp(self.wall_time(now), tz=datetime.UTC)
        return stamp.strftime("%Y%m%d %H:%M:%S UTC")

    def next_order_id(self, client_id: int) -> int:
        return self.orders.engine.next_order_id(client_id)

    def live_subscriptions(self, client_id: int | None = None) -> frozenset[int]:
        if client_id is not None:
            session = self.sessions.get(client_id)
            return frozenset(session.subscriptions) if session else frozenset()
        return frozenset(
            req_id for session in self.sessions.values() for req_id in session.subscriptions
        )

    def max_messages_in_window(self, window: float = 1.0, client_id: int | None = None) -> int:
        return max_in_window(
            (m.time for m in self.received if client_id is None or m.client_id == client_id),
            window,
        )


class ClientSession:
    """One client connection's protocol logic. Not thread-safe; one task drives it."""

    def __init__(self, state: SimulatorState) -> None:
        self.state = state
        config = state.config
        self.codec = ServerCodec(config.server_version, MIN_SERVER_VERSION)
        self.client_id: int | None = None
        self.registered = False
        self.paced = False
        self.subscriptions: set[int] = set()
        self.window = SlidingWindow(config.max_messages_per_second, 1.0)
        self.market_data = MarketDataSession(state.market, config, self, self.subscriptions)

    @property
    def server_version(self) -> int:
        return self.codec.server_version or self.state.config.server_version

    # -- driving -------------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        self.codec.receive_data(data)

    def next_event(self) -> Event | None:
        """The next buffered event, or None. Raises ``ClientProtocolError``."""
        event = self.codec.next_event()
        return None if event is NEED_DATA else event

    def pace(self, now: float) -> float:
        """For ``+PACEAPI`` clients: when the next message may be processed."""
        return self.window.schedule(now)

    def handle(self, event: Event, now: float, arrived: float | None = None) -> list[Action]:
        """The actions answering ``event``; ``arrived`` is when it reached the wire
        (defaults to ``now``; differs for held ``+PACEAPI`` messages)."""
        arrived = now if arrived is None else arrived
        if isinstance(event, Handshake):
            self.paced = _PACE_OPTION in event.options.split()
            return [Send(self.codec.handshake_reply(self.state.connection_time(now)))]
        if isinstance(event, ConnectionClosed):
            return [Close("client closed the connection")]
        if isinstance(event, StartApi):
            self.client_id = event.client_id
        client_id = self.client_id if self.client_id is not None else -1
        admitted = self.paced or self.window.admit(arrived)
        self.state.received.append(
            ReceivedMessage(arrived, client_id, event.msg_id, event.fields, not admitted)
        )
        if not admitted:
            return self._pacing_violation(event.msg_id, event.fields, now)
        if isinstance(event, StartApi):
            return self._start_api(event, now)
        return self._request(event, now)

    def close(self) -> None:
        """Forget this connection: its client id is free and its subscriptions end."""
        if self.registered and self.client_id is not None:
            if self.state.sessions.get(self.client_id) is self:
                del self.state.sessions[self.client_id]
                self.state.orders.disconnected(self.client_id)
        self.registered = False
        self.market_data.close()

    # -- answers ---------------------------------------------------------------------------------

    def error(self, req_id: int, code: int, message: str, now: float) -> bytes:
        return msg.error(self.server_version, req_id, code, message,
                         time_ms=self.state.time_ms(now))

    def _pacing_violation(self, msg_id: int, fields: tuple[str, ...], now: float) -> list[Action]:
        req_id = request_id_of(msg_id, fields, self.server_version)
        limit = self.window.limit
        text = f"{msg.DEFAULT_ERROR_TEXT[100]}:max={limit} rec={self.window.count(now)} (1)"
        logger.warning("client %s exceeded %d messages/s", self.client_id, limit)
        actions: list[Action] = [Send(self.error(req_id, 100, text, now))]
        if self.state.config.disconnect_on_pacing_violation:
            actions.append(Close("pacing violation"))
        return actions

    def _start_api(self, event: StartApi, now: float) -> list[Action]:
        if event.client_id in self.state.sessions:
            logger.info("refusing client id %d: already in use", event.client_id)
            return [Send(self.error(-1, 326, msg.DEFAULT_ERROR_TEXT[326], now)),
                    Close("client id in use")]
        self.state.sessions[event.client_id] = self
        self.registered = True
        logger.info("client %d started the API at version %d", event.client_id,
                    self.server_version)
        sends = [
            msg.managed_accounts(self.state.config.accounts),
            msg.next_valid_id(self.state.next_order_id(event.client_id)),
            *(self.error(-1, code, text, now) for code, text in msg.FARM_NOTICES),
            *self.state.orders.connected(event.client_id, self.server_version, now),
        ]
        return [Send(data) for data in sends]

    def _request(self, event: ClientMessage, now: float) -> list[Action]:
        msg_id, fields = event.msg_id, event.fields
        try:
            return self._dispatch(msg_id, fields, now)
        except RequestFieldError as exc:
            req_id = request_id_of(msg_id, fields, self.server_version)
            logger.info("client %s sent an unreadable message %d: %s", self.client_id, msg_id,
                        exc)
            text = f"{msg.DEFAULT_ERROR_TEXT[320]} {exc}"
            return [Send(self.error(req_id, 320, text, now))]

    def _dispatch(self, msg_id: int, fields: tuple[str, ...], now: float) -> list[Action]:
        handler = HANDLERS.get(msg_id)
        if handler is not None:
            return handler(self, fields, now)
        if msg_id not in KNOWN_REQUESTS or msg_id == Out.REQ_CURRENT_TIME_IN_MILLIS:
            logger.info("client %s sent unknown message id %d", self.client_id, msg_id)
            text = f"{msg.DEFAULT_ERROR_TEXT[320]} Unknown message id: {msg_id}"
            return [Send(self.error(-1, 320, text, now))]
        # A request this simulator does not model: recorded (see ``received``), no answer.
        return []

    @property
    def _client_id(self) -> int:
        return self.client_id if self.client_id is not None else -1

    def _current_time(self, fields: tuple[str, ...], now: float) -> list[Action]:
        return [Send(msg.current_time(int(self.state.wall_time(now))))]

    def _current_time_in_millis(self, fields: tuple[str, ...], now: float) -> list[Action]:
        if self.server_version < msg.MIN_VER_CURRENT_TIME_IN_MILLIS:
            # ibapi would not send it below 197: TWS treats it as an unknown message.
            msg_id = Out.REQ_CURRENT_TIME_IN_MILLIS.value
            text = f"{msg.DEFAULT_ERROR_TEXT[320]} Unknown message id: {msg_id}"
            return [Send(self.error(-1, 320, text, now))]
        return [Send(msg.current_time_in_millis(self.state.time_ms(now)))]

    def _req_ids(self, fields: tuple[str, ...], now: float) -> list[Action]:
        return [Send(msg.next_valid_id(self.state.next_order_id(self._client_id)))]

    def _cancel_mkt_data(self, fields: tuple[str, ...], now: float) -> list[Action]:
        req_id = request_id_of(Out.CANCEL_MKT_DATA, fields, self.server_version)
        if req_id < 0:
            raise RequestFieldError("cancelMktData ticker id missing or not an integer")
        return [Send(data) for data in self.market_data.cancel_mkt_data(req_id, now)]

    def market_updates(self) -> list[Send]:
        """The ticks that changed on this connection's lines and streams (pushed data,
        not replies: no reply delay)."""
        return [Send(data, reply=False) for data in self.market_data.updates()]


Handler = Callable[[ClientSession, tuple[str, ...], float], list[Action]]


def _market_data(
    method: Callable[[MarketDataSession, tuple[str, ...], float], list[bytes]],
) -> Handler:
    """A handler answering with the frames of a ``MarketDataSession`` method."""
    def handle(session: ClientSession, fields: tuple[str, ...], now: float) -> list[Action]:
        return [Send(data) for data in method(session.market_data, fields, now)]
    return handle


def _orders(msg_id: int) -> Handler:
    """A handler answering through the simulated TWS's shared order desk."""
    def handle(session: ClientSession, fields: tuple[str, ...], now: float) -> list[Action]:
        reply = session.state.orders.handle(msg_id, fields, session._client_id,
                                            session.server_version, now)
        actions: list[Action] = [Send(data) for data in reply.frames]
        return actions + ([Close(reply.close)] if reply.close else [])
    return handle


#: The requests the session answers: message id -> handler(session, fields, now). A request
#: not listed here is recorded and left unanswered (or refused with 320 if unknown).
HANDLERS: dict[int, Handler] = {
    Out.REQ_CURRENT_TIME: ClientSession._current_time,
    Out.REQ_CURRENT_TIME_IN_MILLIS: ClientSession._current_time_in_millis,
    Out.REQ_IDS: ClientSession._req_ids,
    Out.CANCEL_MKT_DATA: ClientSession._cancel_mkt_data,
    Out.REQ_MKT_DATA: _market_data(MarketDataSession.req_mkt_data),
    Out.REQ_MARKET_DATA_TYPE: _market_data(MarketDataSession.req_market_data_type),
    Out.REQ_CONTRACT_DATA: _market_data(MarketDataSession.req_contract_details),
    Out.REQ_SEC_DEF_OPT_PARAMS: _market_data(MarketDataSession.req_sec_def_opt_params),
    Out.REQ_TICK_BY_TICK_DATA: _market_data(MarketDataSession.req_tick_by_tick),
    Out.CANCEL_TICK_BY_TICK_DATA: _market_data(MarketDataSession.cancel_tick_by_tick),
    **{msg_id: _orders(msg_id) for msg_id in ORDER_REQUESTS},
}
