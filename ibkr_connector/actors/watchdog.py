"""The watchdog actor: notices a dead connection and brings it back.

Two things kill a TWS connection silently enough to need a watchdog: the socket going away
(TWS's daily restart, a crash, the network) and the session stalling while the socket stays
open. The watchdog handles both:

- it probes health with ``reqCurrentTime`` every ``health_check_interval``; a probe that was
  written and not answered within ``request_timeout`` makes it abandon the session. A probe
  that could not be sent (the limiter stopped or busy, the request refused) proves nothing
  about the session and abandons nothing; nor does one unanswered while TWS has lost its
  own link to IB (1100), which TWS recovers by itself (1101/1102);
- after an unrequested `ConnectionLost` it reconnects with exponential backoff and jitter
  (2 s doubling to 60 s by default), resetting after a stable period;
- inside the daily restart window a disconnect is expected: it is logged at INFO, no
  `WatchdogAlarm` is raised, and attempts continue until TWS is back;
- after a reconnect, or a 1101 (TWS's link restored but data lost), it publishes
  `RestoreRequested` so every actor restores its subscriptions and state.

It talks to the connection (Connect, Abandon) and the limiter (the probe) by their
addresses, and listens to the bus. Any of them may be stopped by an operator: the watchdog
then waits, it does not crash.
"""

from __future__ import annotations

import datetime
import logging
import random
from collections.abc import AsyncIterable, Callable

import attrs
import trio

from ..allow_list import HostNotAllowed
from ..config import IBKRConfig
from ..protocol import codes
from ..protocol import events as ev
from ..protocol.client import ConnectFailed, RequestRefused
from ..protocol.requests import ReqCurrentTime
from ..supervisor import (
    ActorCrashed,
    ActorNotRunning,
    Address,
    CallTimeout,
    Envelope,
    Mailbox,
    serve,
)
from .bus import EventBus
from .connection_messages import (
    Abandon,
    ClientIdInUse,
    Connect,
    ConnectionEstablished,
    ConnectionLost,
    ConnectionRecovered,
    ConnectionState,
    ConnectionStatus,
    GetStatus,
    LinkLost,
    LinkRestored,
)
from .limiter import DeliveryUnknown, submit_through
from .reconnect_policy import DailyRestartWindow, ReconnectBackoff

__all__ = [
    "GetWatchdogStatus",
    "KeepConnected",
    "ReconnectScheduled",
    "RestoreRequested",
    "WatchdogAlarm",
    "WatchdogStatus",
    "run_watchdog",
]

log = logging.getLogger(__name__)

WallClock = Callable[[], datetime.datetime]


@attrs.frozen
class RestoreRequested:
    """Every actor with server-side state (subscriptions, orders) must restore it now."""

    reason: str


@attrs.frozen
class WatchdogAlarm:
    """An unexpected loss of the connection (outside the daily restart window)."""

    reason: str


@attrs.frozen
class ReconnectScheduled:
    attempt: int
    delay: float
    expected: bool  # inside the daily restart window


@attrs.frozen
class KeepConnected:
    """Cast: connect now, and keep reconnecting with backoff until connected.

    What a service wants at start-up, when TWS may not be up yet."""


@attrs.frozen
class GetWatchdogStatus:
    """Call: reply with `WatchdogStatus`."""


@attrs.frozen
class WatchdogStatus:
    connected: bool
    reconnecting: bool
    attempts: int
    probes_sent: int
    probes_missed: int
    alarms: int
    last_probe_rtt: float | None


def _local_now() -> datetime.datetime:
    return datetime.datetime.now().astimezone()


@attrs.define
class _State:
    connected: bool = False
    reconnecting: bool = False
    probes_sent: int = 0
    probes_missed: int = 0
    alarms: int = 0
    last_probe_rtt: float | None = None
    connect_now: bool = False
    # TWS lost its link to IB (1100) and has not restored it (1101/1102) yet; link_losses
    # counts 1100s, so a probe can tell whether one happened while it waited.
    link_down: bool = False
    link_losses: int = 0
    # Set when a reconnect is needed; only the reconnect loop replaces it (after a round),
    # so the loop never waits on an event nobody will set.
    lost: trio.Event = attrs.Factory(trio.Event)
    up: trio.Event = attrs.Factory(trio.Event)
    time_seen: trio.Event = attrs.Factory(trio.Event)

    def on_up(self, backoff: ReconnectBackoff) -> None:
        self.connected = True
        self.link_down = False
        self.up.set()
        backoff.on_connected(trio.current_time())

    def status(self, backoff: ReconnectBackoff) -> WatchdogStatus:
        return WatchdogStatus(
            connected=self.connected, reconnecting=self.reconnecting,
            attempts=backoff.attempts, probes_sent=self.probes_sent,
            probes_missed=self.probes_missed, alarms=self.alarms,
            last_probe_rtt=self.last_probe_rtt,
        )


