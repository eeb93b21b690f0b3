"""Bytes for injected faults: malformed frames and tick floods.

Sans-IO helpers of the fault API. Each malformed kind is something a broken or newer TWS
could put on the wire, chosen for how the unmodified ``ibapi`` client reacts to it:

``bad_msg_id``      a frame whose message id is not a number: ``int()`` fails inside
                    ``EClient.run``, the exception escapes and the client disconnects;
``unknown_msg_id``  a well-formed frame with an id ``ibapi`` has no handler for: the
                    client reports error 505 and carries on;
``truncated``       a ``TICK_PRICE`` frame cut short after its ticker id: the decoder runs
                    out of fields and (ibapi 10.50) fails while reporting it, so the
                    exception escapes ``EClient.run`` too;
``garbage``         a frame of seeded random bytes, not a number nor valid text.
"""

from __future__ import annotations

import functools
import random
import struct

from ibkr_connector.simulator import _messages as msg
from ibkr_connector.simulator._codec import frame

__all__ = ["MALFORMED_KINDS", "malformed_frame", "tick_flood"]

MALFORMED_KINDS: tuple[str, ...] = ("bad_msg_id", "unknown_msg_id", "truncated", "garbage")

#: An incoming id below ibapi's protobuf offset (200) that ``Decoder`` does not know.
_UNKNOWN_INCOMING_ID = 199


def malformed_frame(kind: str, rng: random.Random) -> bytes:
    """One malformed frame of ``kind`` (see the module docstring); ValueError if unknown."""
    if kind == "bad_msg_id":
        return frame(("X1", 1, 0))
    if kind == "unknown_msg_id":
        return frame((_UNKNOWN_INCOMING_ID, 1, 0))
    if kind == "truncated":
        return frame((msg.TICK_PRICE, 6, 1))
    if kind == "garbage":
        # Starts with a byte that is neither a digit nor valid UTF-8, so it cannot be
        # mistaken for a message id.
        payload = b"\xff" + bytes(rng.randrange(256) for _ in range(31))
        return struct.pack("!I", len(payload)) + payload
    raise ValueError(f"unknown malformed kind {kind!r}; choose from {', '.join(MALFORMED_KINDS)}")


_FLOOD_CYCLE = 100


@functools.lru_cache(maxsize=64)
def _flood_cycle(req_id: int) -> tuple[bytes, ...]:
    # Prices cycle through 100 cents and bid/ask alternate, so the frame for tick i only
    # depends on i % 100: encode the cycle once and reuse it (a flood is write-bound).
    return tuple(
        msg.tick_price(req_id, 1 if i % 2 == 0 else 2, 100.0 + i / 100, size=1)
        for i in range(_FLOOD_CYCLE)
    )


def tick_flood(req_id: int, start: int, count: int) -> bytes:
    """``count`` TICK_PRICE frames (bid/ask alternating, prices cycling in cents) as one
    buffer, numbered from ``start`` so consecutive batches continue the sequence."""
    cycle = _flood_cycle(req_id)
    return b"".join(cycle[i % _FLOOD_CYCLE] for i in range(start, start + count))
