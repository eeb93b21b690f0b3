"""Order intents reach the audit trail (fsync'd) before the wire, and status changes follow."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import trio
from helpers import spy_stock
from ibapi.contract import Contract
from ibapi.order import Order

from ibkr_connector.actors.audit import read_audit_records
from ibkr_connector.actors.limiter import Submit, UnauditedOrder
from ibkr_connector.config import IBKRConfig
from ibkr_connector.protocol import events as ev
from ibkr_connector.protocol.requests import CancelMktData, CancelOrder, PlaceOrder, ReqMktData
from ibkr_connector.runtime import open_runtime
from ibkr_connector.simulator import TwsSimulator
from ibkr_connector.supervisor import ActorCrashed, ActorNotRunning, CallTimeout

_PLACE_ORDER = 3


def _spread_leg() -> Contract:
    c = Contract()
    c.symbol, c.secType, c.exchange, c.currency = "SPY", "OPT", "SMART", "USD"
    c.lastTradeDateOrContractMonth, c.strike, c.right, c.multiplier = "20261218", 600.0, "C", "100"
    return c


def _order(quantity: str = "2", limit: float = 1.25) -> Order:
    o = Order()
    o.action, o.totalQuantity, o.orderType, o.lmtPrice = "BUY", Decimal(quantity), "LMT", limit
    o.account = "DU1234567"
    return o


def _placed(sim: TwsSimulator) -> list[int]:
    return [int(m.fields[0]) for m in sim.received if m.msg_id == _PLACE_ORDER]


async def test_an_order_intent_is_audited_before_it_reaches_the_wire(
    sim: TwsSimulator, tmp_path: Path
) -> None:
    audit = tmp_path / "audit.jsonl"
    async with open_runtime(IBKRConfig(port=sim.port), audit_path=audit, connect=True) as rt:
        await rt.submit(PlaceOrder(7, _spread_leg(), _order()))
        with trio.fail_after(5):
            while 7 not in _placed(sim):
                await trio.sleep(0.01)
        records = read_audit_records(audit)
    intent = next(r for r in records if r.kind == "order_intent")
    assert intent.fields["order_id"] == 7
    assert intent.fields["quantity"] == "2"  # the trail is complete: quantities, prices...
    assert intent.fields["limit_price"] == "1.25"
    assert intent.fields["account"] == "DU1234567"
    assert intent.fields["contract"]["strike"] == "600.0"


async def test_no_audit_no_order_while_the_audit_actor_is_down(
    sim: TwsSimulator, tmp_path: Path
) -> None:
    audit = tmp_path / "audit.jsonl"
    async with open_runtime(IBKRConfig(port=sim.port), audit_path=audit, connect=True) as rt:
        await rt.stop("audit")
        with pytest.raises(ActorNotRunning):
            await rt.submit(PlaceOrder(8, _spread_leg(), _order()))
        await trio.sleep(0.1)
        assert 8 not in _placed(sim)  # nothing reached TWS without its record
        await rt.start("audit")
        await rt.submit(PlaceOrder(9, _spread_leg(), _order()))
        await rt.submit(CancelOrder(9))
    kinds = [(r.kind, r.fields.get("order_id")) for r in read_audit_records(audit)]
    assert ("order_intent", 8) not in kinds
    assert ("order_intent", 9) in kinds
    assert ("cancel_intent", 9) in kinds


async def test_the_limiter_refuses_an_order_without_an_audit_record(
    sim: TwsSimulator, tmp_path: Path
) -> None:
    async with open_runtime(IBKRConfig(port=sim.port), audit_path=tmp_path / "a.jsonl",
                            connect=True) as rt:
        limiter = rt.supervisor.address("limiter")
        with pytest.raises(UnauditedOrder):
            await limiter.call(Submit(PlaceOrder(11, _spread_leg(), _order())))
        with pytest.raises(UnauditedOrder):
            await limiter.call(Submit(CancelOrder(11)))
        await limiter.call(Submit(CancelMktData(1)))  # anything else passes
    assert 11 not in _placed(sim)


async def test_order_status_changes_are_audited_once_per_change(
    sim: TwsSimulator, tmp_path: Path
) -> None:
    audit = tmp_path / "audit.jsonl"

    def status(state: str, filled: str, remaining: str) -> ev.OrderStatus:
        return ev.OrderStatus(5, state, Decimal(filled), Decimal(remaining), 0.0, 1, 0, 0.0,
                              1, "", 0.0)

    async with open_runtime(IBKRConfig(port=sim.port), audit_path=audit) as rt:
        for event in (status("Submitted", "0", "2"), status("Submitted", "0", "2"),
                      status("Filled", "2", "0")):
            rt.bus.publish(event)  # as the connection actor would, from TWS
        with trio.fail_after(5):
            while sum(r.kind == "order_status" for r in read_audit_records(audit)) < 2:
                await trio.sleep(0.01)
        await trio.sleep(0.05)
    statuses = [r.fields["status"] for r in read_audit_records(audit) if r.kind == "order_status"]
    assert statuses == ["Submitted", "Filled"]


async def test_stats_count_market_data_lines_held_at_tws(
    sim: TwsSimulator, tmp_path: Path
) -> None:
    async with open_runtime(IBKRConfig(port=sim.port), audit_path=tmp_path / "a.jsonl",
                            connect=True) as rt:
        await rt.submit(ReqMktData(1, spy_stock()))
        await rt.submit(ReqMktData(2, spy_stock()))
        await rt.submit(CancelMktData(1))
        held = (await rt.stats())["subscriptions"]
        await sim.drop_all()
        with trio.fail_after(5):
            while await rt.is_connected():
                await trio.sleep(0.01)
        after_drop = (await rt.stats())["subscriptions"]
    assert held["market_data_lines"] == 1  # type: ignore[index]
    assert after_drop["market_data_lines"] == 0  # type: ignore[index]


async def test_an_order_whose_caller_gave_up_is_never_sent_late(
    sim: TwsSimulator, tmp_path: Path
) -> None:
    async with open_runtime(IBKRConfig(port=sim.port), audit_path=tmp_path / "a.jsonl",
                            connect=True) as rt:
        await rt.disconnect()
        limiter = rt.supervisor.address("limiter")
        with pytest.raises(CallTimeout):  # TWS is away: the caller stops waiting
            await limiter.call(Submit(PlaceOrder(21, _spread_leg(), _order()), audit_seq=1),
                               timeout=0.2)
        await rt.connect()
        await rt.submit(PlaceOrder(22, _spread_leg(), _order()))  # the queue moves on
        stats = (await rt.status()).limiter
    assert 21 not in _placed(sim)
    assert 22 in _placed(sim)
    assert stats.failed == 1


async def test_an_order_held_across_a_limiter_restart_is_not_sent_after_its_caller_failed(
    sim: TwsSimulator, tmp_path: Path
) -> None:
    async with open_runtime(IBKRConfig(port=sim.port), audit_path=tmp_path / "a.jsonl",
                            connect=True) as rt:
        await rt.disconnect()
        limiter = rt.supervisor.address("limiter")
        async with trio.open_nursery() as nursery:
            outcome: list[BaseException] = []

            async def place() -> None:
                try:
                    await limiter.call(
                        Submit(PlaceOrder(31, _spread_leg(), _order()), audit_seq=1))
                except (ActorNotRunning, ActorCrashed) as exc:
                    outcome.append(exc)

            nursery.start_soon(place)
            await trio.sleep(0.1)
            await rt.restart("limiter")
        await rt.connect()
        await rt.submit(CancelMktData(1))  # the restarted limiter serves
    assert outcome  # the caller was told it failed...
    assert 31 not in _placed(sim)  # ...and so it did not happen
