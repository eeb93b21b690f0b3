"""Contract constructors: what a trader types, checked before anything reaches the wire."""

from __future__ import annotations

import datetime

import pytest
from ibapi.contract import Contract

from ibkr_connector.contracts import (
    ContractById,
    ContractError,
    Index,
    Option,
    Stock,
    contract_key,
    describe,
)


def test_constructors_fill_the_fields_tws_expects() -> None:
    spy = Stock("spy")
    assert isinstance(spy, Contract)
    assert (spy.symbol, spy.secType, spy.exchange, spy.currency) == ("SPY", "STK", "SMART", "USD")
    spx = Index("SPX")
    assert (spx.secType, spx.exchange) == ("IND", "CBOE")
    call = Option("SPY", datetime.date(2026, 12, 18), 600, "call", trading_class="SPY")
    assert (call.lastTradeDateOrContractMonth, call.strike, call.right, call.multiplier) == (
        "20261218", 600.0, "C", "100")
    assert Option("SPY", "2026-12-18", 600.5, "P").lastTradeDateOrContractMonth == "20261218"
    assert ContractById(756733).conId == 756733


@pytest.mark.parametrize("build", [
    lambda: Stock(""),
    lambda: Stock("SPY\u00e9"),
    lambda: Option("SPY", "20261318", 600, "C"),
    lambda: Option("SPY", "next friday", 600, "C"),
    lambda: Option("SPY", "20261218", 0, "C"),
    lambda: Option("SPY", "20261218", float("nan"), "C"),
    lambda: Option("SPY", "20261218", 600, "X"),
    lambda: Option("SPY", "20261218", True, "C"),
    lambda: ContractById(0),
    lambda: ContractById("756733"),
])
def test_bad_input_is_a_contract_error(build: object) -> None:
    with pytest.raises(ContractError):
        build()  # type: ignore[operator]


def test_a_contract_is_known_by_its_con_id_once_it_has_one() -> None:
    plain = Contract()
    plain.conId = 756733
    assert contract_key(ContractById(756733)) == contract_key(plain) == ("conid", 756733)
    assert contract_key(Stock("SPY")) == contract_key(Stock("spy"))
    assert contract_key(Stock("SPY")) != contract_key(Stock("QQQ"))


def test_describe_names_an_option_briefly() -> None:
    assert describe(Option("SPY", "20261218", 600, "C")) == "SPY 20261218 600C"
    assert describe(Stock("AAPL")) == "AAPL STK"
