"""Bridge throughput: what our EWrapper→Trio bridge costs over ibapi's own ceiling.

The simulator (in a separate process, so it does not compete for our GIL) floods N
TICK_PRICE messages at one client. We measure messages per second delivered

  (a) to a no-op EWrapper on a plain ``EClient.run()`` thread — the ceiling ibapi itself
      sets (its reader thread, queue and decoder), and
  (b) through our `EventBridge` to a Trio task that consumes every `TickPrice` event,

alternating (a) and (b) in the same run so both see the same machine, and print both
rates and the ratio b/a. Target: ratio >= 0.85.

    python bench/bridge_throughput.py [--messages 200000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import threading
import time
from multiprocessing.connection import Connection

import trio
from ibapi.client import EClient
from ibapi.contract import Contract
from ibapi.wrapper import EWrapper

from ibkr_connector.protocol import events as ev
from ibkr_connector.protocol.bridge import EventBridge
from ibkr_connector.protocol.client import TwsSession
from ibkr_connector.protocol.requests import ReqMktData
from ibkr_connector.simulator import SimulatorConfig, open_simulator

REQ_ID = 7


def _contract() -> Contract:
    contract = Contract()
    contract.symbol, contract.secType = "SPY", "STK"
    contract.exchange, contract.currency = "SMART", "USD"
    return contract


# -- the simulator process ------------------------------------------------------------------


def _simulator_process(pipe: Connection) -> None:
    async def main() -> None:
        async with open_simulator(SimulatorConfig(max_messages_per_second=10_000)) as sim:
            pipe.send(sim.port)
            while True:
                command = await trio.to_thread.run_sync(pipe.recv)
                if command is None:
                    return
                n = command
                while REQ_ID not in sim.live_subscriptions():
                    await trio.sleep(0.001)
                await sim.flood_tick_prices(REQ_ID, n)
                pipe.send("flooded")

    trio.run(main)


# -- (a) plain ibapi --------------------------------------------------------------------------


class _CountingWrapper(EWrapper):  # type: ignore[misc]
    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n
        self.count = 0
        self.first = 0.0
        self.last = 0.0
        self.done = threading.Event()

    def tickPrice(self, reqId, tickType, price, attrib):  # type: ignore[no-untyped-def]  # noqa: N802, N803
        if self.count == 0:
            self.first = time.perf_counter()
        self.count += 1
        if self.count == self.n:
            self.last = time.perf_counter()
            self.done.set()

    # The decoder follows each TICK_PRICE with a tickSize call. EWrapper's default logs it
    # through inspect.stack(), which would make the "ceiling" artificially low.
    def tickSize(self, reqId, tickType, size):  # type: ignore[no-untyped-def]  # noqa: N802, N803
        return None

    def error(self, *args: object) -> None:
        return None


def measure_plain(port: int, n: int, pipe: Connection, client_id: int) -> float:
    wrapper = _CountingWrapper(n)
    client = EClient(wrapper)
    client.connect("127.0.0.1", port, client_id)
    runner = threading.Thread(target=client.run, daemon=True)
    runner.start()
    client.reqMktData(REQ_ID, _contract(), "", False, False, [])
    pipe.send(n)
    if not wrapper.done.wait(120):
        raise RuntimeError(f"plain ibapi received only {wrapper.count} of {n}")
    pipe.recv()
    client.disconnect()
    runner.join(5)
    return (n - 1) / (wrapper.last - wrapper.first)


# -- (b) through the bridge into Trio ------------------------------------------------------


async def measure_bridge(
    port: int, n: int, pipe: Connection, client_id: int
) -> tuple[float, float]:
    session = TwsSession(EventBridge())
    await session.open("127.0.0.1", port, client_id, timeout=10)
    await session.send(ReqMktData(REQ_ID, _contract()))
    await trio.to_thread.run_sync(pipe.send, n)
    count, first, last = 0, 0.0, 0.0
    with trio.fail_after(120):
        while count < n:
            batch = await session.bridge.receive_batch()
            for event in batch:
                if type(event) is ev.TickPrice:
                    if count == 0:
                        first = time.perf_counter()
                    count += 1
            if count >= n:
                last = time.perf_counter()
    wakeups = session.bridge.wakeups
    await trio.to_thread.run_sync(pipe.recv)
    await session.close()
    return (n - 1) / (last - first), n / max(wakeups, 1)


# -- in-process: ibapi's run() over a pre-filled queue, no socket, no simulator ------------------


def _prefilled_client(wrapper: EWrapper, n: int) -> EClient:
    """An EClient whose queue already holds n TICK_PRICE frames: run() decodes them all and
    returns (it loops while connected *or* the queue is not empty). This isolates decode +
    callback cost from the socket and the simulator's write speed."""
    from ibapi.decoder import Decoder

    from ibkr_connector.simulator import _messages as msg

    client = EClient(wrapper)
    client.serverVersion_ = 200
    client.decoder = Decoder(wrapper, 200)
    frame = msg.tick_price(REQ_ID, 1, 101.25, 3)[4:]  # strip the length prefix
    for _ in range(n):
        client.msg_queue.put(frame)
    return client