# A probe that ends in one of these was not (known to be) written: it says nothing about
# the session's health. The limiter may be stopped (ActorNotRunning), busy or held during
# an outage (CallTimeout: its claim never came); ibapi may refuse the write, or the write
# may break off (the connection notices that itself).
_PROBE_NOT_SENT = (ActorNotRunning, CallTimeout, DeliveryUnknown, RequestRefused)
_UP_STATES = (ConnectionState.CONNECTED, ConnectionState.LINK_DOWN)


async def run_watchdog(
    mailbox: Mailbox,
    *,
    config: IBKRConfig,
    connection: Address,
    limiter: Address,
    bus: EventBus,
    wall_clock: WallClock = _local_now,
    rng: random.Random | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    wd = config.watchdog
    backoff = ReconnectBackoff(
        initial=wd.reconnect_initial_delay,
        maximum=wd.reconnect_max_delay,
        multiplier=wd.reconnect_multiplier,
        jitter=wd.reconnect_jitter,
        stable_after=wd.stable_after,
        rng=rng or random.Random(),
    )
    window = DailyRestartWindow(
        start=wd.daily_restart_time,
        duration=datetime.timedelta(seconds=wd.daily_restart_duration),
        tz=wd.daily_restart_timezone,
    )
    state = _State()
    subscription = bus.subscribe(
        (ConnectionEstablished, ConnectionRecovered, ConnectionLost, LinkLost, LinkRestored,
         ev.CurrentTime, ev.CurrentTimeInMillis, ev.TwsError),
        capacity=10_000,
    )
    # Learn where things stand: a loss that happened before we subscribed (say, while an
    # operator restarted us) sent its ConnectionLost to nobody. If the connection is
    # wanted and down, reconnecting is our job now.
    try:
        status = await connection.call(GetStatus(), timeout=5.0)
    except (ActorCrashed, ActorNotRunning, CallTimeout):
        status = None
    if isinstance(status, ConnectionStatus):
        if status.state in _UP_STATES:
            state.on_up(backoff)
            state.link_down = status.state is ConnectionState.LINK_DOWN
        elif status.wanted and status.state is ConnectionState.DISCONNECTED:
            state.lost.set()

    async def on_status(_message: GetWatchdogStatus, _envelope: Envelope) -> object:
        return state.status(backoff)

    async def on_keep_connected(_message: KeepConnected, _envelope: Envelope) -> object:
        if not state.connected:
            state.connect_now = True
            state.lost.set()
        return None

    async with trio.open_nursery() as nursery:
        nursery.start_soon(_listen, subscription, state, backoff, window, wall_clock, bus)
        nursery.start_soon(_reconnect_loop, state, backoff, window, wall_clock, connection,
                           config, bus)
        nursery.start_soon(_probe_loop, state, config, connection, limiter)
        task_status.started()
        try:
            await serve(mailbox, {GetWatchdogStatus: on_status, KeepConnected: on_keep_connected})
        finally:
            subscription.close()
            nursery.cancel_scope.cancel()


async def _listen(
    subscription: AsyncIterable[object], state: _State, backoff: ReconnectBackoff,
    window: DailyRestartWindow, wall_clock: WallClock, bus: EventBus,
) -> None:
    def on_up(event: object) -> None:
        state.on_up(backoff)
        if isinstance(event, ConnectionRecovered):
            bus.publish(RestoreRequested("reconnected"))

    def on_lost(event: ConnectionLost) -> None:
        state.connected = False
        state.link_down = False
        state.up = trio.Event()
        backoff.on_lost(trio.current_time())
        if event.requested:
            return
        if window.contains(wall_clock()):
            log.info("TWS disconnected inside the daily restart window; "
                     "reconnecting when it is back")
        else:
            state.alarms += 1
            log.warning("connection to TWS lost: %s", event.reason)
            bus.publish(WatchdogAlarm(event.reason))
        state.lost.set()

    def on_link_lost(_event: LinkLost) -> None:
        state.link_down = True
        state.link_losses += 1

    def on_link_restored(event: LinkRestored) -> None:
        state.link_down = False
        if event.data_lost:
            bus.publish(RestoreRequested(
                "TWS restored its link to IB; market data was lost (1101)"))

    def on_time(_event: object) -> None:
        state.time_seen.set()

    def on_error(event: ev.TwsError) -> None:
        # An error 100 may be the probe's only answer (the limiter re-sends it, or gives it
        # up as PacingRejected): TWS read it and replied, so the session is alive.
        if codes.classify(event.code).strategy is codes.Strategy.BACKOFF_AND_RETRY:
            state.time_seen.set()

    table: dict[type, Callable[[object], None]] = {
        ConnectionEstablished: on_up, ConnectionRecovered: on_up,
        ConnectionLost: on_lost,  # type: ignore[dict-item]
        LinkLost: on_link_lost,  # type: ignore[dict-item]
        LinkRestored: on_link_restored,  # type: ignore[dict-item]
        ev.CurrentTime: on_time, ev.CurrentTimeInMillis: on_time,
        ev.TwsError: on_error,  # type: ignore[dict-item]
    }
    async for event in subscription:
        handler = table.get(type(event))
        if handler is not None:
            handler(event)


async def _reconnect_loop(
    state: _State, backoff: ReconnectBackoff, window: DailyRestartWindow, wall_clock: WallClock,
    connection: Address, config: IBKRConfig, bus: EventBus,
) -> None:
    while True:
        await state.lost.wait()
        state.reconnecting = True
        try:
            while not state.connected:
                delay = 0.0 if state.connect_now else backoff.next_delay()
                state.connect_now = False
                expected = window.contains(wall_clock())
                bus.publish(ReconnectScheduled(backoff.attempts, delay, expected))
                log.log(logging.INFO if expected else logging.WARNING,
                        "reconnecting to TWS in %.1f s (attempt %d)", delay, backoff.attempts)
                await trio.sleep(delay)
                if state.connected:
                    break
                try:
                    reply = await connection.call(Connect(),
                                                  timeout=config.connection_timeout + 5.0)
                except (ClientIdInUse, HostNotAllowed) as exc:
                    # The connection used up its client ids (or its host is not allowed)
                    # and no longer wants itself:
                    # retrying the same id would loop on 326 (docs/errors.md). An explicit
                    # connect or KeepConnected starts again.
                    log.error("not reconnecting: %s", exc)
                    break
                except (ConnectFailed, ActorCrashed, ActorNotRunning, CallTimeout) as exc:
                    log.log(logging.INFO if expected else logging.WARNING,
                            "reconnect attempt failed: %s", exc)
                    continue
                # The reply is the truth: a connection that was already up (recovered by an
                # attempt whose event we missed, say across our own restart) emits nothing.
                if isinstance(reply, ConnectionStatus) and reply.state in _UP_STATES:
                    state.on_up(backoff)
                    state.link_down = reply.state is ConnectionState.LINK_DOWN
        finally:
            state.reconnecting = False
        state.lost = trio.Event()


async def _probe_loop(
    state: _State, config: IBKRConfig, connection: Address, limiter: Address
) -> None:
    interval = config.watchdog.health_check_interval
    while True:
        await state.up.wait()
        await trio.sleep(interval)
        if not state.connected or state.link_down:
            # REAL-TWS: after 1100 TWS reports 1101 or 1102 by itself, without the client asking
            continue  # during 1100 the limiter holds traffic and TWS recovers by itself
        if await _probe(state, config, limiter):
            continue
        if not state.connected:
            continue  # the loss was noticed meanwhile; reconnecting is under way
        state.probes_missed += 1
        log.warning("health probe unanswered for %.0f s; abandoning the session",
                    config.request_timeout)
        try:
            await connection.cast(Abandon("health probe unanswered"))
        except ActorNotRunning as exc:
            log.info("cannot abandon the session: %s", exc)


async def _probe(state: _State, config: IBKRConfig, limiter: Address) -> bool:
    """Send one probe; False only if it was written and TWS did not answer in time while
    its link to IB was up (a stalled session). Anything else counts as healthy."""
    losses = state.link_losses
    state.time_seen = trio.Event()
    state.probes_sent += 1
    try:
        # REAL-TWS: reqCurrentTime is answered within seconds by a healthy TWS, even when busy
        await submit_through(limiter, ReqCurrentTime(), None, config.request_timeout)
    except _PROBE_NOT_SENT as exc:
        log.info("health probe not sent: %s", exc)
        return True
    sent_at = trio.current_time()
    with trio.move_on_after(config.request_timeout):
        await state.time_seen.wait()
        state.last_probe_rtt = trio.current_time() - sent_at
        return True
    if state.link_down or state.link_losses != losses:
        log.info("health probe unanswered while TWS had lost its link to IB (1100); "
                 "waiting for TWS to restore it")
        return True
    return False
