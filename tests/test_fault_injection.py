"""Property-based fault injection: random fault schedules under load, against the simulator.

Each example starts the simulator and the whole runtime, submits market-data requests at
random moments while a random schedule of faults plays (TWS drops, restarts, link flaps,
notices, malformed frames, slow replies, operator restarts of actors), then waits for the
runtime to settle and checks the promises of docs/architecture.md that exist so far:

- no request reaches TWS twice;
- nothing queued is lost: every request is written, and only a request in flight at the
  instant a session died can fail to arrive (at most one bucket's burst per such fault);
- in no sliding second does TWS see more than 50 messages from us;
- the supervision tree is back to all-running, and the runtime is connected again.

Real clock, short delays: an example takes one to three seconds. The thousands of
schedules run in the deterministic simulation (tests/test_simulation*.py, in-process, on
virtual time); this test stays, with few examples, as the cross-check that the in-process
transport hides nothing of the sockets, the reader thread and the bridge.
"""

from __future__ import annotations

from pathlib import Path

import trio
from helpers import spy_stock
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ibkr_connector.actors.limiter import Submit
from ibkr_connector.config import IBKRConfig, WatchdogConfig
from ibkr_connector.protocol.requests import ReqMktData
from ibkr_connector.runtime import open_runtime
from ibkr_connector.simulator import SimulatorConfig, open_simulator
from ibkr_connector.supervisor import ChildState
from ibkr_connector.testing import FaultSchedule, fault_schedules, kills_connection, run_schedule

_REQ_MKT_DATA = 1


@settings(max_examples=6, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(schedule=fault_schedules(max_faults=4, max_gap=0.4, max_outage=0.5),
       gaps=st.lists(st.floats(min_value=0, max_value=0.05), min_size=10, max_size=40))
async def test_runtime_keeps_its_promises_under_random_faults(
    schedule: FaultSchedule, gaps: list[float], tmp_path: Path
) -> None:
    ids = list(range(1, len(gaps) + 1))
    async with open_simulator(SimulatorConfig()) as sim:
        config = IBKRConfig(
            port=sim.port, connection_timeout=5, request_timeout=10,
            watchdog=WatchdogConfig(reconnect_initial_delay=0.05, reconnect_max_delay=0.2,
                                    reconnect_jitter=0.0, health_check_interval=30),
        )
        async with open_runtime(config, audit_path=tmp_path / "audit.jsonl",
                                connect=True) as runtime:
            limiter = runtime.supervisor.address("limiter")

            async def load() -> None:
                for req_id, gap in zip(ids, gaps, strict=True):
                    await trio.sleep(gap)
                    await limiter.cast(Submit(ReqMktData(req_id, spy_stock())))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(load)
                nursery.start_soon(run_schedule, sim, schedule, runtime.restart)
            sim.set_reply_delay(0)
            # Settle: connected again, queue drained, every actor running.
            with trio.move_on_after(20) as settling:
                while True:
                    status = await runtime.status()
                    states = [info.state for info in runtime.tree().walk()]
                    if (status.connection.state.value == "connected"
                            and status.limiter.queued == 0
                            and status.limiter.sent >= len(ids)
                            and all(s is ChildState.RUNNING for s in states)):
                        break
                    await trio.sleep(0.05)
            assert not settling.cancelled_caught, f"did not settle: {status}, {states}"
    received = [int(m.fields[1]) for m in sim.received
                if m.msg_id == _REQ_MKT_DATA and not m.rejected_for_pacing]
    assert len(received) == len(set(received)), "a request reached TWS twice"
    assert set(received) <= set(ids)
    session_deaths = sum(kills_connection(step.fault) for step in schedule)
    missing = set(ids) - set(received)
    assert len(missing) <= 3 * session_deaths, f"lost {sorted(missing)}"
    assert status.limiter.failed == 0
    assert sim.max_messages_in_window(1.0) <= 50
