"""The order book's promises under random fault schedules (hypothesis, MockClock).

While orders are placed, modified and cancelled, a schedule of faults plays (TWS drops,
restarts, link flaps, lost acks, operator restarts of the orders, limiter and connection
actors). After the runtime settles (reconnected, one complete reconciliation):

- no order id was placed twice (every further placeOrder of an id is an audited modify);
- every own order is in the state the simulator holds (or NotPlaced where TWS has none);
- positions equal the sum of the executions, at the runtime and at IB;
- every order id the simulator received has its intent in the audit trail, and every
  intent's outcome comes after it.
"""

from __future__ import annotations

import collections
from decimal import Decimal
from pathlib import Path

import attrs
import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from order_helpers import SPY, order, placed

from ibkr_connector._errors import IBKRError
from ibkr_connector.actors.audit import read_audit_records
from ibkr_connector.config import IBKRConfig, WatchdogConfig
from ibkr_connector.contracts import Stock
from ibkr_connector.runtime import Runtime, open_runtime
from ibkr_connector.simulator import SimulatorConfig, TwsSimulator, open_simulator
from ibkr_connector.testing import FaultSchedule, fault_schedules, run_schedule
from ibkr_connector.trade import Fill, Trade, TradeStatus


@attrs.frozen
class PlaceMarket:
    quantity: int


@attrs.frozen
class PlaceResting:
    quantity: int


@attrs.frozen
class ModifyOne:
    index: int


@attrs.frozen
class CancelOne:
    index: int


@attrs.frozen
class LoseNextAck:
    pass


Operation = PlaceMarket | PlaceResting | ModifyOne | CancelOne | LoseNextAck

operations = st.lists(st.one_of(
    st.builds(PlaceMarket, st.integers(1, 5)),
    st.builds(PlaceResting, st.integers(1, 5)),
    st.builds(ModifyOne, st.integers(0, 7)),
    st.builds(CancelOne, st.integers(0, 7)),
    st.just(LoseNextAck()),
), min_size=3, max_size=10)


async def play(runtime: Runtime, sim: TwsSimulator, ops: list[Operation],
               trades: list[Trade]) -> None:
    far = round(sim.market.spot(SPY) * 0.5, 2)
    for op in ops:
        await trio.sleep(0.05)
        try:
            if isinstance(op, PlaceMarket):
                trades.append(await runtime.place_order(Stock("SPY"), order("BUY", op.quantity)))
            elif isinstance(op, PlaceResting):
                trades.append(await runtime.place_order(
                    Stock("SPY"), order("BUY", op.quantity, "LMT", far)))
            elif isinstance(op, LoseNextAck):
                sim.drop_next_order_ack()
            elif trades:
                trade = trades[op.index % len(trades)]
                if isinstance(op, ModifyOne):
                    await runtime.modify(trade, quantity=trade.order.totalQuantity + 1)
                else:
                    await runtime.cancel(trade)
        except IBKRError:
            pass  # refused, timed out in an outage, not modifiable: the promises still hold


async def settle(runtime: Runtime, trades: list[Trade]) -> None:
    with trio.fail_after(300):
        while True:
            try:
                await runtime.connect()
                await runtime.reconcile_orders()
            except IBKRError:
                await trio.sleep(1.0)
                continue
            unsettled = [t for t in await runtime.trades()
                         if t.status in (TradeStatus.PENDING_SUBMIT, TradeStatus.UNKNOWN)]
            if not unsettled:
                return
            await trio.sleep(1.0)


@settings(max_examples=6, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(ops=operations,
       schedule=fault_schedules(max_faults=3, max_gap=0.3, max_outage=2.0,
                                actors=("orders", "limiter", "connection")))
async def test_orders_keep_their_promises_under_random_faults(
    ops: list[Operation], schedule: FaultSchedule, tmp_path_factory: pytest.TempPathFactory,
    io_clock: trio.testing.MockClock,
) -> None:
    path = tmp_path_factory.mktemp("orders") / "audit.jsonl"
    trades: list[Trade] = []
    async with open_simulator(SimulatorConfig(start_time=1_750_000_000.0)) as sim:
        config = IBKRConfig(
            port=sim.port, connection_timeout=5, request_timeout=5,
            watchdog=WatchdogConfig(reconnect_initial_delay=0.05, reconnect_max_delay=0.5,
                                    reconnect_jitter=0.0, health_check_interval=30))
        async with open_runtime(config, audit_path=path, connect=True) as runtime:
            await runtime.keep_connected()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(run_schedule, sim, schedule, runtime.restart)
                await play(runtime, sim, ops, trades)
            sim.set_reply_delay(0)
            await settle(runtime, trades)
            book = await runtime.trades()
            positions = {p.con_id: p.quantity for p in await runtime.positions()}
            executions = await runtime.executions()
        check_promises(sim, path, book, positions, executions)


def check_promises(sim: TwsSimulator, path: Path, book: tuple[Trade, ...],
                   positions: dict[int, Decimal], executions: tuple[Fill, ...]) -> None:
    records = list(read_audit_records(path))
    intents = [r for r in records if r.kind == "order_intent"]
    modifies = collections.Counter(r.fields["order_id"] for r in intents
                                   if r.fields.get("modify"))
    placed_ids = collections.Counter(placed(sim))
    for order_id, count in placed_ids.items():
        assert count <= 1 + modifies[order_id], f"order id {order_id} placed {count} times"
    assert set(placed_ids) <= {r.fields["order_id"] for r in intents}
    outcome_after = {r.fields["intent_seq"]: r.seq for r in records if r.kind == "order_outcome"}
    for intent in intents:
        if intent.seq in outcome_after:
            assert outcome_after[intent.seq] > intent.seq
    for trade in book:
        view = sim.orders.order(trade.client_id, trade.order_id)
        if view is None:
            assert trade.status in (TradeStatus.NOT_PLACED, TradeStatus.INACTIVE), trade
        else:
            assert trade.status.value == view.status, (trade, view.status)
    at_ib: dict[int, Decimal] = collections.defaultdict(Decimal)
    for fill in sim.orders.fills():
        if fill.contract.sec_type != "BAG":
            at_ib[fill.contract.con_id] += fill.shares if fill.side == "BOT" else -fill.shares
    assert positions == {k: v for k, v in at_ib.items() if v}
    seen: dict[int, Decimal] = collections.defaultdict(Decimal)
    for fill in executions:
        if fill.sec_type != "BAG":
            seen[fill.con_id] += fill.shares if fill.side == "BOT" else -fill.shares
    assert positions == {k: v for k, v in seen.items() if v}
