"""The event bus core: reliable events never dropped (a subscriber that falls too far behind
is cut off, visibly), market data conflated per key, publish never blocks, isinstance
filtering, independent subscribers, peek-then-commit for readers that must not lose an
event to their own crash; and the actor shell answering BusStats from a real tree.
"""

import functools
import inspect
from collections.abc import Hashable

import attrs
import pytest
import trio
import trio.testing

from ibkr_connector.actors.bus import (
    BusStats,
    EventBus,
    EventBusStats,
    SubscriberOverflow,
    Subscription,
    run_event_bus,
)
from ibkr_connector.supervisor import ChildSpec, SupervisorSpec, open_supervisor


@attrs.frozen
class ConnectionEvent:
    what: str


@attrs.frozen
class ConnectionLost(ConnectionEvent):
    """A subclass: a subscriber to ConnectionEvent receives it too."""


@attrs.frozen
class OrderStatus:
    order_id: int
    status: str


@attrs.frozen
class Tick:
    req_id: int
    tick_type: int
    price: float

    @property
    def conflation_key(self) -> Hashable:
        return (Tick, self.req_id, self.tick_type)


@attrs.frozen
class Unkeyed:
    """A reliable event that happens to carry a None conflation key."""

    conflation_key: None = None


def _pending(sub: Subscription[object]) -> list[object]:
    events = []
    while True:
        try:
            events.append(sub.receive_nowait())
        except trio.WouldBlock:
            return events


def test_reliable_events_arrive_in_order() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    events = [ConnectionEvent("up"), OrderStatus(1, "Submitted"), OrderStatus(1, "Filled")]
    for event in events:
        bus.publish(event)
    assert _pending(sub) == events


def test_market_data_is_conflated_to_the_latest_per_key_in_first_arrival_order() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    bus.publish(Tick(1, 1, 10.0))  # bid
    bus.publish(Tick(1, 2, 10.5))  # ask
    bus.publish(Tick(1, 1, 10.1))  # bid again: replaces the first, keeps its place
    bus.publish(Tick(2, 1, 99.0))
    assert _pending(sub) == [Tick(1, 1, 10.1), Tick(1, 2, 10.5), Tick(2, 1, 99.0)]
    assert bus.stats().conflated == 1


def test_a_subscriber_that_asks_not_to_conflate_gets_every_tick() -> None:
    bus = EventBus()
    every = bus.subscribe(Tick, conflate=False)
    latest = bus.subscribe(Tick)
    ticks = [Tick(1, 1, 10.0), Tick(1, 1, 10.1), Tick(1, 1, 10.2)]
    for tick in ticks:
        bus.publish(tick)
    assert _pending(every) == ticks
    assert _pending(latest) == [Tick(1, 1, 10.2)]


def test_a_conflated_event_keeps_its_place_among_reliable_events() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    bus.publish(ConnectionEvent("up"))
    bus.publish(Tick(1, 1, 10.0))
    bus.publish(OrderStatus(7, "Submitted"))
    bus.publish(Tick(1, 1, 10.2))
    assert _pending(sub) == [ConnectionEvent("up"), Tick(1, 1, 10.2), OrderStatus(7, "Submitted")]


def test_a_key_already_received_queues_afresh() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    bus.publish(Tick(1, 1, 10.0))
    assert sub.receive_nowait() == Tick(1, 1, 10.0)
    bus.publish(OrderStatus(1, "Filled"))
    bus.publish(Tick(1, 1, 10.3))
    assert _pending(sub) == [OrderStatus(1, "Filled"), Tick(1, 1, 10.3)]


def test_a_none_conflation_key_means_reliable() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    bus.publish(Unkeyed())
    bus.publish(Unkeyed())
    assert _pending(sub) == [Unkeyed(), Unkeyed()]
    assert bus.stats().conflated == 0


def test_falling_behind_by_more_than_capacity_disconnects_with_a_clear_reason() -> None:
    bus = EventBus()
    slow = bus.subscribe(capacity=3)
    for i in range(3):
        bus.publish(OrderStatus(i, "Submitted"))
    assert slow.closed_reason is None  # exactly at capacity is still fine
    bus.publish(OrderStatus(3, "Submitted"))
    assert isinstance(slow.closed_reason, SubscriberOverflow)
    with pytest.raises(SubscriberOverflow, match="more than 3 reliable events behind"):
        slow.receive_nowait()
    stats = bus.stats()
    assert (stats.overflow_disconnects, stats.subscribers) == (1, 0)
    bus.publish(OrderStatus(4, "Submitted"))  # a cut-off subscriber is no longer fed
    assert slow.pending() == 0


