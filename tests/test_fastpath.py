"""The fast path decodes the hot frames exactly as ibapi's Decoder plus the bridge do.

Each example is a stream of hot frames (tick price/size/string/generic, option computation,
tick-by-tick) at a server version from 157 to 200: well-formed with arbitrary values and
TWS's unset sentinels, or damaged (fields cut off, added, garbled; the terminator missing).
It goes through both paths:

* the old one: ibapi's ``EClient.run()`` over a queue of the frames, its ``Decoder`` calling
  the `EventBridge`, a frame that escapes ``run()`` becoming a `MalformedMessage`;
* the new one: the session reader's `InboundDecoder`, fed the same bytes cut into arbitrary
  chunks, with the fast path on;

and the two must produce the same events, in the same order (compared by ``repr`` so that a
NaN equals itself), including where a malformed frame stops the stream.
"""

from __future__ import annotations

import struct
from typing import Any

import attrs
import hypothesis.strategies as st
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from ibapi.client import EClient
from ibapi.const import MAX_MSG_LEN
from ibapi.decoder import Decoder

from ibkr_connector.protocol import events as ev
from ibkr_connector.protocol._reader import FrameTooLong, InboundDecoder, describe
from ibkr_connector.protocol.bridge import EventBridge
from ibkr_connector.protocol.fastpath import fast_decoders

# -- field values ------------------------------------------------------------------------------

_ints = st.one_of(st.integers(-3, 120), st.sampled_from([2147483647, -2147483648, 10**12]))
_int_fields = _ints.map(lambda i: str(i).encode())
_float_texts = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(lambda x: repr(x).encode()),
    st.sampled_from([b"1.7976931348623157E308", b"Infinity", b"-1", b"-2", b"-1.0", b"0",
                     b"101.25", b"1e-3", b"nan"]),
)
_size_texts = st.one_of(
    st.sampled_from([b"", b"0", b"1", b"100", b"0.5", b"1e3", b"2147483647",
                     b"9223372036854775807", b"1.7976931348623157E308",
                     b"-9223372036854775808", b"NaN"]),
    st.decimals(allow_nan=False, places=4).map(lambda d: str(d).encode()),
)
_text_fields = st.binary(max_size=12).filter(lambda b: b"\0" not in b) | st.sampled_from(
    [b"", b"SMART", b"1700000000", b"a\\x41", b"caf\xc3\xa9", b"\xff"]
)
_garbage = st.sampled_from([b"", b"x", b"1.5", b"-", b"\xff", b"1_0", b" 7 ", b"\\", b"1e400",
                            b"sNaN", b"Infinity"])
_masks = st.one_of(st.integers(0, 7), st.integers(-1, 300)).map(lambda i: str(i).encode())


def _version(v: bytes) -> st.SearchStrategy[bytes]:
    return st.one_of(st.just(v), _int_fields)


@st.composite
def _tick_price(draw: st.DrawFn) -> list[bytes]:
    tick_type = draw(st.sampled_from([1, 2, 4, 9, 6, 7, 14, 37, 66, 67, 68, 75, -1]) | _ints)
    return [b"1", draw(_version(b"6")), draw(_int_fields), str(tick_type).encode(),
            draw(_float_texts), draw(_size_texts), draw(_masks)]


@st.composite
def _tick_size(draw: st.DrawFn) -> list[bytes]:
    tick_type = draw(st.sampled_from([0, 3, 5, 8, 69, -1]) | _ints)
    return [b"2", draw(_version(b"6")), draw(_int_fields), str(tick_type).encode(),
            draw(_size_texts)]


@st.composite
def _option_computation(draw: st.DrawFn) -> list[bytes]:
    tick_type = draw(st.sampled_from([10, 11, 12, 13, 80, 81, 82, 83]) | _ints)
    greeks = draw(st.lists(_float_texts, min_size=8, max_size=8))
    return [b"21", draw(_int_fields), str(tick_type).encode(), draw(_masks), *greeks]


@st.composite
def _tick_generic(draw: st.DrawFn) -> list[bytes]:
    return [b"45", draw(_version(b"6")), draw(_int_fields), draw(_int_fields),
            draw(_float_texts)]


@st.composite
def _tick_string(draw: st.DrawFn) -> list[bytes]:
    return [b"46", draw(_version(b"6")), draw(_int_fields), draw(_int_fields),
            draw(_text_fields)]


@st.composite
def _tick_by_tick(draw: st.DrawFn) -> list[bytes]:
    kind = draw(st.sampled_from([0, 1, 2, 3, 4, 5]))
    head = [b"99", draw(_int_fields), str(kind).encode(), draw(_int_fields)]
    if kind in (1, 2):
        return [*head, draw(_float_texts), draw(_size_texts), draw(_masks), draw(_text_fields),
                draw(_text_fields)]
    if kind == 3:
        return [*head, draw(_float_texts), draw(_float_texts), draw(_size_texts),
                draw(_size_texts), draw(_masks)]
    return [*head, draw(_float_texts)]


_MESSAGES = {
    "tick price": _tick_price(), "tick size": _tick_size(),
    "option computation": _option_computation(), "tick generic": _tick_generic(),
    "tick string": _tick_string(), "tick by tick": _tick_by_tick(),
}


