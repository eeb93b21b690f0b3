"""The inbound side of one session: socket bytes to events, in one thread, in one pass.

ibapi reads with two threads and a queue: its ``EReader`` appends each 4 KiB read to a
backlog and re-slices the whole backlog once per frame (so a burst costs time quadratic in
its size), puts each frame on a ``queue.Queue``, and ``EClient.run()`` takes them off one by
one to decode. Here one thread does it all: it receives large chunks, frames them by offset
(bytes are copied once into a frame, and only an incomplete tail is carried over), decodes
each frame and posts the event to the bridge. No frame crosses a thread queue before it is
decoded, and the cost per frame does not grow with the backlog.

Decoding: the hot market-data frames go through `fastpath`; every other frame -- and any
hot frame the fast path leaves alone -- goes to ibapi's own ``Decoder`` at the negotiated
server version, exactly as ``EClient.run()`` hands it over (so malformed frames fail as they
fail there). `InboundDecoder` is the sans-IO part (fed bytes, no socket); `SessionReader` is
the thread body around it: connect, the version handshake, then read until the socket ends.
"""

from __future__ import annotations

import logging
import socket
import struct
import traceback
from collections.abc import Callable
from typing import Any

from ibapi import comm
from ibapi.client import EClient
from ibapi.common import PROTOBUF_MSG_ID
from ibapi.connection import Connection
from ibapi.const import MAX_MSG_LEN, NO_VALID_ID
from ibapi.decoder import Decoder
from ibapi.errors import BAD_LENGTH, CONNECT_FAIL
from ibapi.server_versions import MAX_CLIENT_VER, MIN_CLIENT_VER, MIN_SERVER_VER_PROTOBUF
from ibapi.utils import BadMessage, currentTimeMillis

from . import events as ev
from .bridge import EventBridge
from .fastpath import FastDecoder, fast_decoders

__all__ = [
    "FrameTooLong", "InboundDecoder", "SessionReader", "hello", "start_api", "take_chunk",
    "version_reply",
]

log = logging.getLogger(__name__)

_RECV_SIZE = 1 << 18
_length = struct.Struct(">I").unpack_from


class FrameTooLong(Exception):  # noqa: N818 - internal: ends the read loop, never escapes
    """A frame header announced more than ibapi's ``MAX_MSG_LEN``; reported as error 507."""


