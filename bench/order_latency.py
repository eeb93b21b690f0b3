"""Order ack latency: place -> first status through the runtime against raw ibapi, and
1,000 orders at the pacing limit with none lost or doubled.

The simulator runs in a separate process (so it does not compete for our GIL or our Trio
loop). Two clients connect to it from this process:

  raw      plain ibapi: an EClient with its ``run()`` thread; a worker thread calls
           ``placeOrder`` and waits for the first ``openOrder`` / ``orderStatus`` of that
           id, timed from the call to that callback;
  runtime  this runtime: ``runtime.place_order`` from a Trio task, timed from the call to
           the moment the task sees the `Trade`'s first status change (PendingSubmit ->
           TWS's first word). That path holds what raw ibapi has not: the contract check,
           the id allocation, the fsync'd audit intent written *before* the wire, the
           limiter, and the status routed back through the bridge and the order book.

Each order is a 1-share BUY limit far below the market (it rests; nothing fills). Orders
are spaced 1/40 s apart on both clients, so neither the runtime's limiter (45/s) nor
the simulator's pacing (50/s) holds one back: this is latency, not queueing. The two
clients alternate in batches, round by round; between rounds everything resting is
cancelled (``reqGlobalCancel``) and left to settle, so both see the same simulator.

The audit trail lives on tmpfs (``/dev/shm`` when there is one) unless ``--audit-dir``
says otherwise: the runtime's fsync then costs what it costs on a fast disk, not what the
benchmark machine's virtual disk charges (run with ``--audit-dir .`` to see that).

Then the flood: N (1,000) orders handed to the runtime as fast as it takes them, paced by
its limiter. Counted at the simulator's engine: every order id reached it exactly once and
is in its book, no other id arrived, the simulator never saw more than 50 messages in a
second; and every `Trade` reached a status from TWS.

Targets, each printed as ``<target>: ratio=<x> (target <= or >= <y>) MET|MISSED``.

    python bench/order_latency.py [--orders 400] [--rounds 4] [--flood 1000]
"""

from __future__ import annotations

import argparse
import collections
import logging
import math
import multiprocessing
import os
import statistics
import tempfile
import threading
import time
from decimal import Decimal
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import trio
from ibapi.client import EClient
from ibapi.contract import Contract
from ibapi.order import Order
from ibapi.order_cancel import OrderCancel
from ibapi.wrapper import EWrapper

from ibkr_connector.config import IBKRConfig, WatchdogConfig
from ibkr_connector.contracts import Stock
from ibkr_connector.runtime import Runtime, open_runtime
from ibkr_connector.simulator import SimulatorConfig, open_simulator
from ibkr_connector.trade import Trade, TradeStatus

SPY = 756733  # the simulator's SPY conId
PLACE_ORDER = 3  # ibapi.message.OUT.PLACE_ORDER
RUNTIME_ID, RAW_ID = 1, 2
SPACING = 1 / 40
SETTLE = 1.5
TARGET_RATIO = 1.2


def _target(name: str, ratio: float, op: str, bound: float) -> None:
    met = ratio >= bound if op == ">=" else ratio <= bound
    print(f"{name}: ratio={ratio:.3f} (target {op} {bound:g}) {'MET' if met else 'MISSED'}")


