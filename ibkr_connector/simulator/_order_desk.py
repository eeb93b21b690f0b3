"""The order desk: how the simulated TWS serves order and account requests, sans-IO.

Between the per-connection session and the shared order engine. The session hands it a
request (message id and fields) with the connection's client id and server version; the
desk decodes it (``_order_wire``), asks the engine (``_orders``) and routes the engine's
notices: those for the requesting connection come back as messages to write now, those for
other clients (and delayed acknowledgements) wait in an outbox that the server drains
(``due``), and live fills fan out as position and portfolio updates to subscribers. A
client with notices still in the outbox gets its answers there too, behind them: one
client's messages keep the order they were produced in.

It also carries the order faults (drop the connection between ``placeOrder`` and its
acknowledgement, delay acknowledgements, reject the next order) and the subscriptions a
connection holds (positions, account updates), which end with the connection.
"""

from __future__ import annotations

import datetime
import heapq
from collections import Counter
from collections.abc import Callable
from decimal import Decimal

import attrs

from ibkr_connector.simulator._accounts import (
    account_multi_messages,
    account_summary_messages,
    account_update_messages,
    portfolio_message,
)
from ibkr_connector.simulator._config import SimulatorConfig
from ibkr_connector.simulator._market import SimMarket
from ibkr_connector.simulator._order_messages import encode_message
from ibkr_connector.simulator._order_reports import completed_orders, executions, open_orders
from ibkr_connector.simulator._order_types import (
    ExecDetailsMsg,
    Message,
    Notice,
    PositionEndMsg,
    PositionMsg,
)
from ibkr_connector.simulator._order_wire import (
    parse_account_summary,
    parse_account_updates,
    parse_account_updates_multi,
    parse_cancel_order,
    parse_executions_request,
    parse_place_order,
)
from ibkr_connector.simulator._orders import OrderEngine
from ibkr_connector.simulator._requests import RequestFieldError, request_id_of

__all__ = ["ORDER_REQUESTS", "OrderDesk", "OrderReply"]

#: How often working orders are checked against the market while any exist (Trio s).
FILL_CHECK_INTERVAL = 0.1


@attrs.frozen
class OrderReply:
    """The frames to write to the requesting connection now, and whether to close it
    after them (``close`` is the reason)."""

    frames: tuple[bytes, ...] = ()
    close: str | None = None


@attrs.frozen
class _Reply:
    messages: tuple[Message, ...] = ()
    close: str | None = None


