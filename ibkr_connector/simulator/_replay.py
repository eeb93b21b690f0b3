"""``ibkr-connector sim --replay FILE``: answer a client from a recorded session.

The sans-IO part (``build_script``, ``RequestMatcher``, ``IdMap``) turns one recorded
connection into a script: the recorded handshake reply, the client's requests, and every
server frame attached to the request that caused it, with its delay after that request.
A server frame belongs to the latest earlier request carrying one of its ids (request,
ticker or order id); failing that, to the latest request of a type that solicits it
(``reqPositions`` -> ``position``); failing that, to the latest request before it, so
unsolicited pushes keep their place and timing between the requests around them.

When a client sends a request, it is matched to an unused recorded request of the same
message id and the same fields apart from the request's own id; the recorded id is then
mapped to the client's, and the recorded answers go out with their ids rewritten, at their
recorded delays divided by ``speed``. The Trio half (``serve_replay``) schedules them on
the Trio clock, so tests can run it under ``MockClock``.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math

import attrs
import trio

from ibkr_connector.simulator._recording import (
    AccountMasker,
    FrameSplitter,
    RecordedFrame,
    Recording,
    encode_fields,
    fields_of,
)
from ibkr_connector.simulator._requests import request_id_index

__all__ = ["IdMap", "ReplayScript", "RequestMatcher", "build_script", "serve_replay"]

logger = logging.getLogger(__name__)

_START_API = 71
# Server message id -> where its ids are (among the fields after the message id), at
# server versions <= 200 in the classic form; the version-dependent ones are below.
_SERVER_IDS: dict[int, tuple[int, ...]] = {
    1: (1,), 2: (1,), 3: (0,), 5: (0,), 11: (0, 1), 45: (1,), 46: (1,), 52: (1,),
    55: (1,), 57: (1,), 58: (1,), 63: (1,), 64: (1,), 71: (1,), 72: (1,), 73: (1,),
    74: (1,), 75: (0,), 76: (0,), 81: (0,), 99: (0,), 17: (0,), 108: (0,), 106: (0,),
}
# Server message id -> client requests that solicit it without quoting an id.
_SOLICITED_BY: dict[int, frozenset[int]] = {
    9: frozenset({8, _START_API}), 15: frozenset({17, _START_API}), 49: frozenset({49}),
    109: frozenset({105}), 5: frozenset({5, 15, 16}), 3: frozenset({5, 15, 16}),
    53: frozenset({5, 15, 16}), 61: frozenset({61}), 62: frozenset({61}),
    6: frozenset({6}), 7: frozenset({6}), 8: frozenset({6}), 54: frozenset({6}),
    101: frozenset({99}), 102: frozenset({99}),
}


def server_id_indices(msg_id: int, server_version: int) -> tuple[int, ...]:
    """Where a server message's ids are among the fields after its message id."""
    if msg_id == 4:  # ERR_MSG: a version field before MIN_SERVER_VER_ERROR_TIME (194)
        return (0,) if server_version >= 194 else (1,)
    if msg_id == 10:  # CONTRACT_DATA: a version field before MIN_SERVER_VER_SIZE_RULES
        return (0,) if server_version >= 164 else (1,)
    if msg_id == 21:  # TICK_OPTION_COMPUTATION: no version from PRICE_BASED_VOLATILITY
        return (0,) if server_version >= 156 else (1,)
    return _SERVER_IDS.get(msg_id, ())


@attrs.frozen
class Request:
    """One recorded client request: ``fields`` are those after the message id."""

    index: int
    msg_id: int
    fields: tuple[str, ...]
    mono: float
    id_index: int | None

    @property
    def own_id(self) -> str | None:
        if self.id_index is None or self.id_index >= len(self.fields):
            return None
        return self.fields[self.id_index]

    def key(self) -> tuple[str, ...]:
        """What must be equal for a client's request to be this one: all but the id."""
        if self.msg_id == _START_API:
            return ()  # any client id may replay the session
        return tuple(f for i, f in enumerate(self.fields) if i != self.id_index)


@attrs.frozen
class Answer:
    """A recorded server frame, due ``delay`` seconds after its trigger (a request index,
    or None for the handshake)."""

    trigger: int | None
    delay: float
    fields: tuple[str, ...] | None
    wire: bytes


@attrs.frozen
class ReplayScript:
    server_version: int
    handshake_reply: bytes
    requests: tuple[Request, ...]
    answers: tuple[Answer, ...]

    def answers_to(self, trigger: int | None) -> list[Answer]:
        return [answer for answer in self.answers if answer.trigger == trigger]


def _trigger(fields: tuple[str, ...] | None, requests: list[Request],
             server_version: int) -> Request | None:
    if fields is None:
        return requests[-1] if requests else None
    msg_id, rest = int(fields[0]), fields[1:]
    ids = {rest[i] for i in server_id_indices(msg_id, server_version) if i < len(rest)}
    ids -= {"-1", ""}
    for request in reversed(requests):
        if request.own_id is not None and request.own_id in ids:
            return request
    solicitors = _SOLICITED_BY.get(msg_id, frozenset())
    for request in reversed(requests):
        if request.msg_id in solicitors:
            return request
    return requests[-1] if requests else None


