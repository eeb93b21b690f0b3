"""One connection attempt: one ibapi EClient, its threads, and a clean way to end them.

ibapi's EClient is not reusable across connections (its queue, decoder and reader belong to
one socket), so every attempt gets a fresh `TwsSession`. The blocking parts run in threads
this module owns and joins: the handshake (``EClient.connect`` reads the version reply
synchronously), ibapi's own ``EReader`` thread, and ``EClient.run()``. Nothing here blocks
the Trio thread, and `close` does not return until every thread of the attempt has ended.

Only the connection actor holds a `TwsSession`; that is what makes it the single writer.
"""

from __future__ import annotations

import itertools
import logging
import socket
import threading
import traceback
from collections.abc import Callable

import attrs
import trio
from ibapi import comm
from ibapi.client import EClient
from ibapi.reader import EReader
from ibapi.server_versions import MIN_SERVER_VER_PROTOBUF

from . import events as ev
from .bridge import EventBridge
from .requests import Request

__all__ = [
    "ConnectFailed", "ConnectTimeout", "NotConnected", "RequestRefused", "SendFailed",
    "TwsSession", "session_threads",
]

log = logging.getLogger(__name__)

# ibapi logs every request it builds, and every frame it sends, at INFO: orders with their
# quantities and prices, accounts included. Those belong in the audit trail only, so ibapi's
# loggers are capped at WARNING. (Raise it again deliberately, for a debugging session.)
logging.getLogger("ibapi").setLevel(logging.WARNING)

_serials = itertools.count(1)

# How long `close` waits for each thread. ibapi's run() polls its queue every 0.2 s and
# the reader's socket has a 1 s timeout; shutting the socket down wakes the reader at once.
_JOIN_TIMEOUT = 5.0


class ConnectFailed(ConnectionError):
    """The TCP connection or the API handshake failed (TWS not there, or refused us)."""


class ConnectTimeout(ConnectFailed):
    """TWS accepted the socket but did not finish the handshake in time."""


class NotConnected(ConnectionError):
    """A request was offered to a session whose socket is gone. It was not sent."""


class RequestRefused(ValueError):
    """ibapi declined to write the request while connected (its own checks refused it,
    e.g. a field this server version does not support); the reason is in a TwsError
    event. Nothing was sent, and sending it again would be refused again."""


class SendFailed(ConnectionError):
    """The socket failed while a request was being written: TWS may have part of it, all
    of it or none. The session cannot be trusted any more and must be dropped."""


class _ObservedClient(EClient):  # type: ignore[misc]
    """ibapi's EClient, with the one thing it does not tell us: whether a write happened.

    EClient's request methods return nothing whether they sent or not: a socket that died
    a moment before makes them report 504 to the wrapper and return, and
    ``Connection.sendMsg`` returns 0 without sending. Either way the request would be
    silently lost. Here every write goes through `_write`, which records the outcome and
    uses ``sendall`` (ibapi's ``send`` may write part of a frame on a full buffer).
    Nothing else of ibapi's behaviour changes.
    """

    def __init__(self, wrapper: object) -> None:
        super().__init__(wrapper)
        self.written = 0
        self.write_error: OSError | None = None

    def disconnect(self) -> None:
        """Shut the socket down before ibapi closes it: that wakes the EReader thread out
        of ``recv`` at once. (A close from another thread does not; the reader would sit
        out its 1 s socket timeout, and every lost session would take a second longer to
        be reported.)"""
        _shut_down(self)
        super().disconnect()

    def sendMsg(self, msgId: int, msg: str) -> None:  # noqa: N802, N803 - ibapi's names
        raw_id = self.serverVersion() >= MIN_SERVER_VER_PROTOBUF
        self._write(comm.make_msg(msgId, raw_id, msg))

    def sendMsgProtoBuf(self, msgId: int, msg: bytes) -> None:  # noqa: N802, N803
        self._write(comm.make_msg_proto(msgId, msg))

    def _write(self, frame: bytes) -> None:
        conn = self.conn
        if conn is None:
            return
        with conn.lock:
            sock = conn.socket
            if sock is None:
                return
            try:
                sock.sendall(frame)
            except OSError as exc:
                self.write_error = exc
                return
        self.written += 1


def _shut_down(client: EClient) -> None:
    """Shut the client's socket down (both ways), which wakes a thread blocked in ``recv``."""
    sock = getattr(client.conn, "socket", None)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed or never connected


