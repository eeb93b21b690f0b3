"""One connection attempt: one ibapi EClient, its reader thread, and a clean way to end it.

ibapi's EClient is not reusable across connections (its decoder and socket state belong to
one socket), so every attempt gets a fresh `TwsSession`. The blocking inbound side runs in
one thread this module owns and joins (`_reader.SessionReader`: connect, the version
handshake, then receive, frame, decode and post to the bridge); ibapi's own ``EReader``
thread and ``EClient.run()`` loop are not used. Requests are still encoded by the EClient
and written from the Trio thread as far as the socket takes them at once, the rest from a
worker thread. Nothing here blocks the Trio thread, and `close` does not return until the
attempt's thread has ended.

Only the connection actor holds a `TwsSession`; that is what makes it the single writer.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import threading
from collections.abc import Callable

import attrs
import trio
from ibapi import comm
from ibapi.client import EClient
from ibapi.server_versions import MIN_SERVER_VER_PROTOBUF

from .._errors import IBKRError
from . import events as ev
from ._reader import SessionReader
from .bridge import EventBridge
from .requests import Request

__all__ = [
    "ConnectFailed", "ConnectTimeout", "NotConnected", "RequestRefused", "SendFailed",
    "Transport", "TwsSession", "session_threads", "threaded_session",
]

log = logging.getLogger(__name__)

# ibapi logs every request it builds, and every frame it sends, at INFO: orders with their
# quantities and prices, accounts included. Those belong in the audit trail only, so ibapi's
# loggers are capped at WARNING. (Raise it again deliberately, for a debugging session.)
logging.getLogger("ibapi").setLevel(logging.WARNING)

_serials = itertools.count(1)

# How long `close` waits for the reader thread. Shutting the socket down wakes it at once;
# its socket has a 1 s timeout besides (and a connect in progress, the attempt's timeout).
_JOIN_TIMEOUT = 5.0


class ConnectFailed(IBKRError, ConnectionError):
    """The TCP connection or the API handshake failed (TWS not there, or refused us)."""


class ConnectTimeout(ConnectFailed):
    """TWS accepted the socket but did not finish the handshake in time."""


class NotConnected(IBKRError, ConnectionError):
    """A request was offered to a session whose socket is gone. It was not sent."""


class RequestRefused(IBKRError, ValueError):
    """ibapi declined to write the request while connected (its own checks refused it,
    e.g. a field this server version does not support); the reason is in a TwsError
    event. Nothing was sent, and sending it again would be refused again."""


class SendFailed(IBKRError, ConnectionError):
    """The socket failed while a request was being written: TWS may have part of it, all
    of it or none. The session cannot be trusted any more and must be dropped."""


class _ObservedClient(EClient):  # type: ignore[misc]
    """ibapi's EClient, with the one thing it does not tell us: whether a write happened.

    EClient's request methods return nothing whether they sent or not: a socket that died
    a moment before makes them report 504 to the wrapper and return, and
    ``Connection.sendMsg`` returns 0 without sending. Either way the request would be
    silently lost. Here every write goes through `_write`, which records the outcome and
    writes whole frames (ibapi's ``send`` may write part of a frame on a full buffer).
    Nothing else of ibapi's behaviour changes.

    A frame is written in the calling (Trio) thread as far as the kernel takes it at once
    (a non-blocking write; a request almost always fits the socket's buffer), and what it
    does not take waits in ``unsent`` for `finish_write`, which a worker thread runs.
    Handing every write to a worker would cost each request two cross-thread wake-ups,
    the largest part of an order's way to the wire. ibapi's connection lock is held from
    a frame's first byte to its last, whichever thread writes the last.
    """

    def __init__(self, wrapper: object) -> None:
        super().__init__(wrapper)
        self.written = 0
        self.write_error: OSError | None = None
        # Frames, or one frame's tail, that wait for `finish_write`, in order: a frame
        # never overtakes one before it.
        self.unsent: list[bytes] = []
        self._tail_locked = False  # unsent[0] is a tail, conn.lock held for it

    def disconnect(self) -> None:
        """Shut the socket down before ibapi closes it: that wakes the reader thread out of
        ``recv`` at once. (A close from another thread does not; the reader would sit out
        its 1 s socket timeout, and every lost session would take a second longer to be
        reported.)"""
        _shut_down(self)
        super().disconnect()

    def sendMsg(self, msgId: int, msg: str) -> None:  # noqa: N802, N803 - ibapi's names
        raw_id = self.serverVersion() >= MIN_SERVER_VER_PROTOBUF
        self._write(comm.make_msg(msgId, raw_id, msg))

    def sendMsgProtoBuf(self, msgId: int, msg: bytes) -> None:  # noqa: N802, N803
        self._write(comm.make_msg_proto(msgId, msg))

    def _write(self, frame: bytes) -> None:
        conn = self.conn
        if conn is None or conn.socket is None:
            return
        if self.unsent or not conn.lock.acquire(blocking=False):
            self.unsent.append(frame)  # behind an earlier frame, or another writer's
            return
        try:
            taken = _write_now(conn.socket, frame)
        except OSError as exc:
            conn.lock.release()
            self.write_error = exc
            return
        except BaseException:
            conn.lock.release()
            raise
        if taken < len(frame):
            self.unsent.append(frame[taken:])
            self._tail_locked = True
            return
        conn.lock.release()
        self.written += 1

    def finish_write(self) -> None:
        """Write what waits in ``unsent``, blocking: run it in a worker thread."""
        conn = self.conn
        while self.unsent:
            data = self.unsent.pop(0)
            tail, self._tail_locked = self._tail_locked, False
            if not tail:
                conn.lock.acquire()
            try:
                sock = conn.socket
                if sock is None:
                    if tail:  # part of the frame went out: TWS may hold a torn request
                        self.write_error = OSError("the socket closed in the middle of a frame")
                    self.unsent.clear()
                    return
                sock.sendall(data)
            except OSError as exc:
                self.write_error = exc
                self.unsent.clear()
                return
            finally:
                conn.lock.release()
            self.written += 1


def _write_now(sock: socket.socket, frame: bytes) -> int:
    """How much of ``frame`` the kernel takes without blocking (0 on a full buffer)."""
    if not isinstance(sock, socket.socket):
        sock.sendall(frame)  # the in-process transport's wire: takes whole frames, never blocks
        return len(frame)
    if sock.gettimeout() is None:
        return 0  # a blocking socket: the whole frame goes to the worker thread
    try:
        return os.write(sock.fileno(), frame)  # a timeout socket's descriptor never blocks
    except BlockingIOError:
        return 0


def _shut_down(client: EClient) -> None:
    """Shut the client's socket down (both ways), which wakes a thread blocked in ``recv``."""
    sock = getattr(client.conn, "socket", None)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed or never connected


def session_threads() -> list[threading.Thread]:
    """Every live thread of any TWS session in this process (ours are named ``ibkr-*``).
    After all sessions are closed this is empty (Trio's own cached worker threads are not
    ours to join and are not counted)."""
    return [t for t in threading.enumerate() if t.is_alive() and t.name.startswith("ibkr-")]


@attrs.define
class _Thread:
    """A daemon thread whose end Trio can await without blocking."""

    thread: threading.Thread
    done: trio.Event

    @classmethod
    def start(cls, name: str, target: Callable[[], None]) -> _Thread:
        token = trio.lowlevel.current_trio_token()
        done = trio.Event()

        def body() -> None:
            try:
                target()
            finally:
                try:
                    token.run_sync_soon(done.set)
                except trio.RunFinishedError:
                    pass

        thread = threading.Thread(target=body, name=name, daemon=True)
        thread.start()
        return cls(thread, done)


class TwsSession:
    """A single EClient connection attempt, from handshake to joined thread."""

    def __init__(self, bridge: EventBridge) -> None:
        self.bridge = bridge
        self.serial = next(_serials)
        self.client = _ObservedClient(bridge)
        self._reader = SessionReader(self.client, bridge, self.serial)
        self._thread: _Thread | None = None
        self._closed = False
        self._stop_posted = False

    @property
    def server_version(self) -> int | None:
        version = self.client.serverVersion()
        return int(version) if version else None

    @property
    def connection_time(self) -> str | None:
        return self.client.connTime  # type: ignore[no-any-return]

    def is_connected(self) -> bool:
        return bool(self.client.isConnected())

    # The deadline bounds a thread's handshake (which a cancel scope cannot interrupt), so
    # it is a parameter rather than the caller's scope.
    async def open(
        self, host: str, port: int, client_id: int, *, timeout: float  # noqa: ASYNC109
    ) -> None:
        """Connect and hand-shake in the session's reader thread, which then reads on.

        Raises `ConnectFailed` (refused, closed during the handshake) or `ConnectTimeout`.
        On any failure, and on cancellation, the attempt is closed and its thread joined
        before this returns or raises. Success only means the socket is up and startApi was
        sent: the caller waits for nextValidId to know TWS has accepted the client id. If
        TWS hangs up at once (a 326, say), the reader still delivers what it said first.
        """
        token = trio.lowlevel.current_trio_token()
        handshaken = trio.Event()

        def signal() -> None:
            try:
                token.run_sync_soon(handshaken.set)
            except trio.RunFinishedError:
                pass

        reader = self._reader
        self._thread = _Thread.start(
            f"ibkr-read-{self.serial}",
            lambda: reader.run(host, port, client_id, timeout, signal),
        )
        try:
            with trio.move_on_after(timeout) as scope:
                await handshaken.wait()
            if scope.cancelled_caught:
                raise ConnectTimeout(f"no API handshake from {host}:{port} within {timeout:g} s")
            if not self.client.isConnected():
                raise ConnectFailed(f"could not connect to {host}:{port}")
        except BaseException:
            with trio.CancelScope(shield=True):
                await self.close()
            raise

    async def send(self, request: Request) -> None:
        """Write *request* to the socket (what a full socket buffer does not take at once
        goes from a worker thread: it must not stall the event loop). Raises `NotConnected`
        if it was certainly not sent (the socket is gone), `SendFailed` if the write itself
        failed (delivery unknown).

        Not abandoned on cancellation: a request is either wholly handed to ibapi or not at
        all, never half-written.
        """
        if not self.is_connected():
            raise NotConnected(f"session {self.serial} is not connected")
        client = self.client
        before = client.written
        await self._apply(request)
        if client.write_error is not None:
            raise SendFailed(f"writing {type(request).__name__} failed: {client.write_error}")
        if client.written == before:
            if client.isConnected():
                raise RequestRefused(f"ibapi refused to send {type(request).__name__}; "
                                     "see the error event for why")
            # ibapi declined to write because the socket had gone.
            raise NotConnected(f"session {self.serial} lost its socket; "
                               f"{type(request).__name__} was not sent")

    async def _apply(self, request: Request) -> None:
        """Have the EClient encode and write *request*; a transport's one way of writing.
        Encoded and written here; only what the socket would not take at once is written
        from a worker thread (never abandoned: a frame is finished or the socket failed)."""
        client = self.client
        request.apply(client)
        if client.unsent:
            # Shielded: a torn frame holds ibapi's connection lock until its last byte,
            # and a disconnect waits for that lock. Bounded by the socket's 1 s timeout.
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(client.finish_write)
        else:
            await trio.lowlevel.checkpoint()

    async def close(self) -> None:
        """Disconnect and join the reader thread. Idempotent.

        Shutting the socket down wakes the reader out of ``recv`` at once; it then
        disconnects the EClient itself (one thread inside ``EClient.disconnect``, never
        two racing on its ``reset``) and posts `ReaderStopped`.
        """
        if not self._closed:
            self._closed = True
            self._reader.stop()
            _shut_down(self.client)
        handle = self._thread
        if handle is None:
            if not self._stop_posted:
                # No reader ever existed to say so: the bridge's consumer still needs to
                # learn that nothing more will come from this session.
                self._stop_posted = True
                self.bridge.post(ev.ReaderStopped(self.serial))
            return
        with trio.move_on_after(_JOIN_TIMEOUT):
            await handle.done.wait()
        if handle.thread.is_alive():
            await trio.to_thread.run_sync(handle.thread.join, _JOIN_TIMEOUT)

    def threads(self) -> list[threading.Thread]:
        """The threads this attempt started (for leak checks)."""
        return [self._thread.thread] if self._thread is not None else []


#: Makes the session of one connection attempt: how the connection actor reaches TWS.
#: Production uses `threaded_session`; tests may choose another (`protocol._inprocess`).
Transport = Callable[[], TwsSession]


def threaded_session() -> TwsSession:
    """The production transport: a socket and a reader thread per attempt."""
    return TwsSession(EventBridge())
