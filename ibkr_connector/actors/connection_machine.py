"""The connection's state machine, sans-IO: what each thing that happens to a session
means for the connection, as plain values.

Layer: ``actors/``, a pure core like `pacing`, `request_queue` and `reconnect_policy`. The
connection actor owns the socket and the EClient; it feeds this machine what happened (an
attempt started, TWS accepted us, the session ended, 1100, 1101/1102, the socket dropped,
TWS refused our client id) and does what the answer says. Nothing here awaits, touches
ibapi or reads a clock, so every transition is tested with events alone
(tests/test_connection_machine.py).
"""

from __future__ import annotations

import enum

import attrs

from .connection_messages import ConnectionState
from .connection_session import ConnectionMemory

__all__ = ["ConnectionMachine", "SessionEnd", "Writable"]


class SessionEnd(enum.Enum):
    """What a session's end (or a code saying the socket is gone) means."""

    IGNORE = "ignore"  # an old session's, or one already dropped
    FAIL_STARTUP = "fail-startup"  # the attempt in progress fails
    LOST = "lost"  # the established session is lost: drop it, report ConnectionLost


class Writable(enum.Enum):
    """Whether a request may be written now."""

    ALLOWED = "allowed"
    LINK_DOWN = "link-down"  # TWS lost its link to IB (1100): refused, queued again
    NOT_CONNECTED = "not-connected"


@attrs.define
class ConnectionMachine:
    """The state of the connection and the transitions between states.

    ``memory`` is what survives the actor's restarts (wanted, ever connected, reconnects,
    client id); the state itself starts DISCONNECTED with every incarnation.
    """

    memory: ConnectionMemory
    state: ConnectionState = ConnectionState.DISCONNECTED

    # -- questions ------------------------------------------------------------------------

    def session_up(self) -> bool:
        """The socket is up and TWS accepted us, whether or not TWS has its link to IB."""
        return self.state in (ConnectionState.CONNECTED, ConnectionState.LINK_DOWN)

    def writable(self) -> Writable:
        if self.state is ConnectionState.CONNECTED:
            return Writable.ALLOWED
        if self.state is ConnectionState.LINK_DOWN:
            return Writable.LINK_DOWN
        return Writable.NOT_CONNECTED

    # -- events ---------------------------------------------------------------------------

    def attempt_started(self) -> None:
        self.state = ConnectionState.CONNECTING

    def established(self) -> bool:
        """TWS accepted us (nextValidId and the accounts arrived). True if this is a
        recovery (a connection existed before): then the reconnect is counted."""
        self.state = ConnectionState.CONNECTED
        if self.memory.ever_connected:
            self.memory.reconnects += 1
            return True
        self.memory.ever_connected = True
        return False

    def dropped(self) -> bool:
        """The current session is gone (closed by us or by TWS); True if it was up."""
        was_up = self.session_up()
        self.state = ConnectionState.DISCONNECTED
        return was_up

    def session_ended(self, *, current: bool, handshake_done: bool) -> SessionEnd:
        """A session ended, or TWS said its socket is gone or untrustworthy.

        Still starting up (the attempt has not declared it established, even if
        nextValidId and the accounts are in), the start-up fails, however far it got. A
        live current session is lost. Anything else is news about a session already
        dropped.
        """
        if (current and self.state is ConnectionState.CONNECTING) or not handshake_done:
            return SessionEnd.FAIL_STARTUP
        if current and self.session_up():
            return SessionEnd.LOST
        return SessionEnd.IGNORE

    def link_lost(self, *, current: bool) -> bool:
        """1100: True if the connection goes LINK_DOWN now (the socket is kept)."""
        if current and self.state is ConnectionState.CONNECTED:
            self.state = ConnectionState.LINK_DOWN
            return True
        return False

    def link_restored(self, *, current: bool) -> bool:
        """1101/1102: True if TWS's link is back for a live session."""
        if current and self.session_up():
            self.state = ConnectionState.CONNECTED
            return True
        return False

    def client_id_refused(self, retries_left: int) -> bool:
        """TWS refused our client id (326). True: try the next id (taken here). False: no
        retry is left, and the connection is no longer wanted (the same id can only be
        refused again, so nothing should loop on it)."""
        if retries_left > 0:
            self.memory.client_id += 1
            return True
        self.memory.wanted = False
        return False
