"""A scripted ibapi session (contract details, market data, an order) for the record,
replay and fidelity tests, and the proxy running in a test's nursery."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import trio
from ibapi.client import EClient
from ibapi.contract import Contract
from ibapi.order import Order

from ibkr_connector.simulator import SimulatorConfig, open_simulator
from ibkr_connector.simulator._proxy import run_recording_proxy

from .ibclient import IbTestClient
from .marketclient import MarketWrapper
from .order_wrapper import OrderRecordingWrapper

SPY = 756733


class SessionWrapper(MarketWrapper, OrderRecordingWrapper):  # type: ignore[misc, valid-type]
    """Records market-data, order and session callbacks alike."""


def session_client() -> IbTestClient:
    client = IbTestClient()
    client.wrapper = SessionWrapper()
    client.client = EClient(client.wrapper)
    return client


def spy() -> Contract:
    contract = Contract()
    contract.conId, contract.symbol, contract.secType = SPY, "SPY", "STK"
    contract.exchange, contract.currency = "SMART", "USD"
    return contract


def market_order(quantity: int) -> Order:
    order = Order()
    order.action, order.totalQuantity, order.orderType = "BUY", Decimal(quantity), "MKT"
    return order


async def run_script(client: IbTestClient, port: int, *, client_id: int = 3,
                     first_req_id: int = 10) -> list[tuple[str, Any]]:
    """Contract details, a market-data line (until a bid and an ask), then a market
    order until filled. Returns what the client saw, reduced to what must not change."""
    await client.connect(port, client_id)
    (order_id,) = await client.wait_for("nextValidId")
    accounts = await client.wait_for("managedAccounts")
    seen: list[tuple[str, Any]] = [("nextValidId", order_id), ("managedAccounts", accounts)]
    await client.call(client.client.reqContractDetails, first_req_id, spy())
    req_id, details = await client.wait_for("contractDetails")
    seen.append(("contractDetails", (req_id, details.contract.conId, details.minTick,
                                     details.contract.primaryExchange)))
    seen.append(("contractDetailsEnd", await client.wait_for("contractDetailsEnd")))
    await client.call(client.client.reqMktData, first_req_id + 1, spy(), "", False, False, [])
    for tick_type in (1, 2):
        args = await client.wait_for("tickPrice", lambda a, t=tick_type: a[1] == t)
        seen.append(("tickPrice", (args[0], args[1])))
    await client.call(client.client.cancelMktData, first_req_id + 1)
    await client.call(client.client.placeOrder, order_id, spy(), market_order(2))
    status = await client.wait_for("orderStatus", lambda a: a[1] == "Filled")
    seen.append(("orderStatus", (status[0], status[1], status[2])))
    execution = await client.wait_for("execDetails")
    seen.append(("execDetails", (execution[0], execution[2].orderId, execution[2].side,
                                 execution[2].acctNumber)))
    return seen


@asynccontextmanager
async def recording_proxy(upstream_port: int, out: Path, *,
                          mask: bool = True) -> AsyncIterator[int]:
    """The record proxy in front of ``upstream_port``; yields the port to connect to."""
    async with trio.open_nursery() as nursery:
        port = await nursery.start(lambda task_status: run_recording_proxy(
            ("127.0.0.1", upstream_port), 0, out, mask=mask, task_status=task_status))
        yield port
        nursery.cancel_scope.cancel()


def _spawn(args: tuple[str, ...]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "ibkr_connector.cli", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@asynccontextmanager
async def cli_server(*args: str) -> AsyncIterator[tuple[int, list[str]]]:
    """``ibkr-connector ARGS`` in a subprocess, as an operator runs it; yields the port it
    announced and its output lines. On exit it is stopped with SIGTERM and must exit 0."""
    proc = _spawn(args)
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        with trio.fail_after(20):
            while not lines or "listening on port" not in lines[-1]:
                line = await trio.to_thread.run_sync(proc.stdout.readline)
                assert line, f"exited early: {proc.wait()} {proc.stderr.read()}"  # type: ignore[union-attr]
                lines.append(line.strip())
        yield int(lines[-1].rsplit(" ", 1)[1]), lines
    finally:
        proc.send_signal(signal.SIGTERM)
        status = await trio.to_thread.run_sync(proc.wait, 10)
    assert status == 0


async def record_session(out: Path, *, mask: bool = True) -> list[tuple[str, Any]]:
    """Record ``run_script`` against a fresh simulator into ``out``; what the client saw."""
    async with open_simulator(SimulatorConfig(port=0)) as sim:
        async with recording_proxy(sim.port, out, mask=mask) as port:
            client = session_client()
            try:
                return await run_script(client, port)
            finally:
                await client.close()
