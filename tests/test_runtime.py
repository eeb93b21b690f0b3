"""The supervised runtime against the simulator's fault API, over real loopback sockets."""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
import trio.lowlevel
import trio.testing
from helpers import our_threads, spy_stock

from ibkr_connector._errors import ChildRunning, IBKRError
from ibkr_connector.actors import watchdog as watchdog_module
from ibkr_connector.actors.connection import ConnectionLost, ConnectionRecovered
from ibkr_connector.actors.limiter import Submit
from ibkr_connector.actors.watchdog import RestoreRequested, WatchdogAlarm
from ibkr_connector.config import IBKRConfig, WatchdogConfig
from ibkr_connector.protocol.requests import CancelMktData, ReqMktData
from ibkr_connector.runtime import Runtime, open_runtime
from ibkr_connector.simulator import SimulatorConfig, TwsSimulator, open_simulator
from ibkr_connector.supervisor import ActorCrashed, ChildState


def _config(sim: TwsSimulator, **overrides: object) -> IBKRConfig:
    watchdog = overrides.pop("watchdog", WatchdogConfig(health_check_interval=30.0))
    return IBKRConfig(port=sim.port, watchdog=watchdog, **overrides)  # type: ignore[arg-type]


@asynccontextmanager
async def runtime_for(sim: TwsSimulator, tmp_path: Path, **overrides: object
                      ) -> AsyncIterator[Runtime]:
    async with open_runtime(_config(sim, **overrides), audit_path=tmp_path / "audit.jsonl",
                            connect=True) as runtime:
        yield runtime


async def _first(subscription: object, kind: type, timeout: float = 30.0) -> object:
    with trio.fail_after(timeout):
        async for event in subscription:  # type: ignore[attr-defined]
            if isinstance(event, kind):
                return event
    raise AssertionError(f"no {kind.__name__}")


async def test_runtime_starts_every_actor_and_connects(sim: TwsSimulator, tmp_path: Path) -> None:
    async with runtime_for(sim, tmp_path) as runtime:
        assert await runtime.is_connected()
        states = {info.name: info.state for info in runtime.tree().walk()}
    assert {"bus", "audit", "connection", "limiter", "watchdog"} <= set(states)
    assert all(state is ChildState.RUNNING for state in states.values())


async def test_tws_restart_is_recovered_and_restore_requested(
    sim: TwsSimulator, tmp_path: Path, io_clock: trio.testing.MockClock
) -> None:
    async with runtime_for(sim, tmp_path) as runtime:
        events = runtime.events((ConnectionLost, ConnectionRecovered, RestoreRequested))
        await sim.refuse_for(10.0)
        await _first(events, ConnectionLost)
        recovered = await _first(events, ConnectionRecovered, timeout=120)
        restore = await _first(events, RestoreRequested)
        assert await runtime.is_connected()
    assert recovered.reconnects == 1  # type: ignore[attr-defined]
    assert restore.reason == "reconnected"  # type: ignore[attr-defined]


async def test_drop_during_a_burst_loses_nothing_and_sends_nothing_twice(
    sim: TwsSimulator, tmp_path: Path
) -> None:
    ids = list(range(1000, 1030))
    async with runtime_for(sim, tmp_path, watchdog=WatchdogConfig(
            reconnect_initial_delay=0.05, reconnect_max_delay=0.2)) as runtime:
        events = runtime.events((ConnectionRecovered,))
        async with trio.open_nursery() as nursery:
            for req_id in ids:
                nursery.start_soon(runtime.submit, ReqMktData(req_id, spy_stock()))
                await trio.lowlevel.checkpoint()
            with trio.fail_after(10):
                while len(sim.live_subscriptions()) < 10:
                    await trio.sleep(0.01)
            await sim.drop_all()
            await _first(events, ConnectionRecovered)
    seen = [m.fields[1] for m in sim.received if m.msg_id == 1 and not m.rejected_for_pacing]
    seen_ids = sorted(int(f) for f in seen)
    assert sorted(set(seen_ids)) == ids  # every request reached TWS...
    assert len(seen_ids) == len(ids)  # ...exactly once


