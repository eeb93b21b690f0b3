"""The connection actor's bookkeeping, apart from its I/O: what one attempt has seen, what
survives the actor's restarts, and the metrics only the single writer can keep.

Layer: ``actors/``, beside `connection` (which owns the socket and uses these). Plain
values plus Trio events; nothing here touches ibapi or a socket.
"""

from __future__ import annotations

import collections
import copy
import math

import attrs
import trio

from ..protocol.client import ConnectFailed
from ..protocol.requests import CancelMktData, PlaceOrder, ReqMktData, Request
from ..supervisor import Envelope

__all__ = ["Attempt", "ConnectionMemory", "Handshake", "WriterMetrics"]


@attrs.define
class Handshake:
    """What the pump has seen of the current attempt's start-up."""

    done: trio.Event = attrs.Factory(trio.Event)
    next_order_id: int | None = None
    accounts: tuple[str, ...] | None = None
    failure: ConnectFailed | None = None
    pump_done: trio.Event = attrs.Factory(trio.Event)
    _rank: int = -1

    def check(self) -> None:
        if self.next_order_id is not None and self.accounts is not None:
            self.done.set()

    # How specific a reason for a failed start-up is; the most specific one wins.
    # REAL-TWS: TWS sends 326 then closes the socket; ibapi may report the close first
    CLIENT_ID_IN_USE = 4  # TWS's 326
    TWS_ERROR = 3  # another TWS code (502, ...)
    TIMED_OUT = 2  # no handshake in time: our own close then looks like TWS closing
    CLOSED = 1  # the socket closed during start-up
    OTHER = 0  # the socket could not be opened

    def fail(self, failure: ConnectFailed, rank: int = OTHER) -> None:
        """Record why start-up failed. Events arrive in ibapi's order, not in order of
        meaning (the socket's close is seen before the 326 that explains it, and a
        timed-out attempt's own close before the timeout), so the most specific reason
        wins, by the ranks above."""
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
    data_resets: int = 0  # 1101s seen


@attrs.define
class Attempt:
    """One connection attempt (its client-id retries included), shared by every Connect
    that arrives while it runs: they all get its one outcome.

    ``status`` or ``failure`` is set by the task running it; `finish` answers the waiting
    calls and sets ``done``. An attempt cancelled before either (a disconnect, the actor
    stopping) fails its waiters with `ConnectFailed`.
    """

    scope: trio.CancelScope = attrs.Factory(trio.CancelScope)
    done: trio.Event = attrs.Factory(trio.Event)
    waiters: list[Envelope] = attrs.Factory(list)
    status: object = None
    failure: ConnectFailed | None = None

    def outcome(self) -> object:
        """The attempt's status, or raise its failure (a copy: one instance per raiser)."""
        if self.failure is not None:
            raise copy.copy(self.failure)
        return self.status

    def finish(self) -> None:
        if self.status is None and self.failure is None:
            self.failure = ConnectFailed("the connection attempt was cancelled")
        for envelope in self.waiters:
            if self.failure is not None:
                envelope.fail(copy.copy(self.failure))
            else:
                envelope.reply(self.status)
        self.waiters.clear()
        self.done.set()


@attrs.define
class WriterMetrics:
    """Counts only the single writer can keep exactly: messages written, market-data
    lines held at TWS, and how long TWS takes to acknowledge an order."""

    messages_sent: int = 0
    market_data_lines: set[int] = attrs.Factory(set)
    orders_in_flight: dict[int, float] = attrs.Factory(dict)  # order id -> when written
    order_ack_latencies: collections.deque[float] = attrs.Factory(
        lambda: collections.deque(maxlen=500))

    def written(self, request: Request, now: float) -> None:
        self.messages_sent += 1
        if isinstance(request, ReqMktData) and not request.snapshot:
            self.market_data_lines.add(request.req_id)
        elif isinstance(request, CancelMktData):
            self.market_data_lines.discard(request.req_id)
        elif isinstance(request, PlaceOrder):
            self.orders_in_flight[request.order_id] = now

    def acknowledged(self, order_id: int, now: float) -> None:
        sent_at = self.orders_in_flight.pop(order_id, None)
        if sent_at is not None:
            self.order_ack_latencies.append(now - sent_at)

    def request_ended(self, req_id: int) -> None:
        """TWS ended the request with this id (refused, failed): stop counting it."""
        self.market_data_lines.discard(req_id)
        self.orders_in_flight.pop(req_id, None)

    def session_dropped(self) -> None:
        # TWS forgets a client's market data and unacknowledged orders with its socket.
        self.market_data_lines.clear()
        self.orders_in_flight.clear()

    def ack_ms(self, q: float) -> float | None:
        """The q-quantile (nearest rank) of recent order acknowledgement times, in ms."""
        if not self.order_ack_latencies:
            return None
        ordered = sorted(self.order_ack_latencies)
        index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
        return round(ordered[index] * 1000, 3)
