"""Against a real TWS / IB Gateway (paper account): what only a real TWS can confirm.

Run with ``IBKR_REAL_TWS=host:port python -m pytest -m real_tws -p no:cacheprovider -v``;
without the variable every test here is skipped with the reason. What each test expects,
and how to set TWS up, is docs/handoff.md. Orders are placed only on a paper account
(account ``DU...``/``DF...`` and not port 7496/4001) unless ``IBKR_REAL_TWS_ALLOW_LIVE=yes``
(tests/real_tws/guard.py). Prices and accounts are never printed whole.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

import pytest
import trio
from ibapi.order import Order
from real_tws.guard import SKIP_REASON, LiveAccountRefused, Target, paper_account, parse_target

from ibkr_connector import (
    ConnectionEstablished,
    ConnectionLost,
    ConnectionRecovered,
    ErrorOccurred,
    IBKRConfig,
    OptionChain,
    Stock,
    Ticker,
    Trade,
    TradeStatus,
    WatchdogConfig,
    read_audit_records,
)
from ibkr_connector.allow_list import is_loopback
from ibkr_connector.protocol import events as ev
from ibkr_connector.protocol.requests import ReqCurrentTime, ReqExecutions, ReqPositions
from ibkr_connector.runtime import Runtime, open_runtime

TARGET = parse_target(os.environ)  # a malformed value fails collection instead of skipping
pytestmark = [pytest.mark.real_tws, pytest.mark.skipif(TARGET is None, reason=SKIP_REASON)]

SYMBOL = "SPY"  # liquid, optionable, trades 04:00-20:00 US Eastern
_WORKING = (TradeStatus.PRE_SUBMITTED, TradeStatus.SUBMITTED)
_CANCELLED = (TradeStatus.CANCELLED, TradeStatus.API_CANCELLED)
_EXEC_REQ_ID = 1_500_000_000  # between the market-data actor's ids and reconciliation's

T = TypeVar("T")


def target() -> Target:
    assert TARGET is not None
    return TARGET


def config_for(t: Target) -> IBKRConfig:
    """The runtime's config for the named TWS. A remote host is allowed because the user
    named it; docs/security.md says why a tunnel to 127.0.0.1 is the better way."""
    return IBKRConfig(
        host=t.host, port=t.port, client_id=t.client_id, client_id_retries=3,
        allow_remote_hosts=() if is_loopback(t.host) else (t.host,),
        watchdog=WatchdogConfig(reconnect_initial_delay=1.0, reconnect_max_delay=10.0))


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    async with open_runtime(config_for(target()), audit_path=tmp_path / "audit.jsonl",
                            connect=True) as rt:
        yield rt


def say(capsys: pytest.CaptureFixture[str], text: str) -> None:
    """Straight to the terminal, past pytest's capture (the interactive step needs it)."""
    with capsys.disabled():
        print(f"\n[real_tws] {text}", file=sys.stderr, flush=True)


async def first_event(subscription: AsyncIterable[object], kind: type[T], timeout: float,
                      what: str, predicate: Callable[[T], bool] = lambda _: True) -> T:  # noqa: ASYNC109
    with trio.move_on_after(timeout):
        async for event in subscription:
            if isinstance(event, kind) and predicate(event):
                return event
    pytest.fail(f"no {what} within {timeout:g} s")


async def ticker_until(ticker: Ticker, predicate: Callable[[Ticker], bool], timeout: float,  # noqa: ASYNC109
                       what: str) -> Ticker:
    with trio.move_on_after(timeout):
        if predicate(ticker):
            return ticker
        async for update in ticker.updates():
            if predicate(update):
                return update
    pytest.fail(f"{what} not seen within {timeout:g} s (ticker state {ticker.state.value}, "
                f"error {ticker.error!r}, data kind {ticker.market_data_kind!r}); is the "
                "market open and the account subscribed to its data?")


async def trade_until(trade: Trade, predicate: Callable[[Trade], bool], timeout: float,  # noqa: ASYNC109
                      what: str) -> None:
    with trio.move_on_after(timeout):
        if predicate(trade):
            return
        async for update in trade.updates():
            if predicate(update):
                return
    pytest.fail(f"order {trade.order_id}: {what} not seen within {timeout:g} s (status "
                f"{trade.status.value}, rejection {trade.rejection!r})")


def price_of(ticker: Ticker) -> float | None:
    return ticker.mid or ticker.last or ticker.close