class OrderDesk:
    """Order and account requests of every connection of one simulated TWS."""

    @classmethod
    def for_config(cls, config: SimulatorConfig, market: SimMarket,
                   wall_time: Callable[[float], float]) -> OrderDesk:
        """The desk of a simulated TWS configured by ``config``, trading on ``market``."""
        partial = Decimal(config.partial_fill_quantity) if config.partial_fill_quantity else None
        engine = OrderEngine(market, config.accounts, initial_cash=config.initial_cash,
                             first_order_id=config.first_order_id,
                             partial_fill_quantity=partial)
        return cls(engine, wall_time)

    def __init__(self, engine: OrderEngine, wall_time: Callable[[float], float]) -> None:
        self.engine = engine
        self._wall_time = wall_time
        self.position_subscribers: set[int] = set()
        self.account_subscribers: dict[int, str] = {}
        self.drop_next_ack = False
        self.ack_delay = 0.0
        #: Called whenever the outbox or the set of working orders changed (the server
        #: sets it to wake its delivery loop).
        self.on_change: Callable[[], None] = lambda: None
        self._outbox: list[tuple[float, int, Notice]] = []
        self._last_due: dict[int, float] = {}
        self._undelivered: Counter[int] = Counter()
        self._seq = 0

    # -- connections -------------------------------------------------------------------------

    def connected(self, client_id: int, server_version: int, now: float) -> list[bytes]:
        """What TWS pushes after ``startApi`` ("download open orders on connection"): this
        client's open orders, openOrder + orderStatus each."""
        return [self.encode(n.message, server_version, now)
                for n in open_orders(self.engine.orders(), client_id, end=False)]

    def encode(self, message: Message, server_version: int, now: float) -> bytes:
        return encode_message(message, server_version, int(self._wall_time(now) * 1000))

    def disconnected(self, client_id: int) -> None:
        """The connection's subscriptions end with it; its orders stay at IB."""
        self.position_subscribers.discard(client_id)
        self.account_subscribers.pop(client_id, None)

    def handle(self, msg_id: int, fields: tuple[str, ...], client_id: int,
               server_version: int, now: float) -> OrderReply:
        """Answer one order or account request (``ORDER_REQUESTS``). Raises
        ``RequestFieldError`` for a request whose fields cannot be read."""
        reply = ORDER_REQUESTS[msg_id](self, _Request(fields, client_id, server_version, now))
        messages = reply.messages
        if messages and self._undelivered[client_id]:
            # Notices this client has not been sent yet were produced first: the answer
            # waits behind them in the outbox, as TWS keeps one client's messages in order.
            for message in messages:
                self._post(Notice(client_id, message), now)
            self.on_change()
            messages = ()
        frames = tuple(self.encode(m, server_version, now) for m in messages)
        return OrderReply(frames, reply.close)

    # -- delivery -----------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        """Move the market to ``now`` and fill what it crosses; the fills go to the
        outbox."""
        if not self.engine.working():
            return
        self.engine.market.advance(now)
        self._route(self.engine.advance(self._wall_time(now)), -1, now)

    def due(self, now: float) -> list[Notice]:
        """Take the notices whose time has come, in order."""
        out = []
        while self._outbox and self._outbox[0][0] <= now:
            notice = heapq.heappop(self._outbox)[2]
            self._undelivered[notice.client_id] -= 1
            out.append(notice)
        return out

    def next_wakeup(self, now: float) -> float | None:
        """When the delivery loop must run next (None: only when ``on_change`` fires)."""
        times = [self._outbox[0][0]] if self._outbox else []
        if self.engine.working():
            times.append(now + FILL_CHECK_INTERVAL)
        return min(times) if times else None

    def _post(self, notice: Notice, due: float) -> None:
        # One client's messages keep their order: a fill never overtakes a delayed ack.
        due = max(due, self._last_due.get(notice.client_id, due))
        self._last_due[notice.client_id] = due
        self._undelivered[notice.client_id] += 1
        self._seq += 1
        heapq.heappush(self._outbox, (due, self._seq, notice))

    def _route(self, notices: list[Notice], requester: int, now: float,
               delay: float = 0.0) -> tuple[Message, ...]:
        """Split ``notices``: the requester's come back (unless delayed), the rest are
        posted; live fills add position and portfolio updates for subscribers."""
        mine: list[Message] = []
        for notice in notices + self._fan_out(notices):
            if notice.client_id == requester and delay <= 0:
                mine.append(notice.message)
            else:
                self._post(notice, now + (delay if notice.client_id == requester else 0.0))
        if self._outbox or self.engine.working():
            self.on_change()
        return tuple(mine)

    def _fan_out(self, notices: list[Notice]) -> list[Notice]:
        out: list[Notice] = []
        for notice in notices:
            message = notice.message
            if not (isinstance(message, ExecDetailsMsg) and message.req_id == -1):
                continue
            fill = message.fill
            holding = self.engine.ledger.holding(fill.account, fill.contract.con_id)
            if holding is None:  # the BAG's own execution books nothing
                continue
            update = PositionMsg(holding.account, holding.contract, holding.quantity,
                                 holding.avg_cost)
            out += [Notice(client, update) for client in sorted(self.position_subscribers)]
            portfolio = portfolio_message(holding, self.engine.mark)
            out += [Notice(client, portfolio) for client, account
                    in sorted(self.account_subscribers.items()) if account == holding.account]
        return out

    # -- requests --------------------------------------------------------------------------------

    def _place_order(self, r: _Request) -> _Reply:
        try:
            request = parse_place_order(r.fields, r.server_version)
        except RequestFieldError:
            # The id reached TWS even if the order did not: never let it be reused.
            order_id = request_id_of(3, r.fields, r.server_version)
            if order_id > 0:
                self.engine.use_order_id(r.client_id, order_id)
            raise
        notices = self.engine.place(r.client_id, request, self._wall_time(r.now))
        if self.drop_next_ack and not request.what_if:
            self.drop_next_ack = False
            others = [n for n in notices if n.client_id != r.client_id]
            self._route(others, r.client_id, r.now)
            return _Reply(close="fault: dropped between placeOrder and its ack")
        return _Reply(self._route(notices, r.client_id, r.now, self.ack_delay))

    def _cancel_order(self, r: _Request) -> _Reply:
        request = parse_cancel_order(r.fields, r.server_version)
        notices = self.engine.cancel(r.client_id, request.order_id, self._wall_time(r.now))
        return _Reply(self._route(notices, r.client_id, r.now, self.ack_delay))

    def _global_cancel(self, r: _Request) -> _Reply:
        return _Reply(self._route(self.engine.cancel_all(self._wall_time(r.now)),
                                      r.client_id, r.now))

    def _open_orders(self, r: _Request) -> _Reply:
        return _Reply(_messages(open_orders(self.engine.orders(), r.client_id)))

    def _all_open_orders(self, r: _Request) -> _Reply:
        return _Reply(_messages(open_orders(self.engine.orders(), r.client_id,
                                          all_clients=True)))

    def _completed_orders(self, r: _Request) -> _Reply:
        return _Reply(_messages(completed_orders(self.engine.orders(), r.client_id)))

    def _executions(self, r: _Request) -> _Reply:
        request = parse_executions_request(r.fields, r.server_version)
        return _Reply(_messages(executions(self.engine.fills(), r.client_id, request.req_id,
                                        request.filter)))

    def _positions(self, r: _Request) -> _Reply:
        self.position_subscribers.add(r.client_id)
        held = [PositionMsg(h.account, h.contract, h.quantity, h.avg_cost)
                for h in self.engine.ledger.holdings()]
        return _Reply((*held, PositionEndMsg()))

    def _cancel_positions(self, r: _Request) -> _Reply:
        self.position_subscribers.discard(r.client_id)
        return _Reply()

    def _account_updates(self, r: _Request) -> _Reply:
        request = parse_account_updates(r.fields)
        if not request.subscribe:
            self.account_subscribers.pop(r.client_id, None)
            return _Reply()
        accounts = self.engine.ledger.accounts
        account = request.account if request.account in accounts else accounts[0]
        self.account_subscribers[r.client_id] = account
        hhmm = datetime.datetime.fromtimestamp(self._wall_time(r.now),
                                               tz=datetime.UTC).strftime("%H:%M")
        return _Reply(tuple(account_update_messages(self.engine.ledger, account,
                                                        self.engine.mark, hhmm)))

    def _account_summary(self, r: _Request) -> _Reply:
        request = parse_account_summary(r.fields)
        return _Reply(tuple(account_summary_messages(self.engine.ledger, request.req_id,
                                                         request.tags, self.engine.mark)))

    def _account_updates_multi(self, r: _Request) -> _Reply:
        request = parse_account_updates_multi(r.fields)
        return _Reply(tuple(account_multi_messages(
            self.engine.ledger, request.req_id, request.account, request.model_code,
            self.engine.mark)))


@attrs.frozen
class _Request:
    fields: tuple[str, ...]
    client_id: int
    server_version: int
    now: float


def _messages(notices: list[Notice]) -> tuple[Message, ...]:
    return tuple(n.message for n in notices)


#: Message id (``ibapi.message.OUT``) -> the desk's handler.
ORDER_REQUESTS: dict[int, Callable[[OrderDesk, _Request], _Reply]] = {
    3: OrderDesk._place_order,
    4: OrderDesk._cancel_order,
    5: OrderDesk._open_orders,
    6: OrderDesk._account_updates,
    7: OrderDesk._executions,
    16: OrderDesk._all_open_orders,
    58: OrderDesk._global_cancel,
    61: OrderDesk._positions,
    62: OrderDesk._account_summary,
    64: OrderDesk._cancel_positions,
    76: OrderDesk._account_updates_multi,
    99: OrderDesk._completed_orders,
}
