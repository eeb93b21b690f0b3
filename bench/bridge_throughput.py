"""Inbound throughput: this runtime against plain ibapi and ib_async, on the same tick flood.

The simulator runs in a separate process (so it does not compete for our GIL) and floods
N TICK_PRICE frames (bid/ask alternating) over loopback to one client at a time, for each
of three clients, alternating them round by round so all see the same machine:

  ibapi     plain ibapi: ``EClient.run()`` and its ``EReader`` thread, a no-op EWrapper;
  runtime   this runtime's inbound path: a `TwsSession` (one reader thread, the fast path)
            through the `EventBridge` to a Trio task that consumes every event;
  ib_async  ib_async 2.1 (the ``bench`` extra), counting the ticks it hands to user code
            (``Ticker.ticks`` on each ``pendingTickersEvent``), on its own asyncio loop.

ib_async accepts server versions up to 178 and the simulator negotiates the highest both
sides support, so it reads at 178 and the others at 200: TICK_PRICE has the same fields
at both. Each client's rate is counted from its first tick to its last; its CPU time (all
of the process's threads, the simulator excluded) from the flood command to the last tick.

Then the event bus: 10 subscribers on 500 tickers, published to and drained in Trio.

Targets, each printed as ``<target>: ratio=<x> (target <= or >= <y>) MET|MISSED``:
the runtime at least as fast as ib_async at both sizes; the runtime's CPU cost per frame at
300,000 within 10 % of that at 100,000 (linear, not growing with the backlog); the bus at
most 1 us per event per subscriber.

    python bench/bridge_throughput.py [--sizes 100000 300000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import threading
import time
from decimal import Decimal
from multiprocessing.connection import Connection
from typing import Any, NamedTuple

import trio
from ibapi.client import EClient
from ibapi.wrapper import EWrapper

from ibkr_connector.actors.bus import EventBus
from ibkr_connector.protocol import events as ev
from ibkr_connector.protocol.bridge import EventBridge
from ibkr_connector.protocol.client import TwsSession
from ibkr_connector.simulator import SimulatorConfig, open_simulator

REQ_ID = 7
CLIENTS = ("ibapi", "runtime", "ib_async")


class Run(NamedTuple):
    rate: float  # frames per second, first tick to last
    cpu_us: float  # CPU microseconds per frame, flood command to last tick


def _target(name: str, ratio: float, op: str, bound: float) -> None:
    met = ratio >= bound if op == ">=" else ratio <= bound
    print(f"{name}: ratio={ratio:.3f} (target {op} {bound:g}) {'MET' if met else 'MISSED'}")


# -- the simulator process --------------------------------------------------------------------


def _simulator_process(pipe: Connection) -> None:
    async def main() -> None:
        async with open_simulator(SimulatorConfig(max_messages_per_second=10_000)) as sim:
            pipe.send(sim.port)
            while True:
                command = await trio.to_thread.run_sync(pipe.recv)
                if command is None:
                    return
                req_id, n, client_id = command
                while True:
                    try:
                        await sim.flood_tick_prices(req_id, n, client_id=client_id)
                        break
                    except LookupError:  # START_API not processed yet
                        await trio.sleep(0.001)
                pipe.send("flooded")

    trio.run(main)


class _Clock:
    """First and last tick times, and the CPU clock from the flood command on."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.count = 0
        self.first = self.last = 0.0
        self.cpu = 0.0

    def start(self, pipe: Connection, req_id: int, client_id: int) -> None:
        self.cpu = time.process_time()
        pipe.send((req_id, self.n, client_id))

    def result(self) -> Run:
        cpu = time.process_time() - self.cpu
        return Run((self.n - 1) / (self.last - self.first), cpu / self.n * 1e6)


# -- plain ibapi --------------------------------------------------------------------------------