async def small_chain(runtime: Runtime, strikes_each_side: int = 1) -> OptionChain:
    """The nearest expiry's calls around the money: few lines, real greeks."""
    return await runtime.subscribe_option_chain(
        SYMBOL, expiries=1, strikes_each_side=strikes_each_side, rights=("C",),
        spot_timeout=30.0)


# -- connection ------------------------------------------------------------------------------


async def test_connects_disconnects_and_reconnects(runtime: Runtime) -> None:
    status = (await runtime.status()).connection
    assert status.state.value == "connected"
    assert status.server_version is not None and status.server_version >= 176
    assert status.accounts, "TWS sent no managed accounts"
    times = runtime.events(ev.CurrentTime)
    await runtime.submit(ReqCurrentTime())
    reply = await first_event(times, ev.CurrentTime, 10.0, "currentTime answer")
    assert abs(reply.time - time.time()) < 300, "TWS's clock is more than 5 min off ours"

    events = runtime.events((ConnectionLost, ConnectionRecovered, ConnectionEstablished))
    await runtime.disconnect()
    lost = await first_event(events, ConnectionLost, 10.0, "ConnectionLost after disconnect")
    assert lost.requested
    assert not await runtime.is_connected()
    again = await runtime.connect()
    assert again.state.value == "connected"
    recovered = await first_event(events, ConnectionRecovered, 10.0, "ConnectionRecovered")
    assert recovered.reconnects == 1
    await runtime.submit(ReqCurrentTime())
    await first_event(times, ev.CurrentTime, 10.0, "currentTime after the reconnect")


# -- contracts and market data ------------------------------------------------------------


async def test_contract_details_and_an_option_chain(runtime: Runtime) -> None:
    info = await runtime.qualify(Stock(SYMBOL))
    assert (info.symbol, info.sec_type, info.currency) == (SYMBOL, "STK", "USD")
    assert info.con_id > 0
    chain = await small_chain(runtime, strikes_each_side=2)
    try:
        assert chain.underlying.con_id == info.con_id
        assert list(chain.expirations) == sorted(chain.expirations)
        (expiry,) = chain.strikes_by_expiry
        strikes = chain.strikes(expiry)
        assert strikes and list(strikes) == sorted(strikes)
        assert 1 <= len(chain.tickers) <= 4
        for (key_expiry, strike, right), ticker in chain.tickers.items():
            contract = chain.contract(key_expiry, strike, right).contract
            assert contract.secType == "OPT" and contract.conId > 0
            assert ticker.contract.conId == contract.conId
        assert chain.multiplier == "100"
    finally:
        await runtime.unsubscribe_option_chain(chain)
    assert (await runtime.stats())["market_data"]["lines_in_use"] == 0  # type: ignore[index]


async def test_market_data_live_or_delayed_with_greeks(
        runtime: Runtime, capsys: pytest.CaptureFixture[str]) -> None:
    errors = runtime.events(ErrorOccurred)
    chain = await small_chain(runtime)
    try:
        spot = await ticker_until(chain.underlying_ticker, lambda t: price_of(t) is not None,
                                  30.0, f"a price for {SYMBOL}")
        assert spot.market_data_kind is not None
        with_greeks = await _any_ticker(chain, 60.0)
        greeks = with_greeks.model_greeks
        assert greeks is not None and greeks.delta is not None
        assert 0.0 <= greeks.delta <= 1.0  # calls
        assert greeks.implied_vol is None or 0.0 < greeks.implied_vol < 5.0
        say(capsys, f"market data kind {spot.market_data_kind.name}, model greeks seen")
    finally:
        await runtime.unsubscribe_option_chain(chain)
    codes = {e.code for e in _drain(errors)}
    assert not codes & {101, 10090, 10190}, f"TWS said {codes & {101, 10090, 10190}}"


async def _any_ticker(chain: OptionChain, timeout: float) -> Ticker:  # noqa: ASYNC109
    """The first option ticker of ``chain`` with model greeks."""
    found: list[Ticker] = []
    with trio.move_on_after(timeout):
        async with trio.open_nursery() as nursery:
            async def watch(ticker: Ticker) -> None:
                async for update in _and_updates(ticker):
                    greeks = update.model_greeks
                    if greeks is not None and greeks.delta is not None:
                        found.append(update)
                        nursery.cancel_scope.cancel()
                        return
            for ticker in chain.tickers.values():
                nursery.start_soon(watch, ticker)
    if not found:
        pytest.fail(f"no model greeks on any of {len(chain.tickers)} option tickers within "
                    f"{timeout:g} s")
    return found[0]


