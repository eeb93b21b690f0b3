"""A TWS that accepts the socket but never finishes the API handshake (a login, 2FA or
"accept incoming connection" prompt): the runtime keeps answering while it waits."""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing

from ibkr_connector.config import IBKRConfig
from ibkr_connector.protocol.client import ConnectFailed, ConnectTimeout
from ibkr_connector.runtime import Runtime, open_runtime
from ibkr_connector.simulator import TwsSimulator


async def _connect(runtime: Runtime, failures: list[BaseException]) -> None:
    try:
        await runtime.connect()
    except ConnectFailed as exc:
        failures.append(exc)


async def test_status_answers_connecting_while_the_handshake_hangs(
    quiet_sim: TwsSimulator, tmp_path: Path, io_clock: trio.testing.MockClock
) -> None:
    quiet_sim.stall_handshakes()
    async with open_runtime(IBKRConfig(port=quiet_sim.port), audit_path=tmp_path / "a.jsonl") as rt:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_connect, rt, [])
            await trio.sleep(2.0)
            with trio.fail_after(1.0):  # well inside the 30 s handshake timeout
                report = await rt.status_report()
                connected = await rt.is_connected()
            nursery.cancel_scope.cancel()
    assert report["state"] == "connecting"
    assert not connected


async def test_every_connect_during_a_hanging_attempt_gets_its_timeout(
    quiet_sim: TwsSimulator, tmp_path: Path, io_clock: trio.testing.MockClock
) -> None:
    quiet_sim.stall_handshakes()
    config = IBKRConfig(port=quiet_sim.port, connection_timeout=20.0)
    failures: list[BaseException] = []
    async with open_runtime(config, audit_path=tmp_path / "a.jsonl") as rt:
        async with trio.open_nursery() as nursery:
            for _ in range(2):
                nursery.start_soon(_connect, rt, failures)
        report = await rt.status_report()
    assert len(failures) == 2
    assert all(isinstance(f, ConnectTimeout) for f in failures), failures
    assert report["state"] == "disconnected"
    assert "did not accept the client within 20 s" in str(report["last_error"])


async def test_a_stalled_simulator_accepts_and_stays_silent(quiet_sim: TwsSimulator) -> None:
    quiet_sim.stall_handshakes()
    stream = await trio.open_tcp_stream(quiet_sim.host, quiet_sim.port)
    async with stream:
        await stream.send_all(b"API\0\0\0\0\x0av100..200")
        with trio.move_on_after(0.2) as waited:
            await stream.receive_some(100)  # neither a reply nor a close comes
    assert waited.cancelled_caught
