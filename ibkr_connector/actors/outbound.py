"""The limiter's state that outlives the limiter: its queue, its counters, its sent log.

Owned by the runtime and handed to each incarnation of the limiter actor (as the tree owns
mailboxes), so a restart of the limiter replaces the task and keeps every queued request.
Each queued request is a :class:`Pending`: the request, and whoever waits for its outcome
(a `Ticket`, or the envelope of a plain call), with the few operations the write loop
performs on it.
"""

from __future__ import annotations

from collections import deque

import attrs
import trio

from ..protocol.requests import Request
from ..supervisor import Envelope
from .pacing import PacingGovernor, SlidingWindowCounter
from .request_queue import RequestQueue
from .ticket import Ticket, TicketState

__all__ = ["LimiterStats", "OutboundQueue", "Pending"]

# An error 100 is matched to a request sent at most this long before it arrived.
_PACING_MATCH_WINDOW = 2.0


@attrs.frozen
class LimiterStats:
    queued: int
    sent: int
    rate_now: float  # messages sent in the last second
    allowed_rate: float
    max_in_window: int
    pacing_violations: int
    retried: int
    failed: int


@attrs.define(eq=False)
class Pending:
    """One queued request and the caller waiting for it (none for a cast or a re-send).

    Once its outcome is reported, ``ticket`` and ``envelope`` are cleared: a request sent
    again after an error 100 has nobody waiting any more.
    """

    request: Request
    ticket: Ticket | None = None
    envelope: Envelope | None = None
    rejections: int = 0
    sent_at: float | None = None

    @property
    def abandoned(self) -> bool:
        """Its caller gave up before it was claimed: it must never be written."""
        if self.ticket is not None:
            return self.ticket.state is TicketState.ABANDONED
        return self.envelope is not None and self.envelope.abandoned

    def claim(self) -> None:
        """Take it for the wire; from here on its caller waits for the outcome."""
        if self.ticket is not None and not self.ticket.claim():
            raise RuntimeError("claimed a request whose caller gave up")

    def release(self) -> None:
        """Certainly not written, and queued again: its caller may give up again."""
        if self.ticket is not None and self.ticket.state is TicketState.CLAIMED:
            self.ticket.release()

    def settle(self, error: BaseException | None) -> None:
        """Report the outcome (written when ``error`` is None) to whoever waits for it."""
        ticket, envelope = self.ticket, self.envelope
        self.ticket = self.envelope = None
        if ticket is not None:
            ticket.finish(error)
        if envelope is not None:
            if error is None:
                envelope.reply(None)
            else:
                envelope.fail(error)


class OutboundQueue:
    """The limiter's queue and counters, owned by the runtime so a restart keeps them."""

    def __init__(self, governor: PacingGovernor, retry_delay: float = 1.0) -> None:
        self.governor = governor
        self.retry_delay = retry_delay
        self.queue: RequestQueue[Pending] = RequestQueue()
        self.window = SlidingWindowCounter(window=1.0)
        # Written in the last couple of seconds: what an error 100 may refer to.
        self.recent: deque[Pending] = deque()
        self.retried = 0
        self.failed = 0
        # After an error 100, send nothing for `retry_delay` (1 s by default: TWS's window,
        # which counts the messages it rejected too, so re-sending at once would only
        # prolong the violation).
        self.paused_until = 0.0
        self._wake = trio.Event()

    def push(self, item: Pending, *, front: bool = False) -> None:
        priority = item.request.priority
        if front:
            self.queue.push_front(item, priority)
        else:
            self.queue.push(item, priority)
        self._wake.set()

    async def wait_for_work(self) -> None:
        while not self.queue:
            self._wake = trio.Event()
            await self._wake.wait()

    def record_sent(self, item: Pending, now: float) -> None:
        item.sent_at = now
        self.window.record(now)
        self.recent.append(item)
        self._forget_old(now)

    def take_rejected(self, req_id: int, now: float) -> Pending | None:
        """The request an error 100 refers to, taken off the sent log: by id, else the
        latest one that has no id."""
        self._forget_old(now)
        for item in reversed(self.recent):
            rid = item.request.request_id
            if (req_id >= 0 and rid == req_id) or (req_id < 0 and rid is None):
                self.recent.remove(item)
                return item
        return None

    def _forget_old(self, now: float) -> None:
        recent = self.recent
        while recent:
            sent_at = recent[0].sent_at
            if sent_at is None or now - sent_at <= _PACING_MATCH_WINDOW:
                break
            recent.popleft()

    def stats(self, now: float) -> LimiterStats:
        return LimiterStats(
            queued=len(self.queue),
            sent=self.window.total,
            rate_now=self.window.count(now),
            allowed_rate=self.governor.current_rate(now),
            max_in_window=self.window.max_in_any_window(),
            pacing_violations=self.governor.violations,
            retried=self.retried,
            failed=self.failed,
        )
