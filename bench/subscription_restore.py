"""Subscription restore: after TWS restarts, how soon is every ticker streaming again?

Against the bundled simulator on loopback (real clock): the runtime holds N live option
tickers (200 by default; both sides configured for that many lines), then the simulator
"restarts" (``refuse_for``: port closed, every connection dropped). We measure from the
runtime's `ConnectionRecovered` to the moment every one of the N tickers has had an update
after it. Every restore request passes the limiter, so nothing can beat the pacing floor:
N requests at the configured rate take ``N / rate`` seconds (the bucket's burst lets the
first few out at once, which only helps). Target: restore <= 1.05 x floor + 200 ms.

    python bench/subscription_restore.py [--lines 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

import trio

from ibkr_connector.actors.connection import ConnectionRecovered
from ibkr_connector.config import IBKRConfig, MarketDataConfig, WatchdogConfig
from ibkr_connector.contracts import ContractById
from ibkr_connector.runtime import Runtime, open_runtime
from ibkr_connector.simulator import SimulatorConfig, TwsSimulator, open_simulator
from ibkr_connector.ticker import Ticker

SLACK = 0.200
FACTOR = 1.05


async def _all_updated(tickers: list[Ticker], since: float) -> float:
    """Wait until every ticker has an update after ``since``; return when that happened."""
    remaining = set(range(len(tickers)))
    while remaining:
        remaining = {i for i in remaining
                     if (tickers[i].last_update or 0.0) <= since}
        if remaining:
            await trio.sleep(0.002)
    return trio.current_time()


async def _round(runtime: Runtime, sim: TwsSimulator, tickers: list[Ticker],
                 outage: float) -> float:
    recovered = runtime.events(ConnectionRecovered)
    await sim.refuse_for(outage)
    event_at = None
    with trio.fail_after(60):
        await recovered.receive()
        event_at = trio.current_time()
    recovered.close()
    done = await _all_updated(tickers, event_at)
    return done - event_at


async def main(lines: int, rounds: int, outage: float) -> None:
    logging.basicConfig(level=logging.ERROR)
    sim_config = SimulatorConfig(max_market_data_lines=lines + 10, market_tick_interval=0.25)
    async with open_simulator(sim_config) as sim:
        config = IBKRConfig(
            port=sim.port,
            market_data=MarketDataConfig(max_market_data_lines=lines, ticker_stale_after=0),
            watchdog=WatchdogConfig(health_check_interval=30.0, reconnect_initial_delay=0.2,
                                    reconnect_max_delay=0.5))
        with tempfile.TemporaryDirectory() as tmp:
            async with open_runtime(config, audit_path=Path(tmp) / "audit.jsonl",
                                    connect=True) as runtime:
                ids = [i.con_id for i in sim.market.options_near_the_money(lines)]
                tickers = [await runtime.subscribe_ticker(ContractById(i)) for i in ids]
                await _all_updated(tickers, 0.0)
                floor = lines / config.requests_per_second
                worst = 0.0
                for number in range(1, rounds + 1):
                    took = await _round(runtime, sim, tickers, outage)
                    worst = max(worst, took)
                    print(f"round {number}: {lines} tickers streaming again {took:.3f} s "
                          f"after ConnectionRecovered (floor {floor:.3f} s)")
    target = FACTOR * floor + SLACK
    ratio = worst / floor
    print(f"pacing floor: {lines} requests / {config.requests_per_second:g} per s = "
          f"{floor:.3f} s; worst restore {worst:.3f} s; allowed {target:.3f} s")
    met = worst <= target
    print(f"subscription_restore: ratio={ratio:.3f} (target <= "
          f"{target / floor:.3f}) {'MET' if met else 'MISSED'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--outage", type=float, default=1.0)
    args = parser.parse_args()
    trio.run(main, args.lines, args.rounds, args.outage)
