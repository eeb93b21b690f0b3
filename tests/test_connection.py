"""The connection actor against the simulator over real loopback sockets.

Each test drives the unmodified ibapi EClient (inside our TwsSession) against the bundled
simulator and checks what a user of the runtime would observe: the events emitted, the
errors raised, and that no thread outlives the session.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
import trio.testing
from helpers import Recorder, our_threads

from ibkr_connector.actors.connection import (
    ClientIdInUse,
    ConnectionActor,
    ConnectionEstablished,
    ConnectionLost,
    ConnectionRecovered,
    ConnectionState,
    ConnectionStatus,
    ErrorOccurred,
    LinkDown,
    LinkLost,
    LinkRestored,
    OrderIdsOutOfSync,
)
from ibkr_connector.config import IBKRConfig
from ibkr_connector.protocol import events as ev
from ibkr_connector.protocol.client import ConnectFailed, ConnectTimeout, NotConnected
from ibkr_connector.protocol.farms import FarmState
from ibkr_connector.protocol.requests import ReqCurrentTime, ReqIds
from ibkr_connector.runtime import open_runtime
from ibkr_connector.simulator import SimulatorConfig, TwsSimulator, open_simulator
from ibkr_connector.supervisor import ActorCrashed


@asynccontextmanager
async def running_actor(
    sim: TwsSimulator, **overrides: object
) -> AsyncIterator[tuple[ConnectionActor, Recorder]]:
    config = IBKRConfig(port=sim.port, **overrides)  # type: ignore[arg-type]
    recorder = Recorder()
    actor = ConnectionActor(config, recorder)
    async with trio.open_nursery() as nursery:
        actor.attach(nursery)
        try:
            yield actor, recorder
        finally:
            await actor.shutdown()
            nursery.cancel_scope.cancel()


async def test_handshake_negotiates_version_and_delivers_ids_and_accounts(
    sim: TwsSimulator,
) -> None:
    async with running_actor(sim) as (actor, events):
        status = await actor.connect()
        established = await events.wait_for(ConnectionEstablished)
    assert status.state is ConnectionState.CONNECTED
    assert established.server_version == 200
    assert established.accounts == sim.config.accounts
    assert established.next_order_id == sim.config.first_order_id
    assert established.connection_time


@pytest.mark.parametrize("version", [176, 187, 200])
async def test_lower_server_versions_still_connect(version: int) -> None:
    async with open_simulator(SimulatorConfig(server_version=version)) as sim:
        async with running_actor(sim) as (actor, events):
            await actor.connect()
            established = await events.wait_for(ConnectionEstablished)
            await actor.send(ReqCurrentTime())
            await events.wait_for(ev.CurrentTime)
    assert established.server_version == version


async def test_farm_notices_are_not_errors(sim: TwsSimulator) -> None:
    async with running_actor(sim) as (actor, events):
        await actor.connect()
        notice = await events.wait_for(ErrorOccurred, lambda e: e.code == 2104)
    assert not notice.info.is_error
    assert actor.last_error is None


async def test_current_time_round_trip(sim: TwsSimulator) -> None:
    async with running_actor(sim) as (actor, events):
        await actor.connect()
        await actor.send(ReqCurrentTime())
        reply = await events.wait_for(ev.CurrentTime)
    assert reply.time > 1_600_000_000


async def test_req_ids_answers_with_next_valid_id(sim: TwsSimulator) -> None:
    async with running_actor(sim) as (actor, events):
        await actor.connect()
        before = len(events.events)
        await actor.send(ReqIds(1))
        again = await events.wait_for(ev.NextValidId, after=before)
    assert again.order_id >= sim.config.first_order_id


async def test_fifty_one_messages_in_a_second_get_error_100(sim: TwsSimulator) -> None:
    async with running_actor(sim) as (actor, events):
        await actor.connect()
        for _ in range(51):  # straight to the wire, past the limiter on purpose
            await actor.send(ReqCurrentTime())
        error = await events.wait_for(ev.TwsError, lambda e: e.code == 100)
    assert error.code == 100
    assert sim.max_messages_in_window(1.0) >= 51


async def test_duplicate_client_id_is_refused_with_326(sim: TwsSimulator) -> None:
    async with running_actor(sim, client_id=5) as (first, _):
        await first.connect()
        async with running_actor(sim, client_id=5) as (second, events):
            with pytest.raises(ClientIdInUse, match="326"):
                await second.connect()
            assert second.state is ConnectionState.DISCONNECTED
            assert any(e.code == 326 for e in events.of(ErrorOccurred))


async def test_client_id_in_use_can_move_to_the_next_id(sim: TwsSimulator) -> None:
    async with running_actor(sim, client_id=5) as (first, _):
        await first.connect()
        async with running_actor(sim, client_id=5, client_id_retries=2) as (second, _):
            status = await second.connect()
    assert status.client_id == 6


async def test_drop_emits_connection_lost_and_sends_fail_cleanly(sim: TwsSimulator) -> None:
    async with running_actor(sim) as (actor, events):
        await actor.connect()
        await sim.drop_all()
        lost = await events.wait_for(ConnectionLost)
        assert not lost.requested
        assert not actor.is_connected()
        with pytest.raises(NotConnected):
            await actor.send(ReqCurrentTime())


async def test_refused_then_accepted_allows_reconnect(
    sim: TwsSimulator, io_clock: trio.testing.MockClock
) -> None:
    async with running_actor(sim) as (actor, events):
        await actor.connect()
        await sim.refuse_for(5.0)
        await events.wait_for(ConnectionLost)
        with pytest.raises(ConnectFailed):
            await actor.connect()
        await trio.sleep(6.0)
        await actor.connect()
        recovered = await events.wait_for(ConnectionRecovered)
    assert recovered.reconnects == 1


async def test_malformed_frame_is_survived(sim: TwsSimulator) -> None:
    async with running_actor(sim) as (actor, events):
        await actor.connect()
        await sim.send_malformed()
        lost = await events.wait_for(ConnectionLost)
        assert "malformed" in lost.reason
        assert events.of(ev.MalformedMessage)
        await actor.connect()  # the runtime is still here and can reconnect
        await actor.send(ReqCurrentTime())
        await events.wait_for(ev.CurrentTime)


async def test_1100_then_1102_keeps_the_socket(sim: TwsSimulator) -> None:
    async with running_actor(sim) as (actor, events):
        await actor.connect()
        await sim.send_error(1100, "Connectivity between IB and TWS has been lost.")
        await events.wait_for(LinkLost)
        assert actor.state is ConnectionState.LINK_DOWN
        await sim.send_error(1102, "Connectivity restored - data maintained.")
        restored = await events.wait_for(LinkRestored)
        assert not restored.data_lost
        assert actor.state is ConnectionState.CONNECTED
        assert not events.of(ConnectionLost)
        assert actor.reconnects == 0


async def test_1101_reports_data_lost(sim: TwsSimulator) -> None:
    async with running_actor(sim) as (actor, events):
        await actor.connect()
        await sim.send_error(1100, "lost")
        await sim.send_error(1101, "Connectivity restored - data lost.")
        restored = await events.wait_for(LinkRestored)
    assert restored.data_lost


async def test_connecting_to_a_closed_port_fails_with_a_clear_error() -> None:
    async with open_simulator() as sim:
        port = sim.port
    recorder = Recorder()
    actor = ConnectionActor(IBKRConfig(port=port), recorder)
    async with trio.open_nursery() as nursery:
        actor.attach(nursery)
        with pytest.raises(ConnectFailed, match=str(port)):
            await actor.connect()
        await actor.shutdown()
    assert any(e.code == 502 for e in recorder.of(ev.TwsError))


async def test_no_thread_outlives_its_session(sim: TwsSimulator) -> None:
    before = set(our_threads())
    async with running_actor(sim) as (actor, events):
        await actor.connect()
        assert set(our_threads()) - before  # the session really runs threads
        await sim.drop_all()
        await events.wait_for(ConnectionLost)
        await actor.connect()
        await actor.disconnect()
        await actor.connect()
    assert set(our_threads()) - before == set()


async def test_disconnect_is_reported_as_requested(sim: TwsSimulator) -> None:
    async with running_actor(sim) as (actor, events):
        await actor.connect()
        await actor.disconnect()
        lost = await events.wait_for(ConnectionLost)
    assert lost.requested
    assert not actor.wanted


async def _connect_or_fail(actor: ConnectionActor) -> None:
    try:
        await actor.connect()
    except ConnectFailed:
        pass  # one of the two allowed outcomes; the test checks the state afterwards


async def test_a_session_that_dies_during_start_up_is_never_reported_connected(
    sim: TwsSimulator,
) -> None:
    # TWS's start-up replies and a fatal frame arrive together, so the session is dead
    # before connect() has even resumed. It must fail (or be lost), never stay connected.
    for _ in range(5):
        async with running_actor(sim) as (actor, events):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_connect_or_fail, actor)
                await sim.wait_for_clients(1)
                await sim.send_malformed()
            with trio.fail_after(5):
                while actor.session is not None and actor.session.is_connected():
                    await trio.sleep(0.01)
            await trio.sleep(0.05)
            assert not actor.is_connected()
            assert actor.session is None


# --- a handshake that never finishes (a login or 2FA prompt at TWS) -----------------------


async def test_a_hanging_handshake_shows_connecting_and_refuses_sends(
    quiet_sim: TwsSimulator, io_clock: trio.testing.MockClock
) -> None:
    quiet_sim.stall_handshakes()
    async with running_actor(quiet_sim) as (actor, _):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_connect_or_fail, actor)
            await trio.sleep(1.0)
            assert actor.status().state is ConnectionState.CONNECTING
            with pytest.raises(NotConnected):
                await actor.send(ReqCurrentTime())


async def test_a_hanging_handshake_times_out_with_a_clear_error(
    quiet_sim: TwsSimulator, io_clock: trio.testing.MockClock
) -> None:
    quiet_sim.stall_handshakes()
    async with running_actor(quiet_sim, connection_timeout=20.0) as (actor, _):
        with pytest.raises(ConnectTimeout, match="20 s"):
            await actor.connect()
        assert actor.state is ConnectionState.DISCONNECTED


async def test_connects_during_an_attempt_share_its_outcome(sim: TwsSimulator) -> None:
    async with running_actor(sim) as (actor, events):
        results = []

        async def connect() -> None:
            results.append(await actor.connect())

        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(connect)
        assert [r.state for r in results] == [ConnectionState.CONNECTED] * 3
        assert len(events.of(ConnectionEstablished)) == 1
        assert not any(e.code == 326 for e in events.of(ErrorOccurred))


async def test_disconnect_ends_an_attempt_in_progress(
    quiet_sim: TwsSimulator, io_clock: trio.testing.MockClock
) -> None:
    quiet_sim.stall_handshakes()
    async with running_actor(quiet_sim) as (actor, _):
        failed = []

        async def connect() -> None:
            try:
                await actor.connect()
            except ConnectFailed as exc:
                failed.append(exc)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(connect)
            await trio.sleep(1.0)
            await actor.disconnect()
        assert failed and "cancelled" in str(failed[0])
        assert actor.state is ConnectionState.DISCONNECTED and not actor.wanted


# --- 1100: the link is down, the socket stays, nothing goes out ----------------------------


async def test_link_down_is_not_connected_and_refuses_sends_until_restored(
    sim: TwsSimulator,
) -> None:
    async with running_actor(sim) as (actor, events):
        await actor.connect()
        await sim.send_error(1100)
        await events.wait_for(LinkLost)
        assert not actor.is_connected()
        assert actor.status().state is ConnectionState.LINK_DOWN
        with pytest.raises(LinkDown):
            await actor.send(ReqCurrentTime())
        await sim.send_error(1102)
        await events.wait_for(LinkRestored)
        assert actor.is_connected()
        await actor.send(ReqCurrentTime())
        await events.wait_for(ev.CurrentTime)


# --- 103, farms, 2110 ---------------------------------------------------------------------


async def test_103_asks_for_order_ids_to_be_resynchronised(sim: TwsSimulator) -> None:
    async with running_actor(sim) as (actor, events):
        await actor.connect()
        await sim.send_error(103, "Duplicate order id", req_id=42)
        out_of_sync = await events.wait_for(OrderIdsOutOfSync)
    assert out_of_sync.order_id == 42


async def test_farm_notices_keep_a_per_farm_health_state(sim: TwsSimulator) -> None:
    async with running_actor(sim) as (actor, events):
        await actor.connect()
        await events.wait_for(ErrorOccurred, lambda e: e.code == 2158)
        assert actor.status().farms == {
            "usfarm": FarmState.OK, "ushmds": FarmState.OK, "secdefnj": FarmState.OK}
        before = len(events.events)
        await sim.send_error(2103, "Market data farm connection is broken:usfarm")
        await events.wait_for(ErrorOccurred, lambda e: e.code == 2103, after=before)
        farms = actor.status().farms
    assert farms["usfarm"] is FarmState.BROKEN
    assert farms["ushmds"] is FarmState.OK
    assert actor.last_error is None  # a broken farm is not an error


async def test_2110_marks_upstream_degraded_until_a_farm_is_ok(sim: TwsSimulator) -> None:
    async with running_actor(sim) as (actor, events):
        await actor.connect()
        await events.wait_for(ErrorOccurred, lambda e: e.code == 2158)
        await sim.send_error(2110)
        await events.wait_for(ErrorOccurred, lambda e: e.code == 2110)
        assert actor.status().upstream_degraded
        assert actor.is_connected()  # a notice, not a disconnect
        before = len(events.events)
        await sim.send_error(2104, "Market data farm connection is OK:usfarm")
        await events.wait_for(ErrorOccurred, lambda e: e.code == 2104, after=before)
        assert not actor.status().upstream_degraded


# --- 326 ------------------------------------------------------------------------------------


async def test_client_id_in_use_with_no_retry_left_is_no_longer_wanted(
    sim: TwsSimulator,
) -> None:
    async with running_actor(sim, client_id=5) as (five, _), \
            running_actor(sim, client_id=6) as (six, _):
        await five.connect()
        await six.connect()
        async with running_actor(sim, client_id=5, client_id_retries=1) as (actor, _):
            with pytest.raises(ClientIdInUse, match="client id 6"):
                await actor.connect()
            assert not actor.wanted  # so the watchdog does not loop on a refused id
            assert actor.status().last_error == (
                f"client id 6 is already in use at 127.0.0.1:{sim.port} (TWS error 326)")


# --- the actor's contract: domain errors fail the call, bugs crash the actor ---------------


async def test_a_bug_in_a_handler_crashes_the_actor_instead_of_failing_the_call(
    quiet_sim: TwsSimulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: ConnectionActor) -> ConnectionStatus:
        raise TypeError("a bug in the connection actor")

    async with open_runtime(IBKRConfig(port=quiet_sim.port), audit_path=tmp_path / "a.jsonl",
                            connect=True) as rt:
        monkeypatch.setattr(ConnectionActor, "status", broken)
        with pytest.raises(ActorCrashed):
            await rt.status()
        monkeypatch.undo()
        with trio.fail_after(30):
            while not await rt.is_connected():  # restarted, and the watchdog reconnected
                await trio.sleep(0.1)
        connection = next(i for i in rt.tree().walk() if i.name == "connection")
    assert connection.restarts == 1