async def _and_updates(ticker: Ticker) -> AsyncIterator[Ticker]:
    yield ticker
    async for update in ticker.updates():
        yield update


def _drain(subscription: object) -> list[ErrorOccurred]:
    out: list[ErrorOccurred] = []
    receive = subscription.receive_nowait  # type: ignore[attr-defined]
    while True:
        try:
            out.append(receive())
        except trio.WouldBlock:
            return out


async def test_tick_by_tick_on_a_stock(runtime: Runtime) -> None:
    contract = (await runtime.qualify(Stock(SYMBOL))).contract
    async with runtime.tick_by_tick(contract, "BidAsk") as ticks:
        stats = await runtime.stats()
        assert stats["market_data"]["tick_by_tick_streams"] == 1  # type: ignore[index]
        received = []
        with trio.move_on_after(60.0):
            async for tick in ticks:
                received.append(tick)
                if len(received) >= 5:
                    break
    if not received:
        pytest.fail("no tick-by-tick BidAsk tick within 60 s: is the market open "
                    "(SPY quotes 04:00-20:00 US Eastern on trading days)?")
    assert all(isinstance(t, ev.TickByTickBidAsk) for t in received)
    assert all(t.bid_price <= t.ask_price for t in received)  # type: ignore[attr-defined]
    with trio.fail_after(10.0):
        while (await runtime.stats())["market_data"]["tick_by_tick_streams"]:  # type: ignore[index]
            await trio.sleep(0.1)


# -- orders ----------------------------------------------------------------------------------


async def test_what_if_on_a_vertical_spread(runtime: Runtime) -> None:
    chain = await small_chain(runtime, strikes_each_side=2)
    try:
        (expiry,) = chain.strikes_by_expiry
        strikes = sorted({strike for (_, strike, _) in chain.tickers})
    finally:
        await runtime.unsubscribe_option_chain(chain)
    assert len(strikes) >= 2, "the chain window has fewer than two strikes"
    long_strike, short_strike = strikes[0], strikes[1]
    before = len(await runtime.trades())
    impact = await runtime.what_if_vertical_spread(
        SYMBOL, expiry, "C", long_strike, short_strike, 1, "LMT", limit_price=0.05)
    margins = (impact.init_margin_change, impact.maint_margin_change,
               impact.equity_with_loan_change, impact.init_margin_after)
    assert any(m is not None for m in margins), f"whatIf gave no margin numbers: {impact!r}"
    assert len(await runtime.trades()) == before, "a whatIf left an order in the book"


async def test_a_paper_order_far_from_the_market_is_modified_then_cancelled(
        runtime: Runtime, tmp_path: Path) -> None:
    t = target()
    status = (await runtime.status()).connection
    try:
        account = paper_account(t, status.accounts)
    except LiveAccountRefused as exc:
        pytest.fail(f"refused: {exc}")
    contract = (await runtime.qualify(Stock(SYMBOL))).contract
    ticker = await runtime.subscribe_ticker(contract)
    try:
        await ticker_until(ticker, lambda x: price_of(x) is not None, 30.0, "a price")
        price = price_of(ticker)
    finally:
        await runtime.unsubscribe(contract)
    assert price is not None
    far = round(price * 0.7, 2)  # 30 % below: never fills
    order = Order()
    order.action, order.totalQuantity, order.orderType = "BUY", Decimal(1), "LMT"
    order.lmtPrice, order.tif, order.account = far, "DAY", account
    trade = await runtime.place_order(contract, order)
    try:
        await trade_until(trade, lambda x: x.status in _WORKING, 30.0, "PreSubmitted/Submitted")
        lower = round(far - 0.05, 2)
        open_orders = runtime.events(ev.OpenOrder)
        modified = await runtime.modify(trade, limit_price=lower)
        assert modified.order_id == trade.order_id
        confirmed = await first_event(
            open_orders, ev.OpenOrder, 30.0, "openOrder with the modified limit",
            lambda e: e.order_id == trade.order_id and e.order.lmtPrice == lower)
        assert confirmed.order.totalQuantity == 1
        assert trade.status in _WORKING
        cancelled = await runtime.cancel(trade)
        assert cancelled.status in (TradeStatus.PENDING_CANCEL, *_CANCELLED)
        await trade_until(trade, lambda x: x.status in _CANCELLED, 30.0, "Cancelled")
    finally:
        if not trade.is_done:
            with trio.CancelScope(shield=True), trio.move_on_after(30.0):
                await runtime.cancel(trade)
    assert trade.filled_quantity == 0 and not trade.fills
    assert trade.rejection is None
    kinds = [(r.kind, r.fields.get("order_id"))
             for r in read_audit_records(tmp_path / "audit.jsonl")]
    assert kinds.count(("order_intent", trade.order_id)) == 2  # placed, modified
    assert kinds.count(("cancel_intent", trade.order_id)) == 1


