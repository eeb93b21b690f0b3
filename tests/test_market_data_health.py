"""Market data that survives: restores, the line budget, delayed fallback, staleness."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
import trio.testing

from ibkr_connector.actors.market_data_messages import (
    SubscriptionRestored,
    TickByTickKind,
    TickerStale,
)
from ibkr_connector.actors.market_lines import LineBudgetExhausted
from ibkr_connector.config import IBKRConfig, MarketDataConfig, WatchdogConfig
from ibkr_connector.contracts import Stock
from ibkr_connector.runtime import Runtime, open_runtime
from ibkr_connector.simulator import SimulatorConfig, TwsSimulator, open_simulator
from ibkr_connector.ticker import MarketDataKind, Ticker, TickerState


@asynccontextmanager
async def runtime_for(sim: TwsSimulator, tmp_path: Path, **market: object
                      ) -> AsyncIterator[Runtime]:
    config = IBKRConfig(port=sim.port, market_data=MarketDataConfig(**market),  # type: ignore[arg-type]
                        watchdog=WatchdogConfig(health_check_interval=30.0,
                                                reconnect_initial_delay=0.5))
    async with open_runtime(config, audit_path=tmp_path / "audit.jsonl",
                            connect=True) as runtime:
        yield runtime


async def _until(predicate: object, timeout: float = 20.0) -> None:
    with trio.fail_after(timeout):
        while not predicate():  # type: ignore[operator]
            await trio.sleep(0.05)


async def _fresh_quote(ticker: Ticker, timeout: float = 10.0) -> None:
    with trio.fail_after(timeout):
        async for _ in ticker.updates():
            if ticker.state is TickerState.STREAMING and ticker.bid is not None:
                return


async def test_after_tws_restarts_the_same_tickers_stream_again(
    sim: TwsSimulator, tmp_path: Path, io_clock: trio.testing.MockClock
) -> None:
    async with runtime_for(sim, tmp_path) as runtime:
        restored = runtime.events(SubscriptionRestored)
        spy = await runtime.subscribe_ticker(Stock("SPY"))
        qqq = await runtime.subscribe_ticker(Stock("QQQ"))
        await _fresh_quote(spy)
        before = sim.live_subscriptions()
        await sim.refuse_for(3.0)  # TWS goes away and comes back
        await _until(lambda: spy.state is TickerState.STALE)
        with trio.fail_after(60):
            seen = {(await restored.receive()).key for _ in range(2)}
        assert len(seen) == 2
        await _fresh_quote(spy)
        await _fresh_quote(qqq)
        # What TWS streams is exactly what the runtime wants: two lines, under new ids.
        await _until(lambda: len(sim.live_subscriptions()) == 2)
        assert not sim.live_subscriptions() & before


async def test_past_the_line_budget_a_subscription_fails_or_waits_for_a_line(
    sim: TwsSimulator, tmp_path: Path, io_clock: trio.testing.MockClock
) -> None:
    async with runtime_for(sim, tmp_path, max_market_data_lines=1) as runtime:
        await runtime.subscribe_ticker(Stock("SPY"))
        with pytest.raises(LineBudgetExhausted):
            await runtime.subscribe_ticker(Stock("QQQ"))
        waiting = await runtime.subscribe_ticker(Stock("QQQ"), wait=True)
        assert waiting.state is TickerState.PENDING
        assert len(sim.live_subscriptions()) == 1
        await runtime.unsubscribe(Stock("SPY"))
        await _fresh_quote(waiting)
        assert len(sim.live_subscriptions()) == 1
        stats = await runtime.stats()
        md = stats["market_data"]
        assert isinstance(md, dict) and md["lines_in_use"] == 1 and md["line_budget"] == 1


async def test_no_live_permission_falls_back_to_delayed_data(
    tmp_path: Path, io_clock: trio.testing.MockClock
) -> None:
    async with open_simulator(SimulatorConfig(unsubscribed_symbols=("AAPL",))) as sim:
        async with runtime_for(sim, tmp_path) as runtime:
            ticker = await runtime.subscribe_ticker(Stock("AAPL"))
            with trio.fail_after(20):
                async for _ in ticker.updates():
                    if ticker.is_delayed and ticker.bid is not None:
                        break
            assert ticker.market_data_kind is MarketDataKind.DELAYED
            assert ticker.state is TickerState.STREAMING


async def test_without_delayed_data_allowed_the_ticker_fails_with_the_codes_meaning(
    tmp_path: Path, io_clock: trio.testing.MockClock
) -> None:
    async with open_simulator(SimulatorConfig(unsubscribed_symbols=("AAPL",))) as sim:
        async with runtime_for(sim, tmp_path, allow_delayed_market_data=False) as runtime:
            ticker = await runtime.subscribe_ticker(Stock("AAPL"))
            await _until(lambda: ticker.state is TickerState.FAILED)
            assert ticker.error is not None and ticker.error.startswith("354")
            # The refused line is free again.
            stats = await runtime.stats()
            md = stats["market_data"]
            assert isinstance(md, dict) and md["lines_in_use"] == 0


async def _stale_event(stale: object, word: str, timeout: float = 30.0) -> TickerStale:
    """The first TickerStale whose reason mentions ``word`` (a quiet market can add
    others)."""
    with trio.fail_after(timeout):
        async for event in stale:  # type: ignore[attr-defined]
            if word in event.reason:
                return event  # type: ignore[no-any-return]
    raise AssertionError("the bus subscription ended")


async def test_a_ticker_that_goes_quiet_is_marked_stale(
    sim: TwsSimulator, tmp_path: Path, io_clock: trio.testing.MockClock
) -> None:
    async with runtime_for(sim, tmp_path, ticker_stale_after=3.0) as runtime:
        stale = runtime.events(TickerStale)
        spy = await runtime.subscribe_ticker(Stock("SPY"))
        await _fresh_quote(spy)
        sim.stall_ticker("SPY")
        await _stale_event(stale, "no update")
        assert spy.state is TickerState.STALE
        sim.stall_ticker("SPY", False)
        await _fresh_quote(spy)
        assert spy.state is TickerState.STREAMING


async def test_a_data_farm_outage_marks_tickers_stale_until_it_is_back(
    sim: TwsSimulator, tmp_path: Path, io_clock: trio.testing.MockClock
) -> None:
    async with runtime_for(sim, tmp_path) as runtime:
        stale = runtime.events(TickerStale)
        spy = await runtime.subscribe_ticker(Stock("SPY"))
        await _fresh_quote(spy)
        await sim.data_farm_outage()
        await _stale_event(stale, "farm")
        assert spy.state is TickerState.STALE
        await sim.data_farm_outage(False)
        await _fresh_quote(spy)


async def test_tick_by_tick_delivers_every_tick_and_frees_its_stream(
    sim: TwsSimulator, tmp_path: Path, io_clock: trio.testing.MockClock
) -> None:
    async with runtime_for(sim, tmp_path, max_tick_by_tick_streams=1) as runtime:
        async with runtime.tick_by_tick(Stock("SPY"), TickByTickKind.BID_ASK) as ticks:
            got = []
            with trio.fail_after(20):
                async for tick in ticks:
                    got.append(tick)
                    if len(got) == 3:
                        break
            assert all(t.bid_price <= t.ask_price for t in got)  # type: ignore[attr-defined]
            with pytest.raises(LineBudgetExhausted):
                async with runtime.tick_by_tick(Stock("QQQ"), "MidPoint"):
                    pass
        # Leaving the block cancelled the TWS stream (CANCEL_TICK_BY_TICK_DATA, id 98).
        await _until(lambda: any(m.msg_id == 98 for m in sim.received))


async def test_an_unknown_tick_type_is_refused_before_the_wire(
    sim: TwsSimulator, tmp_path: Path, io_clock: trio.testing.MockClock
) -> None:
    from ibkr_connector.protocol.requests import RequestError

    async with runtime_for(sim, tmp_path) as runtime:
        sent = len(sim.received)
        with pytest.raises(RequestError, match="unknown generic tick"):
            await runtime.subscribe_ticker(Stock("SPY"), tick_types=[100, 9999])
        assert len(sim.received) == sent


async def test_a_partial_entitlement_keeps_the_ticker_streaming(
    tmp_path: Path, io_clock: trio.testing.MockClock
) -> None:
    async with open_simulator(SimulatorConfig(unsubscribed_underlyings=("SPY",))) as sim:
        async with runtime_for(sim, tmp_path) as runtime:
            # SPY's options are permitted, SPY itself is not: TWS says 10090 (no live
            # greeks without the underlying) and the rest of the data flows.
            spy_chain = await runtime.subscribe_option_chain(
                "SPY", expiries=1, strikes_each_side=1, rights=("C",))
            option = next(iter(spy_chain.tickers.values()))
            await _until(lambda: option.error is not None and option.error.startswith("10090"))
            await _fresh_quote(option)
            assert option.state is TickerState.STREAMING and option.bid is not None
