"""The facade: one supervised runtime, one typed API.

`open_runtime` builds the supervision tree and hands back a `Runtime`; leaving the context
stops every actor in reverse start order and joins every thread. The tree (names are what
operators type):

    ibkr                 one_for_one
    ├── core             one_for_one
    │   ├── bus          event bus: subscriptions, stats
    │   └── audit        append-only, fsync'd order trail
    └── session          one_for_one
        ├── connection   the socket's single writer
        ├── limiter      priority + token bucket; all requests pass it
        └── watchdog     health probe, reconnect, restore

State that must outlive an actor's restart (the bus's subscriptions, the limiter's queue)
is created here and handed to the actor, exactly as the tree owns mailboxes: a restart
replaces the task, not the data.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import trio

from ._userdirs import state_dir
from .actors import connection as conn
from .actors.audit import AppendAudit, AuditRecord, run_audit
from .actors.bus import EventBus, Subscription, run_event_bus
from .actors.limiter import GetLimiterStats, LimiterStats, OutboundQueue, Submit, run_limiter
from .actors.pacing import PacingGovernor
from .actors.watchdog import GetWatchdogStatus, KeepConnected, WatchdogStatus, run_watchdog
from .config import IBKRConfig
from .protocol import events as ev
from .protocol.requests import CancelOrder, PlaceOrder, Request
from .supervisor import (
    ChildInfo,
    ChildSpec,
    Registry,
    Restart,
    Strategy,
    Supervisor,
    SupervisorSpec,
    open_supervisor,
)

__all__ = ["Runtime", "RuntimeStatus", "default_audit_path", "open_runtime"]


def default_audit_path() -> Path:
    """``$XDG_STATE_HOME/ibkr-connector/audit.jsonl`` (``~/.local/state/...`` by default)."""
    return state_dir() / "audit.jsonl"


@attrs.frozen
class RuntimeStatus:
    connection: conn.ConnectionStatus
    watchdog: WatchdogStatus
    limiter: LimiterStats
    uptime: float


class Runtime:
    """A running tree. Every method is safe to call from any task of the embedding program.

    It holds addresses, not actors: each call goes through the target actor's mailbox."""

    def __init__(self, config: IBKRConfig, registry: Registry, bus: EventBus) -> None:
        self.config = config
        self.bus = bus
        self._supervisor: Supervisor | None = None
        self._started_at = trio.current_time()
        self._connection = registry.address("connection")
        self._limiter = registry.address("limiter")
        self._watchdog = registry.address("watchdog")
        self._audit = registry.address("audit")

    @property
    def supervisor(self) -> Supervisor:
        if self._supervisor is None:
            raise RuntimeError("the runtime is still starting")
        return self._supervisor

    # -- connection ------------------------------------------------------------------------

    async def connect(self) -> conn.ConnectionStatus:
        """Connect to TWS; raises `ConnectFailed` (or `ClientIdInUse`) if it cannot."""
        result = await self._connection.call(conn.Connect(), timeout=self._call_timeout())
        assert isinstance(result, conn.ConnectionStatus)
        return result

    async def ensure_connected(self) -> conn.ConnectionStatus:
        result = await self._connection.call(conn.EnsureConnected(), timeout=self._call_timeout())
        assert isinstance(result, conn.ConnectionStatus)
        return result

    async def disconnect(self) -> None:
        await self._connection.call(conn.Disconnect(), timeout=self._call_timeout())

    async def keep_connected(self) -> None:
        """Connect now and keep reconnecting (with the watchdog's backoff) until connected.

        Returns at once; watch `events()` for `ConnectionEstablished`."""
        await self._watchdog.cast(KeepConnected())

    async def is_connected(self) -> bool:
        return bool(await self._connection.call(conn.IsConnected(), timeout=5.0))

    # -- requests and events -------------------------------------------------------------------

    async def submit(self, request: Request) -> None:
        """Queue *request* through the limiter; returns once it is on the wire.

        An order request (place, modify, cancel) is first written to the audit trail and
        fsync'd; only then is it released to the limiter, carrying its record's number.
        """
        audit_seq = None
        if isinstance(request, PlaceOrder | CancelOrder):
            kind = "order_intent" if isinstance(request, PlaceOrder) else "cancel_intent"
            audit_seq = (await self.audit(kind, **request.audit_fields())).seq
        await self._limiter.call(Submit(request, audit_seq),
                                 timeout=self.config.request_timeout)

    def events(self, kinds: Collection[type] | None = None, capacity: int = 1000) -> Subscription:
        """A subscription to the event bus (connection, TWS, supervision... events)."""
        return self.bus.subscribe(kinds, capacity)

    async def audit(self, kind: str, **fields: Any) -> AuditRecord:
        """Append to the audit trail; returns once the record is fsync'd."""
        record = await self._audit.call(AppendAudit(kind, fields), timeout=self._call_timeout())
        assert isinstance(record, AuditRecord)
        return record

    # -- operators -------------------------------------------------------------------------

    def tree(self) -> ChildInfo:
        return self.supervisor.tree()

    async def restart(self, actor: str) -> None:
        await self.supervisor.restart_child(actor)

    async def stop(self, actor: str) -> None:
        await self.supervisor.terminate_child(actor)

    async def start(self, actor: str) -> None:
        await self.supervisor.start_child(actor)

    async def status(self) -> RuntimeStatus:
        connection = await self._connection.call(conn.GetStatus(), timeout=5.0)
        watchdog = await self._watchdog.call(GetWatchdogStatus(), timeout=5.0)
        limiter = await self._limiter.call(GetLimiterStats(), timeout=5.0)
        return RuntimeStatus(connection, watchdog, limiter,
                             trio.current_time() - self._started_at)

    async def stats(self) -> dict[str, object]:
        """The metrics operators ask for: request rate, uptime, reconnects, subscriptions."""
        status = await self.status()
        c, lim = status.connection, status.limiter
        now = trio.current_time()
        bus = self.bus.stats()
        return {
            "runtime_uptime_s": round(status.uptime, 3),
            "connection_uptime_s": (round(now - c.connected_since, 3)
                                    if c.connected_since is not None else None),
            "reconnects": c.reconnects,
            "requests_sent": lim.sent,
            "request_rate_per_s": lim.rate_now,
            "allowed_rate_per_s": lim.allowed_rate,
            "max_requests_in_1s": lim.max_in_window,
            "requests_queued": lim.queued,
            "pacing_violations": lim.pacing_violations,
            "requests_failed": lim.failed,
            "subscriptions": {"market_data_lines": c.market_data_lines,
                              "bus_subscribers": bus.subscribers},
            "order_ack_latency_ms": {"p50": c.order_ack_p50_ms, "p99": c.order_ack_p99_ms},
            "bus_published": bus.published,
            "bus_overflow_disconnects": bus.overflow_disconnects,
            "health_probes": status.watchdog.probes_sent,
            "health_probe_rtt_ms": (round(status.watchdog.last_probe_rtt * 1000, 1)
                                    if status.watchdog.last_probe_rtt is not None else None),
        }

    async def status_report(self) -> dict[str, object]:
        """`status` for operators, as JSON-able data. Accounts are masked."""
        status = await self.status()
        c = status.connection
        return {
            "state": c.state.value,
            "host": c.host,
            "port": c.port,
            "client_id": c.client_id,
            "server_version": c.server_version,
            "accounts": [mask_account(a) for a in c.accounts],
            "reconnects": c.reconnects,
            "reconnecting": status.watchdog.reconnecting,
            "request_rate_per_s": status.limiter.rate_now,
            "last_error": c.last_error,
        }

    def _call_timeout(self) -> float:
        return self.config.connection_timeout + 10.0


