"""The EWrapper→Trio bridge: what its consumer can rely on, with posts from real threads.

No sockets: each test builds an `EventBridge` inside Trio and calls its callbacks (or
`post`) from worker threads, as ibapi's run() thread would.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Any, cast

import attrs
import pytest
import trio
import trio.testing
from ibapi.common import TickAttrib
from ibapi.const import UNSET_DOUBLE
from ibapi.wrapper import EWrapper

from ibkr_connector.protocol import events as ev
from ibkr_connector.protocol.bridge import EventBridge


class CountingToken:
    """A TrioToken stand-in that tracks how many wake-ups are scheduled and not yet run."""

    def __init__(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._lock = threading.Lock()
        self.pending = 0
        self.most_pending = 0

    def run_sync_soon(self, fn: Callable[[], object]) -> None:
        with self._lock:
            self.pending += 1
            self.most_pending = max(self.most_pending, self.pending)

        def run() -> None:
            with self._lock:
                self.pending -= 1
            fn()

        self._token.run_sync_soon(run)


class RacingSignal:
    """A lock that runs *race* just before each release: a post from another thread that
    lands while the consumer is about to go to sleep, the narrowest window there is."""

    def __init__(self, race: Callable[[], None]) -> None:
        self._lock = threading.Lock()
        self._race = race

    def acquire(self, blocking: bool = True) -> bool:
        return self._lock.acquire(blocking)

    def release(self) -> None:
        self._race()
        self._lock.release()


def _tick(source: int, seq: int) -> ev.TickGeneric:
    return ev.TickGeneric(source, 0, float(seq))


async def _post_from_threads(bridge: EventBridge, threads: int, each: int) -> list[ev.TwsEvent]:
    """Post *each* numbered events from each of *threads* threads; return all received."""
    received: list[ev.TwsEvent] = []

    def poster(source: int) -> None:
        for seq in range(each):
            bridge.post(_tick(source, seq))

    async with trio.open_nursery() as nursery:
        for source in range(threads):
            nursery.start_soon(trio.to_thread.run_sync, poster, source)
        with trio.fail_after(10):
            while len(received) < threads * each:
                received.extend(await bridge.receive_batch())
    return received


async def test_events_from_several_threads_arrive_in_per_thread_order() -> None:
    bridge = EventBridge()
    received = await _post_from_threads(bridge, threads=4, each=5_000)
    assert bridge.pending() == 0
    by_source: dict[int, list[float]] = {}
    for event in received:
        assert isinstance(event, ev.TickGeneric)
        by_source.setdefault(event.req_id, []).append(event.value)
    assert by_source == {source: [float(i) for i in range(5_000)] for source in range(4)}


async def test_a_flood_schedules_far_fewer_wakeups_than_events_one_at_a_time() -> None:
    token = CountingToken()
    bridge = EventBridge(cast(trio.lowlevel.TrioToken, token))
    received = await _post_from_threads(bridge, threads=3, each=10_000)
    assert len(received) == 30_000
    assert token.most_pending == 1
    assert 1 <= bridge.wakeups <= len(received) // 10


async def test_a_consumer_without_linger_gets_everything_too() -> None:
    bridge = EventBridge(linger=0)
    received = await _post_from_threads(bridge, threads=2, each=5_000)
    assert sorted((e.req_id, e.value) for e in received if isinstance(e, ev.TickGeneric)) == [
        (source, float(i)) for source in range(2) for i in range(5_000)
    ]


async def test_receive_batch_cancelled_while_waiting_loses_nothing() -> None:
    bridge = EventBridge()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(bridge.receive_batch)
        await trio.testing.wait_all_tasks_blocked()
        # The wake-up for this post is pending when the waiter is cancelled.
        bridge.post(_tick(0, 0))
        nursery.cancel_scope.cancel()
    await trio.to_thread.run_sync(bridge.post, _tick(0, 1))
    assert await bridge.receive_batch() == [_tick(0, 0), _tick(0, 1)]

    # Cancelled again, this time asleep with nothing pending: a later post still wakes us.
    with trio.move_on_after(0.01):
        await bridge.receive_batch()
    await trio.to_thread.run_sync(bridge.post, _tick(0, 2))
    with trio.fail_after(5):
        assert await bridge.receive_batch() == [_tick(0, 2)]


async def test_a_post_racing_with_the_consumer_falling_asleep_is_not_stranded(
    autojump_clock: trio.testing.MockClock,
) -> None:
    bridge = EventBridge()
    late = [_tick(1, 0)]

    def race() -> None:
        while late:
            bridge.post(late.pop())

    # White-box: the race is a post between "asleep" and the signal's release.
    bridge._signal = cast(Any, RacingSignal(race))
    bridge.post(_tick(0, 0))
    assert await bridge.receive_batch() == [_tick(0, 0)]
    with trio.fail_after(10):
        assert await bridge.receive_batch() == [_tick(1, 0)]


def test_post_after_the_trio_run_finished_does_not_raise() -> None:
    async def make() -> EventBridge:
        return EventBridge()

    bridge = trio.run(make)
    bridge.post(ev.ConnectAck())
    bridge.tickPrice(1, 1, 10.0, TickAttrib())
    bridge.connectionClosed()
    assert bridge.pending() == 3


def _sample(annotation: Any) -> Any:
    """A plausible argument for an EWrapper parameter of this annotation."""
    samples: dict[Any, Any] = {str: "DU1,DU2", int: 3, float: 1.5, bool: True,
                               Decimal: Decimal(2), TickAttrib: TickAttrib()}
    if annotation in samples:
        return samples[annotation]
    try:
        return annotation()
    except Exception:  # noqa: BLE001 - not constructible: any object will do
        return object()


def _callbacks() -> list[str]:
    return [name for name, _ in inspect.getmembers(EWrapper, inspect.isfunction)
            if not name.startswith("_") and name != "logAnswer"]


async def test_every_ewrapper_callback_produces_exactly_one_event() -> None:
    bridge = EventBridge()
    names = _callbacks()
    assert len(names) > 100  # ibapi's whole surface, protobuf variants included
    for name in names:
        params = list(inspect.signature(getattr(EWrapper, name)).parameters.values())[1:]
        args = [_sample(p.annotation) for p in params if p.default is inspect.Parameter.empty]
        before = bridge.pending()
        getattr(bridge, name)(*args)
        assert bridge.pending() == before + 1, name
    events = await bridge.receive_batch()
    assert len(events) == len(names)
    generic = [e for e in events if isinstance(e, ev.WrapperCallback)]
    assert {e.method for e in generic} <= set(names)
    assert len({e.method for e in generic}) == len(generic)


async def test_tick_events_equal_the_ones_their_classes_build() -> None:
    bridge = EventBridge()
    attrib = TickAttrib()
    attrib.canAutoExecute, attrib.preOpen = True, True
    bridge.tickPrice(7, 9, 99.5, attrib)  # close: a price without a size
    bridge.tickSize(7, 8, Decimal(12))  # volume: a size of its own
    bridge.tickString(7, 45, "1700000000")
    bridge.tickGeneric(7, 49, 0.5)
    expected = [
        ev.TickPrice(7, 9, 99.5, True, False, True),
        ev.TickSize(7, 8, Decimal(12)),
        ev.TickString(7, 45, "1700000000"),
        ev.TickGeneric(7, 49, 0.5),
    ]
    events = await bridge.receive_batch()
    assert events == expected
    assert [hash(e) for e in events] == [hash(e) for e in expected]
    assert [type(e) for e in events] == [type(e) for e in expected]


async def test_events_are_immutable() -> None:
    bridge = EventBridge()
    bridge.tickPrice(7, 1, 101.25, TickAttrib())
    bridge.tickSize(7, 0, Decimal(1))
    bridge.tickString(7, 45, "x")
    bridge.tickGeneric(7, 49, 0.5)
    bridge.tickOptionComputation(7, 13, 0, 0.2, 0.5, 1.0, 0.0, 0.1, 0.2, -0.1, 100.0)
    bridge.error(7, 0, 200, "no security definition")
    bridge.tickEFP(7, 38, 1.0, "x", 1.0, 1, "x", 1.0, 1.0)  # a generic callback
    for event in await bridge.receive_batch():
        field = attrs.fields(cast(Any, type(event)))[0].name
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            setattr(event, field, None)
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            event.extra = 1  # type: ignore[attr-defined]


async def test_unset_greeks_become_none_and_a_delta_of_minus_one_is_kept() -> None:
    bridge = EventBridge()
    unset = UNSET_DOUBLE
    bridge.tickOptionComputation(3, 13, 1, unset, -1.0, unset, unset, unset, unset, unset, unset)
    bridge.tickOptionComputation(3, 10, 0, 0.25, -0.4, 2.5, 0.0, -1.0, 0.1, -0.05, 400.0)
    bridge.tickOptionComputation(3, 11, 0, -1.0, None, None, None, None, None, None, None)  # type: ignore[arg-type]
    unknown, known, absent = await bridge.receive_batch()
    assert unknown == ev.TickOptionComputation(3, 13, 1, None, -1.0, None, None, None, None,
                                               None, None)
    assert known == ev.TickOptionComputation(3, 10, 0, 0.25, -0.4, 2.5, 0.0, -1.0, 0.1, -0.05,
                                             400.0)
    assert absent == ev.TickOptionComputation(3, 11, 0, None, None, None, None, None, None,
                                              None, None)


async def test_a_bid_ask_or_last_price_and_the_size_that_follows_it_are_one_event() -> None:
    bridge = EventBridge()
    attrib = TickAttrib()
    attrib.pastLimit = True
    for price_type, size_type in ((1, 0), (2, 3), (4, 5), (66, 69), (67, 70), (68, 71)):
        bridge.tickPrice(7, price_type, 101.25, attrib)  # ibapi calls these two in a row
        bridge.tickSize(7, size_type, Decimal(300))
    events = await bridge.receive_batch()
    assert events == [ev.TickPrice(7, t, 101.25, False, True, False, Decimal(300))
                      for t in (1, 2, 4, 66, 67, 68)]


async def test_a_size_that_does_not_match_the_held_price_is_an_event_of_its_own() -> None:
    bridge = EventBridge()
    attrib = TickAttrib()
    bridge.tickPrice(7, 1, 101.25, attrib)
    bridge.tickSize(8, 0, Decimal(5))  # another ticker: not this price's size
    bridge.tickPrice(7, 2, 101.5, attrib)
    bridge.tickString(7, 45, "x")  # anything else releases the held price unchanged
    assert await bridge.receive_batch() == [
        ev.TickPrice(7, 1, 101.25),
        ev.TickSize(8, 0, Decimal(5)),
        ev.TickPrice(7, 2, 101.5),
        ev.TickString(7, 45, "x"),
    ]
