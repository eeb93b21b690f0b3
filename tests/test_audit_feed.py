"""Order statuses and executions reach the audit trail even when the trail fails under them:
the audit actor peeks an event, writes it, fsyncs, and only then takes it off the feed, so
a crash re-delivers the event to the restarted actor, which writes it exactly once."""

from __future__ import annotations

import functools
import os
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import attrs
import pytest
import trio

from ibkr_connector.actors.audit import AuditRecord, TrailMemory, read_audit_records, run_audit
from ibkr_connector.actors.bus import EventBus
from ibkr_connector.protocol import events as ev
from ibkr_connector.supervisor import ChildSpec, Supervisor, SupervisorSpec, open_supervisor


def _status(order_id: int, state: str, filled: str, remaining: str) -> ev.OrderStatus:
    return ev.OrderStatus(order_id, state, Decimal(filled), Decimal(remaining), 0.0, 1, 0,
                          0.0, 1, "", 0.0)


@attrs.define
class Tree:
    supervisor: Supervisor
    bus: EventBus
    path: Path

    def records(self, kind: str) -> list[AuditRecord]:
        return [r for r in read_audit_records(self.path) if r.kind == kind]

    def audit_restarts(self) -> int:
        info = self.supervisor.tree().find("audit")
        assert info is not None
        return info.restarts

    async def wait_for(self, kind: str, count: int) -> None:
        with trio.fail_after(5):
            while len(self.records(kind)) < count:
                await trio.sleep(0.01)


@pytest.fixture
async def tree(tmp_path: Path) -> AsyncIterator[Tree]:
    """An audit actor under a supervisor, its feed owned outside it as the runtime does."""
    bus = EventBus()
    feed = bus.subscribe((ev.OrderStatus, ev.ExecDetails), capacity=1000)
    path = tmp_path / "audit.jsonl"
    spec = SupervisorSpec("root", children=(ChildSpec("audit", functools.partial(
        run_audit, trail_path=path, status_feed=feed, memory=TrailMemory())),))
    async with open_supervisor(spec) as supervisor:
        yield Tree(supervisor, bus, path)


def _fail_once(monkeypatch: pytest.MonkeyPatch, name: str) -> Callable[[], None]:
    """Arm a one-shot OSError in ``os.<name>`` (write or fsync); returns the arming call."""
    real = getattr(os, name)
    armed: list[bool] = []

    def failing(*args: object) -> object:
        if armed:
            armed.clear()
            raise OSError(5, "Input/output error")
        return real(*args)

    monkeypatch.setattr(os, name, failing)
    return lambda: armed.append(True)


@pytest.mark.parametrize("failing_call", ["write", "fsync"])
async def test_a_status_whose_write_failed_is_written_once_after_the_restart(
    tree: Tree, monkeypatch: pytest.MonkeyPatch, failing_call: str
) -> None:
    arm = _fail_once(monkeypatch, failing_call)
    arm()
    tree.bus.publish(_status(5, "Filled", "2", "0"))
    await tree.wait_for("order_status", 1)
    tree.bus.publish(_status(6, "Submitted", "0", "1"))  # the restarted actor carries on
    await tree.wait_for("order_status", 2)
    statuses = [(r.fields["order_id"], r.fields["status"]) for r in tree.records("order_status")]
    assert statuses == [(5, "Filled"), (6, "Submitted")]
    assert tree.audit_restarts() == 1  # the OSError crashed it; the restart repaired it


async def test_an_execution_whose_write_failed_is_written_once_after_the_restart(
    tree: Tree, monkeypatch: pytest.MonkeyPatch
) -> None:
    arm = _fail_once(monkeypatch, "fsync")
    execution = SimpleNamespace(orderId=5, execId="0001.01", acctNumber="DU1234567",
                                side="BOT", shares=Decimal("2"), price=1.25, time="t")
    arm()
    tree.bus.publish(ev.ExecDetails(1, None, execution))
    await tree.wait_for("execution", 1)
    tree.bus.publish(_status(5, "Filled", "2", "0"))  # whatever follows is written after it
    await tree.wait_for("order_status", 1)
    assert [r.fields["exec_id"] for r in tree.records("execution")] == ["0001.01"]
    assert tree.audit_restarts() == 1


async def test_the_dedupe_neither_drops_a_redelivered_status_nor_repeats_an_old_one(
    tree: Tree, monkeypatch: pytest.MonkeyPatch
) -> None:
    arm = _fail_once(monkeypatch, "fsync")
    tree.bus.publish(_status(5, "Submitted", "0", "2"))
    await tree.wait_for("order_status", 1)
    arm()
    tree.bus.publish(_status(5, "Filled", "2", "0"))  # its write fails: the actor restarts
    await tree.wait_for("order_status", 2)
    tree.bus.publish(_status(5, "Filled", "2", "0"))  # TWS repeating itself after the restart
    tree.bus.publish(_status(7, "Submitted", "0", "1"))
    await tree.wait_for("order_status", 3)
    statuses = [(r.fields["order_id"], r.fields["status"]) for r in tree.records("order_status")]
    assert statuses == [(5, "Submitted"), (5, "Filled"), (7, "Submitted")]
    assert tree.audit_restarts() == 1


async def test_a_non_finite_price_from_tws_is_recorded_as_text_not_a_crash_loop(
    tree: Tree,
) -> None:
    weird = attrs.evolve(_status(9, "Filled", "1", "0"), avg_fill_price=float("nan"))
    tree.bus.publish(weird)
    await tree.wait_for("order_status", 1)
    assert tree.records("order_status")[0].fields["avg_fill_price"] == "nan"
    assert tree.audit_restarts() == 0
