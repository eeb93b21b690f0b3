"""A bare-bytes TWS API client for wire tests, framed with ``ibapi.comm`` (not our codec).

Used where the ibapi EClient cannot look: the raw frames a fault writes, a connection
closed by the server, or exact timing under Trio's MockClock.
"""

from __future__ import annotations

import struct

import trio
from ibapi.comm import make_field, make_initial_msg, make_msg


class RawClient:
    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self._buffer = b""

    @classmethod
    async def open(cls, port: int) -> RawClient:
        return cls(await trio.open_tcp_stream("127.0.0.1", port))

    async def handshake(self, versions: str = "v100..226") -> tuple[str, ...]:
        await self.stream.send_all(b"API\0" + make_initial_msg(versions))
        fields = await self.read_fields()
        assert fields is not None, "server closed during the handshake"
        return fields

    async def send(self, msg_id: int, *fields: object) -> None:
        await self.stream.send_all(make_msg(msg_id, False, "".join(make_field(f) for f in fields)))

    async def start_api(self, client_id: int) -> None:
        await self.send(71, 2, client_id, "")

    @classmethod
    async def connected(cls, port: int, client_id: int) -> RawClient:
        """Handshake and START_API done; the startApi replies are left unread."""
        client = await cls.open(port)
        await client.handshake()
        await client.start_api(client_id)
        return client

    async def read_frame(self) -> bytes | None:
        """The next payload, or None when the server closed the connection."""
        while True:
            if len(self._buffer) >= 4:
                (size,) = struct.unpack("!I", self._buffer[:4])
                if len(self._buffer) >= 4 + size:
                    payload = self._buffer[4 : 4 + size]
                    self._buffer = self._buffer[4 + size :]
                    return payload
            try:
                data = await self.stream.receive_some(65536)
            except trio.BrokenResourceError:
                data = b""
            if not data:
                return None
            self._buffer += data

    async def read_fields(self) -> tuple[str, ...] | None:
        payload = await self.read_frame()
        if payload is None:
            return None
        return tuple(f.decode("utf-8", "backslashreplace") for f in payload.split(b"\0")[:-1])

    async def read_until(self, msg_id: int, code: int | None = None) -> tuple[str, ...]:
        """Skip frames until one with ``msg_id`` (and, for ERR_MSG, error ``code``)."""
        while True:
            fields = await self.read_fields()
            assert fields is not None, f"connection closed before message {msg_id}"
            if int(fields[0]) != msg_id:
                continue
            if code is None or str(code) in fields[1:4]:
                return fields

    async def read_all_until_closed(self) -> list[tuple[str, ...]]:
        frames = []
        while (fields := await self.read_fields()) is not None:
            frames.append(fields)
        return frames

    async def aclose(self) -> None:
        await self.stream.aclose()