def mask_account(account: str) -> str:
    """Enough of an account id to recognise it, never the whole of it."""
    if len(account) <= 4:
        return "*" * len(account)
    return account[:2] + "*" * (len(account) - 4) + account[-2:]


def build_tree(config: IBKRConfig, runtime: Runtime, registry: Registry,
               outbound: OutboundQueue, audit_path: Path,
               control_path: Path | None) -> SupervisorSpec:
    """The supervision tree as data: a table of child specs, OTP style."""
    bus = runtime.bus
    address = registry.address
    # Owned here, not by the audit actor, so order events keep queuing while it restarts.
    order_events = bus.subscribe((ev.OrderStatus, ev.ExecDetails), capacity=100_000)
    core = SupervisorSpec(
        name="core",
        strategy=Strategy.ONE_FOR_ONE,
        children=(
            ChildSpec("bus", functools.partial(run_event_bus, bus=bus)),
            ChildSpec("audit", functools.partial(
                run_audit, trail_path=audit_path, status_feed=order_events)),
        ),
    )
    session = SupervisorSpec(
        name="session",
        strategy=Strategy.ONE_FOR_ONE,
        children=(
            ChildSpec("connection", functools.partial(
                conn.run_connection, config=config, emit=bus.publish,
                memory=conn.ConnectionMemory(config.client_id)), shutdown_timeout=10.0),
            ChildSpec("limiter", functools.partial(
                run_limiter, outbound=outbound, connection=address("connection"), bus=bus,
                max_retries=config.max_retries, send_timeout=config.request_timeout),
                mailbox_capacity=100_000),
            ChildSpec("watchdog", functools.partial(
                run_watchdog, config=config, connection=address("connection"),
                limiter=address("limiter"), bus=bus)),
        ),
    )
    children: list[ChildSpec | SupervisorSpec] = [core, session]
    if control_path is not None:
        from .actors.control import run_control

        children.append(ChildSpec("control", functools.partial(
            run_control, path=control_path, target=runtime), shutdown_timeout=2.0))
    return SupervisorSpec(name="ibkr", strategy=Strategy.ONE_FOR_ONE, children=tuple(children),
                          restart=Restart.PERMANENT)


@asynccontextmanager
async def open_runtime(config: IBKRConfig | None = None, *, connect: bool = False,
                       audit_path: Path | None = None,
                       control_path: Path | None = None) -> AsyncIterator[Runtime]:
    """Start the supervised runtime; stop it (reverse order, no thread left) on exit.

    With ``connect=True`` the runtime connects before yielding and raises if it cannot.
    With a ``control_path`` (or ``config.control_path``) an operator endpoint listens there.
    """
    config = config or IBKRConfig()
    bus = EventBus()
    governor = PacingGovernor(target_rate=config.requests_per_second, burst=config.burst)
    outbound = OutboundQueue(governor, retry_delay=config.retry_delay)
    registry = Registry()
    runtime = Runtime(config, registry, bus)
    spec = build_tree(config, runtime, registry, outbound,
                      audit_path or config.audit_path or default_audit_path(),
                      control_path or config.control_path)
    async with open_supervisor(spec, registry=registry) as supervisor:
        runtime._supervisor = supervisor
        if connect:
            await runtime.connect()
        yield runtime
