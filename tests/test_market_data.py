"""Market data through the runtime: contracts, tickers, lines, chains, over real sockets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
import trio.testing

from ibkr_connector.actors.market_data_messages import UnknownContract
from ibkr_connector.config import IBKRConfig, WatchdogConfig
from ibkr_connector.contracts import Option, Stock
from ibkr_connector.runtime import Runtime, open_runtime
from ibkr_connector.simulator import TwsSimulator
from ibkr_connector.ticker import Ticker, TickerState


@asynccontextmanager
async def runtime_for(sim: TwsSimulator, tmp_path: Path) -> AsyncIterator[Runtime]:
    config = IBKRConfig(port=sim.port, watchdog=WatchdogConfig(health_check_interval=30.0))
    async with open_runtime(config, audit_path=tmp_path / "audit.jsonl",
                            connect=True) as runtime:
        yield runtime


def _requests(sim: TwsSimulator, msg_id: int) -> int:
    return sum(1 for m in sim.received if m.msg_id == msg_id)


async def _priced(ticker: Ticker, timeout: float = 10.0) -> Ticker:
    with trio.fail_after(timeout):
        async for _ in ticker.updates():
            if ticker.bid is not None and ticker.ask is not None:
                return ticker
    raise AssertionError("no quote")


async def test_contract_details_are_cached(
    sim: TwsSimulator, tmp_path: Path, io_clock: trio.testing.MockClock
) -> None:
    async with runtime_for(sim, tmp_path) as runtime:
        info = await runtime.qualify(Stock("SPY"))
        assert info.con_id > 0 and info.sec_type == "STK" and info.min_tick > 0
        asked = _requests(sim, 9)
        assert await runtime.qualify(Stock("SPY")) == info
        assert _requests(sim, 9) == asked  # the hit sent nothing


async def test_an_unknown_symbol_is_a_typed_error(
    sim: TwsSimulator, tmp_path: Path, io_clock: trio.testing.MockClock
) -> None:
    async with runtime_for(sim, tmp_path) as runtime:
        with pytest.raises(UnknownContract):
            await runtime.qualify(Stock("NOPE"))


async def test_a_ticker_streams_quotes_and_shares_one_line(
    sim: TwsSimulator, tmp_path: Path, io_clock: trio.testing.MockClock
) -> None:
    async with runtime_for(sim, tmp_path) as runtime:
        ticker = await runtime.subscribe_ticker(Stock("SPY"))
        again = await runtime.subscribe_ticker(Stock("SPY"))
        assert again is ticker
        await _priced(ticker)
        assert ticker.state is TickerState.STREAMING
        assert ticker.bid is not None and ticker.ask is not None and ticker.bid <= ticker.ask
        assert len(sim.live_subscriptions()) == 1
        await runtime.unsubscribe(Stock("SPY"))
        assert len(sim.live_subscriptions()) == 1
        await runtime.unsubscribe(Stock("SPY"))
        with trio.fail_after(5):
            while sim.live_subscriptions():
                await trio.sleep(0.05)
        assert ticker.state is TickerState.CLOSED
        await runtime.unsubscribe(Stock("QQQ"))  # never subscribed: a no-op


async def test_an_option_ticker_carries_tws_greeks(
    sim: TwsSimulator, tmp_path: Path, io_clock: trio.testing.MockClock
) -> None:
    async with runtime_for(sim, tmp_path) as runtime:
        chain = await runtime.subscribe_option_chain("SPY", expiries=1, strikes_each_side=1,
                                                     rights=("C",))
        assert chain.tickers
        ticker = next(iter(chain.tickers.values()))
        with trio.fail_after(10):
            async for _ in ticker.updates():
                if ticker.model_greeks is not None and ticker.model_greeks.delta is not None:
                    break
        greeks = ticker.model_greeks
        assert greeks is not None and greeks.delta is not None and 0 < greeks.delta < 1
        await runtime.unsubscribe_option_chain(chain)
        with trio.fail_after(5):
            while sim.live_subscriptions():
                await trio.sleep(0.05)


async def test_a_strike_the_expiry_does_not_list_is_refused_before_the_wire(
    sim: TwsSimulator, tmp_path: Path, io_clock: trio.testing.MockClock
) -> None:
    async with runtime_for(sim, tmp_path) as runtime:
        chain = await runtime.subscribe_option_chain("SPY", expiries=1, strikes_each_side=1)
        expiry = next(iter(chain.strikes_by_expiry))
        listed = set(chain.strikes(expiry))
        union = {k for d in chain.definitions for k in d.strikes}
        missing = sorted(union - listed)
        if missing:
            with pytest.raises(UnknownContract):
                chain.contract(expiry, missing[0], "C")
        with pytest.raises(UnknownContract):
            chain.contract(expiry, 0.5, "C")
        await runtime.unsubscribe_option_chain(chain)


async def test_an_expired_option_is_refused_before_the_wire(
    sim: TwsSimulator, tmp_path: Path, io_clock: trio.testing.MockClock
) -> None:
    async with runtime_for(sim, tmp_path) as runtime:
        asked = _requests(sim, 9)
        with pytest.raises(Exception, match="expired"):
            await runtime.subscribe_ticker(Option("SPY", "20200117", 300, "C"))
        assert _requests(sim, 9) == asked
