"""Where an order's place -> first status time goes, stage by stage, runtime and raw ibapi.

A diagnostic for `order_latency.py` (no target of its own): the same simulator process,
clients and spacing, with time stamps taken at each stage of one order's way through the
runtime (the call, the orders actor, each actor it asks, the audit write, the socket
write, the reader thread's decode, the bridge's wake-up, the order book, the caller) and
through raw ibapi (the call, its socket send, its receive, its callback). Printed: the
median time from the call to each stage, over every order after the first 20.

The probes wrap methods of the running code (this script only; nothing is changed for
anyone else), so they cost a little themselves: compare stages with each other, and use
`order_latency.py` for the ratio.

    python bench/order_latency_stages.py [--orders 100]
"""

from __future__ import annotations

import argparse
import collections
import functools
import inspect
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ibapi.connection  # noqa: E402
import order_latency as bench  # noqa: E402
from ibapi.client import EClient  # noqa: E402

from ibkr_connector.actors.audit_trail import AuditTrail  # noqa: E402
from ibkr_connector.actors.orders import OrdersActor  # noqa: E402
from ibkr_connector.protocol import _reader, client  # noqa: E402
from ibkr_connector.protocol import events as ev  # noqa: E402
from ibkr_connector.protocol.bridge import EventBridge  # noqa: E402
from ibkr_connector.supervisor import Address  # noqa: E402

_clock = time.perf_counter
_runtime: list[tuple[str, float]] = []  # the order in flight
_raw: list[tuple[str, float]] = []
_runs: dict[str, list[list[tuple[str, float]]]] = {"runtime": [], "raw": []}


def _mark(label: str) -> None:
    _runtime.append((label, _clock()))


def _probe(owner: Any, name: str, label: Callable[..., str | None]) -> None:
    """Stamp ``label(*args)`` (None: no stamp) before and after ``owner.name`` runs."""
    real = getattr(owner, name)

    if inspect.iscoroutinefunction(real):
        @functools.wraps(real)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            text = label(*args)
            if text:
                _mark(f"{text} >")
            try:
                return await real(*args, **kwargs)
            finally:
                if text:
                    _mark(f"{text} <")

        setattr(owner, name, async_wrapper)
        return

    @functools.wraps(real)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        text = label(*args)
        if text:
            _mark(f"{text} >")
        try:
            return real(*args, **kwargs)
        finally:
            if text:
                _mark(f"{text} <")

    setattr(owner, name, wrapper)


def _install() -> None:
    _probe(Address, "call", lambda address, message, *a: f"call {address.name}:"
           f"{type(message).__name__}")
    _probe(Address, "cast", lambda address, message: f"cast {address.name}:"
           f"{type(message).__name__}")
    _probe(OrdersActor, "place", lambda *a: "orders actor: place")
    _probe(AuditTrail, "append", lambda trail, kind, **f: f"audit write {kind}")
    _probe(client, "_write_now", lambda *a: "socket write (runtime)")
    _probe(_reader.InboundDecoder, "feed", lambda *a: "reader: bytes in")
    _probe(_reader.InboundDecoder, "_decode_with_ibapi", lambda *a: "reader: ibapi decode")
    _probe(EventBridge, "post", lambda bridge, event: f"bridge post {type(event).__name__}")
    _probe(EventBridge, "_wake", lambda *a: "Trio woken")
    _probe(OrdersActor, "on_event", lambda actor, event: (
        f"order book: {type(event).__name__}"
        if isinstance(event, ev.OpenOrder | ev.OrderStatus) else None))

    real_first = bench._first_status

    async def first_status(*args: Any) -> Any:
        _runtime.clear()
        _mark("call")
        result = await real_first(*args)
        _mark("caller sees the status")
        _runs["runtime"].append(list(_runtime))
        return result

    bench._first_status = first_status

    def raw(label: str) -> None:
        _raw.append((label, _clock()))

    real_place = EClient.placeOrder

    def place_order(self: EClient, *args: Any) -> Any:
        if type(self) is EClient:  # the raw client (the runtime's is a subclass)
            if _raw:
                _runs["raw"].append(list(_raw))
            _raw.clear()
            raw("call")
        return real_place(self, *args)

    EClient.placeOrder = place_order
    real_send, real_recv = ibapi.connection.Connection.sendMsg, ibapi.connection.Connection.recvMsg

    def send(self: Any, msg: bytes) -> Any:
        raw("socket write (raw) >")
        try:
            return real_send(self, msg)
        finally:
            raw("socket write (raw) <")

    def recv(self: Any) -> Any:
        data = real_recv(self)
        if data:
            raw("reader: bytes in")
        return data

    ibapi.connection.Connection.sendMsg, ibapi.connection.Connection.recvMsg = send, recv
    real_answer = bench._RawWrapper._answer

    def answer(self: Any, order_id: int) -> None:
        raw("callback")
        real_answer(self, order_id)

    bench._RawWrapper._answer = answer


def _report(name: str, runs: list[list[tuple[str, float]]]) -> None:
    at: dict[str, list[float]] = collections.defaultdict(list)
    for run in runs[20:]:
        start, seen = run[0][1], set()
        for label, stamp in run:
            if label not in seen:  # the first time each stage is reached
                seen.add(label)
                at[label].append((stamp - start) * 1e6)
    print(f"\n{name} (median us from the call; n = orders that reached the stage):")
    for label in sorted(at, key=lambda k: statistics.median(at[k])):
        print(f"  {statistics.median(at[label]):8.0f}  {label}  (n={len(at[label])})")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--orders", type=int, default=100, help="orders per client")
    args = parser.parse_args()
    _install()
    sys.argv = [sys.argv[0], "--orders", str(args.orders), "--rounds", "1", "--flood", "5"]
    bench.main()
    _report("runtime", _runs["runtime"])
    _report("raw ibapi", _runs["raw"] + ([list(_raw)] if _raw else []))


if __name__ == "__main__":
    main()