async def test_pacing_error_slows_down_and_the_request_succeeds_on_retry(tmp_path: Path) -> None:
    async with open_simulator(SimulatorConfig(max_messages_per_second=30)) as sim:
        ids = list(range(1, 61))
        async with runtime_for(sim, tmp_path, requests_per_second=45, burst=3) as runtime:
            for req_id in ids:
                # fire and forget, as a strategy cancelling many lines at once would
                await runtime.supervisor.address("limiter").cast(Submit(CancelMktData(req_id)))
            with trio.fail_after(20):
                while True:
                    accepted = {int(m.fields[1]) for m in sim.received
                                if m.msg_id == 2 and not m.rejected_for_pacing}
                    if accepted >= set(ids):
                        break
                    await trio.sleep(0.05)
            stats = (await runtime.status()).limiter
    assert any(m.rejected_for_pacing for m in sim.received)  # TWS did push back
    assert stats.pacing_violations >= 1
    assert stats.allowed_rate < 45  # and we slowed down
    assert stats.failed == 0


async def test_1100_then_1102_does_not_reconnect_the_socket(
    sim: TwsSimulator, tmp_path: Path
) -> None:
    async with runtime_for(sim, tmp_path) as runtime:
        await sim.send_error(1100, "Connectivity between IB and TWS has been lost.")
        await sim.send_error(1102, "Connectivity restored - data maintained.")
        await sim.send_error(2104, "Market data farm connection is OK:usfarm")
        await trio.sleep(0.2)
        status = (await runtime.status()).connection
    assert status.reconnects == 0
    assert status.state.value == "connected"


async def test_1101_triggers_a_restore(sim: TwsSimulator, tmp_path: Path) -> None:
    async with runtime_for(sim, tmp_path) as runtime:
        events = runtime.events((RestoreRequested,))
        await sim.send_error(1100, "lost")
        await sim.send_error(1101, "Connectivity restored - data lost.")
        restore = await _first(events, RestoreRequested)
    assert "1101" in restore.reason  # type: ignore[attr-defined]


@pytest.mark.parametrize("inside_window", [True, False])
async def test_a_disconnect_alarms_only_outside_the_daily_restart_window(
    sim: TwsSimulator, tmp_path: Path, inside_window: bool
) -> None:
    now = datetime.datetime.now()
    start = (now - datetime.timedelta(minutes=1)) if inside_window else (
        now + datetime.timedelta(hours=2))
    wd = WatchdogConfig(daily_restart_time=start.time().replace(microsecond=0),
                        reconnect_initial_delay=0.05, reconnect_max_delay=0.1)
    async with runtime_for(sim, tmp_path, watchdog=wd) as runtime:
        events = runtime.events((WatchdogAlarm, ConnectionRecovered))
        await sim.drop_all()
        await _first(events, ConnectionRecovered)
        alarms = runtime.bus.stats()
        status = (await runtime.status()).watchdog
    assert (status.alarms == 0) is inside_window
    assert alarms.published > 0


