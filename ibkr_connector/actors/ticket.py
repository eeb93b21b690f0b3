"""The claim ticket: the one place where a submitter and the limiter's writer decide a race.

A request travels from a caller (``runtime.submit``) to the wire through the limiter's
queue, and the caller may give up on the way (its timeout, its cancellation). Without a
shared decision point the two sides race: the caller raises ``CallTimeout`` while the
writer is already writing, so "the submit failed" and "the order is at TWS" are both true,
and a strategy that retries trades twice.

A :class:`Ticket` is created by the caller and handed to the limiter with the request. Its
state moves once from ``PENDING``, and whichever side moves it first wins:

- the caller gives up: ``PENDING -> ABANDONED``; the writer then never writes the request;
- the writer claims it for the wire: ``PENDING -> CLAIMED``; from then on the caller's
  timeout or cancellation no longer applies and it waits for the outcome, which the writer
  records with :meth:`Ticket.finish` (``DONE``: written, or failed with an error such as
  ``DeliveryUnknown`` or ``RequestRefused``);
- the writer found it certainly not written (the socket was down) and queued it again:
  ``CLAIMED -> PENDING`` (:meth:`Ticket.release`), so the caller may give up again.

The caller's side of the race is a Trio abort function: the decision is taken inside Trio's
cancellation delivery, with no await between "is it claimed?" and "abandon it", so there is
no window in which both sides can win. Only the Trio thread may touch a ticket.
"""

from __future__ import annotations

import enum

import trio
import trio.lowlevel

from .._errors import IBKRError

__all__ = ["RequestAbandoned", "Ticket", "TicketState"]


class RequestAbandoned(IBKRError, RuntimeError):
    """The caller stopped waiting before the request was sent, so it was not sent."""


class TicketState(enum.Enum):
    PENDING = "pending"  # queued; the caller may still give up
    CLAIMED = "claimed"  # being written: the caller waits for the outcome
    ABANDONED = "abandoned"  # the caller gave up first: never written
    DONE = "done"  # the outcome is known (written, or an error)


class Ticket:
    """One submitted request's state, shared by its one waiting caller and the writer.

    When a request travels through an actor on its way to the limiter (an order placed
    through the orders actor), the *end* caller holds the ticket too and waits with
    `settled`: it may give up while the ticket is PENDING (abandoning it: the actor's own
    wait then raises `RequestAbandoned`), and once the ticket is claimed its wait runs to
    the outcome whatever happens to its scope. So "a call that raised did not reach the
    wire" holds end to end, not only at the limiter's door.
    """

    __slots__ = ("_state", "_error", "_waiter", "_observer")

    def __init__(self) -> None:
        self._state = TicketState.PENDING
        self._error: BaseException | None = None
        self._waiter: trio.lowlevel.Task | None = None
        self._observer: trio.lowlevel.Task | None = None

    def __repr__(self) -> str:
        return f"<Ticket {self._state.value}>"

    @property
    def state(self) -> TicketState:
        return self._state

    # -- the writer's side -------------------------------------------------------------------

    def claim(self) -> bool:
        """Take the request for the wire; False if its caller already gave up."""
        if self._state is TicketState.PENDING:
            self._state = TicketState.CLAIMED
            return True
        if self._state is TicketState.ABANDONED:
            return False
        raise RuntimeError(f"cannot claim a ticket that is {self._state.value}")

    def release(self) -> None:
        """The claimed request was certainly not written and is queued again."""
        if self._state is not TicketState.CLAIMED:
            raise RuntimeError(f"cannot release a ticket that is {self._state.value}")
        self._state = TicketState.PENDING
        self._wake()  # its caller's deadline or cancellation applies again

    def finish(self, error: BaseException | None = None) -> None:
        """Record the outcome: written (``error=None``) or failed with *error*.

        A no-op once the caller abandoned the ticket (nobody is waiting); finishing twice is
        a bug and raises ``RuntimeError``.
        """
        if self._state is TicketState.ABANDONED:
            return
        if self._state is TicketState.DONE:
            raise RuntimeError("this ticket already has an outcome")
        self._state = TicketState.DONE
        self._error = error
        self._wake()

    # -- the caller's side -------------------------------------------------------------------

    def abandon(self) -> bool:
        """Give up unless already claimed or done; True if the request will never be written.

        Whoever else waits on the ticket is woken: an `outcome` waiter raises
        `RequestAbandoned`, a `settled` waiter returns."""
        if self._state is TicketState.PENDING:
            self._state = TicketState.ABANDONED
            self._error = RequestAbandoned("the request's caller gave up before it was "
                                           "claimed for the wire; it was not sent")
            self._wake()
            return True
        return self._state is TicketState.ABANDONED

    def close(self) -> None:
        """The call that carried this ticket is over: if nothing claimed it, nothing will."""
        self.abandon()

    async def settled(self) -> None:
        """The end caller's wait: return once the outcome is known (DONE) or the ticket was
        abandoned or closed. Cancellation is honoured only while the ticket is PENDING, and
        abandons it; once claimed, this waits for the outcome. A checkpoint unless the
        ticket is already settled."""
        if self._observer is not None:
            raise RuntimeError("a ticket has one settled() waiter")
        # No separate checkpoint first: a cancellation already pending must go through the
        # abort below, which abandons the ticket (raising Cancelled without abandoning
        # would let the request go out after its caller raised).
        while self._state in (TicketState.PENDING, TicketState.CLAIMED):
            self._observer = trio.lowlevel.current_task()
            await trio.lowlevel.wait_task_rescheduled(self._observer_abort)

    def _observer_abort(self, _raise_cancel: object) -> trio.lowlevel.Abort:
        if self._state is TicketState.PENDING:
            self._observer = None
            self.abandon()
            return trio.lowlevel.Abort.SUCCEEDED
        return trio.lowlevel.Abort.FAILED  # claimed: the outcome will wake us

    async def outcome(self) -> None:
        """Wait for the outcome: return once written, raise the error it failed with.

        Cancellation (and so a timeout around this call) is honoured only while the ticket
        is PENDING, and then it abandons the ticket: a ``Cancelled`` out of here means the
        request is never written. Once it is claimed the wait cannot be cancelled and ends
        with the writer's outcome, bounded by the limiter's send timeout. A checkpoint.
        """
        if self._waiter is not None:
            raise RuntimeError("a ticket has one waiting caller")
        if self._state is TicketState.DONE:
            await trio.lowlevel.cancel_shielded_checkpoint()
        while self._state is not TicketState.DONE:
            if self._state is TicketState.ABANDONED:
                # Its end caller gave up (see `settled`) before the limiter claimed it.
                await trio.lowlevel.checkpoint()
                raise self._error or RequestAbandoned("the request was abandoned")
            self._waiter = trio.lowlevel.current_task()
            await trio.lowlevel.wait_task_rescheduled(self._abort)
        if self._error is not None:
            raise self._error

    def _abort(self, _raise_cancel: object) -> trio.lowlevel.Abort:
        if self._state is TicketState.PENDING:
            self._waiter = None  # not woken by its own abandonment
            self.abandon()
            return trio.lowlevel.Abort.SUCCEEDED
        return trio.lowlevel.Abort.FAILED  # claimed: the writer will wake us with the outcome

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            trio.lowlevel.reschedule(waiter)
        observer, self._observer = self._observer, None
        if observer is not None:
            trio.lowlevel.reschedule(observer)
