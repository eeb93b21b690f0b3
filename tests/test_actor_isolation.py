"""No actor crash-loops because another is stopped (issue 8, item 2).

For every actor of the runtime tree: an operator's ``stop X`` held for a minute of virtual
time restarts nothing else (no restart counter moves, every other child stays running),
and ``start X`` brings the runtime back to all-running, connected and serving. Runs against
the simulator over loopback, on a MockClock that jumps after a quarter second idle.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
import trio.testing

from ibkr_connector.config import IBKRConfig, WatchdogConfig
from ibkr_connector.protocol.requests import ReqCurrentTime
from ibkr_connector.runtime import Runtime, open_runtime
from ibkr_connector.simulator import TwsSimulator
from ibkr_connector.supervisor import ChildState

ACTORS = ("bus", "audit", "connection", "limiter", "watchdog", "order_ids", "market_data", "orders",
          "control")
REQ_CURRENT_TIME = 49  # ibapi.message.OUT.REQ_CURRENT_TIME


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    # pytest's tmp_path can exceed the 108-byte limit of a Unix socket path.
    directory = Path(tempfile.mkdtemp(prefix="ibc-"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def _restarts(runtime: Runtime, but: str) -> dict[str, int]:
    """Restart counts of every node but *but* (whose own start counts as one)."""
    return {info.name: info.restarts for info in runtime.tree().walk() if info.name != but}


def _not_running(runtime: Runtime) -> set[str]:
    return {info.name for info in runtime.tree().walk() if info.state is not ChildState.RUNNING}


@pytest.mark.parametrize("actor", ACTORS)
async def test_stopping_an_actor_for_a_minute_restarts_no_other_and_start_recovers(
    actor: str, quiet_sim: TwsSimulator, tmp_path: Path, sock_dir: Path,
    io_clock: trio.testing.MockClock,
) -> None:
    sim = quiet_sim  # a market that stands still lets the clock jump
    # Probes every 5 s, so a dozen of them run while the actor is away.
    config = IBKRConfig(port=sim.port, request_timeout=10.0, watchdog=WatchdogConfig(
        health_check_interval=5.0, reconnect_initial_delay=0.5, reconnect_max_delay=2.0))
    async with open_runtime(config, audit_path=tmp_path / "audit.jsonl",
                            control_path=sock_dir / "control.sock", connect=True) as runtime:
        workers = {info.name for info in runtime.tree().walk() if info.kind == "worker"}
        await runtime.submit(ReqCurrentTime())
        before = _restarts(runtime, actor)
        await runtime.stop(actor)
        await trio.sleep(60.0)
        during = _restarts(runtime, actor)
        stopped = _not_running(runtime)
        await runtime.start(actor)
        with trio.fail_after(60):
            while _not_running(runtime) or not await runtime.is_connected():
                await trio.sleep(0.5)
        sent_before = sum(m.msg_id == REQ_CURRENT_TIME for m in sim.received)
        await runtime.submit(ReqCurrentTime())  # the whole outbound path serves again
        after = _restarts(runtime, actor)
    assert workers == set(ACTORS)  # every actor of the tree is covered here
    assert stopped == {actor}
    assert during == before  # nobody was restarted while the actor was away...
    assert after == before  # ...nor by its return
    assert sum(m.msg_id == REQ_CURRENT_TIME for m in sim.received) == sent_before + 1
