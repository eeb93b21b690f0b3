"""Recording a session: frame splitting both ways, the file format, account masking, and
the proxy (transparent on the wire, file 0600), with ibapi and ib_async as clients."""

from __future__ import annotations

import itertools
import json
import os
import stat
import struct
from pathlib import Path

import trio
from hypothesis import given
from hypothesis import strategies as st

from ibkr_connector.simulator import SimulatorConfig, open_simulator
from ibkr_connector.simulator._codec import frame
from ibkr_connector.simulator._recording import (
    AccountMasker,
    Frame,
    FrameSplitter,
    fields_of,
    frame_record,
    header_record,
    mask_account,
    parse_recording,
    read_recording,
)

from .recorded_session import cli_server, record_session, recording_proxy, session_client
from .test_ib_async_sync import run_ib_async

HANDSHAKE = b"API\0" + struct.pack("!I", 18) + b"v100..200 +PACEAPI"
START_API = frame((71, 2, 3, ""))


def _split(direction: str, data: bytes, step: int) -> list[Frame]:
    splitter = FrameSplitter(direction)  # type: ignore[arg-type]
    frames: list[Frame] = []
    for i in range(0, len(data), step):
        frames += splitter.feed(data[i:i + step])
    return frames


def test_client_stream_splits_into_prefix_version_range_and_messages_at_any_chunking() -> None:
    data = HANDSHAKE + START_API + frame((49, 1))
    for step in (1, 3, len(data)):
        frames = _split("c2s", data, step)
        assert [f.framed for f in frames] == [False, True, True, True]
        assert frames[0].payload == b"API\0"
        assert frames[1].payload == b"v100..200 +PACEAPI"
        assert frames[3].payload == b"49\x001\x00"
        assert b"".join(f.wire() for f in frames) == data


def test_server_stream_has_no_prefix_and_keeps_a_partial_frame_buffered() -> None:
    reply = frame((200, "20260101 09:30:00 EST")) + frame((9, 1, 1))
    splitter = FrameSplitter("s2c")
    frames = splitter.feed(reply[:-2])
    assert [f.payload for f in frames] == [b"200\x0020260101 09:30:00 EST\x00"]
    assert splitter.leftover() == reply[len(frames[0].wire()):-2]
    assert [f.payload for f in splitter.feed(reply[-2:])] == [b"9\x001\x001\x00"]


FIELD_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"),
                     max_size=5)


@given(st.lists(st.lists(FIELD_TEXT, min_size=1, max_size=6), max_size=6),
       st.lists(st.integers(1, 7), min_size=1, max_size=20))
def test_any_messages_cut_anywhere_split_back_into_the_same_frames(
        messages: list[list[str]], cuts: list[int]) -> None:
    data = HANDSHAKE + b"".join(frame((1, *fields)) for fields in messages)
    splitter, frames, position = FrameSplitter("c2s"), [], 0
    for size in itertools.cycle(cuts):
        if position >= len(data):
            break
        frames += splitter.feed(data[position:position + size])
        position += size
    assert b"".join(f.wire() for f in frames) == data and not splitter.leftover()
    assert [fields_of(f.payload) for f in frames[2:]] == [("1", *m) for m in messages]


def test_a_stream_that_is_not_the_tws_api_is_kept_as_raw_frames() -> None:
    assert _split("c2s", b"GET / HTTP/1.1\r\n", 100) == [
        Frame("c2s", b"GET / HTTP/1.1\r\n", framed=False)]
    absurd = struct.pack("!I", 0x7FFFFFFF) + b"xyz"
    frames = _split("s2c", frame((49, 1)) + absurd, 100)
    assert frames[1] == Frame("s2c", absurd, framed=False)


def test_frames_round_trip_through_the_file_as_fields_text_or_base64() -> None:
    frames = [Frame("c2s", b"API\0", framed=False), Frame("c2s", b"v100..200"),
              Frame("c2s", b"71\x002\x003\x00\x00"), Frame("s2c", b"\x00\x00\x00\x05\xff\x01"),
              Frame("s2c", b"4\x00-1\x002104\x00caf\xc3\xa9\x00")]
    lines = [header_record("tws:7497", False, 1.0)] + [
        frame_record(1, f, i * 0.5, 100.0 + i, None) for i, f in enumerate(frames)]
    assert [sorted(set(r) & {"fields", "text", "b64"}) for r in lines[1:]] == [
        ["b64"], ["text"], ["fields"], ["b64"], ["fields"]]
    assert lines[3]["fields"] == ["71", "2", "3", ""]
    recording = parse_recording(json.dumps(line) for line in lines)
    assert [r.frame for r in recording.frames] == frames
    assert [r.mono for r in recording.frames] == [0.0, 0.5, 1.0, 1.5, 2.0]


def test_an_account_id_masks_to_its_letters_stars_and_last_two_digits() -> None:
    assert mask_account("DU1234567") == "DU*****67"
    assert mask_account("U7654321") == "U*****21"
    assert mask_account("DU1234567") == mask_account("DU1234567")


def test_accounts_are_masked_in_managed_accounts_order_position_and_free_text() -> None:
    masker = AccountMasker()
    managed = Frame("s2c", b"15\x001\x00DU1234567,PAPER42\x00")
    record = frame_record(1, managed, 0.0, 0.0, masker)
    assert record["fields"] == ["15", "1", "DU*****67,PAPER*2"]
    position = Frame("s2c", b"61\x003\x00DU1234567\x00756733\x00SPY\x00")
    assert frame_record(1, position, 0, 0, masker)["fields"][2] == "DU*****67"
    # a learnt account that does not look like one, wherever it is a value
    place = Frame("c2s", b"3\x001\x00756733\x00PAPER42\x00")
    assert frame_record(1, place, 0, 0, masker)["fields"][3] == "PAPER*2"
    text = Frame("s2c", b"4\x00-1\x00321\x00F1234567 or PAPER42? not XDU1234567 PAPER421\x00")
    assert frame_record(1, text, 0, 0, masker)["fields"][3] == (
        "F*****67 or PAPER*2? not XDU1234567 PAPER421")
    assert frame_record(1, position, 0, 0, None)["fields"][2] == "DU1234567"


