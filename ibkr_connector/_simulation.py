"""Deterministic simulation: the whole runtime and an in-process TWS in one Trio loop, on a
virtual clock, reproducible from a seed (FoundationDB's simulator, TigerBeetle's VOPR).

`simulate` plays a schedule of `SimStep` (faults, operator actions, a strategy's orders
and subscriptions) under ``MockClock(autojump_threshold=0)``: minutes of TWS restarts take
milliseconds, and one seed gives one run, event for event (Trio's scheduling coin, the
supervisor's backoff jitter and the simulated market are all seeded; the runtime's
reconnect jitter is off). It checks DESIGN §5 after every step and once settled, and
raises `SimulationFailure` naming the command that replays the run.

The wire is real: ibapi's EClient encodes every request and ibapi's Decoder (or the fast
path) reads every reply, over ``protocol._inprocess`` instead of a socket and a thread.
"""

from __future__ import annotations

import collections
import functools
import random
import shutil
import tempfile
from collections.abc import Awaitable, Callable, Iterable
from decimal import Decimal
from pathlib import Path

import attrs
import trio
import trio.testing
from ibapi.order import Order

from ._errors import IBKRError
from ._fault_schedules import apply_fault
from ._simulation_steps import (
    Action,
    Cancel,
    CrashConnection,
    LoseNextAck,
    Modify,
    PacingError,
    Place,
    RejectNextOrder,
    SimStep,
    SlowOrderAcks,
    StopActor,
    Subscribe,
    Unsubscribe,
    random_schedule,
)
from .actors.audit import read_audit_records
from .config import IBKRConfig, WatchdogConfig
from .contracts import Stock
from .protocol._inprocess import InProcessSession
from .protocol.bridge import EventBridge
from .protocol.requests import Request
from .runtime import Runtime, open_runtime
from .simulator import SimulatorConfig
from .simulator._inprocess import InProcessTws, open_inprocess_tws
from .supervisor import ChildState
from .ticker import Ticker, TickerState
from .trade import Fill, Trade, TradeStatus

__all__ = ["SimulationFailure", "World", "replay_command", "simulate", "simulate_seed"]

_PLACE_ORDER = 3  # placeOrder's message id on the wire
_SETTLE_LIMIT = 1800.0  # virtual seconds a run may take to settle after its last step
_START_TIME = 1_750_000_000.0  # the simulated wall clock's start (a Monday, 15:06 UTC)
_RUNTIME = IBKRConfig(
    connection_timeout=5, request_timeout=5,
    watchdog=WatchdogConfig(reconnect_initial_delay=0.5, reconnect_max_delay=5.0,
                            reconnect_jitter=0.0, health_check_interval=30))

Strategy = Callable[["World"], Awaitable[None]]
Check = Callable[["World"], None]


class SimulationFailure(IBKRError, AssertionError):
    """A promise broke in a simulated run; the message says which and how to replay it."""


def replay_command(seed: int) -> str:
    """The one command that replays the seeded run exactly."""
    return f"python bench/soak.py --seed {seed} --count 1"


class InjectedCrash(Exception):  # noqa: N818 - a crash, on purpose: not an IBKRError
    """Raised inside the connection actor by `CrashConnection`: a bug, as far as it knows."""


@attrs.define
class CrashSwitch:
    """Armed by `CrashConnection`: the connection actor's next write raises."""

    armed: bool = False


@attrs.define
class World:
    """One simulated run as a check or a strategy sees it (read it; act through
    ``runtime``)."""

    tws: InProcessTws
    runtime: Runtime
    audit_path: Path
    trades: list[Trade] = attrs.Factory(list)
    #: the tickers the strategy holds (subscribed, not yet unsubscribed), per symbol
    holds: dict[str, list[Ticker]] = attrs.Factory(dict)
    #: modifications asked for per order id (a placeOrder may reach TWS 1 + that often)
    modifies: collections.Counter[int] = attrs.Factory(collections.Counter)
    crash: CrashSwitch = attrs.Factory(lambda: CrashSwitch())
    events: list[tuple[float, str]] = attrs.Factory(list)

    def desired_symbols(self) -> frozenset[str]:
        """The symbols whose line should be live: held by a ticker that has not failed
        (a failed ticker, say a line TWS refused, holds nothing)."""
        return frozenset(s for s, held in self.holds.items()
                         if any(t.state is not TickerState.FAILED for t in held))

    def trace(self) -> tuple[object, ...]:
        """Everything observable of the run, in order: the runtime's events and every
        message TWS received, each with its virtual time."""
        wire = tuple((m.time, m.msg_id, m.fields, m.rejected_for_pacing)
                     for m in self.tws.received)
        return (*self.events, *wire)