def test_an_overflow_disconnects_only_the_slow_subscriber() -> None:
    bus = EventBus()
    slow = bus.subscribe(capacity=2)
    fast = bus.subscribe(capacity=2)
    for i in range(6):
        bus.publish(OrderStatus(i, "Submitted"))
        assert fast.receive_nowait() == OrderStatus(i, "Submitted")
    assert isinstance(slow.closed_reason, SubscriberOverflow)
    assert fast.closed_reason is None
    assert bus.stats().subscribers == 1


def test_conflated_events_do_not_count_against_capacity() -> None:
    bus = EventBus()
    sub = bus.subscribe(capacity=2)
    for i in range(10_000):
        bus.publish(Tick(i % 10, 1, float(i)))
    bus.publish(OrderStatus(1, "Filled"))
    bus.publish(OrderStatus(2, "Filled"))
    assert sub.closed_reason is None
    assert sub.pending() == 12
    assert bus.stats().conflated == 10_000 - 10


def test_publish_is_synchronous_and_returns_with_nobody_reading() -> None:
    assert not inspect.iscoroutinefunction(EventBus.publish)
    bus = EventBus()
    bus.subscribe(capacity=10)
    for i in range(1000):  # would deadlock if publish ever waited for the reader
        bus.publish(Tick(1, 1, float(i)))
        bus.publish(OrderStatus(i, "Submitted"))
    assert bus.stats().published == 2000


async def test_publish_does_not_checkpoint() -> None:
    bus = EventBus()
    bus.subscribe()
    with trio.testing.assert_no_checkpoints():
        bus.publish(OrderStatus(1, "Submitted"))
        bus.publish(Tick(1, 1, 1.0))


def test_kinds_filter_by_isinstance() -> None:
    bus = EventBus()
    connection_only = bus.subscribe(kinds=[ConnectionEvent])
    ticks_and_orders = bus.subscribe(kinds={Tick, OrderStatus})
    events = [ConnectionLost("socket closed"), Tick(1, 1, 1.0), OrderStatus(1, "Filled")]
    for event in events:
        bus.publish(event)
    assert _pending(connection_only) == [ConnectionLost("socket closed")]
    assert _pending(ticks_and_orders) == [Tick(1, 1, 1.0), OrderStatus(1, "Filled")]


def test_each_subscriber_conflates_independently() -> None:
    bus = EventBus()
    eager, lagging = bus.subscribe(), bus.subscribe()
    seen = []
    for i in range(5):
        bus.publish(Tick(1, 1, float(i)))
        seen.append(eager.receive_nowait())
    assert seen == [Tick(1, 1, float(i)) for i in range(5)]
    assert _pending(lagging) == [Tick(1, 1, 4.0)]


def test_stats_count_published_delivered_conflated() -> None:
    bus = EventBus()
    a, b = bus.subscribe(), bus.subscribe(kinds=[OrderStatus])
    bus.publish(OrderStatus(1, "Submitted"))
    bus.publish(Tick(1, 1, 1.0))
    bus.publish(Tick(1, 1, 2.0))
    _pending(a)
    _pending(b)
    assert bus.stats() == EventBusStats(
        published=3, delivered=3, conflated=1, overflow_disconnects=0, subscribers=2
    )


def test_subscribe_validates_capacity_and_kinds() -> None:
    bus = EventBus()
    with pytest.raises(ValueError, match="capacity"):
        bus.subscribe(capacity=0)
    with pytest.raises(TypeError, match="classes"):
        bus.subscribe(kinds=["OrderStatus"])  # type: ignore[list-item]


def test_kinds_are_kept_as_a_tuple_and_one_class_needs_no_collection() -> None:
    bus = EventBus()
    assert bus.subscribe([Tick]).kinds == (Tick,)
    assert bus.subscribe().kinds is None
    one = bus.subscribe(OrderStatus)
    assert one.kinds == (OrderStatus,)
    bus.publish(Tick(1, 1, 1.0))
    bus.publish(OrderStatus(1, "Filled"))
    assert _pending(one) == [OrderStatus(1, "Filled")]


async def test_a_blocked_receiver_wakes_when_an_event_is_published() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    received: list[object] = []

    async def reader() -> None:
        received.append(await sub.receive())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        await trio.testing.wait_all_tasks_blocked()
        assert received == []
        bus.publish(OrderStatus(1, "Filled"))
    assert received == [OrderStatus(1, "Filled")]


async def test_async_for_ends_when_the_subscription_is_closed() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    received: list[object] = []

    async def reader() -> None:
        async for event in sub:
            received.append(event)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        bus.publish(OrderStatus(1, "Submitted"))
        await trio.testing.wait_all_tasks_blocked()
        sub.close()
    assert received == [OrderStatus(1, "Submitted")]
    assert bus.stats().subscribers == 0
    assert isinstance(sub.closed_reason, trio.ClosedResourceError)


async def test_async_for_raises_the_overflow_to_the_subscriber() -> None:
    bus = EventBus()
    sub = bus.subscribe(capacity=1)
    bus.publish(OrderStatus(1, "Submitted"))
    bus.publish(OrderStatus(2, "Submitted"))
    with pytest.raises(SubscriberOverflow):
        async for _ in sub:
            pytest.fail("a cut-off subscriber must not see stale events")


