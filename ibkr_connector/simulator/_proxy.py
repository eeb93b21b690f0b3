"""``ibkr-connector record``: a transparent TCP proxy that records a TWS API session.

It sits between any client and a TWS (or Gateway, or our simulator) and forwards every
chunk unchanged *before* looking at it, so the wire sees exactly what it would without the
proxy; a copy of each chunk goes through a ``FrameSplitter`` (``_recording``) and every
whole frame becomes one line of the recording. The file is created 0600 because it holds
a trading session (orders, positions); account ids are masked unless asked otherwise.

Each accepted client gets its own upstream connection and two pump tasks; when either side
closes, both are closed, as TWS itself would. Everything lives in the nursery of
``run_recording_proxy``: cancelling it stops the proxy and closes every connection.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import time
from pathlib import Path
from typing import IO, Any

import trio

from ibkr_connector.simulator._recording import (
    AccountMasker,
    Direction,
    FrameSplitter,
    frame_record,
    header_record,
)

__all__ = ["RecordingWriter", "run_recording_proxy"]

logger = logging.getLogger(__name__)

_CHUNK = 65536


def _open_private(path: Path) -> IO[str]:
    """Open ``path`` for writing, created (or reset to) mode 0600 before any byte is in it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "w", encoding="utf-8")


class RecordingWriter:
    """Appends frames to a recording file, one JSON line each, flushed at once so a
    killed proxy leaves everything up to its last frame on disk."""

    def __init__(self, path: Path, upstream: str, *, mask: bool) -> None:
        self._file = _open_private(path)
        self._start = time.monotonic()
        self._masker = AccountMasker() if mask else None
        self._write(header_record(upstream, mask, time.time()))

    def _write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()

    def frames(self, conn: int, splitter: FrameSplitter, data: bytes) -> None:
        """Record the frames ``data`` completes on ``splitter``'s direction."""
        mono, wall = time.monotonic() - self._start, time.time()
        for frame in splitter.feed(data):
            self._write(frame_record(conn, frame, mono, wall, self._masker))

    def closed(self, conn: int, direction: Direction, leftover: int) -> None:
        self._write({"conn": conn, "event": "closed", "by": direction,
                     "mono": round(time.monotonic() - self._start, 6),
                     "wall": round(time.time(), 6), "leftover": leftover})

    def close(self) -> None:
        self._file.close()


async def _pump(source: trio.abc.Stream, sink: trio.abc.Stream, direction: Direction,
                conn: int, writer: RecordingWriter, done: trio.CancelScope) -> None:
    splitter = FrameSplitter(direction)
    try:
        while data := await source.receive_some(_CHUNK):
            await sink.send_all(data)  # the wire first: recording never delays or alters it
            writer.frames(conn, splitter, bytes(data))
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        pass
    writer.closed(conn, direction, len(splitter.leftover()))
    done.cancel()


async def _relay(client: trio.SocketStream, upstream: tuple[str, int], conn: int,
                 writer: RecordingWriter) -> None:
    async with client:
        try:
            server = await trio.open_tcp_stream(*upstream)
        except OSError as exc:
            logger.warning("record: connection %d: cannot reach upstream: %s", conn, exc)
            return
        async with server, trio.open_nursery() as nursery:
            nursery.start_soon(_pump, client, server, "c2s", conn, writer, nursery.cancel_scope)
            nursery.start_soon(_pump, server, client, "s2c", conn, writer, nursery.cancel_scope)


async def run_recording_proxy(upstream: tuple[str, int], listen_port: int, out: Path, *,
                              mask: bool = True, listen_host: str = "127.0.0.1",
                              task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
                              ) -> None:
    """Serve the proxy until cancelled; ``task_status.started`` gets the bound port.

    The recording file is created (mode 0600) before listening starts, so a bad path fails
    here, before any client could connect.
    """
    writer = RecordingWriter(out, f"{upstream[0]}:{upstream[1]}", mask=mask)
    try:
        listeners = await trio.open_tcp_listeners(listen_port, host=listen_host)
        port = listeners[0].socket.getsockname()[1]
        numbers = itertools.count(1)

        async def handle(stream: trio.SocketStream) -> None:
            await _relay(stream, upstream, next(numbers), writer)

        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, handle, listeners)
            task_status.started(port)
    finally:
        writer.close()
