"""Requests are written in the Trio thread as far as the socket takes them at once; what a
full buffer does not take is finished by a worker thread, whole and in order.

Real socket pairs, the EClient subclass every session uses; the peer reads (or does not)
to make the buffer full or free.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import trio
from ibapi.client import EClient
from ibapi.connection import Connection
from ibapi.wrapper import EWrapper

from ibkr_connector.protocol._reader import start_api
from ibkr_connector.protocol.bridge import EventBridge
from ibkr_connector.protocol.client import TwsSession, _ObservedClient
from ibkr_connector.protocol.requests import ReqCurrentTime

Pair = tuple[_ObservedClient, socket.socket]


@pytest.fixture
def pair() -> Iterator[Pair]:
    ours, theirs = socket.socketpair()
    ours.settimeout(1)  # as every session's socket: a non-blocking descriptor
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    client = _ObservedClient(EWrapper())
    client.conn = Connection("127.0.0.1", 0)
    client.conn.socket = ours
    yield client, theirs
    ours.close()
    theirs.close()


def _read(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        data += sock.recv(size - len(data))
    return data


def test_a_request_that_fits_is_written_at_once_without_a_thread(pair: Pair) -> None:
    client, theirs = pair
    client._write(b"frame-1")
    client._write(b"frame-2")
    assert client.written == 2 and client.unsent == []
    assert not client.conn.lock.locked()
    assert _read(theirs, 14) == b"frame-1frame-2"


def test_a_full_buffer_leaves_the_rest_to_the_worker_whole_and_in_order(pair: Pair) -> None:
    client, theirs = pair
    big = bytes(range(256)) * 2048  # 512 KiB: far more than the socket buffers hold
    client._write(big)
    client._write(b"after")  # must not overtake the tail of the big frame
    assert client.written == 0 and client.unsent
    assert client.conn.lock.locked()  # held for the torn frame until its last byte
    worker = threading.Thread(target=client.finish_write)
    worker.start()
    received = _read(theirs, len(big) + 5)
    worker.join(5)
    assert received == big + b"after"
    assert client.written == 2 and client.unsent == [] and client.write_error is None
    assert not client.conn.lock.locked()


def test_a_frame_behind_another_writer_waits_for_the_lock_in_the_worker(pair: Pair) -> None:
    client, theirs = pair
    client.conn.lock.acquire()  # ibapi itself writing, say
    client._write(b"queued")
    assert client.unsent == [b"queued"] and client.written == 0
    worker = threading.Thread(target=client.finish_write)
    worker.start()
    worker.join(0.05)
    assert worker.is_alive()  # waits for the other writer
    client.conn.lock.release()
    worker.join(5)
    assert _read(theirs, 6) == b"queued" and client.written == 1


def test_a_socket_closed_in_the_middle_of_a_frame_is_a_write_error(pair: Pair) -> None:
    client, _theirs = pair
    client._write(bytes(512 * 1024))
    assert client.unsent
    client.conn.socket = None  # the session went away before the worker ran
    client.finish_write()
    assert isinstance(client.write_error, OSError)
    assert client.written == 0 and client.unsent == []
    assert not client.conn.lock.locked()


def test_a_peer_that_is_gone_is_a_write_error_not_a_hang(pair: Pair) -> None:
    client, theirs = pair
    theirs.close()
    client._write(b"frame")
    if client.write_error is None:  # the first write may still be accepted by the kernel
        client._write(b"frame")
    assert isinstance(client.write_error, OSError)
    assert not client.conn.lock.locked()


def test_a_start_api_that_finds_the_buffer_full_is_written_before_the_handshake_ends(
    pair: Pair,
) -> None:
    client, theirs = pair
    client.clientId = 1
    ours = client.conn.socket
    filled = 0
    while True:  # the socket's buffers full: nothing more goes out at once
        try:
            filled += os.write(ours.fileno(), bytes(65536))
        except BlockingIOError:
            break
    done = threading.Event()

    def handshake() -> None:  # what the reader thread does once TWS answered the version
        start_api(client, 200, b"20261201 12:00:00 UTC")
        done.set()

    reader = threading.Thread(target=handshake)
    reader.start()
    assert not done.wait(0.05)  # it waits for room (a reader thread may block; Trio not)
    received = _read(theirs, filled)
    reader.join(5)
    assert done.is_set() and client.unsent == [] and client.written == 1
    theirs.settimeout(1)
    frame = theirs.recv(4096)  # startApi, whole
    assert len(frame) >= 4 and int.from_bytes(frame[:4], "big") == len(frame) - 4
    assert received == bytes(filled)


async def test_a_send_cancelled_with_its_frame_half_written_still_finishes_it() -> None:
    ours, theirs = socket.socketpair()
    ours.settimeout(1)
    session = TwsSession(EventBridge())
    client = session.client
    client.conn = Connection("127.0.0.1", 0)
    client.conn.socket = ours
    client.serverVersion_, client.connState = 200, EClient.CONNECTED
    filled = 0
    while True:
        try:
            filled += os.write(ours.fileno(), bytes(65536))
        except BlockingIOError:
            break
    drained: list[bytes] = []

    def make_room_later() -> None:
        time.sleep(0.02)  # after the frame found the buffer full
        drained.append(_read(theirs, filled + 4))

    peer = threading.Thread(target=make_room_later)
    peer.start()
    try:
        with trio.CancelScope() as scope:
            scope.cancel()  # the caller has given up before the rest could be written
            await session.send(ReqCurrentTime())
        assert client.written == 1 and client.unsent == []
        assert not client.conn.lock.locked()  # a disconnect will not hang on it
    finally:
        peer.join(5)
        ours.close()
        theirs.close()
