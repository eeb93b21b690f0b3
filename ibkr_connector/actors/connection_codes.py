"""How the connection actor reacts to a TWS code: one `classify`, then one reaction per
`codes.Strategy`.

Layer: ``actors/``, beside `connection`. Every TWS error event the connection sees goes
through `react_to_error`: it is logged at the table's level with the table's meaning (TWS's
own text, which can quote accounts, prices and quantities, only at DEBUG), emitted as a
classified `ErrorOccurred`, and then acted on by the strategy's entry in `REACTIONS`. The
strategies the connection leaves alone are acted on by other actors (limiter, market_data,
orders, order_ids) from that `ErrorOccurred` or the raw `TwsError`, through the same
`classify`; `docs/errors.md` says who does what, and a test checks that every strategy is
acted on somewhere.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

from ..protocol import codes
from ..protocol import events as ev
from ..protocol.client import ConnectFailed, TwsSession
from ..protocol.farms import FarmState, farm_status, with_farm_status
from .connection_machine import SessionEnd
from .connection_messages import (
    ClientIdInUse,
    ErrorOccurred,
    LinkLost,
    LinkRestored,
    OrderIdsOutOfSync,
)
from .connection_session import Handshake

if TYPE_CHECKING:
    from .connection import ConnectionActor

__all__ = ["ENDS_REQUEST", "REACTIONS", "describe", "react_to_error"]

log = logging.getLogger("ibkr_connector.actors.connection")

S = codes.Strategy
Reaction = Callable[["ConnectionActor", TwsSession, Handshake, ev.TwsError, codes.CodeInfo], None]


def describe(info: codes.CodeInfo) -> str:
    """A code as operators see it (status's ``last_error``, logs): the code and the table's
    meaning, never TWS's text."""
    return f"{info.code}: {info.meaning}"


def react_to_error(actor: ConnectionActor, session: TwsSession, handshake: Handshake,
                   error: ev.TwsError) -> None:
    """Log, emit and act on one TWS error event of *session* (maybe no longer current)."""
    info = codes.classify(error.code)
    log.log(info.log_level, "TWS %s %s", "error" if info.is_error else "notice", describe(info))
    log.debug("TWS %d for id %d said: %s", error.code, error.req_id, error.message)
    if info.is_error:
        actor.last_error = describe(info)
    actor.emit(ErrorOccurred(error.code, error.message, error.req_id, info))
    if info.strategy in ENDS_REQUEST and error.req_id >= 0:
        actor.metrics.request_ended(error.req_id)
    reaction = REACTIONS.get(info.strategy)
    if reaction is not None:
        reaction(actor, session, handshake, error, info)


def _current(actor: ConnectionActor, session: TwsSession) -> bool:
    return session is actor.session


def _client_id_in_use(actor: ConnectionActor, session: TwsSession, handshake: Handshake,
                      error: ev.TwsError, info: codes.CodeInfo) -> None:
    cfg = actor.config
    handshake.fail(ClientIdInUse(
        f"client id {actor.memory.client_id} is already in use at {cfg.host}:{cfg.port} "
        f"(TWS error {info.code})"), rank=Handshake.CLIENT_ID_IN_USE)


def _socket_gone(actor: ConnectionActor, session: TwsSession, handshake: Handshake,
                 error: ev.TwsError, info: codes.CodeInfo) -> None:
    # RECONNECT (the socket is gone) and RESET_CONNECTION (the stream can't be trusted: a
    # lost inbound message, a half-written request) end the session alike: during
    # start-up the attempt fails, afterwards we drop the socket ourselves and the watchdog
    # reconnects (and every actor restores, orders reconcile).
    end = actor.machine.session_ended(current=_current(actor, session),
                                      handshake_done=handshake.done.is_set())
    if end is SessionEnd.FAIL_STARTUP:
        cfg = actor.config
        handshake.fail(ConnectFailed(
            f"cannot connect to TWS at {cfg.host}:{cfg.port}: {describe(info)}"),
            rank=Handshake.TWS_ERROR)
    elif end is SessionEnd.LOST:
        actor.nursery.start_soon(actor.lost, session, f"TWS error {describe(info)}")


def _link_lost(actor: ConnectionActor, session: TwsSession, handshake: Handshake,
               error: ev.TwsError, info: codes.CodeInfo) -> None:
    # 1100: keep the socket (a new one reaches the same cut-off TWS), refuse sends until
    # 1101/1102 (`LinkDown`, which the limiter treats as not connected and re-queues).
    if actor.machine.link_lost(current=_current(actor, session)):
        actor.emit(LinkLost(info.meaning))


def _link_restored(actor: ConnectionActor, session: TwsSession, handshake: Handshake,
                   error: ev.TwsError, info: codes.CodeInfo) -> None:
    if not actor.machine.link_restored(current=_current(actor, session)):
        return
    actor.upstream_degraded = False
    data_lost = info.strategy is S.RESTORE_SUBSCRIPTIONS
    if data_lost:
        actor.memory.data_resets += 1
    actor.emit(LinkRestored(data_lost, info.meaning, actor.memory.data_resets))


def _farm_notice(actor: ConnectionActor, session: TwsSession, handshake: Handshake,
                 error: ev.TwsError, info: codes.CodeInfo) -> None:
    status = farm_status(error.code, error.message)
    if status is None or not _current(actor, session):
        return
    actor.farms = with_farm_status(actor.farms, status)
    if status.state is FarmState.OK:
        actor.upstream_degraded = False  # TWS reaches IB's servers again


def _upstream_degraded(actor: ConnectionActor, session: TwsSession, handshake: Handshake,
                       error: ev.TwsError, info: codes.CodeInfo) -> None:
    # REAL-TWS: after 2110 TWS keeps our socket and answers requests (traffic is not held)
    # 2110: TWS's link to IB's servers is broken and TWS restores it itself. The socket
    # stays and traffic is not held (unlike 1100); status shows it until 1101/1102 or a
    # farm reports OK.
    if _current(actor, session):
        actor.upstream_degraded = True


def _order_ids_out_of_sync(actor: ConnectionActor, session: TwsSession, handshake: Handshake,
                           error: ev.TwsError, info: codes.CodeInfo) -> None:
    actor.emit(OrderIdsOutOfSync(error.req_id))


#: What the connection itself does for each strategy (after logging and emitting).
REACTIONS: Mapping[codes.Strategy, Reaction] = MappingProxyType({
    S.CLIENT_ID_IN_USE: _client_id_in_use,
    S.RECONNECT: _socket_gone,
    S.RESET_CONNECTION: _socket_gone,
    S.WAIT_FOR_RESTORE: _link_lost,
    S.RESTORE_SUBSCRIPTIONS: _link_restored,
    S.RESUME: _link_restored,
    S.FARM_NOTICE: _farm_notice,
    S.LINK_NOTICE: _upstream_degraded,
    S.RESYNC_ORDER_IDS: _order_ids_out_of_sync,
})

#: Strategies that end the request carrying the id: the connection stops counting it (a
#: market-data line, an order awaiting its acknowledgement).
ENDS_REQUEST: frozenset[codes.Strategy] = frozenset({
    S.FAIL_REQUEST, S.REJECT_ORDER, S.MARK_SUBSCRIPTION_FAILED, S.TRY_DELAYED,
    S.RESYNC_ORDER_IDS,
})
