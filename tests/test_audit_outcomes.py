"""Every intent in the audit trail gets an outcome, and the trail tells the runtime the
highest order id it ever used: the start-up scan, the ``unresolved_at_restart`` records the
audit actor writes for intents a killed process left open, and a real SIGKILL of a writer."""

from __future__ import annotations

import functools
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from ibkr_connector.actors.audit import (
    ORDER_OUTCOME,
    AppendAudit,
    AppendOutcome,
    AuditTrail,
    CorruptTrail,
    GetTrailSummary,
    OpenIntent,
    OrderOutcome,
    TrailMemory,
    TrailScan,
    TrailSummary,
    outcome_fields,
    read_audit_records,
    run_audit,
    scan_trail,
)
from ibkr_connector.supervisor import ChildSpec, Supervisor, SupervisorSpec, open_supervisor

REPO = Path(__file__).resolve().parents[1]


def _write_run(path: Path, *, settled: set[int], intents: list[tuple[str, int]]) -> None:
    """A run of a runtime that died: intents, and outcomes for the order ids in ``settled``."""
    with AuditTrail(path) as trail:
        for kind, order_id in intents:
            record = trail.append(kind, order_id=order_id)
            if order_id in settled:
                trail.append(ORDER_OUTCOME,
                             **outcome_fields(record.seq, order_id, OrderOutcome.WRITTEN))


def _outcomes(path: Path) -> dict[int, list[str]]:
    """intent seq -> the outcomes recorded for it."""
    found: dict[int, list[str]] = {}
    for record in read_audit_records(path):
        if record.kind == ORDER_OUTCOME:
            found.setdefault(record.fields["intent_seq"], []).append(record.fields["outcome"])
    return found


def _intent_seqs(path: Path) -> list[int]:
    return [r.seq for r in read_audit_records(path) if r.kind in ("order_intent", "cancel_intent")]


@pytest.fixture
async def audit_tree(tmp_path: Path) -> AsyncIterator[tuple[Supervisor, Path]]:
    path = tmp_path / "audit.jsonl"
    _write_run(path, settled={11}, intents=[
        ("order_intent", 10), ("order_intent", 11), ("order_intent", 42), ("cancel_intent", 10)])
    spec = SupervisorSpec("root", children=(ChildSpec("audit", functools.partial(
        run_audit, trail_path=path, memory=TrailMemory())),))
    async with open_supervisor(spec) as supervisor:
        yield supervisor, path


