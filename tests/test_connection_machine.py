"""The connection's state machine with events alone: no socket, no Trio, no clock."""

from __future__ import annotations

from ibkr_connector.actors.connection_machine import ConnectionMachine, SessionEnd, Writable
from ibkr_connector.actors.connection_messages import ConnectionState
from ibkr_connector.actors.connection_session import ConnectionMemory


def _up() -> ConnectionMachine:
    machine = ConnectionMachine(ConnectionMemory(client_id=7))
    machine.attempt_started()
    machine.established()
    return machine


def test_the_first_session_is_established_and_later_ones_are_recoveries() -> None:
    memory = ConnectionMemory(client_id=7)
    machine = ConnectionMachine(memory)
    assert machine.writable() is Writable.NOT_CONNECTED
    machine.attempt_started()
    assert machine.state is ConnectionState.CONNECTING and not machine.session_up()
    assert machine.established() is False
    assert machine.dropped() is True
    machine.attempt_started()
    assert machine.established() is True
    assert (memory.ever_connected, memory.reconnects) == (True, 1)
    # A restarted actor builds a fresh machine around the same memory: still a recovery.
    again = ConnectionMachine(memory)
    again.attempt_started()
    assert again.established() is True and memory.reconnects == 2


def test_1100_holds_writes_and_1101_or_1102_release_them() -> None:
    machine = _up()
    assert machine.link_lost(current=True) is True
    assert machine.state is ConnectionState.LINK_DOWN and machine.session_up()
    assert machine.writable() is Writable.LINK_DOWN
    assert machine.link_lost(current=True) is False  # already down
    assert machine.link_restored(current=True) is True
    assert machine.writable() is Writable.ALLOWED


def test_link_notices_about_an_old_session_change_nothing() -> None:
    machine = _up()
    assert machine.link_lost(current=False) is False
    assert machine.writable() is Writable.ALLOWED
    machine.dropped()
    assert machine.link_restored(current=True) is False  # no live session to restore
    assert machine.state is ConnectionState.DISCONNECTED


def test_a_session_ending_during_start_up_fails_the_attempt() -> None:
    machine = ConnectionMachine(ConnectionMemory(client_id=1))
    machine.attempt_started()
    # Even with nextValidId and the accounts in (the handshake done), until the attempt
    # declares it established.
    assert machine.session_ended(current=True, handshake_done=True) is SessionEnd.FAIL_STARTUP
    assert machine.session_ended(current=False, handshake_done=False) is SessionEnd.FAIL_STARTUP


def test_an_established_session_ending_is_lost_once() -> None:
    machine = _up()
    assert machine.session_ended(current=True, handshake_done=True) is SessionEnd.LOST
    assert machine.session_ended(current=False, handshake_done=True) is SessionEnd.IGNORE
    machine.dropped()
    assert machine.session_ended(current=True, handshake_done=True) is SessionEnd.IGNORE


def test_a_refused_client_id_moves_on_until_no_retry_is_left() -> None:
    memory = ConnectionMemory(client_id=3, wanted=True)
    machine = ConnectionMachine(memory)
    assert machine.client_id_refused(retries_left=1) is True
    assert (memory.client_id, memory.wanted) == (4, True)
    assert machine.client_id_refused(retries_left=0) is False
    assert (memory.client_id, memory.wanted) == (4, False)