def session_threads() -> list[threading.Thread]:
    """Every live thread of any TWS session in this process: ours are named ``ibkr-*``,
    ibapi's reader is an ``EReader``. After all sessions are closed this is empty (Trio's
    own cached worker threads are not ours to join and are not counted)."""
    return [t for t in threading.enumerate()
            if t.is_alive() and (t.name.startswith("ibkr-") or isinstance(t, EReader))]


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
    """A single EClient connection attempt, from handshake to joined threads."""

    def __init__(self, bridge: EventBridge) -> None:
        self.bridge = bridge
        self.serial = next(_serials)
        self.client = _ObservedClient(bridge)
        self._connect_thread: _Thread | None = None
        self._run_thread: _Thread | None = None
        self._reader: threading.Thread | None = None  # ibapi's EReader; reset() forgets it
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
        """Connect and hand-shake; start ``EClient.run()`` in its own thread.

        Raises `ConnectFailed` (refused, closed during the handshake) or `ConnectTimeout`.
        On any failure, and on cancellation, the attempt is closed and its threads joined
        before this returns or raises. Success only means the socket is up and startApi was
        sent: the caller waits for nextValidId to know TWS has accepted the client id.
        """
        client = self.client
        self._connect_thread = _Thread.start(
            f"ibkr-connect-{self.serial}", lambda: client.connect(host, port, client_id)
        )
        try:
            with trio.move_on_after(timeout) as scope:
                await self._connect_thread.done.wait()
            if scope.cancelled_caught:
                raise ConnectTimeout(f"no API handshake from {host}:{port} within {timeout:g} s")
            self._reader = client.reader
            if self._reader is not None:
                # Run even if TWS has already hung up: run() drains what the reader queued
                # first, and that is where the reason is (a 326, say).
                self._run_thread = _Thread.start(f"ibkr-run-{self.serial}", self._run)
            if not client.isConnected():
                raise ConnectFailed(f"could not connect to {host}:{port}")
        except BaseException:
            with trio.CancelScope(shield=True):
                await self.close()
            raise

    def _run(self) -> None:
        """``EClient.run()``; a frame it cannot decode becomes an event, not a dead thread."""
        try:
            self.client.run()
        except Exception as exc:  # noqa: BLE001 - anything run() lets out is a bad frame
            detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            log.warning("ibapi could not decode a message from TWS: %s", detail)
            # run()'s own finally has already disconnected the client.
            self.bridge.post(ev.MalformedMessage(detail))
        finally:
            self.bridge.post(ev.ReaderStopped(self.serial))

    async def send(self, request: Request) -> None:
        """Write *request* to the socket, in a worker thread (a full socket buffer must not
        stall the event loop). Raises `NotConnected` if it was certainly not sent (the socket
        is gone), `SendFailed` if the write itself failed (delivery unknown).

        Not abandoned on cancellation: a request is either wholly handed to ibapi or not at
        all, never half-written.
        """
        if not self.is_connected():
            raise NotConnected(f"session {self.serial} is not connected")
        client = self.client
        before = client.written
        await trio.to_thread.run_sync(request.apply, client)
        if client.write_error is not None:
            raise SendFailed(f"writing {type(request).__name__} failed: {client.write_error}")
        if client.written == before:
            if client.isConnected():
                raise RequestRefused(f"ibapi refused to send {type(request).__name__}; "
                                     "see the error event for why")
            # ibapi declined to write because the socket had gone.
            raise NotConnected(f"session {self.serial} lost its socket; "
                               f"{type(request).__name__} was not sent")

    async def close(self) -> None:
        """Disconnect and join every thread of this attempt. Idempotent.

        Shutting the socket down wakes ibapi's reader out of ``recv`` at once; the reader
        then drops the connection, ``run()`` notices within its 0.2 s poll and disconnects
        the EClient itself. Only when no run thread exists do we call ``disconnect`` here:
        two threads inside ``EClient.disconnect`` at once race on its ``reset``.
        """
        if not self._closed:
            self._closed = True
            _shut_down(self.client)
            connecting = self._connect_thread
            if connecting is not None:
                with trio.move_on_after(_JOIN_TIMEOUT):
                    await connecting.done.wait()
            if self._reader is None:
                self._reader = self.client.reader
            if self._run_thread is None:
                await trio.to_thread.run_sync(self.client.disconnect)
        for thread in self.threads():
            if thread.is_alive():
                await trio.to_thread.run_sync(thread.join, _JOIN_TIMEOUT)
        if self._run_thread is None and not self._stop_posted:
            # No run() thread ever existed to say so: the bridge's reader still needs to
            # learn that nothing more will come from this session.
            self._stop_posted = True
            self.bridge.post(ev.ReaderStopped(self.serial))

    def threads(self) -> list[threading.Thread]:
        """The threads this attempt started (for leak checks)."""
        found = [h.thread for h in (self._connect_thread, self._run_thread) if h is not None]
        if self._reader is not None:
            found.append(self._reader)
        return found
