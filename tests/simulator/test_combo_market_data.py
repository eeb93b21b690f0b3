"""A combo's (BAG's) own quote: the net of its legs, streamed like any line.

Sans-IO (requests as EClient writes them at 157, 178 and 200, answers as ibapi's Decoder
reads them), then over real loopback sockets with the unmodified ibapi client and with
ib_async at its own server version."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import trio
from combo_helpers import bag

from ibkr_connector.simulator import SimulatorConfig, open_simulator
from ibkr_connector.simulator._market import SimMarket

from .marketclient import market_client
from .test_market_data import connected, named, send, updates

EXPIRY = "20260116"


def leg_ids(market: SimMarket, low: float = 500.0, high: float = 505.0,
            right: str = "C") -> tuple[int, int]:
    ids = [market.match(symbol="SPY", sec_type="OPT", expiry=EXPIRY, strike=k,
                        right=right)[0].con_id for k in (low, high)]
    return ids[0], ids[1]


def net(market: SimMarket, legs: list[tuple[int, int, str]]) -> tuple[float, float]:
    """The combo's (bid, ask) from the legs' quotes now, as the spec defines it."""
    bid = ask = 0.0
    for con_id, ratio, action in legs:
        quote = market.quote(con_id)
        if action == "BUY":
            bid, ask = bid + ratio * quote.bid, ask + ratio * quote.ask
        else:
            bid, ask = bid - ratio * quote.ask, ask - ratio * quote.bid
    return bid, ask


def quoted(calls: list[Any]) -> dict[int, float]:
    return {args[1]: args[2] for args in named(calls, "tickPrice")}


@pytest.mark.parametrize("version", [157, 178, 200])
def test_a_vertical_streams_the_net_of_its_legs(version: int) -> None:
    harness = connected(version)
    market = harness.state.market
    low, high = leg_ids(market)
    legs = [(low, 1, "BUY"), (high, 1, "SELL")]
    calls = send(harness, lambda c: c.reqMktData(30, bag(legs), "", False, False, []))
    assert calls[0] == ("tickReqParams", (30, 0.01))
    assert ("marketDataType", (30, 1)) in calls
    prices = quoted(calls)
    assert (prices[1], prices[2]) == pytest.approx(net(market, legs))
    assert 0 < prices[1] <= prices[2]
    low_quote, high_quote = market.quote(low), market.quote(high)
    sizes = {args[1]: args[2] for args in named(calls, "tickSize")}
    assert sizes[0] == min(low_quote.bid_size, high_quote.ask_size)
    assert sizes[3] == min(low_quote.ask_size, high_quote.bid_size)
    assert harness.session.market_data.subscriptions == {30}
    # The walk moves the legs: the combo follows, tick for tick.
    for now in (30.0, 60.0, 90.0):
        moved = quoted(updates(harness, now))
        prices.update(moved)
        assert (prices[1], prices[2]) == pytest.approx(net(market, legs))


def test_a_credit_is_a_negative_price_and_ratios_multiply() -> None:
    harness = connected()
    market = harness.state.market
    low, high = leg_ids(market)
    legs = [(low, 2, "SELL"), (high, 1, "BUY")]
    prices = quoted(send(harness, lambda c: c.reqMktData(31, bag(legs), "", False, False, [])))
    bid, ask = net(market, legs)
    assert (prices[1], prices[2]) == pytest.approx((bid, ask))
    assert prices[1] <= prices[2] < 0


def test_a_snapshot_of_a_combo_ends_and_holds_no_line() -> None:
    harness = connected()
    low, high = leg_ids(harness.state.market)
    calls = send(harness, lambda c: c.reqMktData(
        32, bag([(low, 1, "BUY"), (high, 1, "SELL")]), "", True, False, []))
    assert set(quoted(calls)) == {1, 2}
    assert calls[-1] == ("tickSnapshotEnd", (32,))
    assert harness.session.market_data.subscriptions == set()


def test_a_bag_without_legs_is_321_and_an_unknown_leg_200() -> None:
    harness = connected()
    calls = send(harness, lambda c: c.reqMktData(33, bag([]), "", False, False, []))
    assert [(name, args[:2]) for name, args in calls] == [("error", (33, 321))]
    assert "requires combo leg details" in calls[0][1][2]
    low, _ = leg_ids(harness.state.market)
    calls = send(harness, lambda c: c.reqMktData(
        34, bag([(low, 1, "BUY"), (12345, 1, "SELL")]), "", False, False, []))
    assert [(name, args[:2]) for name, args in calls] == [("error", (34, 200))]
    assert harness.session.market_data.subscriptions == set()


def test_a_combo_is_one_line_against_the_budget() -> None:
    harness = connected(max_market_data_lines=1)
    low, high = leg_ids(harness.state.market)
    legs = [(low, 1, "BUY"), (high, 1, "SELL")]
    send(harness, lambda c: c.reqMktData(35, bag(legs), "", False, False, []))
    calls = send(harness, lambda c: c.reqMktData(36, bag(legs), "", False, False, []))
    assert [(name, args[:2]) for name, args in calls] == [("error", (36, 101))]


# -- over sockets ------------------------------------------------------------------------

START = 1767225600.0  # 2026-01-01 00:00 UTC


def still_market() -> SimulatorConfig:
    """A market that does not move while a test reads it: the legs' quotes at the
    moment of the combo's ticks are the quotes now."""
    return SimulatorConfig(start_time=START, market_tick_interval=3600.0)