class InboundDecoder:
    """Frames a session's inbound byte stream and decodes each frame into the bridge.

    Sans-IO: `feed` it whatever the socket gave, in order. It raises what ibapi's decoder
    raises on a frame it cannot decode (the session must end then: the stream can no longer
    be trusted) and `FrameTooLong` on an impossible length, after reporting it as ibapi does.
    """

    def __init__(self, bridge: EventBridge, decoder: Decoder, server_version: int) -> None:
        self._bridge = bridge
        self._decoder = decoder
        self._server_version = server_version
        self._fast: dict[bytes, FastDecoder] = fast_decoders(server_version)
        # The incomplete tail of what was fed: chunks, joined once the frame is complete.
        self._parts: list[bytes] = []
        self._held = 0
        self._wanted = 4

    def feed(self, data: bytes) -> None:
        """Decode every complete frame in what was fed so far, in order."""
        if self._parts:
            self._parts.append(data)
            self._held += len(data)
            if self._held < self._wanted:
                return
            data = b"".join(self._parts)
            self._parts = []
        end = len(data)
        pos = 0
        fast_get = self._fast.get
        bridge = self._bridge
        append = bridge._append  # noqa: SLF001 - the hot path posts inline (see below)
        slow = self._decode_with_ibapi
        while end - pos >= 4:
            (size,) = _length(data, pos)
            if size > MAX_MSG_LEN:
                self._too_long(size)
            stop = pos + 4 + size
            if stop > end:
                break
            text = data[pos + 4:stop]
            pos = stop
            # The fast path; post() inlined, as in the bridge's own tick callbacks.
            fields = text.split(b"\0")
            fast = fast_get(fields[0])
            if fast is not None:
                try:
                    event = fast(fields)
                except Exception:  # noqa: BLE001 - malformed: ibapi decides what it is
                    event = None
                if event is not None:
                    if bridge._held is not None:  # noqa: SLF001
                        bridge._release_held()  # noqa: SLF001
                    append(event)
                    if bridge._asleep:  # noqa: SLF001
                        bridge._schedule_wakeup()  # noqa: SLF001
                    continue
            slow(text)
        if pos < end:
            rest = data[pos:]
            self._parts = [rest]
            self._held = len(rest)
            self._wanted = 4 + _length(rest, 0)[0] if len(rest) >= 4 else 4

    def _too_long(self, size: int) -> None:
        self._bridge.error(NO_VALID_ID, currentTimeMillis(), BAD_LENGTH.code(),
                           f"{BAD_LENGTH.msg()}:{size}")
        raise FrameTooLong(size)

    def _decode_with_ibapi(self, text: bytes) -> None:
        """One frame through ibapi's decoder, exactly as ``EClient.run()`` does it."""
        if self._server_version >= MIN_SERVER_VER_PROTOBUF:
            msg_id = int.from_bytes(text[:4], "big")
            text = text[4:]
        else:
            cut = text.index(b"\0")
            msg_id = int(text[:cut])
            text = text[cut + 1:]
        try:
            if msg_id > PROTOBUF_MSG_ID:
                self._decoder.processProtoBuf(text, msg_id - PROTOBUF_MSG_ID)
            else:
                self._decoder.interpret(comm.read_fields(text), msg_id)
        except BadMessage:
            log.info("ibapi reported a bad message and skipped it")


def hello(client: EClient) -> bytes:
    """The client's opening bytes: ``API\\0`` and the version range ibapi offers."""
    version = f"v{MIN_CLIENT_VER}..{MAX_CLIENT_VER}"
    if client.connectOptions:
        version += " " + client.connectOptions
    initial: bytes = comm.make_initial_msg(version)
    return b"API\0" + initial


def version_reply(data: bytes) -> tuple[tuple[int, bytes] | None, bytes]:
    """TWS's version reply (server version, connection time) if *data* holds it, and the
    bytes after it; else None and what is left to wait on. TWS may send a notice before its
    version; ibapi skips such frames too, and so does this."""
    while len(data) >= 4 and len(data) >= 4 + _length(data, 0)[0]:
        end = 4 + _length(data, 0)[0]
        fields = comm.read_fields(data[4:end])
        data = data[end:]
        if len(fields) == 2:
            return (int(fields[0]), fields[1]), data
    return None, data


def start_api(client: EClient, server_version: int, conn_time: bytes) -> None:
    """Finish ibapi's handshake on *client* as ``EClient.connect`` does: version, decoder,
    state, then ``startApi`` (written through the client) and ``connectAck``."""
    client.connTime = conn_time.decode(errors="backslashreplace")
    client.serverVersion_ = server_version
    client.decoder = Decoder(client.wrapper, server_version)
    client.setConnState(EClient.CONNECTED)
    client.startApi()
    finish_write = getattr(client, "finish_write", None)
    if finish_write is not None and client.unsent:
        # What the socket did not take at once (see `client._ObservedClient`): written
        # here, in the reader thread, before anything waits on TWS's answer to startApi.
        finish_write()
    client.wrapper.connectAck()


def describe(exc: BaseException) -> str:
    """The one-line text of a `MalformedMessage`."""
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()