async def test_a_crashing_actor_is_restarted_and_the_runtime_keeps_serving(
    sim: TwsSimulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = watchdog_module.WatchdogStatus
    calls = {"n": 0}

    def crash_once(**fields: object) -> object:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("bug in the watchdog")
        return real(**fields)

    monkeypatch.setattr(watchdog_module, "WatchdogStatus", crash_once)
    async with runtime_for(sim, tmp_path) as runtime:
        with pytest.raises(ActorCrashed):
            await runtime.status()
        status = await runtime.status()  # served by the restarted watchdog
        info = runtime.tree().find("watchdog")
        assert info is not None
        assert await runtime.is_connected()
    assert status.watchdog.connected
    assert info.restarts == 1
    assert "bug in the watchdog" in (info.last_error or "")


async def test_leaving_the_runtime_leaves_no_thread(sim: TwsSimulator, tmp_path: Path) -> None:
    before = set(our_threads())
    async with runtime_for(sim, tmp_path) as runtime:
        assert set(our_threads()) - before
        await runtime.disconnect()
        await runtime.connect()
    assert set(our_threads()) - before == set()


async def test_a_watchdog_restarted_while_the_connection_is_down_reconnects(
    sim: TwsSimulator, tmp_path: Path
) -> None:
    wd = WatchdogConfig(reconnect_initial_delay=0.05, reconnect_max_delay=0.1)
    async with runtime_for(sim, tmp_path, watchdog=wd) as runtime:
        await runtime.stop("watchdog")
        await sim.drop_all()  # nobody is watching when the connection goes
        with trio.fail_after(5):
            while await runtime.is_connected():
                await trio.sleep(0.01)
        await runtime.start("watchdog")
        with trio.fail_after(10):
            while not await runtime.is_connected():
                await trio.sleep(0.02)
        status = (await runtime.status()).connection
    assert status.reconnects == 1


def test_text_ibapi_would_refuse_is_a_typed_error_before_the_wire() -> None:
    from ibkr_connector.protocol.requests import RequestError

    contract = spy_stock()
    contract.symbol = "SPÝ"
    with pytest.raises(RequestError, match="symbol must be printable ASCII"):
        ReqMktData(5, contract)


async def test_a_request_ibapi_refuses_fails_alone_and_the_queue_moves_on(
    sim: TwsSimulator, tmp_path: Path
) -> None:
    import attrs

    from ibkr_connector.protocol.client import RequestRefused

    contract = spy_stock()
    contract.symbol = "SPÝ"
    with attrs.validators.disabled():  # past our own check, to reach ibapi's
        refused = ReqMktData(5, contract)
    async with runtime_for(sim, tmp_path) as runtime:
        with pytest.raises(RequestRefused):
            await runtime.submit(refused)
        await runtime.submit(ReqMktData(6, spy_stock()))  # not stuck behind it
        stats = (await runtime.status()).limiter
    reached = {int(m.fields[1]) for m in sim.received if m.msg_id == 1}
    assert reached == {6}
    assert stats.failed == 1


async def test_a_silent_stall_is_caught_by_the_health_probe(
    sim: TwsSimulator, tmp_path: Path, io_clock: trio.testing.MockClock
) -> None:
    # TWS keeps the socket open but stops answering (a frozen TWS, a server reset).
    wd = WatchdogConfig(health_check_interval=30.0, reconnect_initial_delay=2.0)
    async with runtime_for(sim, tmp_path, watchdog=wd, request_timeout=60.0) as runtime:
        events = runtime.events((ConnectionLost, ConnectionRecovered))
        sim.set_reply_delay(1_000.0)
        lost = await _first(events, ConnectionLost, timeout=200)
        sim.set_reply_delay(0)
        await _first(events, ConnectionRecovered, timeout=200)
        status = (await runtime.status()).watchdog
    assert lost.reason == "health probe unanswered"  # type: ignore[attr-defined]
    assert status.probes_missed == 1


async def test_a_restarted_connection_actor_keeps_the_intent_and_restores(
    sim: TwsSimulator, tmp_path: Path
) -> None:
    wd = WatchdogConfig(reconnect_initial_delay=0.05, reconnect_max_delay=0.1)
    async with runtime_for(sim, tmp_path, watchdog=wd) as runtime:
        events = runtime.events((ConnectionRecovered, RestoreRequested))
        await runtime.restart("connection")  # a fresh EClient, not a fresh intent
        recovered = await _first(events, ConnectionRecovered, timeout=10)
        restore = await _first(events, RestoreRequested, timeout=10)
        status = (await runtime.status()).connection
    # TWS dropped every subscription with the old socket: this is a recovery, so
    # everything is restored, and the operator's counters carry on.
    assert recovered.reconnects == 1  # type: ignore[attr-defined]
    assert restore.reason == "reconnected"  # type: ignore[attr-defined]
    assert status.wanted


async def test_after_a_pacing_violation_the_limiter_pauses_for_retry_delay(
    tmp_path: Path,
) -> None:
    async with open_simulator(SimulatorConfig(max_messages_per_second=30)) as sim:
        async with runtime_for(sim, tmp_path, retry_delay=0.6) as runtime:
            limiter = runtime.supervisor.address("limiter")
            for req_id in range(1, 61):
                await limiter.cast(Submit(CancelMktData(req_id)))
            with trio.fail_after(20):
                while (await runtime.status()).limiter.queued or not any(
                        m.rejected_for_pacing for m in sim.received):
                    await trio.sleep(0.05)
    times = [m.time for m in sim.received if m.msg_id == 2]
    first_rejection = min(m.time for m in sim.received if m.rejected_for_pacing)
    after = [t for t in times if t >= first_rejection]
    widest_gap = max(b - a for a, b in zip(after, after[1:], strict=False))
    assert widest_gap >= 0.55  # the limiter went quiet for retry_delay, then went on


async def test_an_operator_restart_restarts_a_running_actor_and_start_refuses_one(
    sim: TwsSimulator, tmp_path: Path
) -> None:
    async with runtime_for(sim, tmp_path) as runtime:
        await runtime.restart("watchdog")  # running: restarted, as operators expect
        with pytest.raises(ChildRunning) as caught:  # OTP's {error, running}
            await runtime.start("watchdog")
        info = runtime.tree().find("watchdog")
    assert isinstance(caught.value, IBKRError)
    assert info is not None and (info.state, info.restarts) == (ChildState.RUNNING, 1)
