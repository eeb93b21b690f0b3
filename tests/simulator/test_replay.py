"""Replaying a recording: which request each recorded answer belongs to, matching a
client's requests with ids remapped, recorded timing scaled by speed, and a fresh ibapi
client seeing the callbacks it saw when the session was recorded."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import pytest
import trio
import trio.testing

from ibkr_connector.simulator._codec import frame
from ibkr_connector.simulator._recording import (
    Frame,
    FrameSplitter,
    Recording,
    fields_of,
    frame_record,
    header_record,
    parse_recording,
    read_recording,
)
from ibkr_connector.simulator._replay import IdMap, RequestMatcher, build_script, serve_replay

from .recorded_session import cli_server, record_session, run_script, session_client

VERSION_RANGE = b"v100..200"
MKT_SPY = ("1", "11", "5", "756733", "SPY", "STK")


def _recording(*frames: tuple[float, str, tuple[object, ...] | bytes]) -> Recording:
    """A one-connection recording from (mono, direction, fields or raw payload)."""
    lines = [header_record("sim:7497", False, 0.0)]
    for mono, direction, content in frames:
        if isinstance(content, bytes):
            item = Frame(direction, content, framed=content != b"API\0")  # type: ignore[arg-type]
        else:
            item = Frame(direction, frame(content)[4:])  # type: ignore[arg-type]
        lines.append(frame_record(1, item, mono, 1.7e9 + mono, None))
    return parse_recording(json.dumps(line) for line in lines)


SESSION = _recording(
    (0.0, "c2s", b"API\0"), (0.0, "c2s", VERSION_RANGE),
    (0.01, "s2c", (200, "20260101 09:30:00 EST")),
    (0.02, "c2s", (71, 2, 3, "")),
    (0.03, "s2c", (9, 1, 1)), (0.04, "s2c", (4, -1, 2104, "farm OK", "", 0)),
    (1.0, "c2s", MKT_SPY),
    (1.2, "s2c", (1, 6, 5, 1, "500.0", "10", 0)),
    (2.0, "c2s", (49, 1)),
    (2.01, "s2c", (49, 1, 1767000000)),
    (3.0, "s2c", (1, 6, 5, 2, "500.5", "10", 0)),
    (4.0, "c2s", (61, 1)),
    (4.1, "s2c", (61, 3, "DU1234567", 756733, "SPY")),
)


def test_each_recorded_answer_belongs_to_the_request_that_caused_it() -> None:
    script = build_script(list(SESSION.frames))
    assert script.server_version == 200
    assert [r.msg_id for r in script.requests] == [71, 1, 49, 61]
    by_type = {a.fields[0]: [] for a in script.answers if a.fields}  # type: ignore[index]
    for answer in script.answers:
        assert answer.fields is not None
        by_type[answer.fields[0]].append((answer.trigger, round(answer.delay, 3)))
    assert by_type["9"] == [(0, 0.01)]  # next valid id: startApi
    assert by_type["4"] == [(0, 0.02)]  # a notice with no id: the request before it
    assert by_type["1"] == [(1, 0.2), (1, 2.0)]  # ticks: their line, at their own pace
    assert by_type["49"] == [(2, 0.01)]
    assert by_type["61"] == [(3, 0.1)]  # solicited without an id: reqPositions


def test_a_request_matches_a_recorded_one_with_the_same_fields_apart_from_its_id() -> None:
    script = build_script(list(SESSION.frames))
    matcher = RequestMatcher(script.requests)
    assert matcher.match(71, ("2", "99", ""), 200) is script.requests[0]  # any client id
    assert matcher.match(1, ("11", "42", "756733", "QQQ", "STK"), 200) is None
    matched = matcher.match(1, ("11", "42", "756733", "SPY", "STK"), 200)
    assert matched is script.requests[1]
    first = matcher.match(49, ("1",), 200)
    assert first is script.requests[2]
    assert matcher.match(49, ("1",), 200) is first  # a repeat reuses the last answer


def test_answers_go_out_with_the_clients_ids() -> None:
    script = build_script(list(SESSION.frames))
    ids = IdMap()
    ids.learn(script.requests[1], ("11", "42", "756733", "SPY", "STK"))
    tick = script.answers_to(1)[0]
    (next_id,) = (a for a in script.answers if a.fields and a.fields[0] == "9")
    assert fields_of(ids.remap(tick, 200)[4:]) == ("1", "6", "42", "1", "500.0", "10", "0")
    assert ids.remap(next_id, 200) == next_id.wire  # an order id is not a request's id


async def _raw_session(port: int, requests: list[tuple[object, ...]],
                       quiet: float) -> list[tuple[float, tuple[str, ...]]]:
    """Handshake, then the requests; every answer with its Trio arrival time, relative to
    the last request."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    splitter, got = FrameSplitter("s2c"), []
    await stream.send_all(b"API\0" + struct.pack("!I", len(VERSION_RANGE)) + VERSION_RANGE)
    for request in requests:
        await stream.send_all(frame(request))
    sent = trio.current_time()
    with trio.move_on_after(quiet):
        while data := await stream.receive_some(65536):
            got += [(trio.current_time() - sent, fields_of(f.payload) or ())
                    for f in splitter.feed(data)]
    await stream.aclose()
    return got


