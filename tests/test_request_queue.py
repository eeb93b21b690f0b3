"""The limiter's outbound queue: strict priority between classes, FIFO within one, and a
re-queued request back at the head of its class."""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from ibkr_connector.actors.request_queue import Priority, RequestQueue


def test_priorities_are_ordered_cancel_order_market_data_info() -> None:
    assert sorted(Priority) == [
        Priority.CANCEL, Priority.ORDER, Priority.MARKET_DATA, Priority.INFO
    ]
    assert (Priority.CANCEL, Priority.INFO) == (0, 3)


def test_a_cancel_overtakes_everything_queued_before_it() -> None:
    queue: RequestQueue[str] = RequestQueue()
    queue.push("history", Priority.INFO)
    queue.push("ticker", Priority.MARKET_DATA)
    queue.push("place", Priority.ORDER)
    queue.push("cancel", Priority.CANCEL)
    assert [queue.pop() for _ in range(4)] == ["cancel", "place", "ticker", "history"]


def test_one_priority_is_first_in_first_out() -> None:
    queue: RequestQueue[int] = RequestQueue()
    for i in range(5):
        queue.push(i, Priority.MARKET_DATA)
    assert [queue.pop() for _ in range(5)] == [0, 1, 2, 3, 4]


def test_push_front_puts_a_requeued_request_at_the_head_of_its_priority_only() -> None:
    queue: RequestQueue[str] = RequestQueue()
    queue.push("cancel", Priority.CANCEL)
    queue.push("order-2", Priority.ORDER)
    queue.push_front("order-1 (paced out, retried)", Priority.ORDER)
    assert queue.drain() == ["cancel", "order-1 (paced out, retried)", "order-2"]


def test_pop_from_an_empty_queue_raises_index_error() -> None:
    queue: RequestQueue[str] = RequestQueue()
    with pytest.raises(IndexError):
        queue.pop()


def test_len_bool_and_peek_priority_follow_the_contents() -> None:
    queue: RequestQueue[str] = RequestQueue()
    assert (len(queue), bool(queue), queue.peek_priority()) == (0, False, None)
    queue.push("a", Priority.INFO)
    queue.push("b", Priority.ORDER)
    assert (len(queue), bool(queue), queue.peek_priority()) == (2, True, Priority.ORDER)
    assert queue.count(Priority.INFO) == 1
    queue.pop()
    assert queue.peek_priority() == Priority.INFO


def test_drain_empties_the_queue_in_pop_order() -> None:
    queue: RequestQueue[str] = RequestQueue()
    queue.push("info", Priority.INFO)
    queue.push("cancel", Priority.CANCEL)
    assert queue.drain() == ["cancel", "info"]
    assert len(queue) == 0
    assert queue.peek_priority() is None


def test_remove_takes_out_matching_requests_and_keeps_the_order_of_the_rest() -> None:
    queue: RequestQueue[tuple[str, int]] = RequestQueue()
    for i in range(4):
        queue.push(("mkt", i), Priority.MARKET_DATA)
    queue.push(("hist", 9), Priority.INFO)
    removed = queue.remove(lambda item: item[1] % 2 == 1)
    assert removed == [("mkt", 1), ("mkt", 3), ("hist", 9)]
    assert len(queue) == 2
    assert queue.drain() == [("mkt", 0), ("mkt", 2)]


def test_remove_with_a_failing_predicate_leaves_the_queue_consistent() -> None:
    queue: RequestQueue[int] = RequestQueue()
    queue.push(1, Priority.CANCEL)
    queue.push(2, Priority.ORDER)

    def predicate(item: int) -> bool:
        if item == 2:
            raise RuntimeError("boom")
        return True

    with pytest.raises(RuntimeError):
        queue.remove(predicate)
    assert len(queue) == len(queue.drain())


def test_an_invalid_priority_is_rejected() -> None:
    queue: RequestQueue[str] = RequestQueue()
    with pytest.raises(ValueError):
        queue.push("x", 7)


@given(st.lists(st.sampled_from(list(Priority)), max_size=60))
def test_pop_order_is_priority_then_insertion_order(priorities: list[Priority]) -> None:
    queue: RequestQueue[int] = RequestQueue()
    for index, priority in enumerate(priorities):
        queue.push(index, priority)
    popped = [queue.pop() for _ in range(len(priorities))]
    assert popped == sorted(range(len(priorities)), key=lambda i: (priorities[i], i))


class RequestQueueMachine(RuleBasedStateMachine):
    """The queue against a model: one list per priority, popped from the lowest."""

    def __init__(self) -> None:
        super().__init__()
        self.queue: RequestQueue[int] = RequestQueue()
        self.model: dict[Priority, list[int]] = {p: [] for p in Priority}
        self.counter = 0

    def _next(self) -> int:
        self.counter += 1
        return self.counter

    @rule(priority=st.sampled_from(list(Priority)))
    def push(self, priority: Priority) -> None:
        item = self._next()
        self.queue.push(item, priority)
        self.model[priority].append(item)

    @rule(priority=st.sampled_from(list(Priority)))
    def push_front(self, priority: Priority) -> None:
        item = self._next()
        self.queue.push_front(item, priority)
        self.model[priority].insert(0, item)

    @precondition(lambda self: len(self.queue) > 0)
    @rule()
    def pop(self) -> None:
        expected = next(items for items in self.model.values() if items).pop(0)
        assert self.queue.pop() == expected

    @rule(modulus=st.integers(min_value=2, max_value=4))
    def remove(self, modulus: int) -> None:
        removed = self.queue.remove(lambda item: item % modulus == 0)
        expected = [i for p in Priority for i in self.model[p] if i % modulus == 0]
        for p in Priority:
            self.model[p] = [i for i in self.model[p] if i % modulus != 0]
        assert removed == expected

    @invariant()
    def sizes_agree(self) -> None:
        assert len(self.queue) == sum(len(items) for items in self.model.values())
        head = next((p for p in Priority if self.model[p]), None)
        assert self.queue.peek_priority() == head


TestRequestQueueAgainstModel = RequestQueueMachine.TestCase
