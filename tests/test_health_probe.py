"""What a health probe's silence means: only a stalled session is abandoned.

The watchdog abandons the session when a probe it wrote goes unanswered. While TWS has lost
its link to IB (1100), TWS restores the link itself (1101/1102) and the limiter holds every
request, so a probe held, or written and left unanswered across the 1100, says nothing
about our session; nor does one TWS answered with a pacing error (100). Abandoning would
throw away a working socket and every subscription.
"""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing

from ibkr_connector.actors.connection_messages import ConnectionLost, LinkLost, LinkRestored
from ibkr_connector.config import IBKRConfig, WatchdogConfig
from ibkr_connector.protocol import events as ev
from ibkr_connector.runtime import open_runtime
from ibkr_connector.simulator import TwsSimulator

_REQ_CURRENT_TIME = 49  # ibapi.message.OUT.REQ_CURRENT_TIME


def _config(sim: TwsSimulator) -> IBKRConfig:
    return IBKRConfig(port=sim.port, request_timeout=10.0,
                      watchdog=WatchdogConfig(health_check_interval=5.0))


def _probes_written(sim: TwsSimulator) -> int:
    return sum(m.msg_id == _REQ_CURRENT_TIME for m in sim.received)


async def test_a_long_link_down_abandons_nothing_and_probes_resume_after(
    quiet_sim: TwsSimulator, tmp_path: Path, io_clock: trio.testing.MockClock
) -> None:
    sim = quiet_sim
    async with open_runtime(_config(sim), audit_path=tmp_path / "a.jsonl",
                            connect=True) as runtime:
        events = runtime.events((ConnectionLost, LinkLost, LinkRestored))
        await sim.send_error(1100)
        with trio.fail_after(10):
            first = await events.receive()
        assert isinstance(first, LinkLost), first
        written_before = _probes_written(sim)
        # Four probe timeouts long; each virtual second costs a quarter of a real one here
        # (the limiter asks the connection once a second whether the link is back).
        await trio.sleep(40.0)
        written_during = _probes_written(sim) - written_before
        await sim.send_error(1102)
        with trio.fail_after(10):
            restored = await events.receive()
        assert isinstance(restored, LinkRestored), restored
        await trio.sleep(12.0)  # a probe or two after the restore
        status = await runtime.status()
        lost = events.receive_nowait() if events.pending() else None
    assert written_during == 0  # nothing went out while the link was down
    assert lost is None  # the session was never abandoned
    assert status.connection.reconnects == 0
    assert status.watchdog.probes_missed == 0
    assert status.watchdog.last_probe_rtt is not None  # probing resumed and was answered
    assert _probes_written(sim) > written_before


async def test_a_probe_left_unanswered_across_an_1100_does_not_abandon_the_session(
    quiet_sim: TwsSimulator, tmp_path: Path, io_clock: trio.testing.MockClock
) -> None:
    sim = quiet_sim
    async with open_runtime(_config(sim), audit_path=tmp_path / "a.jsonl",
                            connect=True) as runtime:
        events = runtime.events((ConnectionLost,))
        sim.set_reply_delay(1_000.0)  # TWS stops answering...
        with trio.fail_after(30):
            while not (await runtime.status()).watchdog.probes_sent:
                await trio.sleep(0.5)
        await trio.sleep(1.0)  # ...the probe is on the wire...
        # ...and TWS loses its link to IB. The simulator's delayed replies would hold its
        # 1100 back too, so the connection's event is published as the connection would.
        runtime.bus.publish(LinkLost("Connectivity between IB and TWS has been lost."))
        await trio.sleep(15.0)  # past the probe's 10 s timeout
        status = await runtime.status()
        lost = events.receive_nowait() if events.pending() else None
    assert lost is None
    assert status.watchdog.probes_missed == 0
    assert status.connection.reconnects == 0


async def test_a_probe_answered_only_by_a_pacing_error_does_not_abandon_the_session(
    quiet_sim: TwsSimulator, tmp_path: Path, io_clock: trio.testing.MockClock
) -> None:
    sim = quiet_sim
    async with open_runtime(_config(sim), audit_path=tmp_path / "a.jsonl",
                            connect=True) as runtime:
        events = runtime.events((ConnectionLost,))
        sim.set_reply_delay(1_000.0)  # the probe's own answer is not coming...
        with trio.fail_after(30):
            while not (await runtime.status()).watchdog.probes_sent:
                await trio.sleep(0.5)
        await trio.sleep(1.0)
        # ...but TWS read it and refused it for pacing: alive. (Published as the connection
        # would: the simulator's delayed replies would hold the error back too.)
        runtime.bus.publish(ev.TwsError(-1, 100, "Max rate of messages per second exceeded"))
        # Past the probe's 10 s timeout, before the next probe's (also unanswered) runs out.
        await trio.sleep(12.0)
        status = await runtime.status()
        lost = events.receive_nowait() if events.pending() else None
    assert lost is None
    assert status.watchdog.probes_missed == 0
