"""The simulated market, sans-IO: instruments, chains, the walk and quotes."""

from __future__ import annotations

import pytest

from ibkr_connector import black_scholes
from ibkr_connector.simulator._market import SimMarket

#: 2026-01-01 00:00 UTC, a Thursday.
START = 1767225600.0
SPY, SPX = 756733, 416904


def make_market(seed: int = 7, **kwargs: float) -> SimMarket:
    return SimMarket(seed=seed, start=0.0, wall_start=START, **kwargs)


def test_same_seed_and_steps_give_the_same_prices() -> None:
    one, two = make_market(), make_market()
    for t in (0.25, 1.0, 1.1, 30.0):
        one.advance(t)
    two.advance(30.0)
    assert one.quote(SPY) == two.quote(SPY)
    assert one.spot(SPX) == two.spot(SPX)
    assert make_market().advance(30.0) == 120  # grid steps of 0.25 s
    assert one.spot(SPY) != 500.0


def test_a_different_seed_walks_a_different_path() -> None:
    one, two = make_market(seed=1), make_market(seed=2)
    one.advance(60.0)
    two.advance(60.0)
    assert one.spot(SPY) != two.spot(SPY)


def test_stock_quotes_sit_on_the_tick_one_tick_wide() -> None:
    market = make_market()
    market.advance(10.0)
    quote = market.quote(SPY)
    assert quote.ask - quote.bid == pytest.approx(0.01)
    assert round(quote.bid * 100) == pytest.approx(quote.bid * 100)
    assert quote.last in (quote.bid, quote.ask)


def test_an_index_has_a_last_price_and_no_bid_or_ask() -> None:
    quote = make_market().quote(SPX)
    assert (quote.bid, quote.ask, quote.last) == (-1.0, -1.0, 5000.0)


def test_match_resolves_an_option_by_its_fields_and_by_con_id() -> None:
    market = make_market()
    [option] = market.match(symbol="SPY", sec_type="OPT", expiry="20260116", strike=500.0,
                            right="CALL", exchange="SMART", currency="USD")
    assert option.multiplier == 100 and option.trading_class == "SPY"
    assert option.local_symbol == "SPY   260116C00500000"
    assert option.underlying_con_id == SPY
    assert market.match(con_id=option.con_id) == [option]
    assert market.instrument(option.con_id) == option
    assert market.match(symbol="SPY", sec_type="STK")[0].con_id == SPY


def test_an_expiry_month_matches_every_option_of_that_month() -> None:
    options = make_market().match(symbol="SPY", sec_type="OPT", expiry="202601", strike=500.0,
                                  right="C")
    assert [o.expiry for o in options] == ["20260102", "20260109", "20260116", "20260123",
                                           "20260130"]


def test_unknown_contracts_match_nothing() -> None:
    market = make_market()
    assert market.match(symbol="MSFT", sec_type="STK") == []
    assert market.match(symbol="SPY", sec_type="OPT", expiry="20260116", strike=500.5) == []
    assert market.match(con_id=1) == []
    assert market.instrument(1) is None


def test_spx_chain_has_monthly_and_weekly_classes_and_a_strike_union() -> None:
    market = make_market()
    chains = {(c.exchange, c.trading_class): c for c in market.chains("SPX")}
    assert set(chains) == {("SMART", "SPX"), ("SMART", "SPXW"), ("CBOE", "SPX"),
                           ("CBOE", "SPXW")}
    monthly = chains["SMART", "SPX"]
    assert monthly.expiries == ("20260116", "20260220", "20260320")
    assert monthly.multiplier == 100 and monthly.underlying_con_id == SPX


def test_some_listed_strikes_exist_for_monthlies_only() -> None:
    market = make_market()
    [chain] = [c for c in market.chains("SPY") if c.exchange == "SMART"]
    far = max(chain.strikes)
    assert market.match(symbol="SPY", sec_type="OPT", expiry="20260116", strike=far, right="C")
    assert not market.match(symbol="SPY", sec_type="OPT", expiry="20260109", strike=far,
                            right="C")


def test_option_quotes_straddle_their_black_scholes_value() -> None:
    market = make_market()
    [option] = market.match(symbol="SPY", sec_type="OPT", expiry="20260220", strike=480.0,
                            right="P")
    vol, model, spot = market.model(option.con_id)
    years = market.years_to_expiry(option)
    assert model.price == pytest.approx(
        black_scholes.price("P", spot, 480.0, years, vol, market.rate))
    quote = market.quote(option.con_id)
    assert quote.bid < model.price < quote.ask
    assert vol > 0.15  # the smile lifts out-of-the-money puts above the at-the-money vol


def test_aapl_options_quote_in_nickels_above_three_dollars() -> None:
    market = make_market()
    [option] = market.match(symbol="AAPL", sec_type="OPT", expiry="20260320", strike=190.0,
                            right="C")
    quote = market.quote(option.con_id)
    assert quote.bid > 3
    assert round(quote.bid / 0.05) * 0.05 == pytest.approx(quote.bid)
    assert round(quote.ask / 0.05) * 0.05 == pytest.approx(quote.ask)


def test_widened_spreads_and_halts() -> None:
    market = make_market()
    market.set_spread_factor("SPY", 5)
    quote = market.quote(SPY)
    market.advance(1.0)
    assert market.quote(SPY).ask - market.quote(SPY).bid == pytest.approx(0.05)
    market.halt("SPY")
    frozen = market.spot(SPY)
    market.advance(100.0)
    assert market.spot(SPY) == frozen
    assert quote.bid > 0
    with pytest.raises(ValueError, match="unknown symbol"):
        market.halt("MSFT")


def test_options_near_the_money_come_nearest_first() -> None:
    from ibkr_connector.simulator._market import SimMarket

    market = SimMarket(seed=1, start=0.0, wall_start=1_780_000_000.0)
    options = market.options_near_the_money(10)
    assert len(options) == 10 and all(o.sec_type == "OPT" for o in options)
    moneyness = [abs(o.strike / market.spot(o.underlying_con_id) - 1) for o in options]
    assert moneyness == sorted(moneyness)