async def test_ibapi_gets_a_combo_quote_equal_to_the_net_of_its_legs() -> None:
    async with open_simulator(still_market()) as sim:
        low, high = leg_ids(sim.market)
        legs = [(low, 1, "BUY"), (high, 1, "SELL")]
        client = market_client()
        try:
            await client.connect(sim.port, 3)
            await client.wait_for("nextValidId")
            await client.call(client.client.reqMktData, 40, bag(legs), "", False, False, [])
            bid = await client.wait_for("tickPrice", lambda a: a[:2] == (40, 1))
            ask = await client.wait_for("tickPrice", lambda a: a[:2] == (40, 2))
            assert (bid[2], ask[2]) == pytest.approx(net(sim.market, legs))
            assert bid[2] <= ask[2]
            assert sim.live_subscriptions(3) == {40}
            await client.call(client.client.cancelMktData, 40)
            with trio.fail_after(3):
                while sim.live_subscriptions(3):
                    await trio.sleep(0.02)
        finally:
            await client.close()


def _ib_async_combo(port: int, legs: list[tuple[int, int, str]]) -> tuple[Any, ...]:
    from ib_async import IB, StartupFetchNONE
    from ib_async import ComboLeg as AsyncLeg
    from ib_async import Contract as AsyncContract

    async def main() -> tuple[Any, ...]:
        ib = IB()
        await ib.connectAsync("127.0.0.1", port, clientId=9, timeout=5,
                              fetchFields=StartupFetchNONE, readonly=True)
        try:
            contract = AsyncContract(
                symbol="SPY", secType="BAG", exchange="SMART", currency="USD",
                comboLegs=[AsyncLeg(conId=c, ratio=r, action=a, exchange="SMART")
                           for c, r, a in legs])
            ticker = ib.reqMktData(contract, "", False, False)
            for _ in range(100):
                await asyncio.sleep(0.05)
                if ticker.bid == ticker.bid and ticker.ask == ticker.ask:  # not NaN
                    break
            return ib.client.serverVersion(), ticker.bid, ticker.ask
        finally:
            ib.disconnect()

    return asyncio.run(main())


async def test_ib_async_gets_a_ticker_with_the_combos_bid_and_ask() -> None:
    async with open_simulator(still_market()) as sim:
        low, high = leg_ids(sim.market)
        legs = [(low, 1, "BUY"), (high, 1, "SELL")]
        version, bid, ask = await trio.to_thread.run_sync(_ib_async_combo, sim.port, legs)
        expected = net(sim.market, legs)
    assert version == 178
    assert (bid, ask) == pytest.approx(expected)
    assert 0 < bid <= ask
