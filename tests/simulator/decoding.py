"""Read server bytes the way EClient.run does: ibapi's own Decoder and RecordingWrapper."""

from __future__ import annotations

import queue
from typing import Any

from ibapi import comm
from ibapi.decoder import Decoder

from .ibclient import RecordingWrapper

Call = tuple[str, tuple[Any, ...]]


def decode(data: bytes, server_version: int,
           wrapper: RecordingWrapper | None = None) -> list[Call]:
    """The wrapper callbacks ``data`` (one or more whole frames) produces, in order.
    ``wrapper``: a RecordingWrapper that records more callbacks (default: the plain one)."""
    wrapper = wrapper if wrapper is not None else RecordingWrapper()
    decoder = Decoder(wrapper, server_version)
    while data:
        size, text, data = comm.read_msg(data)
        assert text, "incomplete frame"
        cut = text.index(b"\0")
        decoder.interpret(comm.read_fields(text[cut + 1 :]), int(text[:cut]))
    calls = []
    while True:
        try:
            calls.append(wrapper.events.get_nowait())
        except queue.Empty:
            return calls