class _CrashableSession(InProcessSession):
    """The in-process session, able to crash its actor at the next write."""

    def __init__(self, tws: InProcessTws, crash: CrashSwitch) -> None:
        super().__init__(EventBridge(linger=0), tws)
        self._crash = crash

    async def _apply(self, request: Request) -> None:
        if self._crash.armed:
            self._crash.armed = False
            raise InjectedCrash("injected crash of the connection actor")
        await super()._apply(request)


def simulate(schedule: tuple[SimStep, ...], *, seed: int = 0, strategy: Strategy | None = None,
             check: Check | None = None) -> tuple[object, ...]:
    """Play *schedule* (a fresh TWS and runtime, a virtual clock) and return the run's
    trace. *strategy* runs beside the schedule (cancelled at settle); *check* is called
    after every step and once settled, after the built-in checks. Raises
    `SimulationFailure` when a promise broke."""
    random.seed(seed)  # the supervisor's restart backoff jitter
    trio._core._run._r.seed(seed)  # noqa: SLF001 - Trio's scheduling coin: one seed, one run
    directory = Path(tempfile.mkdtemp(prefix="ibkr-sim-", dir=_scratch()))
    try:
        run = functools.partial(_run, schedule, seed, strategy, check, directory)
        return trio.run(run, clock=trio.testing.MockClock(autojump_threshold=0))
    except BaseExceptionGroup as group:
        # Nurseries wrap a failure; the caller wants the failure itself.
        found = group.subgroup(SimulationFailure)
        if found is None:
            raise
        failure: BaseException = found
        while isinstance(failure, BaseExceptionGroup):
            failure = failure.exceptions[0]
        raise failure from None
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def simulate_seed(seed: int, *, max_steps: int = 12) -> tuple[object, ...]:
    """Generate the seed's schedule and play it; a failure names the replay command."""
    schedule = random_schedule(seed, max_steps=max_steps)
    try:
        return simulate(schedule, seed=seed)
    except SimulationFailure as exc:
        raise SimulationFailure(f"{exc}\nschedule: {schedule!r}\n"
                                f"replay: {replay_command(seed)}") from exc


def _scratch() -> str | None:
    # The audit trail fsyncs every record; in memory that costs nothing.
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() else None


async def _run(schedule: tuple[SimStep, ...], seed: int, strategy: Strategy | None,
               check: Check | None, directory: Path) -> tuple[object, ...]:
    config = SimulatorConfig(seed=seed, start_time=_START_TIME, market_tick_interval=1.0)
    async with open_inprocess_tws(config) as tws:
        crash = CrashSwitch()
        async with open_runtime(_RUNTIME, audit_path=directory / "audit.jsonl", connect=True,
                                transport=lambda: _CrashableSession(tws, crash)) as runtime:
            world = World(tws, runtime, directory / "audit.jsonl", crash=crash)
            async with trio.open_nursery() as recording:
                recording.start_soon(_record, world)
                await _play(world, schedule, strategy, check)
                await _settle(world)
                positions = {p.con_id: p.quantity for p in await runtime.positions()}
                _check_settled(world, positions, await runtime.executions())
                if check is not None:
                    check(world)
                recording.cancel_scope.cancel()
        return world.trace()


async def _record(world: World) -> None:
    with world.runtime.bus.subscribe(None, capacity=1_000_000, conflate=False) as events:
        async for event in events:
            world.events.append((trio.current_time(), type(event).__name__))