def test_the_scan_finds_the_highest_intent_id_and_the_intents_without_outcome(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.jsonl"
    _write_run(path, settled={11}, intents=[
        ("order_intent", 10), ("order_intent", 11), ("order_intent", 42), ("cancel_intent", 10)])
    scan = scan_trail(path)
    assert scan.max_order_id == 42
    assert [(i.order_id, i.kind) for i in scan.open_intents] == [
        (10, "order_intent"), (42, "order_intent"), (10, "cancel_intent")]


def test_a_missing_trail_scans_as_empty(tmp_path: Path) -> None:
    assert scan_trail(tmp_path / "none.jsonl") == TrailScan(None, ())


def test_a_corrupt_line_anywhere_stops_the_scan_rather_than_guess_an_id(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    _write_run(path, settled=set(), intents=[("order_intent", 1)])
    with path.open("ab") as file:
        file.write(b"{not json\n")
        file.write(b'{"seq":3,"ts":"2026-01-02T15:04:05Z","kind":"order_intent","order_id":2}\n')
    with pytest.raises(CorruptTrail, match="line 2"):
        scan_trail(path)


async def test_the_first_start_settles_every_intent_left_open_and_reports_the_highest_id(
    audit_tree: tuple[Supervisor, Path],
) -> None:
    supervisor, path = audit_tree
    summary = await supervisor.address("audit").call(GetTrailSummary())
    assert isinstance(summary, TrailSummary)
    assert summary.max_order_id == 42
    assert [i.order_id for i in summary.settled_at_start] == [10, 42, 10]
    outcomes = _outcomes(path)
    assert all(len(outcomes.get(seq, [])) == 1 for seq in _intent_seqs(path))
    settled = [r for r in read_audit_records(path) if r.kind == ORDER_OUTCOME
               and r.fields["outcome"] == "unresolved_at_restart"]
    assert [(r.fields["order_id"], r.fields["intent_kind"]) for r in settled] == [
        (10, "order_intent"), (42, "order_intent"), (10, "cancel_intent")]


async def test_a_restart_within_the_run_settles_none_of_the_runs_own_intents(
    audit_tree: tuple[Supervisor, Path],
) -> None:
    supervisor, path = audit_tree
    audit = supervisor.address("audit")
    in_flight = await audit.call(AppendAudit("order_intent", {"order_id": 43}))
    await supervisor.terminate_child("audit")  # stop and start: a restart within the run
    await supervisor.start_child("audit")
    summary = await audit.call(GetTrailSummary())
    assert summary.max_order_id == 43  # the run's own intents count too
    assert in_flight.seq not in _outcomes(path)  # its outcome is still on its way
    await audit.call(AppendOutcome(in_flight.seq, 43, OrderOutcome.DELIVERY_UNKNOWN))
    assert _outcomes(path)[in_flight.seq] == ["delivery_unknown"]


async def test_an_outcome_record_closes_its_intent_for_the_next_start(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    spec = SupervisorSpec("root", children=(ChildSpec("audit", functools.partial(
        run_audit, trail_path=path)),))
    async with open_supervisor(spec) as supervisor:
        audit = supervisor.address("audit")
        intent = await audit.call(AppendAudit("order_intent", {"order_id": 7}))
        outcome = await audit.call(AppendOutcome(intent.seq, 7, OrderOutcome.WRITTEN))
    assert outcome.kind == ORDER_OUTCOME
    assert dict(outcome.fields) == {"intent_seq": intent.seq, "order_id": 7,
                                    "outcome": "written"}
    assert scan_trail(path) == TrailScan(7, ())


def test_an_outcome_message_is_checked_where_it_is_made() -> None:
    with pytest.raises(TypeError):
        AppendOutcome(1, 7, "written")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        AppendOutcome(0, 7, OrderOutcome.WRITTEN)
    with pytest.raises(TypeError):
        AppendOutcome(1, "7", OrderOutcome.WRITTEN)  # type: ignore[arg-type]


# --- a real kill -9 ------------------------------------------------------------------

_WRITER = """
import sys
from ibkr_connector.actors.audit import ORDER_OUTCOME, AuditTrail, OrderOutcome, outcome_fields

trail = AuditTrail(sys.argv[1])
order_id = 100
while True:
    intent = trail.append("order_intent", order_id=order_id, quantity="1", limit_price="1.25")
    if order_id % 3:  # the others are still in flight when the process dies
        trail.append(ORDER_OUTCOME,
                     **outcome_fields(intent.seq, order_id, OrderOutcome.WRITTEN))
    print(order_id, flush=True)
    order_id += 1
"""


def _kill_writer_mid_flow(path: Path, intents: int) -> list[int]:
    """Run the writer until it has acknowledged ``intents`` intents, then SIGKILL it."""
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path)], cwd=REPO,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        assert writer.stdout is not None
        acknowledged = [int(writer.stdout.readline()) for _ in range(intents)]
    finally:
        writer.send_signal(signal.SIGKILL)  # mid-flow: it never stops appending by itself
        writer.wait(timeout=10)
    assert writer.returncode == -signal.SIGKILL, writer.stderr.read() if writer.stderr else ""
    return acknowledged


async def test_after_a_kill_9_mid_flow_every_intent_has_one_outcome_and_no_id_is_forgotten(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.jsonl"
    acknowledged = await trio.to_thread.run_sync(_kill_writer_mid_flow, path, 30)
    before = scan_trail(path)
    assert before.open_intents  # the kill left intents without an outcome

    spec = SupervisorSpec("root", children=(ChildSpec("audit", functools.partial(
        run_audit, trail_path=path, memory=TrailMemory())),))
    async with open_supervisor(spec) as supervisor:
        summary = await supervisor.address("audit").call(GetTrailSummary())

    intents = [r for r in read_audit_records(path) if r.kind == "order_intent"]
    assert summary.max_order_id == max(r.fields["order_id"] for r in intents)
    assert summary.max_order_id >= acknowledged[-1]  # no acknowledged id is forgotten
    assert summary.settled_at_start == before.open_intents
    outcomes = _outcomes(path)
    assert {seq: len(outcomes.get(seq, [])) for seq in _intent_seqs(path)} == {
        seq: 1 for seq in _intent_seqs(path)}
    assert scan_trail(path).open_intents == ()
    assert all(isinstance(i, OpenIntent) and i.order_id is not None and i.order_id % 3 == 0
               for i in before.open_intents[:-1])  # only the in-flight ones were open
