"""A submit that raised did not happen; a submit claimed for the wire reports its outcome.

Issue 8, item 1. The caller's timeout or cancellation and the limiter's write race for each
request; the ticket decides the race once. Over the simulator, a write is made slow (as a
full socket buffer would make it) so that deadlines expire in the middle of writes; the
ticket itself is checked with plain values.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import trio
import trio.testing
from helpers import SLOW_ORDER_WRITE
from ibapi.contract import Contract
from ibapi.order import Order

from ibkr_connector.actors.ticket import Ticket, TicketState
from ibkr_connector.config import IBKRConfig, WatchdogConfig
from ibkr_connector.protocol.requests import PlaceOrder
from ibkr_connector.runtime import open_runtime
from ibkr_connector.simulator import TwsSimulator
from ibkr_connector.supervisor import CallTimeout

_PLACE_ORDER = 3  # ibapi.message.OUT.PLACE_ORDER
WRITE_TIME = SLOW_ORDER_WRITE  # how long writing one order takes (conftest)
TIMEOUT = 5.0  # the runtime's request_timeout


def _order(order_id: int) -> PlaceOrder:
    contract = Contract()
    contract.symbol, contract.secType, contract.exchange = "SPY", "OPT", "SMART"
    contract.currency, contract.lastTradeDateOrContractMonth = "USD", "20261218"
    contract.strike, contract.right, contract.multiplier = 600.0, "C", "100"
    order = Order()
    order.action, order.totalQuantity, order.orderType = "BUY", Decimal(1), "LMT"
    order.lmtPrice = 1.25
    return PlaceOrder(order_id, contract, order)


def _placed(sim: TwsSimulator) -> set[int]:
    return {int(m.fields[0]) for m in sim.received if m.msg_id == _PLACE_ORDER}


def _config(sim: TwsSimulator) -> IBKRConfig:
    return IBKRConfig(port=sim.port, request_timeout=TIMEOUT,
                      watchdog=WatchdogConfig(health_check_interval=600.0))


async def test_a_submit_that_timed_out_never_reaches_the_wire_and_a_claimed_one_reports(
    quiet_sim: TwsSimulator, tmp_path: Path, io_clock: trio.testing.MockClock,
    slow_order_writes: None,
) -> None:
    sim = quiet_sim  # a market that stands still lets the clock jump
    # Order 1 is written from 0 s to 3 s; order 2 is claimed at 3 s and written by 6 s, past
    # its 5 s deadline; order 3 is still queued at 5 s.
    outcome: dict[int, str] = {}
    async with open_runtime(_config(sim), audit_path=tmp_path / "audit.jsonl",
                            connect=True) as runtime:

        async def place(order_id: int) -> None:
            try:
                await runtime.submit(_order(order_id))
            except CallTimeout:
                outcome[order_id] = "timed out"
            else:
                outcome[order_id] = "written"

        async with trio.open_nursery() as nursery:
            for order_id in (1, 2, 3):
                nursery.start_soon(place, order_id)
                await trio.sleep(0.01)
        await trio.sleep(30.0)  # anything sent late would have arrived by now
        placed = _placed(sim)
    assert outcome == {1: "written", 2: "written", 3: "timed out"}
    assert placed == {1, 2}  # exactly the ones whose submit returned


async def test_a_cancelled_submit_never_reaches_the_wire_and_a_claimed_one_completes(
    quiet_sim: TwsSimulator, tmp_path: Path, io_clock: trio.testing.MockClock,
    slow_order_writes: None,
) -> None:
    sim = quiet_sim  # a market that stands still lets the clock jump
    outcome: dict[int, str] = {}
    async with open_runtime(_config(sim), audit_path=tmp_path / "audit.jsonl",
                            connect=True) as runtime:

        async def place(order_id: int) -> None:
            try:
                await runtime.submit(_order(order_id))
            except trio.Cancelled:
                outcome[order_id] = "cancelled"
                raise
            outcome[order_id] = "written"

        with trio.move_on_after(1.0):  # order 1 is being written then, order 2 queued
            async with trio.open_nursery() as nursery:
                for order_id in (1, 2):
                    nursery.start_soon(place, order_id)
                    await trio.sleep(0.01)
        await trio.sleep(30.0)
        placed = _placed(sim)
    assert outcome == {1: "written", 2: "cancelled"}
    assert placed == {1}


# --- the ticket alone ------------------------------------------------------------------


async def test_a_pending_ticket_is_abandoned_by_its_callers_cancellation(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ticket = Ticket()
    with trio.move_on_after(1.0) as scope:
        await ticket.outcome()
    assert scope.cancelled_caught
    assert ticket.state is TicketState.ABANDONED
    assert not ticket.claim()  # the writer then leaves it alone


async def test_a_claimed_ticket_outlives_its_callers_deadline_and_reports_the_outcome(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ticket = Ticket()
    error = RuntimeError("refused")

    async def writer() -> None:
        assert ticket.claim()
        await trio.sleep(5.0)
        ticket.finish(error)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer)
        await trio.sleep(0.1)
        with trio.move_on_after(1.0), pytest.raises(RuntimeError, match="refused"):
            await ticket.outcome()
        assert trio.current_time() >= 5.0
    assert ticket.state is TicketState.DONE


async def test_a_released_ticket_is_abandoned_once_its_deadline_has_passed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ticket = Ticket()

    async def writer() -> None:
        assert ticket.claim()
        await trio.sleep(5.0)
        ticket.release()  # certainly not written: queued again

    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer)
        await trio.sleep(0.1)
        with trio.move_on_after(1.0) as scope:
            await ticket.outcome()
    assert scope.cancelled_caught
    assert ticket.state is TicketState.ABANDONED


async def test_a_ticket_finished_before_the_wait_returns_even_when_cancelled() -> None:
    ticket = Ticket()
    assert ticket.claim()
    ticket.finish()
    with trio.CancelScope() as scope:
        scope.cancel()
        await ticket.outcome()  # written: reported, not turned into a Cancelled
        returned = True
    assert returned
