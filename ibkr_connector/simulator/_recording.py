"""Recordings of TWS API sessions: the file format, frame splitting and account masking.

The sans-IO half of ``ibkr-connector record`` (``_proxy``), ``sim --replay`` (``_replay``)
and ``fidelity`` (``_fidelity``). A ``FrameSplitter`` is fed the bytes one side wrote and
hands back whole frames, including the client's unframed ``API\\0`` prefix; it never
refuses input, because the proxy it serves must stay transparent to anything: bytes it
cannot frame come back as one raw frame each.

A recording is JSON lines: one header object (``{"recording": "ibkr-connector", ...}``),
then one object per frame: ``conn`` (the proxy's connection number), ``dir`` (``c2s`` or
``s2c``), ``mono`` (monotonic seconds since the recording started), ``wall`` (Unix time),
``framed`` (false for the prefix and raw frames), and the payload as ``fields`` (the
classic text protocol: NUL-terminated text fields, message id first), ``text`` (text
without NULs, such as the client's ``v100..200`` version range) or ``b64`` (anything else,
e.g. protobuf messages above server version 200).
"""

from __future__ import annotations

import base64
import json
import re
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

import attrs

from ibkr_connector._errors import IBKRError
from ibkr_connector.actors.audit_trail import _ACCOUNT_ID
from ibkr_connector.simulator._codec import API_PREFIX, MAX_FRAME_LENGTH

__all__ = [
    "AccountMasker",
    "Frame",
    "FrameSplitter",
    "RecordedFrame",
    "Recording",
    "RecordingError",
    "encode_fields",
    "fields_of",
    "frame_record",
    "header_record",
    "mask_account",
    "parse_recording",
    "read_recording",
]

Direction = Literal["c2s", "s2c"]
FORMAT_VERSION = 1
_LENGTH = struct.Struct("!I")
#: ``IN.MANAGED_ACCTS``: the server names the accounts, so the masker learns them here.
_MANAGED_ACCTS = 15
# The audit trail's account pattern, anchored so it is not found inside longer tokens.
_ACCOUNT_IN_TEXT = re.compile(rf"(?<![A-Za-z0-9])(?:{_ACCOUNT_ID.pattern})(?![0-9])")


class RecordingError(IBKRError, ValueError):
    """A recording file cannot be read (not JSON lines, or not a recording)."""


@attrs.frozen
class Frame:
    """One unit of one direction: a length-prefixed message's payload, or (``framed`` is
    false) bytes sent as they are: the client's ``API\\0`` prefix or unframeable bytes."""

    direction: Direction
    payload: bytes
    framed: bool = True

    def wire(self) -> bytes:
        """The bytes this frame was on the wire."""
        return _LENGTH.pack(len(self.payload)) + self.payload if self.framed else self.payload


class FrameSplitter:
    """Cuts one direction's byte stream into frames, without I/O.

    The client side starts with the unframed ``API\\0``; a stream that does not (or a
    frame length no client writes) switches the splitter to raw mode for good, where each
    fed chunk is one unframed frame, so the recording still holds every byte.
    """

    def __init__(self, direction: Direction) -> None:
        self.direction = direction
        self._buffer = bytearray()
        self._expect_prefix = direction == "c2s"
        self._raw = False

    def feed(self, data: bytes) -> list[Frame]:
        """The frames completed by ``data`` (possibly none)."""
        self._buffer += data
        frames: list[Frame] = []
        while self._buffer:
            frame = self._next()
            if frame is None:
                break
            frames.append(frame)
        return frames

    def leftover(self) -> bytes:
        """Bytes of an incomplete frame (what was buffered when the stream ended)."""
        return bytes(self._buffer)

    def _next(self) -> Frame | None:
        if self._raw:
            return self._take_raw()
        if self._expect_prefix:
            head = bytes(self._buffer[: len(API_PREFIX)])
            if not API_PREFIX.startswith(head):
                self._raw = True
                return self._take_raw()
            if len(head) < len(API_PREFIX):
                return None
            del self._buffer[: len(API_PREFIX)]
            self._expect_prefix = False
            return Frame(self.direction, API_PREFIX, framed=False)
        if len(self._buffer) < _LENGTH.size:
            return None
        (length,) = _LENGTH.unpack_from(self._buffer)
        if length == 0 or length > MAX_FRAME_LENGTH:
            self._raw = True
            return self._take_raw()
        end = _LENGTH.size + length
        if len(self._buffer) < end:
            return None
        payload = bytes(self._buffer[_LENGTH.size:end])
        del self._buffer[:end]
        return Frame(self.direction, payload)

    def _take_raw(self) -> Frame:
        payload = bytes(self._buffer)
        self._buffer.clear()
        return Frame(self.direction, payload, framed=False)


# -- payloads as JSON -------------------------------------------------------------------


def fields_of(payload: bytes) -> tuple[str, ...] | None:
    """The text fields of a classic message (message id first), or None if the payload
    is not one: not NUL-terminated UTF-8, or its first field is not an integer."""
    if not payload.endswith(b"\0"):
        return None
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return None
    fields = tuple(text.split("\0")[:-1])
    head = fields[0].removeprefix("-")
    return fields if head.isascii() and head.isdigit() else None


