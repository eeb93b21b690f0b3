"""A vertical spread's own quote through the runtime: a BAG line, keyed by its legs,
never asked about with contract details, restored after TWS restarts; over real sockets
against the simulator (the unmodified ibapi client inside the runtime)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path

import pytest
import trio
import trio.testing
from combo_helpers import bag
from ibapi.contract import Contract
from test_market_data_health import runtime_for

from ibkr_connector.actors.market_data_messages import SubscriptionRestored, UnknownContract
from ibkr_connector.actors.orders_messages import InvalidOrder
from ibkr_connector.contracts import ContractError
from ibkr_connector.protocol import events as ev
from ibkr_connector.runtime import Runtime
from ibkr_connector.simulator import TwsSimulator
from ibkr_connector.ticker import Ticker, TickerState, apply_tick

SPY = 756733
REQ_MKT_DATA, REQ_CONTRACT_DATA = 1, 9


@pytest.fixture
async def runtime(sim: TwsSimulator, tmp_path: Path) -> AsyncIterator[Runtime]:
    """A runtime connected to ``sim`` (reconnecting fast after a simulated restart)."""
    async with runtime_for(sim, tmp_path) as connected:
        yield connected


def spread_args(sim: TwsSimulator, **change: object) -> dict[str, object]:
    """Arguments naming a SPY call vertical on the nearest expiry, 5 wide around the
    money, with ``change`` applied (``short_strike="same"``: the long strike again)."""
    spot = float(round(sim.market.spot(SPY)))
    args: dict[str, object] = dict(symbol="SPY", expiry=sim.market.chains("SPY")[0].expiries[0],
                                   right="C", long_strike=spot, short_strike=spot + 5)
    args.update(change)
    if args["short_strike"] == "same":
        args["short_strike"] = args["long_strike"]
    return args


def net(sim: TwsSimulator, long_id: int, short_id: int) -> tuple[float, float]:
    """The spread's (bid, ask) from the legs' quotes at this moment."""
    long, short = sim.market.quote(long_id), sim.market.quote(short_id)
    return round(long.bid - short.ask, 8), round(long.ask - short.bid, 8)


def leg_ids(ticker: Ticker) -> tuple[int, int]:
    by_action = {leg.action: leg.conId for leg in ticker.contract.comboLegs}
    return by_action["BUY"], by_action["SELL"]


async def until_quote(ticker: Ticker, holds: Callable[[], bool], timeout: float = 20.0) -> None:
    """Wait until ``holds()`` with ``ticker`` quoted (the market steps on meanwhile)."""
    with trio.fail_after(timeout):
        if ticker.bid is not None and ticker.ask is not None and holds():
            return
        async for _ in ticker.updates():
            if ticker.bid is not None and ticker.ask is not None and holds():
                return


def bag_requests(sim: TwsSimulator, msg_id: int) -> int:
    return sum(1 for m in sim.received if m.msg_id == msg_id and "BAG" in m.fields)


async def test_a_vertical_spread_ticker_quotes_the_net_of_its_legs(
    runtime: Runtime, sim: TwsSimulator, io_clock: trio.testing.MockClock
) -> None:
    spread = await runtime.subscribe_vertical_spread(**spread_args(sim))  # type: ignore[arg-type]
    assert spread.contract.secType == "BAG"
    long_id, short_id = leg_ids(spread)
    await until_quote(spread, lambda: (spread.bid, spread.ask) == pytest.approx(
        net(sim, long_id, short_id)))
    assert spread.state is TickerState.STREAMING
    assert spread.bid is not None and spread.ask is not None
    assert spread.bid <= spread.ask
    # Against the legs' own tickers: the mid is the difference of their mids.
    long_leg = await runtime.subscribe_ticker(runtime_contract(long_id))
    short_leg = await runtime.subscribe_ticker(runtime_contract(short_id))

    def consistent() -> bool:
        if None in (long_leg.mid, short_leg.mid, spread.mid):
            return False
        assert long_leg.mid is not None and short_leg.mid is not None
        return spread.mid == pytest.approx(long_leg.mid - short_leg.mid)

    await until_quote(spread, consistent)
    # A BAG is never asked about with contract details (TWS would answer 321).
    assert bag_requests(sim, REQ_CONTRACT_DATA) == 0
    assert bag_requests(sim, REQ_MKT_DATA) == 1


def runtime_contract(con_id: int) -> Contract:
    contract = Contract()
    contract.conId, contract.exchange = con_id, "SMART"
    return contract


async def test_the_same_legs_are_one_line_and_unsubscribe_frees_it(
    runtime: Runtime, sim: TwsSimulator, io_clock: trio.testing.MockClock
) -> None:
    spread = await runtime.subscribe_vertical_spread(**spread_args(sim))  # type: ignore[arg-type]
    again = await runtime.subscribe_vertical_spread(**spread_args(sim))  # type: ignore[arg-type]
    long_id, short_id = leg_ids(spread)
    # A hand-built BAG with the same legs, listed the other way round: the same line.
    by_hand = await runtime.subscribe_ticker(bag([(short_id, 1, "SELL"),
                                                  (long_id, 1, "BUY")]))
    assert again is spread and by_hand is spread
    await until_quote(spread, lambda: True)
    assert len(sim.live_subscriptions()) == 1
    assert bag_requests(sim, REQ_MKT_DATA) == 1
    for _ in range(3):
        await runtime.unsubscribe(spread.contract)
    with trio.fail_after(5):
        while sim.live_subscriptions():
            await trio.sleep(0.05)
    assert spread.state is TickerState.CLOSED


async def test_a_spread_line_is_restored_after_tws_restarts(
    runtime: Runtime, sim: TwsSimulator, io_clock: trio.testing.MockClock
) -> None:
    restored = runtime.events(SubscriptionRestored)
    put = spread_args(sim, right="P")
    put["long_strike"], put["short_strike"] = put["short_strike"], put["long_strike"]
    spread = await runtime.subscribe_vertical_spread(**put)  # type: ignore[arg-type]
    await until_quote(spread, lambda: True)
    before = sim.live_subscriptions()
    await sim.refuse_for(3.0)  # TWS goes away and comes back
    with trio.fail_after(20):
        while spread.state is not TickerState.STALE:
            await trio.sleep(0.05)
    with trio.fail_after(60):
        event = await restored.receive()
    assert isinstance(event.key, tuple) and event.key[0] == "bag"
    long_id, short_id = leg_ids(spread)
    await until_quote(spread, lambda: spread.state is TickerState.STREAMING and (
        spread.bid, spread.ask) == pytest.approx(net(sim, long_id, short_id)))
    with trio.fail_after(10):
        while len(sim.live_subscriptions()) != 1:
            await trio.sleep(0.05)
    assert not sim.live_subscriptions() & before  # asked again, under a new id


@pytest.mark.parametrize(("legs", "why"), [
    ([], "needs combo legs"),
    ([(0, 1, "BUY"), (SPY, 1, "SELL")], "conId"),
    ([(SPY, 0, "BUY"), (320227571, 1, "SELL")], "ratio"),
    ([(SPY, 1, "HOLD"), (320227571, 1, "SELL")], "BUY or SELL"),
])
async def test_a_bag_tws_could_not_quote_is_a_typed_error_before_the_wire(
    runtime: Runtime, sim: TwsSimulator, io_clock: trio.testing.MockClock,
    legs: list[tuple[int, int, str]], why: str,
) -> None:
    with pytest.raises(ContractError, match=why):
        await runtime.subscribe_ticker(bag(legs))
    await runtime.unsubscribe(bag(legs))  # never a line: a no-op
    assert bag_requests(sim, REQ_MKT_DATA) == 0
    assert sim.live_subscriptions() == frozenset()


@pytest.mark.parametrize(("change", "error"), [
    (dict(short_strike="same"), InvalidOrder),
    (dict(right="X"), InvalidOrder),
    (dict(expiry="2026-13-45"), InvalidOrder),
    (dict(expiry="20010119"), UnknownContract),  # not listed
    (dict(long_strike=0.5), UnknownContract),
])
async def test_bad_spread_input_is_the_same_typed_error_as_for_the_order(
    runtime: Runtime, sim: TwsSimulator, io_clock: trio.testing.MockClock,
    change: dict[str, object], error: type[Exception],
) -> None:
    call = spread_args(sim, **change)
    with pytest.raises(error):
        await runtime.subscribe_vertical_spread(**call)  # type: ignore[arg-type]
    with pytest.raises(error):
        await runtime.place_vertical_spread(**call, quantity=1,  # type: ignore[arg-type]
                                            limit_price=1.0)
    assert bag_requests(sim, REQ_MKT_DATA) == 0


def test_a_combo_priced_at_minus_one_with_a_size_is_a_quote_not_no_data() -> None:
    """TWS's "no data" is -1 with size 0; a credit spread can be bid at exactly -1.00."""
    ticker = Ticker(bag([(SPY, 1, "BUY"), (320227571, 1, "SELL")]))
    apply_tick(ticker, ev.TickPrice(1, 1, -1.0, size=Decimal(7)), 0.0)
    apply_tick(ticker, ev.TickPrice(1, 2, -0.95, size=Decimal(4)), 0.0)
    assert (ticker.bid, ticker.ask, ticker.bid_size) == (-1.0, -0.95, Decimal(7))
    apply_tick(ticker, ev.TickPrice(1, 1, -1.0, size=Decimal(0)), 0.0)
    assert ticker.bid is None  # and with size 0 it is still "no quote"


async def test_a_leg_tws_does_not_know_fails_the_ticker_with_200(
    runtime: Runtime, sim: TwsSimulator, io_clock: trio.testing.MockClock
) -> None:
    ticker = await runtime.subscribe_ticker(bag([(SPY, 1, "BUY"), (12345, 1, "SELL")]))
    with trio.fail_after(10):
        while ticker.state is not TickerState.FAILED:
            await trio.sleep(0.05)
    assert ticker.error is not None and ticker.error.startswith("200")
    assert sim.live_subscriptions() == frozenset()
