"""The line budget: one line per contract, waiting by priority, never past the budget."""

from __future__ import annotations

import itertools

import pytest

from ibkr_connector.actors.market_lines import LineBook, LineBudgetExhausted


def book(budget: int) -> LineBook[str]:
    ids = itertools.count(1)
    return LineBook(budget, lambda: next(ids))


def test_one_line_per_contract_however_many_holders() -> None:
    lines = book(2)
    line, wants = lines.acquire("SPY", "spy")
    assert [w.req_id for w in wants] == [1]
    again, more = lines.acquire("SPY", "spy")
    assert again is line and more == [] and line.holders == 2
    assert lines.release("SPY") == []  # one holder left: the line stays
    wants = lines.release("SPY")
    assert [(w.req_id, w.cancel) for w in wants] == [(1, True)]
    assert len(lines) == 0


def test_past_the_budget_a_subscription_fails_with_a_typed_error() -> None:
    lines = book(1)
    lines.acquire("SPY", "spy")
    with pytest.raises(LineBudgetExhausted):
        lines.acquire("QQQ", "qqq")
    assert lines.in_use == 1 and len(lines) == 1


def test_waiters_get_freed_lines_by_priority_then_arrival() -> None:
    lines = book(1)
    lines.acquire("SPY", "spy")
    lines.acquire("late-urgent", "x", priority=0, wait=True)
    lines.acquire("early-lazy", "y", priority=5, wait=True)
    lines.acquire("later-urgent", "z", priority=0, wait=True)
    assert lines.in_use == 1 and lines.waiting == 3
    wants = lines.release("SPY")
    assert [(w.line.key, w.cancel) for w in wants] == [("SPY", True), ("late-urgent", False)]
    wants = lines.release("late-urgent")
    assert [w.line.key for w in wants if not w.cancel] == ["later-urgent"]


def test_a_lost_connection_restores_every_line_under_new_ids() -> None:
    lines = book(3)
    old = {w.req_id for key in ("A", "B") for w in lines.acquire(key, key)[1]}
    lines.forget_all()
    assert lines.live_req_ids() == frozenset()
    # Released while down: no cancel goes out (TWS already forgot it).
    assert lines.release("B", link_up=False) == []
    wants = lines.restore()
    assert [w.line.key for w in wants] == ["A"]
    assert not {w.req_id for w in wants} & old
    assert lines.restore() == []  # nothing twice


def test_a_refused_line_gives_its_slot_to_the_next_waiter() -> None:
    lines = book(1)
    _, wants = lines.acquire("BAD", "bad")
    lines.acquire("GOOD", "good", wait=True)
    line, promoted = lines.refused(wants[0].req_id)
    assert line is not None and line.key == "BAD" and not line.has_slot
    assert [w.line.key for w in promoted] == ["GOOD"]
    # The refused line is not asked for again by a restore.
    lines.forget_all()
    assert [w.line.key for w in lines.restore()] == ["GOOD"]


def test_a_slot_taken_while_the_link_is_down_is_asked_for_on_restore() -> None:
    lines = book(2)
    _, wants = lines.acquire("A", "a", link_up=False)
    assert wants == [] and lines.in_use == 1
    assert [w.line.key for w in lines.restore()] == ["A"]


def test_one_forgotten_line_is_asked_for_again_alone() -> None:
    lines = book(2)
    first = lines.acquire("A", "a")[1][0].req_id
    lines.acquire("B", "b")
    lines.forget_line("A")
    assert lines.by_req_id(first) is None
    assert [w.line.key for w in lines.restore()] == ["A"]


def test_the_tick_meter_counts_the_last_whole_second() -> None:
    from ibkr_connector.actors.market_data_state import RateMeter

    meter = RateMeter()
    for i in range(10):
        meter.record(5.0 + i * 0.05)  # 10 ticks in [5.0, 5.45]
    assert meter.per_second(5.5) == 0  # the first second is not over yet
    meter.record(6.1)
    assert meter.per_second(6.2) == 10 and meter.total == 11
    assert meter.per_second(9.0) == 0  # quiet since
