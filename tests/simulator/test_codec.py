"""The sans-IO codec, fed plain bytes: handshake, negotiation, framing, START_API."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ibapi.comm import make_field, make_initial_msg, make_msg

from ibkr_connector.simulator import (
    ClientMessage,
    ClientProtocolError,
    ConnectionClosed,
    Handshake,
    ServerCodec,
    StartApi,
)
from ibkr_connector.simulator._codec import NEED_DATA, CodecState, Event, frame


def handshake_bytes(text: str = "v100..226") -> bytes:
    data: bytes = b"API\0" + make_initial_msg(text)
    return data


def start_api_bytes(client_id: int = 7, capabilities: str = "") -> bytes:
    data: bytes = make_msg(71, False,
                           make_field(2) + make_field(client_id) + make_field(capabilities))
    return data


def drain(codec: ServerCodec) -> list[Event]:
    events: list[Event] = []
    while (event := codec.next_event()) is not NEED_DATA:
        assert not isinstance(event, type(NEED_DATA))
        events.append(event)
        if isinstance(event, ConnectionClosed):
            break
    return events


def test_handshake_negotiates_the_highest_common_version() -> None:
    codec = ServerCodec(200)
    codec.receive_data(handshake_bytes())
    assert drain(codec) == [Handshake(100, 226, "", 200)]
    assert codec.server_version == 200
    assert codec.state is CodecState.AWAIT_START_API


@pytest.mark.parametrize("server_max", [176, 187, 200])
def test_handshake_reply_is_one_frame_of_version_and_time(server_max: int) -> None:
    codec = ServerCodec(server_max)
    codec.receive_data(handshake_bytes())
    drain(codec)
    payload = f"{server_max}\0" "20240102 03:04:05 UTC\0".encode()
    assert codec.handshake_reply("20240102 03:04:05 UTC") == (
        struct.pack("!I", len(payload)) + payload)


def test_handshake_keeps_connect_options() -> None:
    codec = ServerCodec(200)
    codec.receive_data(handshake_bytes("v100..226 +PACEAPI"))
    assert drain(codec) == [Handshake(100, 226, "+PACEAPI", 200)]


def test_handshake_accepts_a_client_capped_below_the_server() -> None:
    codec = ServerCodec(200)
    codec.receive_data(handshake_bytes("v100..187"))
    assert drain(codec)[0] == Handshake(100, 187, "", 187)


def test_handshake_accepts_a_single_version() -> None:
    codec = ServerCodec(200)
    codec.receive_data(handshake_bytes("v176"))
    assert drain(codec) == [Handshake(176, 176, "", 176)]


def test_no_common_version_is_a_protocol_error() -> None:
    codec = ServerCodec(200, min_server_version=150)
    codec.receive_data(handshake_bytes("v201..226"))
    with pytest.raises(ClientProtocolError, match="no common version"):
        codec.next_event()
    assert codec.state is CodecState.ERROR
    with pytest.raises(ClientProtocolError):
        codec.next_event()


@pytest.mark.parametrize("data", [b"GET / HTTP/1.1\r\n", b"API\0" + make_initial_msg("100..226"),
                                  b"API\0" + make_initial_msg("vx..y"),
                                  b"API\0" + make_initial_msg("v200..100")])
def test_bad_handshake_is_a_protocol_error(data: bytes) -> None:
    codec = ServerCodec(200)
    codec.receive_data(data)
    with pytest.raises(ClientProtocolError):
        codec.next_event()


def test_partial_handshake_needs_data() -> None:
    codec = ServerCodec(200)
    whole = handshake_bytes()
    codec.receive_data(whole[:2])
    assert codec.next_event() is NEED_DATA
    codec.receive_data(whole[2:7])
    assert codec.next_event() is NEED_DATA
    codec.receive_data(whole[7:])
    assert isinstance(codec.next_event(), Handshake)


def test_start_api_names_the_client() -> None:
    codec = ServerCodec(200)
    codec.receive_data(handshake_bytes() + start_api_bytes(12, "cap"))
    events = drain(codec)
    assert events[1] == StartApi(client_id=12, optional_capabilities="cap",
                                 fields=("2", "12", "cap"))
    assert codec.state is CodecState.READY


def test_a_message_before_start_api_is_a_protocol_error() -> None:
    codec = ServerCodec(200)
    codec.receive_data(handshake_bytes() + make_msg(49, False, make_field(1)))
    codec.next_event()
    with pytest.raises(ClientProtocolError, match="START_API"):
        codec.next_event()


def test_messages_after_start_api_carry_id_and_fields() -> None:
    codec = ServerCodec(200)
    codec.receive_data(handshake_bytes() + start_api_bytes()
                       + make_msg(49, False, make_field(1))
                       + make_msg(2, False, make_field(2) + make_field(5)))
    assert drain(codec)[2:] == [ClientMessage(49, ("1",)), ClientMessage(2, ("2", "5"))]


@pytest.mark.parametrize("payload", [b"abc\0", b"\0", b"12", b"-\0"])
def test_unreadable_message_id_or_terminator_is_a_protocol_error(payload: bytes) -> None:
    codec = ServerCodec(200)
    codec.receive_data(handshake_bytes() + start_api_bytes()
                       + struct.pack("!I", len(payload)) + payload)
    assert isinstance(codec.next_event(), Handshake)
    assert isinstance(codec.next_event(), StartApi)
    with pytest.raises(ClientProtocolError):
        codec.next_event()


@pytest.mark.parametrize("length", [0, 0x1000000])
def test_impossible_frame_length_is_a_protocol_error(length: int) -> None:
    codec = ServerCodec(200)
    codec.receive_data(handshake_bytes() + start_api_bytes() + struct.pack("!I", length))
    codec.next_event()
    codec.next_event()
    with pytest.raises(ClientProtocolError, match="frame length"):
        codec.next_event()


def test_end_of_stream_is_reported_with_leftover_bytes() -> None:
    codec = ServerCodec(200)
    codec.receive_data(handshake_bytes() + start_api_bytes() + b"\0\0\0\x09ab")
    codec.receive_data(b"")
    events = drain(codec)
    assert events[-1] == ConnectionClosed(trailing=6)


def test_frame_writes_nul_terminated_text_fields() -> None:
    assert frame((9, 1, True, None, 2.5, "x")) == b"\0\0\0\x0d9\x001\x001\x00\x002.5\x00x\x00"
    with pytest.raises(ValueError):
        frame(("bad\0field",))


@given(st.lists(st.integers(min_value=1, max_value=40), max_size=30),
       st.lists(st.tuples(st.sampled_from([1, 2, 8, 49, 999]),
                          st.lists(st.text(st.characters(codec="utf-8", exclude_characters="\0")),
                                   max_size=4)),
                max_size=10))
def test_any_chunking_of_the_stream_yields_the_same_events(
        cuts: list[int], messages: list[tuple[int, list[str]]]) -> None:
    stream = handshake_bytes() + start_api_bytes() + b"".join(
        make_msg(msg_id, False, "".join(make_field(f) for f in fields)) if all(
            f.isascii() and f.isprintable() for f in fields) else
        frame((msg_id, *fields))
        for msg_id, fields in messages)
    whole = ServerCodec(200)
    whole.receive_data(stream)
    expected = drain(whole)
    chunked = ServerCodec(200)
    events: list[Event] = []
    position = 0
    for cut in cuts:
        if stream[position : position + cut]:
            chunked.receive_data(stream[position : position + cut])
        position += cut
        events += drain(chunked)
    if stream[position:]:
        chunked.receive_data(stream[position:])
    events += drain(chunked)
    assert events == expected
    assert [e.fields for e in expected[2:] if isinstance(e, ClientMessage)] == [
        tuple(fields) for _, fields in messages]


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise_anything_but_protocol_errors(data: bytes) -> None:
    codec = ServerCodec(200)
    codec.receive_data(handshake_bytes() + start_api_bytes() + data)
    codec.receive_data(b"")
    try:
        drain(codec)
    except ClientProtocolError:
        assert codec.state is CodecState.ERROR