class _CountingWrapper(EWrapper):  # type: ignore[misc]
    def __init__(self, clock: _Clock) -> None:
        super().__init__()
        self.clock = clock
        self.done = threading.Event()

    def tickPrice(self, reqId: int, tickType: int, price: float, attrib: Any) -> None:  # noqa: N802, N803
        clock = self.clock
        if clock.count == 0:
            clock.first = time.perf_counter()
        clock.count += 1
        if clock.count == clock.n:
            clock.last = time.perf_counter()
            self.done.set()

    # EWrapper's default logs through inspect.stack(): a no-op keeps ibapi at its best.
    def tickSize(self, reqId: int, tickType: int, size: Any) -> None:  # noqa: N802, N803
        return None

    def error(self, *args: object) -> None:
        return None


def measure_ibapi(port: int, n: int, pipe: Connection, client_id: int) -> Run:
    clock = _Clock(n)
    wrapper = _CountingWrapper(clock)
    client = EClient(wrapper)
    client.connect("127.0.0.1", port, client_id)
    runner = threading.Thread(target=client.run, daemon=True)
    runner.start()
    time.sleep(0.2)  # the greeting (ids, accounts, farm notices) first
    clock.start(pipe, REQ_ID, client_id)
    if not wrapper.done.wait(600):
        raise RuntimeError(f"plain ibapi received only {clock.count} of {n}")
    run = clock.result()
    pipe.recv()
    client.disconnect()
    runner.join(5)
    return run


# -- this runtime ---------------------------------------------------------------------------------


async def measure_runtime(port: int, n: int, pipe: Connection, client_id: int) -> Run:
    clock = _Clock(n)
    session = TwsSession(EventBridge())
    await session.open("127.0.0.1", port, client_id, timeout=10)
    await trio.sleep(0.2)
    while session.bridge.pending():
        await session.bridge.receive_batch()
    clock.start(pipe, REQ_ID, client_id)
    count, tick_price = 0, ev.TickPrice
    with trio.fail_after(600):
        while count < n:
            batch = await session.bridge.receive_batch()
            for event in batch:
                if type(event) is tick_price:
                    if count == 0:
                        clock.first = time.perf_counter()
                    count += 1
        clock.last = time.perf_counter()
    run = clock.result()
    await trio.to_thread.run_sync(pipe.recv)
    await session.close()
    return run


# -- ib_async -------------------------------------------------------------------------------------


def measure_ib_async(port: int, n: int, pipe: Connection, client_id: int) -> Run:
    from ib_async import IB, Stock  # noqa: PLC0415 - the optional ``bench`` extra

    async def main() -> Run:
        clock = _Clock(n)
        ib = IB()
        # The simulator does not answer the start-up sync; 1 s bounds the wait for it.
        await ib.connectAsync("127.0.0.1", port, client_id, timeout=1, readonly=True)
        ticker = ib.reqMktData(Stock("SPY", "SMART", "USD", conId=756733))
        req_id = next(r for r, t in ib.wrapper.reqId2Ticker.items() if t is ticker)
        done = asyncio.Event()

        def on_pending(tickers: set[Any]) -> None:
            if clock.count == 0:
                clock.first = time.perf_counter()
            clock.count += sum(len(t.ticks) for t in tickers)
            if clock.count >= n and not done.is_set():
                clock.last = time.perf_counter()
                done.set()

        await asyncio.sleep(0.2)
        ib.pendingTickersEvent += on_pending
        clock.start(pipe, req_id, client_id)
        await asyncio.wait_for(done.wait(), 600)
        run = clock.result()
        await asyncio.to_thread(pipe.recv)
        ib.disconnect()
        return run

    return asyncio.run(main())


# -- the flood, all three clients ---------------------------------------------------------------


