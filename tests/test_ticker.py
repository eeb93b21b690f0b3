"""Applying TWS's ticks to a Ticker: fields, sentinels as None, one wake-up per batch."""

from __future__ import annotations

from decimal import Decimal

import trio
import trio.testing
from ibapi.common import UNSET_DECIMAL

from ibkr_connector.contracts import Option, Stock
from ibkr_connector.protocol import events as ev
from ibkr_connector.ticker import MarketDataKind, Ticker, TickerState, apply_tick


def test_a_price_tick_carries_its_size_and_no_quote_is_none() -> None:
    ticker = Ticker(Stock("SPY"))
    assert apply_tick(ticker, ev.TickPrice(1, 1, 500.25, size=Decimal(300)), 1.0)
    assert (ticker.bid, ticker.bid_size) == (500.25, Decimal(300))
    apply_tick(ticker, ev.TickPrice(1, 2, -1.0, size=UNSET_DECIMAL), 2.0)
    assert ticker.ask is None and ticker.ask_size is None
    apply_tick(ticker, ev.TickSize(1, 8, Decimal(12345)), 3.0)
    assert ticker.volume == Decimal(12345)
    assert ticker.state is TickerState.STREAMING and ticker.last_update == 3.0


def test_delayed_ticks_fill_the_same_fields() -> None:
    ticker = Ticker(Stock("SPY"))
    apply_tick(ticker, ev.TickPrice(1, 66, 499.0, size=Decimal(1)), 1.0)
    apply_tick(ticker, ev.MarketDataType(1, 3), 1.0)
    assert ticker.bid == 499.0 and ticker.market_data_kind is MarketDataKind.DELAYED
    assert ticker.is_delayed


def test_option_greeks_by_source_with_not_computed_as_none() -> None:
    ticker = Ticker(Option("SPY", "20261218", 600, "C"))
    apply_tick(ticker, ev.TickOptionComputation(1, 13, 1, 0.2, 0.55, 7.3, 0.0, 0.01, None,
                                                None, 601.0), 1.0)
    model = ticker.model_greeks
    assert model is not None and model.delta == 0.55 and model.vega is None
    assert ticker.implied_vol == 0.2
    apply_tick(ticker, ev.TickOptionComputation(1, 83, 1, None, 0.5, 7.0, 0.0, 0.01, 0.3,
                                                -0.1, 600.0), 2.0)
    assert ticker.greeks["model"].delta == 0.5  # delayed 83 is the model source too
    assert not apply_tick(ticker, ev.TickString(1, 45, "1700000000"), 3.0)


async def test_readers_wake_once_per_notify_not_per_tick(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ticker = Ticker(Stock("SPY"))
    woken: list[float | None] = []

    async def reader() -> None:
        async for update in ticker.updates():
            woken.append(update.bid)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        await trio.testing.wait_all_tasks_blocked()
        for price in (1.0, 2.0, 3.0):
            apply_tick(ticker, ev.TickPrice(1, 1, price, size=Decimal(1)), 1.0)
        ticker._notify()
        await trio.testing.wait_all_tasks_blocked()
        assert woken == [3.0]  # the latest, once
        ticker._set_state(TickerState.CLOSED, None, 2.0)
    assert woken == [3.0, 3.0]  # the close is a last change, then the iteration ends
