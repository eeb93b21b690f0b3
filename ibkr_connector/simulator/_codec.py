"""Sans-IO server side of the TWS wire: framing, fields, handshake and version negotiation.

This is the h11-shaped core of the simulator. ``ServerCodec`` is fed the bytes a client
wrote and hands back typed, frozen events; it never touches a socket, a clock or a task,
so every rule of the wire is tested with plain bytes. The facts it encodes come from the
unmodified ``ibapi`` client (``client.connect``/``startApi`` and ``comm.py``):

* the client opens with ``API\\0`` and one length-prefixed text ``v<min>..<max>``,
  optionally followed by a space and connect options (``+PACEAPI``);
* the server answers with one frame of two fields: the version it chose and a connection
  time string;
* every later message is a 4-byte big-endian length and a payload of NUL-terminated text
  fields whose first field is the message id (classic text form, versions <= 200);
* the first message after the handshake is ``START_API`` (71): version, client id and,
  from version 72, optional capabilities.

The state machine: ``AWAIT_HANDSHAKE -> AWAIT_START_API -> READY``; any violation of the
rules above raises ``ClientProtocolError`` and moves the codec to ``ERROR`` for good (the
caller logs it and closes that one connection, like TWS does).
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable

import attrs

__all__ = [
    "NEED_DATA",
    "START_API",
    "ClientMessage",
    "ClientProtocolError",
    "CodecState",
    "ConnectionClosed",
    "Event",
    "Handshake",
    "ServerCodec",
    "StartApi",
    "decode_field",
    "encode_field",
    "frame",
]

API_PREFIX = b"API\0"
#: ibapi's ``MAX_MSG_LEN``: a client never writes a larger frame.
MAX_FRAME_LENGTH = 0xFFFFFF
#: ``OUT.START_API``.
START_API = 71
#: ``MIN_SERVER_VER_OPTIONAL_CAPABILITIES``: from here START_API carries a third field.
_MIN_VER_OPTIONAL_CAPABILITIES = 72
_LENGTH = struct.Struct("!I")


class ClientProtocolError(Exception):
    """The client broke the wire protocol; the connection cannot continue."""


class CodecState(enum.Enum):
    AWAIT_HANDSHAKE = "await_handshake"
    AWAIT_START_API = "await_start_api"
    READY = "ready"
    ERROR = "error"


class _NeedData(enum.Enum):
    NEED_DATA = "need_data"


#: Returned by ``ServerCodec.next_event`` when a whole event is not buffered yet.
NEED_DATA = _NeedData.NEED_DATA


@attrs.frozen
class Handshake:
    """The client's version range; ``server_version`` is the version negotiated."""

    min_version: int
    max_version: int
    options: str
    server_version: int


@attrs.frozen
class StartApi:
    """``START_API``: the client names itself. ``fields`` are all fields after the id."""

    client_id: int
    optional_capabilities: str
    fields: tuple[str, ...]

    @property
    def msg_id(self) -> int:
        return START_API


@attrs.frozen
class ClientMessage:
    """Any message after ``START_API``: its id and the text fields that follow it."""

    msg_id: int
    fields: tuple[str, ...]


@attrs.frozen
class ConnectionClosed:
    """The client closed its side; ``trailing`` is how many bytes of a partial frame were
    left unparsed (non-zero means it died mid-message)."""

    trailing: int


Event = Handshake | StartApi | ClientMessage | ConnectionClosed


def encode_field(value: object) -> bytes:
    """One field as TWS writes it: text, NUL-terminated; bools as 1/0, ``None`` as empty."""
    if value is None:
        text = ""
    elif isinstance(value, bool):
        text = "1" if value else "0"
    else:
        text = str(value)
    if "\0" in text:
        raise ValueError(f"a field cannot contain NUL: {text!r}")
    return text.encode("utf-8") + b"\0"


def frame(fields: Iterable[object]) -> bytes:
    """A whole length-prefixed message from its fields (message id first)."""
    payload = b"".join(encode_field(value) for value in fields)
    return _LENGTH.pack(len(payload)) + payload


def decode_field(raw: bytes) -> str:
    """Bytes of one client field as text, losslessly (undecodable bytes survive as
    surrogates, so what was on the wire can always be recovered)."""
    return raw.decode("utf-8", errors="surrogateescape")


def _parse_int(raw: str, what: str) -> int:
    digits = raw[1:] if raw[:1] == "-" else raw
    if not digits.isascii() or not digits.isdigit():
        raise ClientProtocolError(f"{what} is not an integer: {raw!r}")
    return int(raw)


def _parse_version_range(text: str) -> tuple[int, int, str]:
    spec, _, options = text.partition(" ")
    if not spec.startswith("v"):
        raise ClientProtocolError(f"handshake version must start with 'v': {text!r}")
    low, sep, high = spec[1:].partition("..")
    min_version = _parse_int(low, "handshake minimum version")
    max_version = _parse_int(high, "handshake maximum version") if sep else min_version
    if min_version > max_version:
        raise ClientProtocolError(f"empty handshake version range: {spec!r}")
    return min_version, max_version, options