async def test_positions_and_executions(
        runtime: Runtime, capsys: pytest.CaptureFixture[str]) -> None:
    accounts = set((await runtime.status()).connection.accounts)
    positions = runtime.events((ev.Position, ev.PositionEnd))
    await runtime.submit(ReqPositions())
    seen: list[ev.Position] = []
    with trio.fail_after(30.0):
        async for event in positions:
            if isinstance(event, ev.PositionEnd):
                break
            assert isinstance(event, ev.Position)
            seen.append(event)
    assert all(p.account in accounts for p in seen)
    executions = runtime.events((ev.ExecDetails, ev.ExecDetailsEnd))
    await runtime.submit(ReqExecutions(_EXEC_REQ_ID))
    exec_ids: set[str] = set()
    with trio.fail_after(30.0):
        async for event in executions:
            if isinstance(event, ev.ExecDetailsEnd) and event.req_id == _EXEC_REQ_ID:
                break
            if isinstance(event, ev.ExecDetails) and event.req_id == _EXEC_REQ_ID:
                exec_ids.add(event.execution.execId)
    await runtime.reconcile_orders()
    known = {fill.exec_id for fill in await runtime.executions()}
    assert exec_ids <= known, f"{len(exec_ids - known)} of today's executions not in the book"
    assert all(p.account in accounts for p in await runtime.positions())
    say(capsys, f"{len(seen)} position(s), {len(exec_ids)} execution(s) today")


# -- pacing ----------------------------------------------------------------------------------


async def test_two_thousand_requests_stay_under_the_pacing_limit(
        runtime: Runtime, capsys: pytest.CaptureFixture[str]) -> None:
    count = 2000
    rate = runtime.config.requests_per_second
    errors = runtime.events(ErrorOccurred, capacity=10_000)
    answers = runtime.events(ev.CurrentTime, capacity=10_000)
    start = time.monotonic()
    for _ in range(count):
        await runtime.submit(ReqCurrentTime())
    elapsed = time.monotonic() - start
    answered = 0
    with trio.move_on_after(30.0):
        while answered < count:
            await answers.receive()
            answered += 1
    stats = await runtime.stats()
    codes = [e.code for e in _drain(errors)]
    say(capsys, f"{count} requests in {elapsed:.1f} s (expected about {count / rate:.1f} s), "
        f"{answered} answered, max {stats['max_requests_in_1s']} in 1 s")
    assert 100 not in codes, "TWS reported a pacing violation (error 100)"
    assert stats["pacing_violations"] == 0
    assert answered == count
    assert (count - runtime.config.burst) / rate * 0.95 <= elapsed <= count / rate * 1.3
    assert stats["max_requests_in_1s"] <= 49  # type: ignore[operator]


# -- recovery (interactive; last, since it restarts TWS) -----------------------------------


@pytest.mark.skipif(TARGET is not None and TARGET.restart_timeout <= 0,
                    reason="IBKR_REAL_TWS_RESTART_TIMEOUT=0 turns the interactive step off")
async def test_recovers_when_the_user_restarts_tws(
        runtime: Runtime, capsys: pytest.CaptureFixture[str]) -> None:
    t = target()
    events = runtime.events((ConnectionLost, ConnectionRecovered))
    await runtime.keep_connected()
    say(capsys, f"ACTION: restart TWS / IB Gateway now (File > Exit, start it, log in to the paper "
        f"account). Waiting up to {t.restart_timeout:g} s for the connection to drop and "
        f"come back; the runtime reconnects on its own.")
    lost = await first_event(events, ConnectionLost, t.restart_timeout, "ConnectionLost")
    assert not lost.requested
    say(capsys, "connection lost; waiting for TWS to come back")
    recovered = await first_event(events, ConnectionRecovered, t.restart_timeout,
                                  "ConnectionRecovered")
    assert recovered.reconnects >= 1 and recovered.accounts
    times = runtime.events(ev.CurrentTime)
    await runtime.submit(ReqCurrentTime())
    await first_event(times, ev.CurrentTime, 10.0, "currentTime after the restart")
    say(capsys, "recovered")
