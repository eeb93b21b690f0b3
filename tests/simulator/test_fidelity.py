"""Fidelity: the simulator's answers to a recording's requests, compared per message type
by the rules table; a recording of the simulator itself shows no difference, and an edit
to it shows exactly that edit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio

from ibkr_connector.cli import main
from ibkr_connector.simulator import SimulatorConfig, open_simulator
from ibkr_connector.simulator._fidelity import compare, format_report, run_fidelity
from ibkr_connector.simulator._recording import read_recording

from .recorded_session import record_session, recording_proxy
from .test_ib_async_sync import run_ib_async

HELLO = [("9", "1", "1"), ("15", "1", "DU*****67"), ("4", "-1", "2104", "farm OK", "", "1")]
CONTRACT = ("10", "7", "SPY", "STK", "", "", "0.0", "", "SMART", "USD", "SPY", "SPY", "SPY",
            "756733", "0.01", "", "ACTIVETIM")


def _differences(report: object) -> dict[str, list[str]]:
    return {str(t.msg_id): list(t.differences)  # type: ignore[attr-defined]
            for t in report.types if t.differences}  # type: ignore[attr-defined]


def test_the_same_answers_are_identical_within_the_rules() -> None:
    messages = [*HELLO, CONTRACT, ("52", "1", "7")]
    report = compare(messages, list(messages))
    assert report.identical and not _differences(report) and not report.order
    assert "identical within the rules" in format_report(report)


def test_a_type_only_one_side_sent_is_missing_or_extra() -> None:
    report = compare([*HELLO, ("52", "1", "7")], [*HELLO, ("53", "1")])
    assert _differences(report) == {"52": ["missing: the simulator never sent it"],
                                    "53": ["extra: the simulator sent it, the recording has none"]}
    assert not report.identical


def test_stable_fields_are_compared_and_prices_and_times_are_not() -> None:
    other_con = CONTRACT[:13] + ("1",) + CONTRACT[14:]
    assert _differences(compare([CONTRACT], [other_con])) == {
        "10": ["#1 field 12: recorded '756733', simulated '1'"]}
    status = ("3", "5", "Filled", "2", "0", "501.25", "77", "0", "501.25", "3", "", "0")
    repriced = status[:5] + ("499.0",) + status[6:8] + ("499.0",) + status[9:]
    assert compare([status], [repriced]).identical
    assert _differences(compare([status], [status[:2] + ("Cancelled",) + status[3:]])) == {
        "3": ["#1 field 1: recorded 'Filled', simulated 'Cancelled'"]}


def test_error_codes_are_compared_as_a_multiset_of_request_id_and_code() -> None:
    recorded = [("4", "-1", "2104", "a", "", "1"), ("4", "-1", "2106", "b", "", "1")]
    simulated = [("4", "-1", "2158", "c", "", "9"), ("4", "-1", "2104", "other text", "", "9")]
    assert _differences(compare(recorded, simulated)) == {
        "4": ["keys only recorded: ('-1', '2106')", "keys only simulated: ('-1', '2158')"]}


def test_versions_with_a_version_field_are_compared_at_the_same_positions() -> None:
    recorded = [("4", "2", "-1", "2104", "a")]  # below 194 ERR_MSG has a version field
    assert compare(recorded, [("4", "2", "-1", "2104", "b")], server_version=176).identical
    assert _differences(compare(recorded, [("4", "2", "-1", "2103", "a")],
                                server_version=176)) == {
        "4": ["keys only recorded: ('-1', '2104')", "keys only simulated: ('-1', '2103')"]}


def test_field_counts_and_message_counts_differ() -> None:
    report = compare([CONTRACT, CONTRACT], [CONTRACT + ("extra",)])
    assert _differences(report) == {"10": ["field count: recorded [16], simulated [17]",
                                           "count: recorded 2, simulated 1"]}


def test_ticks_are_compared_by_which_lines_and_tick_types_came_not_how_many() -> None:
    bid, ask = ("1", "6", "11", "1", "500.0", "1", "0"), ("1", "6", "11", "2", "500.1", "1", "0")
    assert compare([bid, ask], [bid, ask, bid, ask, ask]).identical
    assert _differences(compare([bid, ask], [bid, bid])) == {
        "1": ["keys only recorded: ('11', '2')"]}


def test_the_order_of_messages_is_compared() -> None:
    report = compare([*HELLO, CONTRACT, ("52", "1", "7")], [*HELLO, ("52", "1", "7"), CONTRACT])
    assert not _differences(report)
    assert report.order == ("message 4: recorded CONTRACT_DATA, simulated CONTRACT_DATA_END",)
    assert not report.identical


@pytest.fixture
async def recording(tmp_path: Path) -> Path:
    """A recording of the simulator answering contract details, market data, an order."""
    out = tmp_path / "session.jsonl"
    await record_session(out)
    return out


def _run_fidelity(path: Path) -> int:
    # ``fidelity`` starts its own Trio loop, as from a shell.
    return main(["fidelity", str(path)])


async def test_a_recording_of_the_simulator_has_no_difference(
        recording: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert await trio.to_thread.run_sync(_run_fidelity, recording) == 0
    out = capsys.readouterr().out
    assert "identical within the rules" in out and "CONTRACT_DATA" in out
    assert "differs" not in out


def _edit(recording: Path, msg_id: str, index: int, value: str) -> str:
    """Set one field of the first recorded server message ``msg_id``; the old value."""
    lines = recording.read_text().splitlines()
    for number, line in enumerate(lines):
        record = json.loads(line)
        if record.get("dir") == "s2c" and record.get("fields", [""])[0] == msg_id:
            original = str(record["fields"][index])
            record["fields"][index] = value
            lines[number] = json.dumps(record)
            recording.write_text("\n".join(lines) + "\n")
            return original
    raise AssertionError(f"no message {msg_id} recorded")


@pytest.mark.parametrize(("msg_id", "index", "value", "expected"), [
    ("10", 13, "1", "#1 field 12: recorded '1', simulated '756733'"),
    ("4", 2, "2103", "keys only recorded: ('-1', '2103')"),
])
async def test_an_edited_recording_reports_exactly_the_edit(
        recording: Path, capsys: pytest.CaptureFixture[str], msg_id: str, index: int,
        value: str, expected: str) -> None:
    original = _edit(recording, msg_id, index, value)
    assert await trio.to_thread.run_sync(_run_fidelity, recording) == 1
    out = capsys.readouterr().out
    differing = [line for line in out.splitlines() if line.endswith("differs")]
    assert len(differing) == 1 and f"  {msg_id:>2}  " in f"  {differing[0]}"
    assert f"- {expected}" in out
    if msg_id == "4":
        assert f"keys only simulated: ('-1', '{original}')" in out
    assert sum(line.strip().startswith("- ") for line in out.splitlines()) == (
        2 if msg_id == "4" else 1)


async def test_frames_that_are_not_classic_messages_are_noted_not_compared(
        recording: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _append(recording, {"conn": 1, "dir": "s2c", "mono": 0.5, "wall": 0.0, "b64": "AAAAAQI="})
    assert await trio.to_thread.run_sync(_run_fidelity, recording) == 1
    out = capsys.readouterr().out
    assert "note: 1 recorded frames are not classic text messages" in out
    assert "differs" not in out


def _append(recording: Path, record: dict[str, object]) -> None:
    with recording.open("a") as file:
        file.write(json.dumps(record) + "\n")


async def test_an_ib_async_session_against_the_simulator_has_no_difference(
        tmp_path: Path) -> None:
    out = tmp_path / "ib_async.jsonl"
    async with open_simulator(SimulatorConfig(port=0)) as sim:
        async with recording_proxy(sim.port, out) as port:
            with trio.fail_after(15):
                await trio.to_thread.run_sync(run_ib_async, port)
    report = await run_fidelity(read_recording(out))
    assert report.identical, format_report(report)
    # ib_async's start-up sync: positions, completed orders, account updates (multi)
    assert {62, 102, 74} <= {row.msg_id for row in report.types}
