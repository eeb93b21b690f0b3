"""`ibkr-connector audit`: the trail read back, one line per record, filtered as asked."""

from __future__ import annotations

import datetime
import json
import os
import stat
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from ibkr_connector.actors.audit_trail import AuditTrail, read_audit_records
from ibkr_connector.audit_report import AuditReportError, parse_since
from ibkr_connector.cli import main

START = datetime.datetime(2026, 12, 1, 9, 30, tzinfo=datetime.UTC)


def _clock(step: datetime.timedelta) -> Iterator[datetime.datetime]:
    moment = START
    while True:
        yield moment
        moment += step


@pytest.fixture
def trail(tmp_path: Path) -> Path:
    """A trail of one order's life, a minute between records, and a second order."""
    path = tmp_path / "audit.jsonl"
    ticks = _clock(datetime.timedelta(minutes=1))
    with AuditTrail(path, clock=lambda: next(ticks)) as t:
        t.append("order_intent", order_id=7, action="BUY", quantity="2", order_type="LMT",
                 limit_price=Decimal("1.05"), tif="DAY", account="DU1234567",
                 contract={"symbol": "SPY", "sec_type": "BAG", "legs": [
                     {"con_id": 11, "ratio": 1, "action": "BUY"},
                     {"con_id": 12, "ratio": 1, "action": "SELL"}]})
        t.append("order_outcome", intent_seq=1, order_id=7, outcome="written")
        t.append("order_status", order_id=7, status="Submitted", filled="0", remaining="2")
        t.append("execution", order_id=7, exec_id="e1", side="BOT", shares="2", price=1.04)
        t.append("order_status", order_id=7, status="Filled", filled="2", remaining="0")
        t.append("cancel_intent", order_id=8)
    return path


def audit(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str], str]:
    code = main(["audit", *args])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


def test_each_record_is_one_line_with_seq_time_kind_order_and_what_it_says(
        trail: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, lines, _ = audit(capsys, "--path", str(trail))
    assert code == 0 and len(lines) == 6
    first = lines[0].split()
    assert first[:5] == ["1", "2026-12-01T09:30:00.000Z", "order_intent", "order", "7"]
    assert "BUY 2 LMT @ 1.05 DAY SPY BAG BUY 1x11 SELL 1x12" in lines[0]
    assert "outcome=written" in lines[1] and "intent_seq=1" in lines[1]
    assert "status=Submitted" in lines[2] and "remaining=2" in lines[2]
    assert "BOT 2 @ 1.04" in lines[3] and "exec_id=e1" in lines[3]
    assert lines[5].split()[2:5] == ["cancel_intent", "order", "8"]


def test_filters_by_kind_and_order(trail: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, lines, _ = audit(capsys, "--path", str(trail), "--kind", "order_status",
                        "--kind", "execution")
    assert [line.split()[2] for line in lines] == ["order_status", "execution", "order_status"]
    _, lines, _ = audit(capsys, "--path", str(trail), "--order", "8")
    assert [line.split()[0] for line in lines] == ["6"]


def test_since_takes_an_iso_time_or_a_duration(trail: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    _, lines, _ = audit(capsys, "--path", str(trail), "--since", "2026-12-01T09:33:00Z")
    assert [line.split()[0] for line in lines] == ["4", "5", "6"]
    now = START + datetime.timedelta(minutes=5)
    assert parse_since("90s", now) == now - datetime.timedelta(seconds=90)
    assert parse_since("1h30m", now) == now - datetime.timedelta(minutes=90)
    assert parse_since("2026-12-01 09:31", now) == START + datetime.timedelta(minutes=1)
    with pytest.raises(AuditReportError):
        parse_since("yesterday", now)
    code, lines, _ = audit(capsys, "--path", str(trail), "--since", "1h")
    assert code == 0 and lines == []  # the trail's records are in the past of the real clock


def test_json_prints_the_stored_records(trail: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, lines, _ = audit(capsys, "--path", str(trail), "--json", "--order", "7")
    records = [json.loads(line) for line in lines]
    assert [r["seq"] for r in records] == [1, 2, 3, 4, 5]
    assert records[0]["limit_price"] == "1.05" and records[0]["account"] == "DU1234567"
    assert records[0]["ts"] == "2026-12-01T09:30:00.000000Z"


def test_a_torn_last_line_is_skipped_and_the_trail_left_as_it_was(
        trail: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with open(trail, "ab") as file:
        file.write(b'{"seq": 7, "ts": "2026-12-01T09:')
    before = trail.read_bytes(), os.stat(trail).st_mtime_ns
    os.chmod(trail, stat.S_IRUSR)  # read-only: reading must not need write access
    code, lines, _ = audit(capsys, "--path", str(trail))
    assert code == 0 and [line.split()[0] for line in lines] == ["1", "2", "3", "4", "5", "6"]
    assert (trail.read_bytes(), os.stat(trail).st_mtime_ns) == before


def test_a_missing_trail_is_one_line_on_stderr(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    code, lines, err = audit(capsys, "--path", str(tmp_path / "nothing.jsonl"))
    assert code != 0 and lines == []
    assert err.count("\n") == 1 and "no audit trail at" in err


def test_the_default_path_is_the_one_the_runtime_uses(
        trail: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IBKR_AUDIT_PATH", str(trail))
    monkeypatch.delenv("IBKR_CONFIG", raising=False)
    _, lines, _ = audit(capsys, "--kind", "cancel_intent")
    assert len(lines) == 1 and lines[0].split()[0] == "6"
    monkeypatch.delenv("IBKR_AUDIT_PATH")
    monkeypatch.setenv("XDG_STATE_HOME", str(trail.parent / "state"))
    _, _, err = audit(capsys)
    assert str(trail.parent / "state" / "ibkr-connector" / "audit.jsonl") in err
    assert len(list(read_audit_records(trail))) == 6


def test_help_says_it_prints_prices_and_quantities(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["audit", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "quantities, prices" in out and "--since" in out
