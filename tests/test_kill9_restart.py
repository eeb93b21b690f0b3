"""A kill -9 while orders flow: after the restart every intent has an outcome and no order
id comes round again (hardening issue, item 12)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import trio

from ibkr_connector.actors.audit import read_audit_records
from ibkr_connector.config import IBKRConfig, WatchdogConfig
from ibkr_connector.runtime import open_runtime
from ibkr_connector.simulator import TwsSimulator

# The runtime of "the strategy process": places orders one after another, printing each
# id once its submit returned, until it is killed.
_STRATEGY = """
import sys, trio
from decimal import Decimal
from pathlib import Path
from ibapi.order import Order
from ibkr_connector import IBKRConfig, PlaceOrder, Stock, WatchdogConfig, open_runtime

async def main(port, trail):
    config = IBKRConfig(port=port, watchdog=WatchdogConfig(health_check_interval=30.0))
    async with open_runtime(config, audit_path=Path(trail), connect=True) as runtime:
        while True:
            ids = await runtime.allocate_order_ids(1)
            order = Order()
            order.action, order.orderType = "BUY", "LMT"
            order.totalQuantity, order.lmtPrice = Decimal(1), 1.0
            await runtime.submit(PlaceOrder(ids.start, Stock("SPY"), order))
            print(ids.start, flush=True)

trio.run(main, int(sys.argv[1]), sys.argv[2])
"""


def _placed(sim: TwsSimulator) -> list[int]:
    return [int(m.fields[0]) for m in sim.received if m.msg_id == 3]


async def test_after_a_kill_9_every_intent_has_an_outcome_and_ids_never_repeat(
    sim: TwsSimulator, tmp_path: Path
) -> None:
    trail = tmp_path / "audit.jsonl"
    process = await trio.lowlevel.open_process(
        [sys.executable, "-c", _STRATEGY, str(sim.port), str(trail)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert process.stdout is not None
    seen = b""
    with trio.fail_after(30):
        while seen.count(b"\n") < 20:
            chunk = await process.stdout.receive_some()
            assert chunk, "the strategy process died on its own"
            seen += chunk
    os.kill(process.pid, signal.SIGKILL)  # mid-flow: an intent may be on its way
    await process.wait()
    await process.stdout.aclose()
    with trio.fail_after(10):  # the simulator notices the dead socket and frees client 1
        while sim.connected_client_ids():
            await trio.sleep(0.01)

    config = IBKRConfig(port=sim.port, client_id=1,
                        watchdog=WatchdogConfig(health_check_interval=30.0))
    async with open_runtime(config, audit_path=trail, connect=True) as runtime:
        next_id = (await runtime.allocate_order_ids(1)).start
    records = list(read_audit_records(trail))
    intents = [r for r in records if r.kind == "order_intent"]
    outcomes = [r.fields["intent_seq"] for r in records if r.kind == "order_outcome"]
    assert len(intents) >= 20
    # Every intent has exactly one outcome (some written after the restart).
    assert sorted(outcomes) == sorted(r.seq for r in intents)
    # No id is used twice, at TWS or in the trail, and the next one is above them all.
    ids = [r.fields["order_id"] for r in intents]
    assert len(ids) == len(set(ids))
    placed = _placed(sim)
    assert len(placed) == len(set(placed))
    assert next_id > max(ids + placed)
