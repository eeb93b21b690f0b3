"""Ticker fan-out: N contracts streaming to M subscribers through the runtime.

Against the bundled simulator on loopback (real clock, one process): the runtime holds 500
option tickers (both sides configured for that many lines), the simulator's market ticks
every 50 ms, and 10 subscribers each read `TickerUpdated` from the bus (conflated per
contract: a slow reader sees the latest, not a backlog). Measured over a window:

- ticks/s applied to tickers by the market-data actor, and updates/s taken by subscribers;
- CPU µs per tick for the whole process (simulator included, so an upper bound), with 10
  subscribers and, side by side in the same run, with none: their ratio is what the
  fan-out costs;
- freshness: after the market stops, every subscriber's last-seen price of every contract
  must equal the ticker's (conflation may skip values, never the latest).

Targets: fan-out CPU ratio (10 subscribers / none) <= 1.5; freshness = 1.0.

    python bench/ticker_fanout.py [--contracts 500] [--subscribers 10] [--seconds 5]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from collections.abc import Hashable
from pathlib import Path

import trio

from ibkr_connector.actors.market_data_messages import TickerUpdated
from ibkr_connector.config import IBKRConfig, MarketDataConfig, WatchdogConfig
from ibkr_connector.contracts import ContractById
from ibkr_connector.runtime import Runtime, open_runtime
from ibkr_connector.simulator import SimulatorConfig, TwsSimulator, open_simulator
from ibkr_connector.ticker import Ticker

CPU_TARGET = 1.5


async def _ticks_total(runtime: Runtime) -> int:
    stats = await runtime.stats()
    market = stats["market_data"]
    assert isinstance(market, dict)
    return int(market["ticks_total"])


async def _subscriber(runtime: Runtime, seen: dict[Hashable, float | None],
                      counter: list[int], task_status: trio.TaskStatus[None]) -> None:
    with runtime.events(TickerUpdated, capacity=100_000) as updates:
        task_status.started()
        async for update in updates:
            seen[update.key] = update.ticker.bid
            counter[0] += 1


async def _window(runtime: Runtime, sim: TwsSimulator, subscribers: int, seconds: float,
                  tickers: list[Ticker]) -> tuple[float, float, float, float]:
    """(ticks/s, updates/s, CPU µs per tick, freshness) with ``subscribers`` readers.

    Freshness is checked after the window: the market is stopped, the readers drain, and
    each must hold every contract's final bid."""
    seen: list[dict[Hashable, float | None]] = [{} for _ in range(subscribers)]
    counters = [[0] for _ in range(subscribers)]
    async with trio.open_nursery() as nursery:
        for index in range(subscribers):
            await nursery.start(_subscriber, runtime, seen[index], counters[index])
        ticks_before = await _ticks_total(runtime)
        cpu_before, wall_before = time.process_time(), time.perf_counter()
        await trio.sleep(seconds)
        cpu = time.process_time() - cpu_before
        wall = time.perf_counter() - wall_before
        ticks = await _ticks_total(runtime) - ticks_before
        taken = sum(c[0] for c in counters)
        freshness = 1.0
        if subscribers:
            for symbol in sim.market.symbols():
                sim.stall_ticker(symbol)
            await trio.sleep(1.0)  # let the last ticks arrive and the readers drain
            keys = {("conid", int(t.contract.conId)): t for t in tickers}
            fresh = sum(1 for s in seen for key, t in keys.items() if s.get(key) == t.bid)
            freshness = fresh / (len(keys) * subscribers)
        nursery.cancel_scope.cancel()
    return ticks / wall, taken / wall, cpu / max(ticks, 1) * 1e6, freshness


async def main(contracts: int, subscribers: int, seconds: float) -> None:
    logging.basicConfig(level=logging.ERROR)
    sim_config = SimulatorConfig(max_market_data_lines=contracts + 10,
                                 market_tick_interval=0.05)
    async with open_simulator(sim_config) as sim:
        config = IBKRConfig(
            port=sim.port,
            market_data=MarketDataConfig(max_market_data_lines=contracts,
                                         ticker_stale_after=0),
            watchdog=WatchdogConfig(health_check_interval=30.0))
        with tempfile.TemporaryDirectory() as tmp:
            async with open_runtime(config, audit_path=Path(tmp) / "audit.jsonl",
                                    connect=True) as runtime:
                print(f"subscribing {contracts} options (paced: ~{2 * contracts / 45:.0f} s)")
                tickers = [await runtime.subscribe_ticker(ContractById(i.con_id))
                           for i in sim.market.options_near_the_money(contracts)]
                await trio.sleep(1.0)
                alone = await _window(runtime, sim, 0, seconds, tickers)
                fanned = await _window(runtime, sim, subscribers, seconds, tickers)
    print(f"no subscribers : {alone[0]:9.0f} ticks/s, {alone[2]:6.1f} µs CPU per tick")
    print(f"{subscribers:2d} subscribers : {fanned[0]:9.0f} ticks/s, {fanned[1]:9.0f} "
          f"updates/s taken, {fanned[2]:6.1f} µs CPU per tick (simulator included)")
    ratio = fanned[2] / alone[2]
    print(f"ticker_fanout_cpu: ratio={ratio:.3f} (target <= {CPU_TARGET}) "
          f"{'MET' if ratio <= CPU_TARGET else 'MISSED'}")
    freshness = fanned[3]
    print(f"ticker_fanout_freshness: ratio={freshness:.3f} (target >= 1.0) "
          f"{'MET' if freshness >= 1.0 else 'MISSED'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contracts", type=int, default=500)
    parser.add_argument("--subscribers", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    trio.run(main, args.contracts, args.subscribers, args.seconds)