def _pct(samples: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _limit_order(price: float) -> Order:
    order = Order()
    order.action, order.totalQuantity, order.orderType = "BUY", Decimal(1), "LMT"
    order.lmtPrice, order.tif = price, "DAY"
    return order


# -- the simulator process ----------------------------------------------------------------------


def _simulator_process(pipe: Connection) -> None:
    async def main() -> None:
        async with open_simulator(SimulatorConfig()) as sim:
            pipe.send((sim.port, sim.market.spot(SPY)))
            while True:
                command = await trio.to_thread.run_sync(pipe.recv)
                if command is None:
                    return
                client_id = command
                placed = [int(m.fields[0]) for m in sim.received
                          if m.msg_id == PLACE_ORDER and m.client_id == client_id]
                booked = {v.order_id for v in sim.orders.orders() if v.client_id == client_id}
                pipe.send((placed, booked, sim.max_messages_in_window(1.0, client_id)))

    trio.run(main)


# -- raw ibapi ------------------------------------------------------------------------------------


class _RawWrapper(EWrapper):  # type: ignore[misc]
    """Records when each order id got its first answer."""

    def __init__(self) -> None:
        super().__init__()
        self.next_id = threading.Event()
        self.first_id = 0
        self.answered: dict[int, float] = {}
        self.waiting: dict[int, threading.Event] = {}

    def _answer(self, order_id: int) -> None:
        if order_id not in self.answered:
            self.answered[order_id] = time.perf_counter()
            event = self.waiting.pop(order_id, None)
            if event is not None:
                event.set()

    def nextValidId(self, orderId: int) -> None:  # noqa: N802, N803
        if not self.next_id.is_set():
            self.first_id = orderId
            self.next_id.set()

    def openOrder(self, orderId: int, *args: Any) -> None:  # noqa: N802, N803
        self._answer(orderId)

    def orderStatus(self, orderId: int, *args: Any) -> None:  # noqa: N802, N803
        self._answer(orderId)

    # EWrapper's defaults log through inspect.stack(): no-ops keep ibapi at its best.
    def error(self, *args: object) -> None:
        return None

    def openOrderEnd(self) -> None:  # noqa: N802
        return None

    def managedAccounts(self, accountsList: str) -> None:  # noqa: N802, N803
        return None


class RawClient:
    def __init__(self, port: int) -> None:
        self.wrapper = _RawWrapper()
        self.client = EClient(self.wrapper)
        self.client.connect("127.0.0.1", port, RAW_ID)
        self.thread = threading.Thread(target=self.client.run, daemon=True)
        self.thread.start()
        if not self.wrapper.next_id.wait(10):
            raise RuntimeError("raw ibapi: no nextValidId")
        self.next_id = self.wrapper.first_id
        self.contract = Contract()
        self.contract.conId, self.contract.symbol, self.contract.secType = SPY, "SPY", "STK"
        self.contract.exchange, self.contract.currency = "SMART", "USD"

    def batch(self, n: int, price: float) -> list[float]:
        """Place ``n`` orders, SPACING apart; each one's call -> first answer (seconds)."""
        out = []
        start = time.perf_counter()
        for i in range(n):
            slot = start + i * SPACING
            if (wait := slot - time.perf_counter()) > 0:
                time.sleep(wait)
            order_id, self.next_id = self.next_id, self.next_id + 1
            answered = threading.Event()
            self.wrapper.waiting[order_id] = answered
            t0 = time.perf_counter()
            self.client.placeOrder(order_id, self.contract, _limit_order(price))
            if not answered.wait(10):
                raise RuntimeError(f"raw ibapi: no answer to order {order_id}")
            out.append(self.wrapper.answered[order_id] - t0)
        return out

    def cancel_everything(self) -> None:
        self.client.reqGlobalCancel(OrderCancel())

    def close(self) -> None:
        self.client.disconnect()
        self.thread.join(5)


# -- the runtime -----------------------------------------------------------------------------


async def _first_status(runtime: Runtime, contract: Contract, price: float
                        ) -> tuple[float, Trade]:
    t0 = time.perf_counter()
    trade = await runtime.place_order(contract, _limit_order(price))
    if trade.status is TradeStatus.PENDING_SUBMIT:
        async for _ in trade.updates():
            if trade.status is not TradeStatus.PENDING_SUBMIT:
                break
    return time.perf_counter() - t0, trade


async def runtime_batch(runtime: Runtime, n: int, price: float) -> list[float]:
    contract = Stock("SPY")
    out = []
    start = trio.current_time()
    for i in range(n):
        await trio.sleep_until(start + i * SPACING)
        latency, _ = await _first_status(runtime, contract, price)
        out.append(latency)
    return out


async def _settle(runtime: Runtime, raw: RawClient) -> None:
    """Cancel everything resting, and wait until the runtime's book says so."""
    raw.cancel_everything()
    with trio.move_on_after(30):
        while not all(t.is_done for t in await runtime.trades()):
            await trio.sleep(0.05)
    await trio.sleep(SETTLE)


async def latency_rounds(runtime: Runtime, raw: RawClient, price: float, orders: int,
                         rounds: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {"runtime": [], "raw": []}
    await runtime_batch(runtime, 10, price)  # warm-up: the contract check is cached after
    await trio.to_thread.run_sync(raw.batch, 10, price)
    await _settle(runtime, raw)
    for r in range(rounds):
        order = ("runtime", "raw") if r % 2 == 0 else ("raw", "runtime")
        for name in order:
            if name == "runtime":
                samples[name] += await runtime_batch(runtime, orders, price)
            else:
                samples[name] += await trio.to_thread.run_sync(raw.batch, orders, price)
        await _settle(runtime, raw)
        print(f"  round {r + 1}: runtime p50 {_pct(samples['runtime'], .5) * 1e3:.3f} ms, "
              f"raw p50 {_pct(samples['raw'], .5) * 1e3:.3f} ms (so far)")
    return samples


async def flood(runtime: Runtime, n: int, price: float) -> tuple[list[Trade], float]:
    """Hand the runtime ``n`` orders at once (a few callers in parallel; the orders actor
    places one at a time and the limiter paces them). Returns the trades and how long
    until the last was written."""
    contract = Stock("SPY")
    trades: list[Trade] = []
    left = iter(range(n))

    async def caller() -> None:
        for _ in left:
            trades.append(await runtime.place_order(contract, _limit_order(price)))

    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        for _ in range(8):
            nursery.start_soon(caller)
    elapsed = trio.current_time() - start
    with trio.move_on_after(30):
        for trade in trades:
            while trade.status is TradeStatus.PENDING_SUBMIT:
                async for _ in trade.updates():
                    break
    return trades, elapsed


# -- main --------------------------------------------------------------------------------------


async def run(args: argparse.Namespace, port: int, spot: float, pipe: Connection) -> None:
    price = round(spot * 0.5, 2)
    config = IBKRConfig(port=port, client_id=RUNTIME_ID,
                        watchdog=WatchdogConfig(health_check_interval=600.0))
    raw = await trio.to_thread.run_sync(RawClient, port)
    try:
        async with open_runtime(config, audit_path=args.audit_dir / "audit.jsonl",
                                connect=True) as runtime:
            print(f"Place -> first status, {args.rounds} rounds of {args.orders} orders per "
                  f"client, {SPACING * 1e3:.0f} ms apart (audit trail in {args.audit_dir}):")
            samples = await latency_rounds(runtime, raw, price, args.orders, args.rounds)
            report_latency(samples)
            print(f"\nFlood: {args.flood} orders handed to the runtime at once:")
            trades, elapsed = await flood(runtime, args.flood, price)
            placed, booked, max_window = await trio.to_thread.run_sync(
                _ask_simulator, pipe, RUNTIME_ID)
            report_flood(trades, elapsed, placed, booked, max_window, args.flood)
            await _settle(runtime, raw)
    finally:
        await trio.to_thread.run_sync(raw.close)


def _ask_simulator(pipe: Connection, client_id: int) -> tuple[list[int], set[int], int]:
    pipe.send(client_id)
    placed, booked, max_window = pipe.recv()
    return placed, booked, max_window


def report_latency(samples: dict[str, list[float]]) -> None:
    for name in ("runtime", "raw"):
        s = samples[name]
        print(f"  {name:<8} n={len(s)}  p50 {_pct(s, .5) * 1e3:.3f} ms  "
              f"p99 {_pct(s, .99) * 1e3:.3f} ms  mean {statistics.fmean(s) * 1e3:.3f} ms")
    p50 = _pct(samples["runtime"], .5) / _pct(samples["raw"], .5)
    p99 = _pct(samples["runtime"], .99) / _pct(samples["raw"], .99)
    print(f"  p99 runtime/raw: {p99:.3f} (reported, no target)")
    _target("order ack latency p50, runtime vs raw ibapi", p50, "<=", TARGET_RATIO)


def report_flood(trades: list[Trade], elapsed: float, placed: list[int], booked: set[int],
                 max_window: int, n: int) -> None:
    ours = {t.order_id for t in trades}
    seen = collections.Counter(i for i in placed if i in ours)
    once = sum(1 for i in ours if seen[i] == 1 and i in booked)
    doubled = sum(1 for i in ours if seen[i] > 1)
    answered = sum(1 for t in trades if t.status is not TradeStatus.PENDING_SUBMIT)
    print(f"  {len(trades)} trades ({len(ours)} distinct ids) written in {elapsed:.1f} s "
          f"({len(trades) / elapsed:.1f}/s); at the simulator: {once} exactly once and "
          f"booked, {doubled} doubled, {n - len(seen)} never arrived; busiest second "
          f"{max_window} messages; {answered} trades with TWS's status")
    _target(f"flood of {n}: order ids placed exactly once at the simulator", once / n, ">=", 1)
    _target(f"flood of {n}: trades that reached a status", answered / n, ">=", 1)
    _target("flood: busiest second at the simulator vs its 50 msg/s limit", max_window / 50,
            "<=", 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--orders", type=int, default=400, help="orders per client per round")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--flood", type=int, default=1000)
    parser.add_argument("--audit-dir", type=Path, default=None,
                        help="where the runtime's audit trail goes (default: a temporary "
                        "directory on tmpfs if there is one)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    with tempfile.TemporaryDirectory(dir=args.audit_dir or base) as audit_dir:
        args.audit_dir = Path(audit_dir)
        ctx = multiprocessing.get_context("spawn")
        ours, theirs = ctx.Pipe()
        sim = ctx.Process(target=_simulator_process, args=(theirs,), daemon=True)
        sim.start()
        try:
            port, spot = ours.recv()
            trio.run(run, args, port, spot, ours)
        finally:
            ours.send(None)
            sim.join(10)


if __name__ == "__main__":
    main()
