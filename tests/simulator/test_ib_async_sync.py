"""ib_async, an independent client, synchronises with the simulator on connect and trades.

``IB.connectAsync`` sends positions, open orders, completed orders, account updates,
account-updates-multi and executions requests and waits for each answer's end marker;
with ``raiseSyncErrors`` a missing answer fails the connect. ib_async runs its own asyncio
loop, so it runs here in a worker thread against the Trio simulator.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

import pytest
import trio
from ib_async import IB, Contract, MarketOrder

from ibkr_connector.simulator import SimulatorConfig, open_simulator
from ibkr_connector.simulator._order_wire import PlaceOrder
from ibkr_connector.simulator._requests import ContractSpec

SPY = 756733
CLIENT_ID = 7


def _spy() -> Contract:
    return Contract(conId=SPY, symbol="SPY", secType="STK", exchange="SMART", currency="USD")


def run_ib_async(port: int) -> dict[str, Any]:
    """Connect, report what the start-up sync brought, place an order, see it fill."""

    async def main() -> dict[str, Any]:
        ib = IB()
        started = time.monotonic()
        await ib.connectAsync("127.0.0.1", port, clientId=CLIENT_ID, timeout=5,
                              raiseSyncErrors=True)
        seen: dict[str, Any] = {
            "connect_seconds": time.monotonic() - started,
            "positions": [(p.contract.conId, p.position) for p in ib.positions()],
            "open": [(t.order.orderId, t.orderStatus.status) for t in ib.openTrades()],
            "fills": [f.execution.orderId for f in ib.fills()],
            "net_liquidation": [v.value for v in ib.accountValues()
                                if v.tag == "NetLiquidation"],
        }
        try:
            trade = ib.placeOrder(_spy(), MarketOrder("BUY", 10))
            deadline = time.monotonic() + 3
            while not trade.isDone() and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            while not trade.fills[0].commissionReport.commission and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            seen["trade"] = (trade.orderStatus.status, trade.orderStatus.filled,
                             trade.fills[0].commissionReport.commission)
            what_if = await asyncio.wait_for(ib.whatIfOrderAsync(_spy(), MarketOrder("SELL", 10)),
                                             3)
            seen["what_if"] = float(what_if.initMarginChange)
        finally:
            ib.disconnect()
        return seen

    return asyncio.run(main())


@pytest.mark.parametrize("version", [200, 163])  # ib_async negotiates 178, or 163 below it
async def test_ib_async_connects_syncs_and_trades_against_the_simulator(version: int) -> None:
    config = SimulatorConfig(start_time=1_750_000_000.0, server_version=version)
    async with open_simulator(config) as sim:
        # IB's side before this client connects: a filled buy and a resting order of its
        # client id, as if placed in an earlier session.
        wall = 1_750_000_000.0
        stock = ContractSpec(SPY, "SPY", "STK", exchange="SMART", currency="USD")
        sim.orders.place(CLIENT_ID, PlaceOrder(3, stock, "BUY", Decimal(5), "MKT", None, None),
                         wall)
        sim.orders.place(CLIENT_ID, PlaceOrder(4, stock, "BUY", Decimal(1), "LMT", 100.0, None),
                         wall)
        with trio.fail_after(15):
            seen = await trio.to_thread.run_sync(run_ib_async, sim.port)
    assert seen["connect_seconds"] < 4
    assert seen["positions"] == [(SPY, 5.0)]
    assert seen["open"] == [(4, "Submitted")]
    assert seen["fills"] == [3]
    assert seen["net_liquidation"]
    assert seen["trade"][:2] == ("Filled", 10.0) and seen["trade"][2] == 1.0
    assert seen["what_if"] < 0  # selling 10 of the 15 held frees margin
