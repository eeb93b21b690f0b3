"""A placement that raised did not reach the wire; one that was claimed returns its Trade.

The atomic hand-off of the hardening issue (item 1), carried end to end: `place_order` hands
its claim ticket through the orders actor down to the limiter, so the caller's timeout or
cancellation and the limiter's write are decided by the same ticket.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from decimal import Decimal
from pathlib import Path

import trio
import trio.testing
from helpers import SLOW_ORDER_WRITE
from ibapi.order import Order

from ibkr_connector.actors.audit import read_audit_records
from ibkr_connector.config import IBKRConfig, WatchdogConfig
from ibkr_connector.contracts import Stock
from ibkr_connector.runtime import Runtime, open_runtime
from ibkr_connector.simulator import TwsSimulator
from ibkr_connector.trade import Trade

WRITE_TIME = SLOW_ORDER_WRITE  # how long writing one order takes (conftest)


def _order() -> Order:
    order = Order()
    order.action, order.orderType = "BUY", "LMT"
    order.totalQuantity, order.lmtPrice = Decimal(1), 1.00  # far below the market
    return order


def _placed(sim: TwsSimulator) -> list[int]:
    return [int(m.fields[0]) for m in sim.received if m.msg_id == 3]


def _config(sim: TwsSimulator) -> IBKRConfig:
    return IBKRConfig(port=sim.port, watchdog=WatchdogConfig(health_check_interval=600.0))


def _connected(sim: TwsSimulator, trail: Path) -> AbstractAsyncContextManager[Runtime]:
    return open_runtime(_config(sim), audit_path=trail, connect=True)


async def test_a_placement_claimed_before_its_caller_gave_up_returns_its_trade(
    quiet_sim: TwsSimulator, tmp_path: Path, io_clock: trio.testing.MockClock,
    slow_order_writes: None,
) -> None:
    sim = quiet_sim
    async with _connected(sim, tmp_path / "a.jsonl") as runtime:
        trade: Trade | None = None
        with trio.move_on_after(WRITE_TIME / 3):  # expires in the middle of the write
            trade = await runtime.place_order(Stock("SPY"), _order())
        assert trade is not None, "a claimed placement must report, not raise"
        assert _placed(sim) == [trade.order_id]


async def test_a_placement_whose_caller_gave_up_before_the_claim_never_reaches_tws(
    quiet_sim: TwsSimulator, tmp_path: Path, io_clock: trio.testing.MockClock,
) -> None:
    sim = quiet_sim
    trail = tmp_path / "a.jsonl"
    async with _connected(sim, trail) as runtime:
        await runtime.qualify(Stock("SPY"))  # cached: the placement needs nothing from TWS
        await runtime.disconnect()  # the limiter holds every request now
        with trio.move_on_after(2.0) as scope:
            await runtime.place_order(Stock("SPY"), _order())
        assert scope.cancelled_caught
        await runtime.connect()
        await trio.sleep(5.0)  # time enough for a held order to go out, if it were going to
        assert _placed(sim) == []
    outcomes = [r.fields["outcome"] for r in read_audit_records(trail)
                if r.kind == "order_outcome"]
    assert outcomes == ["abandoned"]


async def test_a_placement_written_while_the_orders_actor_restarts_returns_its_trade(
    quiet_sim: TwsSimulator, tmp_path: Path, io_clock: trio.testing.MockClock,
    slow_order_writes: None,
) -> None:
    sim = quiet_sim
    async with _connected(sim, tmp_path / "a.jsonl") as runtime:
        placed: list[Trade] = []

        async def place() -> None:
            placed.append(await runtime.place_order(Stock("SPY"), _order()))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(place)
            await trio.sleep(WRITE_TIME / 3)  # claimed, in the middle of the write
            await runtime.restart("orders")  # the actor holding the call goes away
        # Not ActorNotRunning/ActorCrashed: the order is at TWS, and the caller is told so.
        # (An incarnation's unanswered calls are failed only once it has ended, and it
        # cannot end before its claimed write has finished and been answered.)
        [trade] = placed
        assert _placed(sim) == [trade.order_id]
        assert trade in await runtime.trades()
