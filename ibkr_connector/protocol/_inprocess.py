"""The in-process transport: a session whose bytes go to a simulated TWS in the same Trio
loop, with no socket and no thread. A testing seam, not a production mode.

Deterministic simulation testing needs the whole system in one thread on a virtual clock,
yet what it tests must be what production runs. So only the carrier changes: the session
is a `TwsSession` whose EClient (ibapi's own encoder, observed by `_ObservedClient`)
writes every request into an `Endpoint`'s wire instead of a socket, and whose inbound
bytes are framed and decoded by the same `_reader` functions as the reader thread's
(``InboundDecoder`` through `take_chunk`: the fast path or ibapi's ``Decoder``). The
handshake is ibapi's too (`hello`, `version_reply`, `start_api`).

The endpoint (``simulator.InProcessTws``) calls back into the session synchronously with
what TWS writes (`InProcessSession.deliver`) and when it hangs up (`hang_up`); the session
writes through the wire's ``sendall`` / ``shutdown`` / ``close``, the only socket methods
ibapi and `TwsSession` use. Choose it with ``open_runtime(..., transport=in_process(tws))``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import trio
from ibapi.client import EClient
from ibapi.connection import Connection
from ibapi.const import NO_VALID_ID
from ibapi.errors import CONNECT_FAIL
from ibapi.utils import currentTimeMillis

from . import events as ev
from ._reader import InboundDecoder, hello, start_api, take_chunk, version_reply
from .bridge import EventBridge
from .client import ConnectFailed, ConnectTimeout, Transport, TwsSession
from .requests import Request

__all__ = ["Endpoint", "InProcessSession", "Wire", "in_process"]


class Wire(Protocol):
    """The client's end of an in-process connection: what ibapi does with a socket."""

    def sendall(self, data: bytes) -> None:
        """Hand *data* to TWS; OSError once TWS has closed the connection."""

    def shutdown(self, how: int) -> None:
        """End the connection (TWS reads end-of-stream)."""

    def close(self) -> None:
        """The same as `shutdown`; idempotent."""


class Endpoint(Protocol):
    """A TWS reachable in-process (``simulator.InProcessTws``)."""

    def connect(self, deliver: Callable[[bytes], None], hang_up: Callable[[], None]) -> Wire:
        """Open a connection whose TWS side calls *deliver* with every chunk it writes and
        *hang_up* once when it closes. ConnectionRefusedError while TWS is not listening."""


def in_process(endpoint: Endpoint) -> Transport:
    """The transport for ``open_runtime(..., transport=...)``: every attempt connects to
    *endpoint* in this Trio loop. The bridge never lingers (its linger reads the wall
    clock, which a deterministic run must not)."""
    return lambda: InProcessSession(EventBridge(linger=0), endpoint)


class InProcessSession(TwsSession):
    """One connection attempt over an `Endpoint`: `TwsSession`'s contract, no thread."""

    def __init__(self, bridge: EventBridge, endpoint: Endpoint) -> None:
        super().__init__(bridge)
        self._endpoint = endpoint
        self._handshaken = trio.Event()
        self._pending = b""
        self._inbound: InboundDecoder | None = None
        self._ended = False

    async def open(
        self, host: str, port: int, client_id: int, *, timeout: float  # noqa: ASYNC109
    ) -> None:
        """Connect and hand-shake as `TwsSession.open` does, with the same outcomes."""
        client = self.client
        wrapper: Any = client.wrapper
        client.host, client.port, client.clientId = host or "127.0.0.1", port, client_id
        client.conn = Connection(client.host, port)
        try:
            wire = self._endpoint.connect(self.deliver, self.hang_up)
        except OSError:
            wrapper.error(NO_VALID_ID, currentTimeMillis(), CONNECT_FAIL.code(),
                          CONNECT_FAIL.msg())
            client.disconnect()
            await self.close()
            raise ConnectFailed(f"could not connect to {host}:{port}") from None
        client.conn.socket = wire
        client.setConnState(EClient.CONNECTING)
        try:
            wire.sendall(hello(client))
            with trio.move_on_after(timeout) as scope:
                await self._handshaken.wait()
            if scope.cancelled_caught:
                raise ConnectTimeout(f"no API handshake from {host}:{port} within {timeout:g} s")
            if not client.isConnected():
                raise ConnectFailed(f"could not connect to {host}:{port}")
        except BaseException:
            with trio.CancelScope(shield=True):
                await self.close()
            raise

    def deliver(self, data: bytes) -> None:
        """What TWS wrote: the version reply first, then frames for the decoder."""
        if self._ended:
            return
        if self._inbound is None:
            reply, self._pending = version_reply(self._pending + data)
            if reply is None:
                return
            client = self.client
            start_api(client, *reply)
            self._inbound = InboundDecoder(self.bridge, client.decoder, client.serverVersion_)
            self._handshaken.set()
            data, self._pending = self._pending, b""
            if not data:
                return
        if not take_chunk(self.client, self.bridge, self._inbound, data):
            self._end()

    def hang_up(self) -> None:
        """TWS closed the connection: as the reader thread does at end-of-stream."""
        if not self._ended:
            self._disconnect()
            self._end()

    async def _apply(self, request: Request) -> None:
        # The wire never blocks: encode and write in the Trio thread.
        request.apply(self.client)
        await trio.lowlevel.checkpoint()

    async def close(self) -> None:
        """Disconnect; idempotent. Posts `ReaderStopped` once, as the reader thread does."""
        self._closed = True
        if not self._ended:
            self._disconnect()
            self._end()
        await trio.lowlevel.checkpoint()

    def _disconnect(self) -> None:
        client = self.client
        if client.conn is None:
            return
        if self._inbound is None:
            # Closed during the handshake: like ibapi, no connectionClosed.
            client.conn.disconnect()
            client.reset()
        else:
            client.disconnect()

    def _end(self) -> None:
        self._ended = True
        self._handshaken.set()
        if not self._stop_posted:
            self._stop_posted = True
            self.bridge.post(ev.ReaderStopped(self.serial))
