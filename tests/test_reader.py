"""The session's reader over a real socket: one thread, whole frames, one event per tick.

Against the bundled simulator on loopback; the session is the one the connection actor
uses (`TwsSession`), read directly through its bridge.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal

import trio

from ibkr_connector.protocol import events as ev
from ibkr_connector.protocol.bridge import EventBridge
from ibkr_connector.protocol.client import TwsSession, session_threads
from ibkr_connector.simulator import TwsSimulator

CLIENT_ID = 5


@asynccontextmanager
async def _session(sim: TwsSimulator) -> AsyncIterator[tuple[TwsSession, list[ev.TwsEvent]]]:
    """An open session whose greeting (up to nextValidId) has been read; yields it with
    the list of events read so far."""
    session = TwsSession(EventBridge())
    seen: list[ev.TwsEvent] = []
    try:
        await session.open("127.0.0.1", sim.port, CLIENT_ID, timeout=10)
        with trio.fail_after(10):
            while not any(isinstance(e, ev.NextValidId) for e in seen):
                seen.extend(await session.bridge.receive_batch())
        yield session, seen
    finally:
        await session.close()


async def _read_until(session: TwsSession, count: int, kind: type) -> list[ev.TwsEvent]:
    events: list[ev.TwsEvent] = []
    with trio.fail_after(30):
        while sum(isinstance(e, kind) for e in events) < count:
            events.extend(await session.bridge.receive_batch())
    return events


async def test_a_session_reads_in_one_thread_and_leaves_none_behind(sim: TwsSimulator) -> None:
    async with _session(sim) as (session, seen):
        threads = session.threads()
        assert [t.name for t in threads] == [f"ibkr-read-{session.serial}"]
        assert threads[0].is_alive()
        assert session.server_version == 200
        assert isinstance(session.connection_time, str)
        assert any(isinstance(e, ev.ConnectAck) for e in seen)
    assert not threads[0].is_alive()
    assert session_threads() == []


async def test_a_price_tick_arrives_as_one_event_carrying_its_size(sim: TwsSimulator) -> None:
    async with _session(sim) as (session, _):
        await sim.push_tick_price(7, 1, 101.25, client_id=CLIENT_ID, size=300)
        await sim.push_tick_price(7, 9, 99.5, client_id=CLIENT_ID, size=0)  # close: no size
        events = await _read_until(session, 2, ev.TickPrice)
    assert [e for e in events if isinstance(e, ev.TickPrice | ev.TickSize)] == [
        ev.TickPrice(7, 1, 101.25, size=Decimal(300)),
        ev.TickPrice(7, 9, 99.5),
    ]


async def test_a_flood_arrives_whole_and_in_order(sim: TwsSimulator) -> None:
    n = 20_000  # many receives' worth: frames straddle every chunk boundary
    async with _session(sim) as (session, _):
        await sim.flood_tick_prices(7, n, client_id=CLIENT_ID)
        events = await _read_until(session, n, ev.TickPrice)
    ticks = [e for e in events if isinstance(e, ev.TickPrice)]
    assert len(ticks) == n
    # The flood alternates bid and ask and steps the price a cent per frame, in cycles of 100.
    assert [(t.tick_type, t.price) for t in ticks[:100]] == [
        (1 if i % 2 == 0 else 2, 100.0 + i / 100) for i in range(100)
    ]
    assert ticks[100:200] == ticks[:100]
    assert {t.size for t in ticks} == {Decimal(1)}


async def test_after_a_malformed_frame_the_reader_reports_it_and_stops(sim: TwsSimulator) -> None:
    async with _session(sim) as (session, _):
        await sim.send_malformed(client_id=CLIENT_ID, kind="truncated")
        events = await _read_until(session, 1, ev.ReaderStopped)
    kinds = [type(e) for e in events]
    assert kinds[-3:] == [ev.ConnectionClosed, ev.MalformedMessage, ev.ReaderStopped]
    assert not session.is_connected()