def build_script(frames: list[RecordedFrame]) -> ReplayScript:
    """The replay script of one recorded connection (its frames in file order)."""
    requests: list[Request] = []
    answers: list[Answer] = []
    handshake: RecordedFrame | None = None
    server_version = 0
    for frame in frames:
        if frame.direction == "c2s":
            fields = frame.fields
            if fields is None:
                continue  # the API\0 prefix and the version range
            msg_id = int(fields[0])
            requests.append(Request(len(requests), msg_id, fields[1:], frame.mono,
                                    request_id_index(msg_id, server_version)))
        elif handshake is None:
            handshake = frame
            reply = frame.fields or ("0",)
            server_version = int(reply[0])
        else:
            trigger = _trigger(frame.fields, requests, server_version)
            start = trigger.mono if trigger else handshake.mono
            answers.append(Answer(trigger.index if trigger else None,
                                  max(0.0, frame.mono - start), frame.fields,
                                  frame.frame.wire()))
    if handshake is None:
        raise ValueError("the recorded connection has no handshake reply")
    return ReplayScript(server_version, handshake.frame.wire(), tuple(requests),
                        tuple(answers))


class RequestMatcher:
    """Finds the recorded request a client's request stands for (see the module doc)."""

    def __init__(self, requests: tuple[Request, ...]) -> None:
        self._requests = requests
        self._used: set[int] = set()
        self._last: dict[tuple[int, tuple[str, ...]], Request] = {}

    def match(self, msg_id: int, fields: tuple[str, ...], server_version: int) -> Request | None:
        probe = Request(-1, msg_id, fields, 0.0, request_id_index(msg_id, server_version))
        key = (msg_id, probe.key())
        for request in self._requests:
            if request.index not in self._used and (request.msg_id, request.key()) == key:
                self._used.add(request.index)
                self._last[key] = request
                return request
        return self._last.get(key)  # a repeat (a health probe...) gets the same answer


class IdMap:
    """Recorded ids -> the client's ids, learnt from matched requests."""

    def __init__(self) -> None:
        self._ids: dict[str, str] = {}

    def learn(self, recorded: Request, fields: tuple[str, ...]) -> None:
        own = recorded.own_id
        if own is not None and recorded.id_index is not None and recorded.id_index < len(fields):
            self._ids[own] = fields[recorded.id_index]

    def remap(self, answer: Answer, server_version: int) -> bytes:
        """The answer's frame with its ids rewritten (unchanged if none is mapped)."""
        if answer.fields is None:
            return answer.wire
        msg_id, rest = answer.fields[0], list(answer.fields[1:])
        for i in server_id_indices(int(msg_id), server_version):
            if i < len(rest) and rest[i] in self._ids:
                rest[i] = self._ids[rest[i]]
        payload = encode_fields((msg_id, *rest))
        return len(payload).to_bytes(4, "big") + payload


# -- Trio ---------------------------------------------------------------------------------


class _Outbox:
    """Frames due at Trio times, sent in due order (recorded order on ties)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, bytes]] = []
        self._seq = itertools.count()
        self._wake = trio.Event()

    def put(self, due: float, data: bytes) -> None:
        heapq.heappush(self._heap, (due, next(self._seq), data))
        self._wake.set()

    async def run(self, stream: trio.abc.Stream) -> None:
        while True:
            with trio.move_on_at(self._heap[0][0] if self._heap else math.inf):
                await self._wake.wait()
            self._wake = trio.Event()
            now, batch = trio.current_time(), bytearray()
            while self._heap and self._heap[0][0] <= now:
                batch += heapq.heappop(self._heap)[2]
            if batch:
                try:
                    await stream.send_all(bytes(batch))
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return  # the client left; the reader sees it too and ends the session


async def _answer_client(stream: trio.SocketStream, script: ReplayScript, speed: float,
                         masked: bool) -> None:
    splitter, outbox = FrameSplitter("c2s"), _Outbox()
    matcher, ids = RequestMatcher(script.requests), IdMap()
    masker = AccountMasker() if masked else None
    sv = script.server_version

    def schedule(trigger: int | None) -> None:
        now = trio.current_time()
        for answer in script.answers_to(trigger):
            outbox.put(now + answer.delay / speed, ids.remap(answer, sv))

    async with stream, trio.open_nursery() as nursery:
        nursery.start_soon(outbox.run, stream)
        handshaken = False
        try:
            while data := await stream.receive_some(65536):
                for frame in splitter.feed(data):
                    if not frame.framed:
                        continue
                    if not handshaken:
                        handshaken = True
                        outbox.put(trio.current_time(), script.handshake_reply)
                        schedule(None)
                        continue
                    fields = fields_of(frame.payload)
                    if fields is None:
                        continue
                    rest = masker.fields(fields[1:]) if masker else fields[1:]
                    request = matcher.match(int(fields[0]), rest, sv)
                    if request is None:
                        logger.warning("replay: no recorded request matches message %s",
                                       fields[0])
                        continue
                    ids.learn(request, rest)
                    schedule(request.index)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        nursery.cancel_scope.cancel()


async def serve_replay(recording: Recording, port: int, *, host: str = "127.0.0.1",
                       speed: float = 1.0,
                       task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    """Answer clients from ``recording`` until cancelled; ``started`` gets the port.

    The n-th client to connect is answered from the recording's n-th connection (the last
    one once they run out), so a recorded reconnect replays too.
    """
    if speed <= 0:
        raise ValueError("speed must be > 0")
    scripts = [build_script(recording.of_connection(c)) for c in recording.connections()]
    if not scripts:
        raise ValueError("the recording holds no connection")
    listeners = await trio.open_tcp_listeners(port, host=host)
    counter = itertools.count()

    async def handle(stream: trio.SocketStream) -> None:
        script = scripts[min(next(counter), len(scripts) - 1)]
        try:
            await _answer_client(stream, script, speed, recording.masked)
        except Exception:  # one client's trouble must not stop the replay for the others
            logger.exception("replay: a client connection failed")

    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, handle, listeners)
        task_status.started(listeners[0].socket.getsockname()[1])