class ServerCodec:
    """The server end of one TWS API connection, without I/O.

    Feed it with ``receive_data`` (``b""`` = the client closed) and drain it with
    ``next_event`` until it returns ``NEED_DATA``. ``max_server_version`` is the highest
    version this server speaks and ``min_server_version`` the lowest; the negotiated
    version is the highest both sides accept.
    """

    def __init__(self, max_server_version: int, min_server_version: int = 100) -> None:
        self.max_server_version = max_server_version
        self.min_server_version = min_server_version
        self.state = CodecState.AWAIT_HANDSHAKE
        self.server_version: int | None = None
        self._buffer = bytearray()
        self._eof = False

    def receive_data(self, data: bytes) -> None:
        if self._eof and data:
            raise RuntimeError("data received after end of stream")
        if data:
            self._buffer += data
        else:
            self._eof = True

    def next_event(self) -> Event | _NeedData:
        """The next complete event, or ``NEED_DATA``. Raises ``ClientProtocolError``."""
        if self.state is CodecState.ERROR:
            raise ClientProtocolError("codec is in the error state")
        try:
            event = self._next_event()
        except ClientProtocolError:
            self.state = CodecState.ERROR
            raise
        if event is NEED_DATA and self._eof:
            return ConnectionClosed(trailing=len(self._buffer))
        return event

    def handshake_reply(self, connection_time: str) -> bytes:
        """The server's answer to ``Handshake``: the negotiated version and the time."""
        if self.server_version is None:
            raise RuntimeError("no handshake has been received yet")
        return frame((self.server_version, connection_time))

    # -- parsing ---------------------------------------------------------------------------

    def _next_event(self) -> Event | _NeedData:
        if self.state is CodecState.AWAIT_HANDSHAKE:
            return self._read_handshake()
        payload = self._read_frame(self._buffer, 0)
        if payload is None:
            return NEED_DATA
        msg_id, fields = self._split(payload)
        if self.state is CodecState.AWAIT_START_API:
            return self._start_api(msg_id, fields)
        return ClientMessage(msg_id=msg_id, fields=fields)

    def _read_handshake(self) -> Handshake | _NeedData:
        prefix = bytes(self._buffer[: len(API_PREFIX)])
        if not API_PREFIX.startswith(prefix):
            raise ClientProtocolError(f"handshake must start with {API_PREFIX!r}, got {prefix!r}")
        if len(prefix) < len(API_PREFIX):
            return NEED_DATA
        payload = self._read_frame(self._buffer, len(API_PREFIX))
        if payload is None:
            return NEED_DATA
        text = payload.decode("ascii", errors="replace")
        min_version, max_version, options = _parse_version_range(text)
        version = min(max_version, self.max_server_version)
        if version < min_version or version < self.min_server_version:
            raise ClientProtocolError(
                f"no common version: client v{min_version}..{max_version}, server "
                f"v{self.min_server_version}..{self.max_server_version}"
            )
        self.server_version = version
        self.state = CodecState.AWAIT_START_API
        return Handshake(min_version, max_version, options, version)

    def _read_frame(self, buffer: bytearray, start: int) -> bytes | None:
        """Take one length-prefixed payload starting at ``start`` off the buffer."""
        header_end = start + _LENGTH.size
        if len(buffer) < header_end:
            return None
        (length,) = _LENGTH.unpack_from(buffer, start)
        if length == 0 or length > MAX_FRAME_LENGTH:
            raise ClientProtocolError(f"bad frame length {length}")
        if len(buffer) < header_end + length:
            return None
        payload = bytes(buffer[header_end : header_end + length])
        del buffer[: header_end + length]
        return payload

    def _split(self, payload: bytes) -> tuple[int, tuple[str, ...]]:
        if not payload.endswith(b"\0"):
            raise ClientProtocolError("message payload does not end with a NUL terminator")
        raw = payload.split(b"\0")[:-1]
        msg_id = _parse_int(decode_field(raw[0]), "message id")
        return msg_id, tuple(decode_field(item) for item in raw[1:])

    def _start_api(self, msg_id: int, fields: tuple[str, ...]) -> StartApi:
        if msg_id != START_API:
            raise ClientProtocolError(f"expected START_API (71) first, got message {msg_id}")
        if len(fields) < 2:
            raise ClientProtocolError("START_API needs a version and a client id")
        client_id = _parse_int(fields[1], "client id")
        capabilities = ""
        version = self.server_version or 0
        if version >= _MIN_VER_OPTIONAL_CAPABILITIES and len(fields) > 2:
            capabilities = fields[2]
        self.state = CodecState.READY
        return StartApi(client_id=client_id, optional_capabilities=capabilities, fields=fields)
