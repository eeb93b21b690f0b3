"""Order ids: handed out once, never below TWS's nextValidId or the audit trail's highest."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing

from ibkr_connector.actors.order_ids import AllocateOrderIds, OrderIdBook
from ibkr_connector.config import IBKRConfig, WatchdogConfig
from ibkr_connector.runtime import open_runtime
from ibkr_connector.simulator import TwsSimulator

# --- the rule, as a value ---------------------------------------------------------------


def test_nothing_is_handed_out_before_tws_says_where_ids_start() -> None:
    book = OrderIdBook()
    book.observe_trail(41)
    with pytest.raises(LookupError):
        book.allocate(1)


def test_the_next_id_is_the_highest_of_tws_the_trail_and_what_was_handed_out() -> None:
    book = OrderIdBook()
    book.observe_trail(41)
    book.observe_tws(7)  # TWS is behind the trail (a kill -9 before any order reached it)
    assert list(book.allocate(2)) == [42, 43]
    book.observe_tws(10)  # a reconnect's nextValidId never goes back
    assert list(book.allocate(1)) == [44]
    book.observe_tws(100)
    assert list(book.allocate(1)) == [100]


def test_a_duplicate_id_holds_allocation_until_tws_answers() -> None:
    book = OrderIdBook()
    book.observe_tws(5)
    assert list(book.allocate(3)) == [5, 6, 7]
    book.invalidate()
    with pytest.raises(LookupError):
        book.allocate(1)
    book.observe_tws(3)  # an answer below what we already used does not rewind us
    assert list(book.allocate(1)) == [8]


def test_allocate_order_ids_refuses_a_silly_count() -> None:
    for count in (0, -1, 10_001, True):
        with pytest.raises(ValueError):
            AllocateOrderIds(count)  # type: ignore[arg-type]


# --- the actor, against the simulator -------------------------------------------------------


def _config(sim: TwsSimulator) -> IBKRConfig:
    return IBKRConfig(port=sim.port, watchdog=WatchdogConfig(health_check_interval=30.0))


async def test_ids_start_at_tws_next_valid_id_and_never_repeat(
    sim: TwsSimulator, tmp_path: Path, io_clock: trio.testing.MockClock
) -> None:
    async with open_runtime(_config(sim), audit_path=tmp_path / "a.jsonl",
                            connect=True) as runtime:
        status = await runtime.status()
        first = await runtime.allocate_order_ids(2)
        assert first.start == status.connection.next_order_id
        second = await runtime.allocate_order_ids(1)
        assert second.start == first.stop
        # A restart of the actor keeps the book: no id comes round again.
        await runtime.restart("order_ids")
        third = await runtime.allocate_order_ids(1)
        assert third.start == second.stop


async def test_an_allocation_before_connecting_waits_for_tws(
    sim: TwsSimulator, tmp_path: Path, io_clock: trio.testing.MockClock
) -> None:
    async with open_runtime(_config(sim), audit_path=tmp_path / "a.jsonl") as runtime:
        got: list[range] = []
        async with trio.open_nursery() as nursery:

            async def allocate() -> None:
                got.append(await runtime.allocate_order_ids(1))

            nursery.start_soon(allocate)
            await trio.sleep(1.0)
            assert got == []
            status = await runtime.connect()
        assert got[0].start == status.next_order_id


async def test_error_103_asks_tws_for_ids_and_resumes_after_its_answer(
    sim: TwsSimulator, tmp_path: Path, io_clock: trio.testing.MockClock
) -> None:
    async with open_runtime(_config(sim), audit_path=tmp_path / "a.jsonl",
                            connect=True) as runtime:
        used = await runtime.allocate_order_ids(1)
        before = len([m for m in sim.received if m.msg_id == 8])  # REQ_IDS
        await sim.send_error(103, "Duplicate order id", req_id=used.start)
        with trio.fail_after(10):
            while len([m for m in sim.received if m.msg_id == 8]) == before:
                await trio.sleep(0.05)
        after = await runtime.allocate_order_ids(1)
        assert after.start > used.start


async def test_ids_the_trail_holds_are_never_handed_out_again(
    sim: TwsSimulator, tmp_path: Path, io_clock: trio.testing.MockClock
) -> None:
    trail = tmp_path / "a.jsonl"
    async with open_runtime(_config(sim), audit_path=trail, connect=True) as runtime:
        # An earlier run used ids up to 500 (say, with another client id) and died.
        await runtime.audit("order_intent", order_id=500)
    async with open_runtime(_config(sim), audit_path=trail, connect=True) as runtime:
        status = await runtime.status()
        assert status.connection.next_order_id is not None
        assert status.connection.next_order_id < 500
        ids = await runtime.allocate_order_ids(1)
        assert ids.start == 501
