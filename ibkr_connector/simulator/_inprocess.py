"""The simulated TWS reached in-process: the same server, connections without sockets.

``InProcessTws`` is a `TwsSimulator` whose connections are made by a call (`connect`)
instead of a TCP accept, for deterministic simulation tests: everything, client included,
runs in one Trio loop, so a `MockClock` with ``autojump_threshold=0`` and a seed make a run
reproducible. Everything above the byte stream is the same code as over loopback: each
connection is a ``ClientConnection`` driving a sans-IO ``ClientSession`` (reply delays,
pacing, orders, market data), and the fault API is `TwsSimulator`'s (``drop_all``,
``refuse_for``, ``send_error``, ``send_malformed``, ``set_reply_delay``,
``reject_next_order``, ``drop_next_order_ack``, market faults). "Listening" is a flag:
``refuse_for`` makes `connect` refuse, as a closed port does.

The client side is ``protocol._inprocess.InProcessSession``; the two meet only through
`connect` (the client's ``deliver`` / ``hang_up`` callbacks one way, a `ClientWire` the
other), so this module imports nothing of the client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import trio

from ibkr_connector.simulator._config import SimulatorConfig
from ibkr_connector.simulator._server import TwsSimulator, _Listening

__all__ = ["ClientWire", "InProcessStream", "InProcessTws", "open_inprocess_tws"]


@asynccontextmanager
async def open_inprocess_tws(config: SimulatorConfig | None = None,
                             ) -> AsyncIterator[InProcessTws]:
    """Run an in-process simulated TWS for the duration of the block (accepting at once).
    For a reproducible run give the config a ``seed`` and a ``start_time``."""
    config = config or SimulatorConfig()
    async with trio.open_nursery() as nursery:
        tws = InProcessTws(config, nursery)
        tws._serve_listeners([])
        try:
            yield tws
        finally:
            nursery.cancel_scope.cancel()


class InProcessTws(TwsSimulator):
    """A `TwsSimulator` whose clients connect by calling `connect`."""

    def connect(self, deliver: Callable[[bytes], None], hang_up: Callable[[], None],
                ) -> ClientWire:
        """A new connection, served like an accepted socket. *deliver* receives every chunk
        the server writes, *hang_up* is called once when the server closes it."""
        if self._listening is None:
            raise ConnectionRefusedError("the simulated TWS is not accepting connections")
        stream = InProcessStream(deliver, hang_up)
        self._nursery.start_soon(self._serve, stream)
        return stream.client

    async def _listen(self) -> None:
        self._serve_listeners([])

    def _serve_listeners(self, listeners: list[trio.SocketListener]) -> None:
        stopped = trio.Event()
        stopped.set()  # nothing to wind down: no socket, no accept loop
        self._listening = _Listening(trio.CancelScope(), stopped)


class InProcessStream(trio.abc.Stream):
    """The server's end of one in-process connection (a `trio.abc.Stream`)."""

    def __init__(self, deliver: Callable[[bytes], None], hang_up: Callable[[], None]) -> None:
        self._deliver = deliver
        self._hang_up = hang_up
        self._inbox = bytearray()
        self._lot = trio.lowlevel.ParkingLot()
        self._client_gone = False
        self._closed = False
        self.client = ClientWire(self)

    # -- the client's side (synchronous) ------------------------------------------------------

    def _from_client(self, data: bytes) -> None:
        if self._closed:
            raise BrokenPipeError("the simulated TWS closed the connection")
        if self._client_gone:
            raise OSError("the connection is shut down")
        self._inbox += data
        self._lot.unpark_all()

    def _client_closed(self) -> None:
        self._client_gone = True
        self._lot.unpark_all()

    # -- the server's side --------------------------------------------------------------------

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        while not self._inbox and not self._client_gone and not self._closed:
            await self._lot.park()
        await trio.lowlevel.checkpoint()
        if self._closed:
            raise trio.ClosedResourceError
        size = len(self._inbox) if max_bytes is None else max_bytes
        data = bytes(self._inbox[:size])
        del self._inbox[:size]
        return data

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint()
        if self._closed:
            raise trio.ClosedResourceError
        if self._client_gone:
            raise trio.BrokenResourceError("the client closed the connection")
        self._deliver(bytes(data))

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    def close_now(self) -> None:
        """Close at once, synchronously (as a socket's ``close``): the client hangs up."""
        if not self._closed:
            self._closed = True
            self._lot.unpark_all()
            if not self._client_gone:
                self._hang_up()

    async def aclose(self) -> None:
        self.close_now()
        await trio.lowlevel.checkpoint()


class ClientWire:
    """The client's end: the socket methods ibapi's connection and `TwsSession` use."""

    def __init__(self, stream: InProcessStream) -> None:
        self._stream = stream

    def sendall(self, data: bytes) -> None:
        self._stream._from_client(data)

    def shutdown(self, how: int) -> None:
        self._stream._client_closed()

    def close(self) -> None:
        self._stream._client_closed()
