"""`stats` shows what operators ask for: market-data lines and orders by state, with the
place -> first status latency."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import trio
import trio.testing
from ibapi.order import Order

from ibkr_connector.config import IBKRConfig, WatchdogConfig
from ibkr_connector.contracts import Stock
from ibkr_connector.runtime import open_runtime
from ibkr_connector.simulator import TwsSimulator
from ibkr_connector.trade import TradeStatus


async def test_stats_show_market_data_and_orders(
    sim: TwsSimulator, tmp_path: Path, io_clock: trio.testing.MockClock
) -> None:
    config = IBKRConfig(port=sim.port, watchdog=WatchdogConfig(health_check_interval=30.0))
    async with open_runtime(config, audit_path=tmp_path / "a.jsonl", connect=True) as runtime:
        await runtime.subscribe_ticker(Stock("SPY"))
        order = Order()
        order.action, order.orderType = "BUY", "LMT"
        order.totalQuantity, order.lmtPrice = Decimal(1), 1.00  # far below the market
        trade = await runtime.place_order(Stock("SPY"), order)
        with trio.fail_after(10):
            while trade.status is not TradeStatus.SUBMITTED:
                await trio.sleep(0.05)
        stats = await runtime.stats()
    market, orders = stats["market_data"], stats["orders"]
    assert isinstance(market, dict) and market["lines_in_use"] == 1
    assert isinstance(orders, dict) and orders["placed"] == 1
    assert orders["by_status"] == {"Submitted": 1}
    latency = stats["order_ack_latency_ms"]
    assert isinstance(latency, dict) and latency["p50"] is not None and latency["p50"] >= 0