@pytest.mark.parametrize("speed", [1.0, 4.0])
async def test_recorded_timing_is_replayed_scaled_by_speed(
        speed: float, autojump_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery:
        port = await nursery.start(lambda task_status: serve_replay(
            SESSION, 0, speed=speed, task_status=task_status))
        got = await _raw_session(port, [(71, 2, 8, ""), MKT_SPY], quiet=10.0)
        nursery.cancel_scope.cancel()
    assert got[0][1] == ("200", "20260101 09:30:00 EST")
    ticks = [(round(at, 3), fields[4]) for at, fields in got if fields[0] == "1"]
    assert ticks == [(round(0.2 / speed, 3), "500.0"), (round(2.0 / speed, 3), "500.5")]
    assert not [f for _, f in got if f[0] in ("49", "61")]  # never asked for


async def test_a_fresh_ibapi_client_sees_the_recorded_callbacks(tmp_path: Path) -> None:
    out = tmp_path / "session.jsonl"
    recorded = await record_session(out)  # client id 3, request ids 10 and 11
    # The simulator is gone: whatever the client sees now comes from the recording.
    async with trio.open_nursery() as nursery:
        port = await nursery.start(lambda task_status: serve_replay(
            read_recording(out), 0, speed=4.0, task_status=task_status))
        client = session_client()
        try:
            replayed = await run_script(client, port, client_id=9, first_req_id=50)
        finally:
            await client.close()
        nursery.cancel_scope.cancel()
    as_json = json.dumps(recorded, default=str).replace("DU1234567", "DU*****67")
    expected = json.loads(re.sub(r"\[1([01])([,\]])", r"[5\1\2", as_json))  # ids 10, 11
    assert json.loads(json.dumps(replayed, default=str)) == expected


async def test_sim_replay_from_the_shell_answers_an_ibapi_client(tmp_path: Path) -> None:
    out = tmp_path / "session.jsonl"
    recorded = await record_session(out)
    async with cli_server("sim", "--replay", str(out), "--port", "0", "--speed", "4") as (
            port, _):
        client = session_client()
        try:
            replayed = await run_script(client, port)
        finally:
            await client.close()
    assert [name for name, _ in replayed] == [name for name, _ in recorded]
    assert replayed[2] == recorded[2]  # the contract details, as recorded


async def test_a_client_that_leaves_with_answers_pending_does_not_stop_the_replay(
        autojump_clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery:
        port = await nursery.start(lambda task_status: serve_replay(
            SESSION, 0, task_status=task_status))
        leaver = await _raw_session(port, [(71, 2, 8, ""), MKT_SPY], quiet=0.1)
        assert [f[0] for _, f in leaver] == ["200", "9", "4"]  # ticks still pending
        await trio.sleep(5)  # past the ticks it left behind
        stayer = await _raw_session(port, [(71, 2, 9, ""), MKT_SPY], quiet=10.0)
        nursery.cancel_scope.cancel()
    assert [f[0] for _, f in stayer] == ["200", "9", "4", "1", "1"]