@st.composite
def _damaged(draw: st.DrawFn, fields: list[bytes]) -> bytes:
    """The frame's payload, possibly damaged (the message id is kept: it picks the path)."""
    damage = draw(st.sampled_from(["none", "none", "cut", "extra", "garble", "unterminated"]))
    if damage == "cut":
        fields = fields[:draw(st.integers(1, len(fields) - 1))]
    elif damage == "extra":
        fields = [*fields, *draw(st.lists(_int_fields | _garbage, min_size=1, max_size=2))]
    elif damage == "garble":
        at = draw(st.integers(1, len(fields) - 1))
        fields = [*fields[:at], draw(_garbage), *fields[at + 1:]]
    payload = b"\0".join(fields) + b"\0"
    if damage == "unterminated":
        payload += draw(st.binary(min_size=1, max_size=4).filter(lambda b: b"\0" not in b))
    return payload


@st.composite
def _stream(draw: st.DrawFn, message: str) -> list[bytes]:
    count = draw(st.integers(1, 4))
    return [draw(_damaged(draw(_MESSAGES[message]))) for _ in range(count)]


def _framed(payloads: list[bytes]) -> bytes:
    return b"".join(struct.pack(">I", len(p)) + p for p in payloads)


# -- the two paths -----------------------------------------------------------------------------


def _collect(feed: Any) -> list[ev.TwsEvent]:
    async def main() -> list[ev.TwsEvent]:
        bridge = EventBridge()
        try:
            feed(bridge)
        except FrameTooLong:
            pass
        except Exception as exc:  # noqa: BLE001 - what the session turns into an event
            bridge.post(ev.MalformedMessage(describe(exc)))
        bridge.post(ev.ReaderStopped(0))  # releases a held price, as the session's end does
        return await bridge.receive_batch()

    return trio.run(main)


def through_ibapi(payloads: list[bytes], version: int) -> list[ev.TwsEvent]:
    def feed(bridge: EventBridge) -> None:
        client = EClient(bridge)
        client.serverVersion_ = version
        client.decoder = Decoder(bridge, version)
        for payload in payloads:
            client.msg_queue.put(payload)
        client.run()  # returns once the queue is empty (it is not connected)

    return _collect(feed)


def through_fast_path(payloads: list[bytes], version: int, cuts: list[int]) -> list[ev.TwsEvent]:
    data = _framed(payloads)

    def feed(bridge: EventBridge) -> None:
        inbound = InboundDecoder(bridge, Decoder(bridge, version), version)
        start = 0
        for cut in sorted(cuts):
            inbound.feed(data[start:cut])
            start = cut
        inbound.feed(data[start:])

    return _collect(feed)


def _comparable(events: list[ev.TwsEvent]) -> list[str]:
    # An error ibapi reports carries the time it was reported, which no two runs share.
    return [repr(attrs.evolve(e, error_time=0) if isinstance(e, ev.TwsError) else e)
            for e in events]


@pytest.mark.parametrize("message", list(_MESSAGES))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_fast_path_gives_the_events_ibapi_and_the_bridge_give(
    message: str, data: st.DataObject
) -> None:
    version = data.draw(st.integers(157, 200), label="server version")
    payloads = data.draw(_stream(message), label="payloads")
    size = len(_framed(payloads))
    cuts = data.draw(st.lists(st.integers(0, size), max_size=4), label="cuts")
    expected = through_ibapi(payloads, version)
    assert _comparable(through_fast_path(payloads, version, cuts)) == _comparable(expected)


def test_well_formed_hot_frames_do_take_the_fast_path() -> None:
    # Guards the proof above against a fast path that always declines (and so trivially
    # agrees with ibapi).
    table = fast_decoders(200)
    frames = {
        b"1": [b"1", b"6", b"7", b"1", b"101.25", b"300", b"0", b""],
        b"2": [b"2", b"6", b"7", b"8", b"12", b""],
        b"21": [b"21", b"7", b"13", b"0", *[b"0.5"] * 8, b""],
        b"45": [b"45", b"6", b"7", b"49", b"0.5", b""],
        b"46": [b"46", b"6", b"7", b"45", b"1700000000", b""],
        b"99": [b"99", b"7", b"4", b"1700000000", b"101.5", b""],
    }
    assert set(table) == set(frames)
    for msg_id, fields in frames.items():
        assert isinstance(table[msg_id](fields), ev.TwsEvent), msg_id


def test_outside_the_classic_versions_everything_goes_to_ibapi() -> None:
    assert fast_decoders(155) == {}
    assert fast_decoders(201) == {}


def test_an_impossible_frame_length_is_reported_as_ibapi_reports_it() -> None:
    def feed(bridge: EventBridge) -> None:
        InboundDecoder(bridge, Decoder(bridge, 200), 200).feed(
            struct.pack(">I", MAX_MSG_LEN + 1) + b"1\0"
        )

    (error, stopped) = _collect(feed)
    assert isinstance(error, ev.TwsError)
    assert (error.code, error.message) == (507, f"Bad message length:{MAX_MSG_LEN + 1}")
    assert isinstance(stopped, ev.ReaderStopped)


def test_a_tick_size_of_tick_type_not_set_makes_no_event() -> None:
    """ibapi 10.50's TickTypeEnum.NOT_SET is 111 (its last member), not -1: a TICK_SIZE of
    that type makes no callback (found by the hypothesis test above)."""
    from ibapi.ticktype import TickTypeEnum

    from ibkr_connector.protocol import fastpath

    assert TickTypeEnum.NOT_SET == 111
    # Fields as the reader splits a frame: the terminating NUL leaves an empty last one.
    assert fastpath._tick_size([b"2", b"6", b"0", b"111", b"", b""]) is None
    assert fastpath._tick_size([b"2", b"6", b"0", b"0", b"5", b""]) is not None
