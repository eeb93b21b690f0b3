"""One client connection of the simulated TWS: a reader task and a writer task.

The reader receives bytes, drives the connection's ``ClientSession`` and queues what it
answers; the writer takes the queue in order, holds replies back by the configured delay,
and coalesces frames into large writes (a tick flood is written in big chunks). Other
tasks (the order desk's delivery, the market, the fault API) push frames through ``post``
or ``send``.

One client's messages leave in the order the simulator produced them, as TWS keeps them
per client: ``post`` queues without a checkpoint, so whoever produces a batch of messages
queues all of it before another task can run (a fill made while a placeOrder's answer was
half queued once overtook that answer). Backpressure is separate: ``wait_for_room``
blocks a producer, after it queued, while the queue is long. Both tasks live in this connection's
own cancel scope, which ``abort`` cancels; the stream is always closed on the way out.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable

import attrs
import trio

from ibkr_connector.simulator._codec import ClientMessage, ClientProtocolError, StartApi
from ibkr_connector.simulator._session import ClientSession, Close

__all__ = ["ClientConnection"]

logger = logging.getLogger(__name__)

_RECEIVE_SIZE = 65536
_COALESCE_BYTES = 256 * 1024
_QUEUE_ITEMS = 256
#: How long a closing connection may take to flush what it already queued.
_DRAIN_SECONDS = 5.0


@attrs.frozen
class _Outgoing:
    due: float
    data: bytes


def _close_now(stream: trio.abc.Stream) -> None:
    """Close *stream* without awaiting: a socket's ``close``, or an in-process stream's
    ``close_now`` (``InProcessTws``)."""
    if isinstance(stream, trio.SocketStream):
        stream.socket.close()
    else:
        getattr(stream, "close_now")()  # noqa: B009 - any stream that offers it


class ClientConnection:
    """The I/O side of one accepted TCP connection."""

    def __init__(self, stream: trio.abc.Stream, session: ClientSession,
                 reply_delay: Callable[[], float]) -> None:
        self.stream = stream
        self.session = session
        self.closed = trio.Event()
        self._reply_delay = reply_delay
        self._scope = trio.CancelScope()
        # Unbounded, so queueing never waits (which would let another producer in between
        # two messages of one batch); ``wait_for_room`` bounds it instead.
        self._send_channel, self._receive_channel = trio.open_memory_channel[_Outgoing](
            math.inf)
        self._room = trio.Event()
        self._closing = False

    def abort(self) -> None:
        """Close the connection now, without flushing (safe before ``run`` starts)."""
        self._scope.cancel()

    def post(self, frames: Iterable[bytes], *, reply: bool = False) -> None:
        """Queue ``frames`` for the client now, in order, without a checkpoint (so nothing
        another task produces later can come between them). A connection that is closing
        silently drops them, as a socket write to a dead peer would. Follow it with
        ``wait_for_room``."""
        due = trio.current_time() + (self._reply_delay() if reply else 0.0)
        for data in frames:
            try:
                self._send_channel.send_nowait(_Outgoing(due, data))
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                logger.debug("dropping %d bytes for a closing connection", len(data))

    async def wait_for_room(self) -> None:
        """Block while more than a queue's worth of frames waits for the writer (a slow
        reader holds its producers back). Always a checkpoint."""
        while (not self._closing
               and self._send_channel.statistics().current_buffer_used > _QUEUE_ITEMS):
            if self._room.is_set():
                self._room = trio.Event()
            await self._room.wait()
        await trio.lowlevel.checkpoint()

    async def send(self, data: bytes, *, reply: bool = False) -> None:
        """Queue one frame (``post``) and wait for room in the queue."""
        self.post((data,), reply=reply)
        await self.wait_for_room()

    async def run(self, on_change: Callable[[], None]) -> None:
        """Serve the connection until the client leaves, the session closes it, or
        ``abort``. Never raises for anything the client did."""
        try:
            with self._scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._write_loop)
                    try:
                        client_left = await self._read_loop(on_change)
                    finally:
                        self._stop_queueing()
                        # Reading is over: the client id is free now, as in TWS, even
                        # while delayed replies drain (a reconnect must not get 326).
                        self.session.close()
                    # A client that left cannot read what is still queued for it; one we
                    # are closing on (326, pacing) gets its last words first.
                    drain = 0.0 if client_left else self._reply_delay() + _DRAIN_SECONDS
                    self._scope.deadline = trio.current_time() + drain
        finally:
            # Free the client id before the client can see the close, so a reconnect
            # never races a stale registration. Synchronous on purpose: under an outer
            # cancellation any await here would raise before the cleanup finished.
            self.session.close()
            self._stop_queueing()
            _close_now(self.stream)
            self.closed.set()

    def _stop_queueing(self) -> None:
        """No more frames are queued; producers waiting for room go on (and drop)."""
        self._send_channel.close()
        self._closing = True
        self._room.set()

    async def _read_loop(self, on_change: Callable[[], None]) -> bool:
        """Read and answer until the connection must end; True if the client left."""
        try:
            while True:
                try:
                    data = await self.stream.receive_some(_RECEIVE_SIZE)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    data = b""  # a reset is an end of stream too
                self.session.receive_data(bytes(data))
                if await self._process(on_change):
                    return not data
        except ClientProtocolError as exc:
            logger.info("client %s broke the protocol, closing: %s", self.session.client_id,
                        exc)
        except Exception:
            logger.exception("error serving client %s; closing its connection",
                             self.session.client_id)
        return False

    async def _process(self, on_change: Callable[[], None]) -> bool:
        """Handle every buffered event; True once the connection must close."""
        while (event := self.session.next_event()) is not None:
            arrived = now = trio.current_time()
            if self.session.paced and isinstance(event, (StartApi, ClientMessage)):
                slot = self.session.pace(arrived)
                if slot > arrived:
                    await trio.sleep_until(slot)
                    now = trio.current_time()
            actions = self.session.handle(event, now, arrived)
            # A new client, or a request that may have opened a line: the server's market
            # loop sleeps while nobody watches, and is woken here.
            on_change()
            # The whole answer is queued before anything else can run (see the module
            # docstring); only then may this task wait.
            for action in actions:
                if isinstance(action, Close):
                    logger.info("closing client %s: %s", self.session.client_id,
                                action.reason)
                    return True
                self.post((action.data,), reply=action.reply)
            await self.wait_for_room()
        return False

    async def _write_loop(self) -> None:
        pending: _Outgoing | None = None
        try:
            while True:
                if pending is None:
                    try:
                        item = await self._receive_channel.receive()
                    except trio.EndOfChannel:
                        return
                else:
                    item, pending = pending, None
                self._room.set()
                if item.due > trio.current_time():
                    await trio.sleep_until(item.due)
                chunks, size = [item.data], len(item.data)
                while size < _COALESCE_BYTES:
                    try:
                        following = self._receive_channel.receive_nowait()
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                    if following.due > trio.current_time():
                        pending = following
                        break
                    chunks.append(following.data)
                    size += len(following.data)
                await self.stream.send_all(b"".join(chunks))
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            logger.debug("client %s went away while writing: %s", self.session.client_id, exc)
            self.abort()
        except Exception:
            logger.exception("error writing to client %s; closing its connection",
                             self.session.client_id)
            self.abort()