async def test_closing_the_bus_delivers_pending_events_then_ends_iteration() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    bus.publish(OrderStatus(1, "Filled"))
    bus.publish(Tick(1, 1, 3.0))
    bus.close()
    assert [event async for event in sub] == [OrderStatus(1, "Filled"), Tick(1, 1, 3.0)]
    late = bus.subscribe()
    assert [event async for event in late] == []


async def test_a_cancelled_receive_loses_no_event(autojump_clock: trio.testing.MockClock) -> None:
    bus = EventBus()
    sub = bus.subscribe()
    with trio.move_on_after(1):
        await sub.receive()
    bus.publish(OrderStatus(1, "Filled"))
    with trio.CancelScope() as scope:
        scope.cancel()
        with pytest.raises(trio.Cancelled):
            await sub.receive()
    assert await sub.receive() == OrderStatus(1, "Filled")


# --- peek and commit -----------------------------------------------------------------


async def test_a_peeked_event_stays_until_committed() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    bus.publish(OrderStatus(1, "Submitted"))
    bus.publish(OrderStatus(1, "Filled"))
    assert await sub.peek() == OrderStatus(1, "Submitted")
    assert await sub.peek() == OrderStatus(1, "Submitted")  # a second reader sees it too
    assert sub.pending() == 2
    sub.commit()
    assert await sub.peek() == OrderStatus(1, "Filled")
    sub.commit()
    sub.commit()  # nothing peeked: nothing removed
    assert sub.pending() == 0
    assert bus.stats().delivered == 2


async def test_an_event_peeked_by_a_reader_that_died_goes_to_the_next_reader() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    seen: list[object] = []

    async def crashing_reader() -> None:
        seen.append(await sub.peek())
        raise OSError("the disk went away before the event was written")

    bus.publish(OrderStatus(7, "Filled"))
    with pytest.raises(OSError):
        await crashing_reader()
    assert await sub.receive() == OrderStatus(7, "Filled")
    assert seen == [OrderStatus(7, "Filled")]


async def test_peek_waits_for_an_event_and_a_cancelled_peek_loses_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    bus = EventBus()
    sub = bus.subscribe()
    with trio.move_on_after(1) as scope:
        await sub.peek()
    assert scope.cancelled_caught
    peeked: list[object] = []

    async def reader() -> None:
        peeked.append(await sub.peek())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        await trio.testing.wait_all_tasks_blocked()
        bus.publish(OrderStatus(2, "Filled"))
    assert peeked == [OrderStatus(2, "Filled")]
    assert sub.receive_nowait() == OrderStatus(2, "Filled")


async def test_a_conflated_value_newer_than_the_peek_survives_the_commit() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    bus.publish(Tick(1, 1, 1.0))
    assert await sub.peek() == Tick(1, 1, 1.0)
    bus.publish(Tick(1, 1, 2.0))  # arrives while the reader deals with the old price
    sub.commit()
    assert _pending(sub) == [Tick(1, 1, 2.0)]


async def test_peek_raises_like_receive_once_closed_or_cut_off() -> None:
    bus = EventBus()
    cut = bus.subscribe(capacity=1)
    bus.publish(OrderStatus(1, "Submitted"))
    bus.publish(OrderStatus(2, "Submitted"))
    with pytest.raises(SubscriberOverflow):
        await cut.peek()
    closed = bus.subscribe()
    bus.publish(OrderStatus(3, "Filled"))
    assert await closed.peek() == OrderStatus(3, "Filled")
    closed.close()
    closed.commit()  # the close already discarded it: nothing to do
    with pytest.raises(trio.EndOfChannel):
        await closed.peek()


# --- the actor shell -----------------------------------------------------------------


async def test_the_bus_actor_answers_stats_and_its_restart_keeps_subscriptions() -> None:
    bus = EventBus()
    sub = bus.subscribe([OrderStatus])
    spec = SupervisorSpec("root", children=(
        ChildSpec("bus", functools.partial(run_event_bus, bus=bus)),))
    async with open_supervisor(spec) as supervisor:
        bus.publish(OrderStatus(1, "Filled"))
        stats = await supervisor.address("bus").call(BusStats())
        await supervisor.terminate_child("bus")  # stop and start: a restart of the shell
        await supervisor.start_child("bus")
        bus.publish(OrderStatus(2, "Filled"))
        after = await supervisor.address("bus").call(BusStats())
    assert stats == EventBusStats(
        published=1, delivered=0, conflated=0, overflow_disconnects=0, subscribers=1)
    assert after.published == 2 and after.subscribers == 1
    assert _pending(sub) == [OrderStatus(1, "Filled"), OrderStatus(2, "Filled")]
