"""The facade: one supervised runtime, one typed API.

`open_runtime` builds the supervision tree and hands back a `Runtime`; leaving the context
stops every actor in reverse start order and joins every thread. The tree (names are what
operators type):

    ibkr                 one_for_one
    ├── core             one_for_one
    │   ├── bus          event bus: subscriptions, stats
    │   └── audit        append-only, fsync'd order trail
    ├── session          one_for_one
    │   ├── connection   the socket's single writer
    │   ├── limiter      priority + token bucket; all requests pass it
    │   ├── watchdog     health probe, reconnect, restore
    │   └── order_ids    hands out order ids, never one twice
    └── control          operator endpoint (only with a control path)

State that must outlive an actor's restart (the bus's subscriptions, the limiter's queue,
the connection's intent, the next order id) is created here and handed to the actor,
exactly as the tree owns mailboxes: a restart replaces the task, not the data.

Cancellation and timeouts, for every `Runtime` method (trio's conventions):

- Every ``async`` method is a checkpoint and may be cancelled by the caller's scope.
  Cancelling a *query* (`status`, `stats`, `is_connected`, `audit`...) leaves nothing
  behind. Methods that take a ``timeout`` or use the configured ones raise `CallTimeout`
  when the actor does not answer in time; the actor is alive but slow, and a query that
  timed out changed nothing.
- `submit` is the one that writes to TWS, and its promise is that *a submit that raised
  did not happen*: if it raises (timeout, cancellation, refusal) before the limiter
  claimed the request for the wire, the request is never written; once claimed, `submit`
  waits for the write's outcome (shielded from cancellation and from its own timeout,
  bounded by the send timeout) and either returns (written) or raises what happened
  (`DeliveryUnknown` for an order whose write broke off). See the limiter.
- `connect` cancelled during an attempt drops that attempt's socket; `disconnect` and the
  operator commands (`restart`, `stop`, `start`) are carried out once begun.
- Every error raised on purpose derives from `IBKRError`; the supervision layer's errors
  arrive as their `IBKRError` twins (`ActorNotRunning`, `CallTimeout`, ...).
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Collection, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, ParamSpec, TypeVar, overload

import attrs
import trio

from ._errors import translate_supervisor_errors
from ._userdirs import state_dir
from .actors import connection as conn
from .actors.audit import AppendAudit, AuditRecord, run_audit
from .actors.bus import BusStats, EventBus, EventBusStats, EventT, Subscription, run_event_bus
from .actors.limiter import GetLimiterStats, LimiterStats, OutboundQueue, Submit, run_limiter
from .actors.order_ids import AllocateOrderIds, OrderIdBook, run_order_ids
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


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _ibkr_errors(
    method: Callable[_P, Coroutine[Any, Any, _R]],
) -> Callable[_P, Coroutine[Any, Any, _R]]:
    """The runtime's edge: supervision-layer errors leave as their `IBKRError` twins."""

    @functools.wraps(method)
    async def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with translate_supervisor_errors():
            return await method(*args, **kwargs)

    return wrapper


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
        self._bus_actor = registry.address("bus")
        self._order_ids = registry.address("order_ids")
        self._order_ids_book = OrderIdBook()

    @property
    def supervisor(self) -> Supervisor:
        if self._supervisor is None:
            raise RuntimeError("the runtime is still starting")
        return self._supervisor

    # -- connection ------------------------------------------------------------------------

    @_ibkr_errors
    async def connect(self) -> conn.ConnectionStatus:
        """Connect to TWS; raises `ConnectFailed` (or `ClientIdInUse`) if it cannot."""
        result = await self._connection.call(conn.Connect(), timeout=self._call_timeout())
        assert isinstance(result, conn.ConnectionStatus)
        return result

    @_ibkr_errors
    async def ensure_connected(self) -> conn.ConnectionStatus:
        result = await self._connection.call(conn.EnsureConnected(), timeout=self._call_timeout())
        assert isinstance(result, conn.ConnectionStatus)
        return result

    @_ibkr_errors
    async def disconnect(self) -> None:
        await self._connection.call(conn.Disconnect(), timeout=self._call_timeout())

    @_ibkr_errors
    async def keep_connected(self) -> None:
        """Connect now and keep reconnecting (with the watchdog's backoff) until connected.

        Returns at once; watch `events()` for `ConnectionEstablished`."""
        await self._watchdog.cast(KeepConnected())

    @_ibkr_errors
    async def is_connected(self) -> bool:
        return bool(await self._connection.call(conn.IsConnected(), timeout=5.0))

    # -- requests and events -------------------------------------------------------------------

    @_ibkr_errors
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

    @_ibkr_errors
    async def allocate_order_ids(self, count: int = 1) -> range:
        """``count`` fresh order ids, never handed out before by this runtime or its trail.

        Waits until TWS has said where ids start (after connecting), within the call
        timeout. The ids are spent once returned: use them or leave a gap, never reuse
        them. Cancelling the wait allocates nothing.
        """
        ids = await self._order_ids.call(AllocateOrderIds(count), timeout=self._call_timeout())
        assert isinstance(ids, range)
        return ids

    @overload
    def events(self, kinds: None = None, capacity: int = 1000) -> Subscription[object]: ...
    @overload
    def events(self, kinds: type[EventT], capacity: int = 1000) -> Subscription[EventT]: ...
    @overload
    def events(self, kinds: Collection[type[EventT]],
               capacity: int = 1000) -> Subscription[EventT]: ...

    def events(self, kinds: type | Collection[type] | None = None,
               capacity: int = 1000) -> Subscription[object]:
        """A subscription to the event bus: what the actors publish (connection, link and
        watchdog events, every inbound TWS event, failed requests).

        Supervision events (an actor started, exited, restarted) are not on the bus: read
        them from ``runtime.supervisor.subscribe()``. Not a checkpoint; close the
        subscription (or use it as a context manager) when done.
        """
        return self.bus.subscribe(kinds, capacity)

    @_ibkr_errors
    async def audit(self, kind: str, **fields: Any) -> AuditRecord:
        """Append to the audit trail; returns once the record is fsync'd."""
        record = await self._audit.call(AppendAudit(kind, fields), timeout=self._call_timeout())
        assert isinstance(record, AuditRecord)
        return record

    # -- operators -------------------------------------------------------------------------

    def tree(self) -> ChildInfo:
        return self.supervisor.tree()

    @_ibkr_errors
    async def restart(self, actor: str) -> None:
        await self.supervisor.restart_child(actor)

    @_ibkr_errors
    async def stop(self, actor: str) -> None:
        await self.supervisor.terminate_child(actor)

    @_ibkr_errors
    async def start(self, actor: str) -> None:
        await self.supervisor.start_child(actor)

    @_ibkr_errors
    async def status(self) -> RuntimeStatus:
        connection = await self._connection.call(conn.GetStatus(), timeout=5.0)
        watchdog = await self._watchdog.call(GetWatchdogStatus(), timeout=5.0)
        limiter = await self._limiter.call(GetLimiterStats(), timeout=5.0)
        return RuntimeStatus(connection, watchdog, limiter,
                             trio.current_time() - self._started_at)

    @_ibkr_errors
    async def stats(self) -> dict[str, object]:
        """The metrics operators ask for: request rate, uptime, reconnects, subscriptions."""
        status = await self.status()
        c, lim = status.connection, status.limiter
        now = trio.current_time()
        bus = await self._bus_actor.call(BusStats(), timeout=5.0)
        assert isinstance(bus, EventBusStats)
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

    @_ibkr_errors
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
            ChildSpec("order_ids", functools.partial(
                run_order_ids, book=runtime._order_ids_book, bus=bus,
                connection=address("connection"), limiter=address("limiter"))),
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
    with translate_supervisor_errors():
        async with open_supervisor(spec, registry=registry) as supervisor:
            runtime._supervisor = supervisor
            if connect:
                await runtime.connect()
            yield runtime