def encode_fields(fields: Iterable[str]) -> bytes:
    """The payload of a classic message from its text fields (inverse of ``fields_of``)."""
    return b"".join(field.encode("utf-8") + b"\0" for field in fields)


def _payload_json(payload: bytes, masker: AccountMasker | None) -> dict[str, Any]:
    fields = fields_of(payload)
    if fields is not None:
        return {"fields": list(masker.fields(fields) if masker else fields)}
    if b"\0" not in payload:
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            return {"text": masker.text(text) if masker else text}
    return {"b64": base64.b64encode(payload).decode("ascii")}


def _payload_bytes(record: dict[str, Any]) -> bytes:
    if "fields" in record:
        return encode_fields(str(field) for field in record["fields"])
    if "text" in record:
        return str(record["text"]).encode("utf-8")
    if "b64" in record:
        return base64.b64decode(record["b64"])
    raise RecordingError(f"a frame without fields, text or b64: {record}")


def header_record(upstream: str, masked: bool, wall: float) -> dict[str, Any]:
    """The first line of a recording."""
    return {"recording": "ibkr-connector", "format": FORMAT_VERSION, "upstream": upstream,
            "masked": masked, "wall": wall}


def frame_record(conn: int, frame: Frame, mono: float, wall: float,
                 masker: AccountMasker | None) -> dict[str, Any]:
    """One frame's line; with a masker, account ids in it are masked (learned first)."""
    if masker is not None and frame.direction == "s2c":
        masker.learn(frame.payload)
    return {"conn": conn, "dir": frame.direction, "mono": round(mono, 6),
            "wall": round(wall, 6), "framed": frame.framed,
            **_payload_json(frame.payload, masker)}


# -- masking ----------------------------------------------------------------------------


def mask_account(account: str) -> str:
    """``DU1234567`` -> ``DU*****67``: the letters and the last two characters stay, so
    masked ids remain readable and one account always masks the same way."""
    letters = len(account) - len(account.lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    keep = min(2, max(0, len(account) - letters - 1))
    hidden = len(account) - letters - keep
    return account[:letters] + "*" * hidden + account[len(account) - keep:]


class AccountMasker:
    """Masks account ids in fields: any value matching the audit trail's account pattern,
    and every account the server named in ``MANAGED_ACCTS`` (which may not match it)."""

    def __init__(self) -> None:
        self.accounts: set[str] = set()
        self._learnt: re.Pattern[str] | None = None

    def learn(self, payload: bytes) -> None:
        fields = fields_of(payload)
        if not fields or fields[0] != str(_MANAGED_ACCTS) or len(fields) < 3:
            return
        self.accounts.update(a for a in fields[2].split(",") if a)
        odd = sorted((a for a in self.accounts if not _ACCOUNT_ID.fullmatch(a)),
                     key=len, reverse=True)
        self._learnt = re.compile(
            rf"(?<![A-Za-z0-9])(?:{'|'.join(map(re.escape, odd))})(?![A-Za-z0-9])"
        ) if odd else None

    def text(self, value: str) -> str:
        masked = _ACCOUNT_IN_TEXT.sub(lambda m: mask_account(m.group(0)), value)
        if self._learnt is None:
            return masked
        return self._learnt.sub(lambda m: mask_account(m.group(0)), masked)

    def fields(self, fields: Iterable[str]) -> tuple[str, ...]:
        return tuple(self.text(field) for field in fields)


# -- reading ----------------------------------------------------------------------------


@attrs.frozen
class RecordedFrame:
    """One frame read back from a recording."""

    conn: int
    direction: Direction
    mono: float
    wall: float
    frame: Frame

    @property
    def fields(self) -> tuple[str, ...] | None:
        return fields_of(self.frame.payload) if self.frame.framed else None


@attrs.frozen
class Recording:
    """A whole recording: its header and its frames, in file order."""

    header: dict[str, Any]
    frames: tuple[RecordedFrame, ...]

    @property
    def masked(self) -> bool:
        return bool(self.header.get("masked"))

    def connections(self) -> list[int]:
        return sorted({frame.conn for frame in self.frames})

    def of_connection(self, conn: int) -> list[RecordedFrame]:
        return [frame for frame in self.frames if frame.conn == conn]


def _records(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise RecordingError(f"line {number}: not JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise RecordingError(f"line {number}: not a JSON object")
        yield record


def parse_recording(lines: Iterable[str]) -> Recording:
    """A recording from its lines (the header first)."""
    records = _records(lines)
    header = next(records, None)
    if header is None or header.get("recording") != "ibkr-connector":
        raise RecordingError("not an ibkr-connector recording (no header line)")
    frames = []
    for record in records:
        if "dir" not in record:
            continue  # connection events (``closed``) carry no frame
        direction: Direction = "c2s" if record["dir"] == "c2s" else "s2c"
        frame = Frame(direction, _payload_bytes(record), bool(record.get("framed", True)))
        frames.append(RecordedFrame(int(record.get("conn", 1)), direction,
                                    float(record.get("mono", 0.0)),
                                    float(record.get("wall", 0.0)), frame))
    return Recording(header, tuple(frames))


def read_recording(path: str | Path) -> Recording:
    """Read a recording file. Raises ``RecordingError`` or ``OSError``."""
    with open(path, encoding="utf-8") as file:
        return parse_recording(file)