async def test_the_proxy_forwards_every_byte_unchanged_and_records_both_ways(
        tmp_path: Path) -> None:
    client_bytes = HANDSHAKE + START_API + b"\x00\x00\x00\x02\xff\x00"
    server_bytes = frame((200, "now")) + b"\x00\x00\x00\x03\x80\x81\x82" + frame((9, 1, 7))
    upstream_got = bytearray()

    async def upstream(stream: trio.SocketStream) -> None:
        while len(upstream_got) < len(client_bytes):
            upstream_got.extend(await stream.receive_some(65536))
        await stream.send_all(server_bytes)
        await stream.aclose()

    out = tmp_path / "session.jsonl"
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(trio.serve_tcp, upstream, 0)
        up_port = listeners[0].socket.getsockname()[1]
        async with recording_proxy(up_port, out) as port:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            for i in range(0, len(client_bytes), 5):
                await stream.send_all(client_bytes[i:i + 5])
            received = bytearray()
            with trio.fail_after(5):
                while chunk := await stream.receive_some(65536):
                    received += chunk
            await stream.aclose()
            await trio.sleep(0.05)
        nursery.cancel_scope.cancel()
    assert bytes(upstream_got) == client_bytes
    assert bytes(received) == server_bytes
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    recording = read_recording(out)
    for direction, sent in (("c2s", client_bytes), ("s2c", server_bytes)):
        assert b"".join(r.frame.wire() for r in recording.frames
                        if r.direction == direction) == sent


async def test_a_recorded_ibapi_session_has_accounts_masked_but_the_client_sees_them(
        tmp_path: Path) -> None:
    out = tmp_path / "session.jsonl"
    out.write_text("old")
    out.chmod(0o644)  # an existing file is reset to 0600 before anything is written
    seen = await record_session(out)
    assert ("managedAccounts", ("DU1234567",)) in seen  # the wire was not altered
    text = out.read_text()
    assert "DU1234567" not in text and "DU*****67" in text
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    recording = read_recording(out)
    assert recording.masked
    ids = {(r.direction, r.fields[0]) for r in recording.frames if r.fields}
    assert {("c2s", "71"), ("c2s", "9"), ("c2s", "1"), ("c2s", "3"), ("s2c", "10"),
            ("s2c", "1"), ("s2c", "3"), ("s2c", "11")} <= ids
    monos = [r.mono for r in recording.frames]
    assert monos == sorted(monos) and all(r.wall > 1.7e9 for r in recording.frames)


async def test_no_mask_keeps_account_ids(tmp_path: Path) -> None:
    out = tmp_path / "session.jsonl"
    async with open_simulator(SimulatorConfig(port=0)) as sim:
        async with recording_proxy(sim.port, out, mask=False) as port:
            client = session_client()
            try:
                await client.connect(port, 5)
                await client.wait_for("managedAccounts")
            finally:
                await client.close()
    assert "DU1234567" in out.read_text()
    assert not read_recording(out).masked


async def test_ib_async_syncs_and_trades_through_the_recording_proxy(tmp_path: Path) -> None:
    out = tmp_path / "ib_async.jsonl"
    async with open_simulator(SimulatorConfig(port=0)) as sim:
        async with recording_proxy(sim.port, out) as port:
            with trio.fail_after(15):
                seen = await trio.to_thread.run_sync(run_ib_async, port)
    assert seen["trade"][:2] == ("Filled", 10.0)
    sent = {r.fields[0] for r in read_recording(out).frames if r.direction == "c2s" and r.fields}
    assert {"71", "61", "3"} <= sent  # startApi, reqPositions (the sync), placeOrder


async def test_record_from_the_shell_proxies_and_writes_the_file(tmp_path: Path) -> None:
    out = tmp_path / "shell.jsonl"
    async with open_simulator(SimulatorConfig(port=0)) as sim:
        async with cli_server("record", "--upstream", f"127.0.0.1:{sim.port}", "--listen",
                              "0", "--out", str(out)) as (port, lines):
            client = session_client()
            try:
                await client.connect(port, 4)
                assert await client.wait_for("managedAccounts") == ("DU1234567",)
            finally:
                await client.close()
    assert "writing" in lines[0] and "NOT masked" not in lines[0]
    assert any(r.fields and r.fields[0] == "15" and r.fields[2] == "DU*****67"
               for r in read_recording(out).frames)


async def test_an_unreachable_upstream_closes_that_client_only(tmp_path: Path) -> None:
    unused = trio.socket.socket()
    await unused.bind(("127.0.0.1", 0))
    closed_port = unused.getsockname()[1]
    unused.close()  # nothing listens there now
    async with recording_proxy(closed_port, tmp_path / "none.jsonl") as port:
        for _ in range(2):  # the proxy is still serving after the first failure
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            await stream.send_all(HANDSHAKE)
            with trio.fail_after(5):
                try:
                    data = await stream.receive_some(100)
                except trio.BrokenResourceError:  # closed with our bytes unread: a reset
                    data = b""
            assert data == b""
            await stream.aclose()
