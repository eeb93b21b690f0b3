"""The contract cache: hits within the TTL, misses after, and a file that starts warm."""

from __future__ import annotations

import stat
from pathlib import Path

from ibapi.contract import Contract, ContractDetails

from ibkr_connector.actors.contract_cache import ContractCache, contract_info
from ibkr_connector.actors.market_data_messages import ChainDefinition
from ibkr_connector.contracts import ContractById, Stock


def _details(con_id: int = 756733) -> ContractDetails:
    details = ContractDetails()
    contract = Contract()
    contract.conId, contract.symbol, contract.secType = con_id, "SPY", "STK"
    contract.exchange, contract.currency, contract.primaryExchange = "SMART", "USD", "ARCA"
    details.contract = contract
    details.minTick, details.longName = 0.01, "SPDR S&P 500"
    details.validExchanges, details.orderTypes = "SMART,ARCA", "LMT,MKT"
    return details


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_hit_within_the_ttl_and_a_miss_after() -> None:
    clock = Clock()
    cache = ContractCache(ttl=60.0, clock=clock)
    info = contract_info(_details())
    assert cache.details(Stock("SPY")) is None
    cache.store_details(Stock("SPY"), (info,))
    clock.now += 59
    assert cache.details(Stock("SPY")) == (info,)
    assert cache.details(ContractById(756733)) == (info,)  # found by conId as well
    clock.now += 2
    assert cache.details(Stock("SPY")) is None
    assert (cache.hits, cache.misses) == (2, 2)


def test_a_cache_file_starts_the_next_run_warm_and_is_private(tmp_path: Path) -> None:
    path = tmp_path / "state" / "contracts.json"
    clock = Clock()
    first = ContractCache(ttl=3600.0, path=path, clock=clock)
    info = contract_info(_details())
    chain = ChainDefinition(756733, "SMART", "SPY", "100", ("20261218",), (595.0, 600.0))
    first.store_details(Stock("SPY"), (info,))
    first.store_chain(756733, (chain,))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    second = ContractCache(ttl=3600.0, path=path, clock=clock)
    found = second.details(Stock("SPY"))
    assert found is not None and found[0] == info
    assert found[0].contract.conId == 756733
    assert second.chain(756733) == (chain,)


def test_an_unreadable_cache_file_means_a_cold_cache(tmp_path: Path) -> None:
    path = tmp_path / "contracts.json"
    path.write_text("{not json")
    cache = ContractCache(ttl=3600.0, path=path)
    assert cache.details(Stock("SPY")) is None