def measure_plain_inprocess(n: int) -> float:
    wrapper = _CountingWrapper(n)
    client = _prefilled_client(wrapper, n)
    start = time.perf_counter()
    client.run()
    return n / (time.perf_counter() - start)


async def measure_bridge_inprocess(n: int) -> float:
    bridge = EventBridge()
    client = _prefilled_client(bridge, n)
    start = time.perf_counter()
    runner = threading.Thread(target=client.run, daemon=True)
    runner.start()
    count = 0
    while count < n:
        batch = await bridge.receive_batch()
        count += sum(1 for event in batch if type(event) is ev.TickPrice)
    elapsed = time.perf_counter() - start
    await trio.to_thread.run_sync(runner.join)
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    ctx = multiprocessing.get_context("spawn")
    ours, theirs = ctx.Pipe()
    sim = ctx.Process(target=_simulator_process, args=(theirs,), daemon=True)
    sim.start()
    port = ours.recv()
    plain_rates: list[float] = []
    bridge_rates: list[float] = []
    per_wakeup: list[float] = []
    client_id = 100
    try:
        for round_no in range(1, args.rounds + 1):
            client_id += 1
            plain_rates.append(measure_plain(port, args.messages, ours, client_id))
            client_id += 1
            rate, batch = trio.run(measure_bridge, port, args.messages, ours, client_id)
            bridge_rates.append(rate)
            per_wakeup.append(batch)
            print(f"round {round_no}: plain ibapi {plain_rates[-1]:>10,.0f} msg/s   "
                  f"bridge {bridge_rates[-1]:>10,.0f} msg/s   "
                  f"({batch:,.0f} events per Trio wake-up)")
    finally:
        ours.send(None)
        sim.join(10)
    inproc_plain = [measure_plain_inprocess(args.messages) for _ in range(args.rounds)]
    inproc_bridge = [trio.run(measure_bridge_inprocess, args.messages) for _ in range(args.rounds)]
    plain, bridged = statistics.median(plain_rates), statistics.median(bridge_rates)
    ip_plain, ip_bridge = statistics.median(inproc_plain), statistics.median(inproc_bridge)
    print(f"\nmessages per round: {args.messages:,}; medians of {args.rounds} rounds")
    print(f"(a) plain EClient.run(), no-op EWrapper : {plain:>10,.0f} msg/s")
    print(f"(b) EventBridge -> Trio consumer        : {bridged:>10,.0f} msg/s")
    print(f"ratio b/a = {bridged / plain:.3f}   (target >= 0.85)")
    print("\nwhere the time goes: the same decode without socket or simulator "
          "(ibapi's run() over a pre-filled queue)")
    print(f"(a') plain run(), no-op EWrapper        : {ip_plain:>10,.0f} msg/s "
          f"({1e6 / ip_plain:.1f} us/msg: ibapi's own decode)")
    print(f"(b') run() -> EventBridge -> Trio       : {ip_bridge:>10,.0f} msg/s "
          f"({1e6 / ip_bridge - 1e6 / ip_plain:+.1f} us/msg: event + hand-off + Trio side)")
    print(f"ratio b'/a' = {ip_bridge / ip_plain:.3f}")


if __name__ == "__main__":
    main()