async def _play(world: World, schedule: tuple[SimStep, ...], strategy: Strategy | None,
                check: Check | None) -> None:
    async with trio.open_nursery() as actions:
        if strategy is not None:
            actions.start_soon(strategy, world)
        for step in schedule:
            await trio.sleep(step.after)
            await _act(world, step.action, actions)
            _check_step(world)
            if check is not None:
                check(world)
        # A strategy runs only while the schedule plays; the strategy's and operator's
        # own calls (each bounded by a timeout) are let finish.
        if strategy is not None:
            actions.cancel_scope.cancel()


async def _act(world: World, action: Action, actions: trio.Nursery) -> None:
    tws, runtime = world.tws, world.runtime
    if isinstance(action, Subscribe | Unsubscribe | Place | Modify | Cancel | StopActor):
        actions.start_soon(_strategy_call, world, action)
    elif isinstance(action, CrashConnection):
        world.crash.armed = True
    elif isinstance(action, PacingError):
        await tws.send_error(100)
    elif isinstance(action, RejectNextOrder):
        tws.reject_next_order()
    elif isinstance(action, LoseNextAck):
        tws.drop_next_order_ack()
    elif isinstance(action, SlowOrderAcks):
        tws.set_order_ack_delay(action.seconds)
    else:
        try:
            await apply_fault(tws, action, runtime.restart)
        except IBKRError:
            pass  # an operator's restart that failed (the actor crashed starting): allowed


async def _strategy_call(world: World, action: Action) -> None:
    runtime = world.runtime
    try:
        if isinstance(action, Subscribe):
            ticker = await runtime.subscribe_ticker(Stock(action.symbol))
            world.holds.setdefault(action.symbol, []).append(ticker)
        elif isinstance(action, Unsubscribe):
            if world.holds.get(action.symbol):
                await runtime.unsubscribe(Stock(action.symbol))
                world.holds[action.symbol].pop()
        elif isinstance(action, Place):
            world.trades.append(await runtime.place_order(Stock("SPY"), _order(world, action)))
        elif isinstance(action, Modify | Cancel):
            if world.trades:
                trade = world.trades[action.index % len(world.trades)]
                if isinstance(action, Modify):
                    world.modifies[trade.order_id] += 1
                    await runtime.modify(trade, quantity=trade.order.totalQuantity + 1)
                else:
                    await runtime.cancel(trade)
        elif isinstance(action, StopActor):
            await runtime.stop(action.actor)
            await trio.sleep(action.seconds)
            await runtime.start(action.actor)
    except IBKRError:
        pass  # refused, timed out in an outage, not modifiable: the promises still hold


def _order(world: World, place: Place) -> Order:
    order = Order()
    order.action, order.totalQuantity = "BUY", Decimal(place.quantity)
    order.orderType = "MKT"
    if place.resting:
        order.orderType = "LMT"
        order.lmtPrice = round(world.tws.market.spot(756733) * 0.5, 2)  # SPY, far below
    return order


def _fail(condition: bool, message: str) -> None:
    if not condition:
        raise SimulationFailure(message)


def _placements(world: World) -> collections.Counter[int]:
    return collections.Counter(int(m.fields[0]) for m in world.tws.received
                               if m.msg_id == _PLACE_ORDER)


def _check_step(world: World) -> None:
    """What must hold at every moment: no order placed twice, never over 50 messages in a
    second."""
    for order_id, count in _placements(world).items():
        _fail(count <= 1 + world.modifies[order_id],
              f"order id {order_id} reached TWS {count} times")
    peak = world.tws.max_messages_in_window(1.0)
    _fail(peak <= 50, f"TWS saw {peak} messages in one second")