class SessionReader:
    """The body of a session's one thread: connect, hand-shake, read until the socket ends.

    The handshake is ibapi's (``API\\0``, the version range, the two-field reply, then
    ``startApi`` and ``connectAck`` through the EClient), done here so that no ``EReader``
    thread is started; requests are still encoded and written by the EClient.
    *handshake_done* is called once, from this thread, when the handshake has finished or
    failed. `stop` asks the thread to end at its next chance (the caller shuts the socket
    down too, which wakes a blocked receive at once).
    """

    def __init__(self, client: EClient, bridge: EventBridge, serial: int) -> None:
        self._client = client
        self._bridge = bridge
        self._serial = serial
        self._stopping = False

    def stop(self) -> None:
        self._stopping = True

    def run(self, host: str, port: int, client_id: int, timeout: float,
            handshake_done: Callable[[], None]) -> None:
        signalled = False
        try:
            rest = self._handshake(host, port, client_id, timeout)
            handshake_done()
            signalled = True
            if rest is not None:
                self._read(rest)
        finally:
            if not signalled:
                handshake_done()
            self._bridge.post(ev.ReaderStopped(self._serial))

    def _handshake(self, host: str, port: int, client_id: int, timeout: float) -> bytes | None:
        """Connect and exchange versions; the bytes already received after the version
        reply, or None if there is no session (refused, closed, or stopped)."""
        client = self._client
        wrapper: Any = client.wrapper
        client.host, client.port, client.clientId = host or "127.0.0.1", port, client_id
        client.conn = Connection(client.host, port)
        try:
            sock = socket.create_connection((client.host, port), timeout=timeout)
        except OSError:
            wrapper.error(NO_VALID_ID, currentTimeMillis(), CONNECT_FAIL.code(),
                          CONNECT_FAIL.msg())
            client.disconnect()
            return None
        # ibapi's timeout: a write to a TWS that stopped reading fails rather than hangs.
        sock.settimeout(1)
        client.conn.socket = sock
        client.setConnState(EClient.CONNECTING)
        data = b""
        try:
            sock.sendall(hello(client))
            while not self._stopping:
                reply, data = version_reply(data)
                if reply is not None:
                    start_api(client, *reply)
                    return data
                chunk = self._recv(sock)
                if chunk is None:
                    continue
                if not chunk:
                    break
                data += chunk
        except (OSError, ValueError):
            pass
        # Closed (or stopped) during the handshake: like ibapi, no connectionClosed.
        client.conn.disconnect()
        client.reset()
        return None

    def _recv(self, sock: socket.socket) -> bytes | None:
        """A chunk; b"" when the socket has ended; None on a timeout (try again)."""
        try:
            return sock.recv(_RECV_SIZE)
        except TimeoutError:
            return None
        except OSError:
            return b""

    def _read(self, rest: bytes) -> None:
        client = self._client
        sock = client.conn.socket
        inbound = InboundDecoder(self._bridge, client.decoder, client.serverVersion_)
        if rest and not take_chunk(client, self._bridge, inbound, rest):
            return
        recv = self._recv
        while not self._stopping:
            chunk = recv(sock)
            if chunk:
                if not take_chunk(client, self._bridge, inbound, chunk):
                    return
            elif chunk is not None:
                break
        client.disconnect()


def take_chunk(client: EClient, bridge: EventBridge, inbound: InboundDecoder,
               data: bytes) -> bool:
    """Decode one chunk of a session's inbound stream; False once the session has ended.

    A frame ibapi cannot decode (or an impossible length) ends it: the client is
    disconnected, and an undecodable frame is posted as `MalformedMessage`. Shared by every
    transport, so a damaged stream ends a session the same way whatever carried it.
    """
    try:
        inbound.feed(data)
    except FrameTooLong:
        client.disconnect()
        return False
    except Exception as exc:  # noqa: BLE001 - a frame ibapi cannot decode
        detail = describe(exc)
        # The exception text can quote a field (a price, an account): its type only at
        # WARNING, the detail at DEBUG (and in the event, which is not logged).
        log.warning("ibapi could not decode a message from TWS (%s)", type(exc).__name__)
        log.debug("undecodable message: %s", detail)
        client.disconnect()
        bridge.post(ev.MalformedMessage(detail))
        return False
    return True
