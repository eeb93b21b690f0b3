"""The unmodified ibapi EClient, driven from Trio tests.

``EClient.connect`` blocks and ``EClient.run`` is a loop, so both run in threads; every
wrapper callback is put on a queue that the test awaits (in a worker thread, with a
timeout). ``close`` shuts the socket down first, which wakes the EReader thread at once
instead of after its 1 s socket timeout.
"""

from __future__ import annotations

import queue
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import trio
from ibapi.client import EClient
from ibapi.wrapper import EWrapper

Event = tuple[str, tuple[Any, ...]]


class RecordingWrapper(EWrapper):  # type: ignore[misc]
    """Puts every callback the tests look at on ``events`` as (name, args)."""

    def __init__(self) -> None:
        super().__init__()
        self.events: queue.Queue[Event] = queue.Queue()

    def _put(self, name: str, *args: Any) -> None:
        self.events.put((name, args))

    def nextValidId(self, orderId: int) -> None:
        self._put("nextValidId", orderId)

    def managedAccounts(self, accountsList: str) -> None:
        self._put("managedAccounts", accountsList)

    def error(self, reqId: int, errorTime: int, errorCode: int, errorString: str,
              advancedOrderRejectJson: str = "") -> None:
        self._put("error", reqId, errorCode, errorString, errorTime)

    def currentTime(self, time: int) -> None:
        self._put("currentTime", time)

    def currentTimeInMillis(self, timeInMillis: int) -> None:
        self._put("currentTimeInMillis", timeInMillis)

    def tickPrice(self, reqId: int, tickType: int, price: float, attrib: Any) -> None:
        self._put("tickPrice", reqId, tickType, price)

    def tickSize(self, reqId: int, tickType: int, size: Any) -> None:
        self._put("tickSize", reqId, tickType, size)

    def tickSnapshotEnd(self, reqId: int) -> None:
        self._put("tickSnapshotEnd", reqId)

    def tickReqParams(self, tickerId: int, minTick: float, bboExchange: str,
                      snapshotPermissions: int) -> None:
        self._put("tickReqParams", tickerId, minTick)

    def connectionClosed(self) -> None:
        self._put("connectionClosed")


class IbTestClient:
    """One EClient connection with its run loop in a thread."""

    def __init__(self) -> None:
        self.wrapper = RecordingWrapper()
        self.client = EClient(self.wrapper)
        self.seen: list[Event] = []
        self._thread: threading.Thread | None = None

    async def connect(self, port: int, client_id: int, host: str = "127.0.0.1") -> None:
        await trio.to_thread.run_sync(self.client.connect, host, port, client_id)
        self._thread = threading.Thread(target=self.client.run, daemon=True)
        self._thread.start()

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a (possibly blocking) EClient method off the Trio thread."""
        return await trio.to_thread.run_sync(fn, *args)

    async def wait_for(self, name: str, predicate: Callable[[tuple[Any, ...]], bool] | None = None,
                       within: float = 3.0) -> tuple[Any, ...]:
        """The args of the first not-yet-consumed event ``name`` matching ``predicate``."""
        for index, (seen_name, args) in enumerate(self.seen):
            if seen_name == name and (predicate is None or predicate(args)):
                del self.seen[index]
                return args
        deadline = time.monotonic() + within
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {name} event within {within} s; saw {self.seen}")
            try:
                event = await trio.to_thread.run_sync(self.wrapper.events.get, True,
                                                      min(remaining, 0.5))
            except queue.Empty:
                continue
            if event[0] == name and (predicate is None or predicate(event[1])):
                return event[1]
            self.seen.append(event)

    def drain(self) -> list[Event]:
        """Every event received so far (consumed ones excluded)."""
        while True:
            try:
                self.seen.append(self.wrapper.events.get_nowait())
            except queue.Empty:
                return list(self.seen)

    async def close(self) -> None:
        conn = self.client.conn
        sock = getattr(conn, "socket", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.client.disconnect()
        if self._thread is not None:
            await trio.to_thread.run_sync(self._thread.join, 3.0)


#: The ``ib_client`` fixture: makes clients that are closed at teardown.
ClientFactory = Callable[[], IbTestClient]