def run_floods(sizes: list[int], rounds: int) -> dict[tuple[str, int], list[Run]]:
    ctx = multiprocessing.get_context("spawn")
    ours, theirs = ctx.Pipe()
    sim = ctx.Process(target=_simulator_process, args=(theirs,), daemon=True)
    sim.start()
    port = ours.recv()
    runs: dict[tuple[str, int], list[Run]] = {(c, n): [] for c in CLIENTS for n in sizes}
    client_id = 100
    try:
        for round_no in range(1, rounds + 1):
            for n in sizes:
                for name in CLIENTS:
                    client_id += 1
                    if name == "ibapi":
                        run = measure_ibapi(port, n, ours, client_id)
                    elif name == "runtime":
                        run = trio.run(measure_runtime, port, n, ours, client_id)
                    else:
                        run = measure_ib_async(port, n, ours, client_id)
                    runs[name, n].append(run)
                    print(f"  round {round_no}, {n:>7,} frames, {name:<8}: "
                          f"{run.rate:>9,.0f} frames/s  {run.cpu_us:5.2f} CPU us/frame",
                          flush=True)
    finally:
        ours.send(None)
        sim.join(10)
    return runs


def report_floods(runs: dict[tuple[str, int], list[Run]], sizes: list[int]) -> None:
    def med(name: str, n: int, field: str) -> float:
        return statistics.median(getattr(r, field) for r in runs[name, n])

    print("\nmedians              " + "".join(f"{n:>22,} frames" for n in sizes))
    for name in CLIENTS:
        cells = "".join(f"{med(name, n, 'rate'):>13,.0f}/s {med(name, n, 'cpu_us'):5.2f} us"
                        for n in sizes)
        print(f"  {name:<18} {cells}   (frames/s, CPU us/frame)")
    for n in sizes:
        ratios = [r.rate / a.rate for r, a in zip(runs["runtime", n], runs["ib_async", n],
                                                  strict=True)]
        _target(f"runtime vs ib_async, {n:,} frames (throughput)",
                statistics.median(ratios), ">=", 1.0)
    if len(sizes) >= 2:
        small, large = min(sizes), max(sizes)
        _target(f"runtime CPU us/frame, {large:,} vs {small:,} frames (linear)",
                med("runtime", large, "cpu_us") / med("runtime", small, "cpu_us"), "<=", 1.10)
        plain = med("ibapi", large, "cpu_us") / med("ibapi", small, "cpu_us")
        print(f"  (the same for plain ibapi: {plain:.2f})")


# -- the event bus --------------------------------------------------------------------------


async def _bus_cost(subscribers: int, tickers: int, events: int, drain_every: int) -> float:
    """Seconds per event per subscriber: publish to every subscriber, each draining what
    it has every *drain_every* events (so about half the ticks are conflated)."""
    bus = EventBus()
    subs = [bus.subscribe((ev.TickPrice,)) for _ in range(subscribers)]
    size = Decimal(1)
    ticks = [ev.TickPrice(req_id, tick_type, 100.0, size=size)
             for req_id in range(tickers) for tick_type in (1, 2)]
    publish = bus.publish
    start = time.perf_counter()
    for i in range(events):
        publish(ticks[i % len(ticks)])
        if i % drain_every == drain_every - 1:
            for sub in subs:
                while sub.pending():
                    sub.receive_nowait()
    elapsed = time.perf_counter() - start
    for sub in subs:
        sub.close()
    return elapsed / (events * subscribers)


def run_bus() -> None:
    subscribers, tickers = 10, 500
    costs = [trio.run(_bus_cost, subscribers, tickers, 200_000, 2 * tickers * 2)
             for _ in range(5)]
    us = statistics.median(costs) * 1e6
    print(f"\nEvent bus: {subscribers} subscribers on {tickers} tickers (bid and ask each), "
          f"drained every {4 * tickers:,} events: {us:.3f} us per event per subscriber")
    _target("bus fan-out and conflation, us per event per subscriber", us, "<=", 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"Tick flood from the simulator (separate process), {args.rounds} rounds:")
    runs = run_floods(args.sizes, args.rounds)
    report_floods(runs, args.sizes)
    run_bus()


if __name__ == "__main__":
    main()