async def _settle(world: World) -> None:
    """Faults off; wait until the runtime is whole again: every actor running, connected,
    the queue empty, no order in doubt, the lines TWS holds the ones desired."""
    tws, runtime = world.tws, world.runtime
    tws.set_reply_delay(0)
    tws.set_order_ack_delay(0)
    with trio.move_on_after(_SETTLE_LIMIT) as limit:
        while True:
            try:
                for info in runtime.tree().walk():
                    if info.state is ChildState.STOPPED:
                        await runtime.start(info.name)
                await runtime.connect()
                await runtime.reconcile_orders()
                if await _settled(world):
                    return
            except IBKRError:
                pass
            await trio.sleep(1.0)
    lines = world.runtime._market_data_memory.lines  # noqa: SLF001 - the harness's view
    _fail(not limit.cancelled_caught, f"did not settle within {_SETTLE_LIMIT:g} s: "
          f"{await world.runtime.status()}; lines {sorted(lines.live_req_ids())} at TWS "
          f"{sorted(world.tws.live_subscriptions())}, desired {sorted(world.desired_symbols())}")


async def _settled(world: World) -> bool:
    runtime = world.runtime
    status = await runtime.status()
    if status.connection.state.value != "connected" or status.limiter.queued:
        return False
    if any(info.state is not ChildState.RUNNING for info in runtime.tree().walk()):
        return False
    if any(t.status in (TradeStatus.PENDING_SUBMIT, TradeStatus.UNKNOWN)
           for t in await runtime.trades()):
        return False
    return _lines_match(world)


def _lines_match(world: World) -> bool:
    lines = world.runtime._market_data_memory.lines  # noqa: SLF001 - the harness's view
    live = lines.live_req_ids()
    return live == world.tws.live_subscriptions() and len(live) == len(world.desired_symbols())


def _check_settled(world: World, positions: dict[int, Decimal],
                   executions: tuple[Fill, ...]) -> None:
    """DESIGN §5 once the runtime has settled."""
    _check_step(world)
    tws = world.tws
    _fail(_lines_match(world), "live subscriptions differ from the desired ones")
    records = list(read_audit_records(world.audit_path))
    intents = {r.fields["order_id"] for r in records if r.kind == "order_intent"}
    unaudited = set(_placements(world)) - intents
    _fail(not unaudited, f"orders {sorted(unaudited)} reached TWS without an audited intent")
    # A submit that raised did not happen: a first placement whose submit was abandoned
    # (the caller gave up, or the limiter was down) or refused never reached TWS.
    first_placements = {r.seq: r.fields["order_id"] for r in records
                        if r.kind == "order_intent" and not r.fields.get("modify")}
    gave_up = {first_placements[r.fields["intent_seq"]] for r in records
               if r.kind == "order_outcome" and r.fields["intent_seq"] in first_placements
               and r.fields["outcome"] in ("abandoned", "refused")}
    sent_anyway = gave_up & set(_placements(world))
    _fail(not sent_anyway, f"orders {sorted(sent_anyway)} reached TWS after their submit "
                           "raised (abandoned or refused)")
    for trade in world.trades:
        view = tws.orders.order(trade.client_id, trade.order_id)
        if view is None:
            _fail(trade.status in (TradeStatus.NOT_PLACED, TradeStatus.INACTIVE),
                  f"order {trade.order_id} is {trade.status.value} but TWS has none")
        elif not (trade.status is TradeStatus.NOT_PLACED and view.status == "Inactive"
                  and not view.filled):
            # (An order TWS rejected whose answer was lost is NotPlaced here: neither
            # working nor filled, the same promise as Inactive.)
            _fail(trade.status.value == view.status,
                  f"order {trade.order_id} is {trade.status.value}, at TWS {view.status}")
    at_ib = _net((f.contract.con_id, f.contract.sec_type, f.side, f.shares)
                  for f in tws.orders.fills())
    _fail(positions == at_ib, f"positions {positions} differ from IB's executions {at_ib}")
    seen = _net((f.con_id, f.sec_type, f.side, f.shares) for f in executions)
    _fail(positions == seen, f"positions {positions} differ from the executions seen {seen}")


def _net(fills: Iterable[tuple[int, str, str, Decimal]]) -> dict[int, Decimal]:
    """Net position per instrument from (con_id, sec_type, side, shares); combos' own
    fills are left out (their legs carry the position)."""
    net: dict[int, Decimal] = collections.defaultdict(Decimal)
    for con_id, sec_type, side, shares in fills:
        if sec_type != "BAG":
            net[con_id] += shares if side == "BOT" else -shares
    return {k: v for k, v in net.items() if v}
