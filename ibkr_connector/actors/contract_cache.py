"""Contract details and option-chain definitions, cached: a hit sends nothing to TWS.

Contract details and ``reqSecDefOptParams`` answers change rarely (a new expiry a week, a
new strike now and then) but are asked for constantly by option code: every chain, every
spread leg. IB paces them too. So the market-data actor keeps what TWS said for ``ttl``
seconds of wall-clock time, optionally in a JSON file under the state directory so a
restarted service starts warm. Sans-IO apart from that file; the clock is injected.

What is stored is the typed `ContractInfo` / `ChainDefinition`, not ibapi's objects, so the
file is plain JSON (no pickle: nothing in a state file can run code).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

from ibapi.contract import Contract, ContractDetails

from ..contracts import contract_key
from .market_data_messages import ChainDefinition, ContractInfo

__all__ = ["ContractCache", "contract_info"]

log = logging.getLogger(__name__)

_UNSET = 1.7e308


def contract_info(details: ContractDetails) -> ContractInfo:
    """The typed view of one ibapi ContractDetails (its contract routed SMART)."""
    found = details.contract
    contract = Contract()
    for name, value in vars(found).items():
        setattr(contract, name, value)
    contract.comboLegs = []
    if contract.secType in ("STK", "OPT") and not contract.exchange:
        contract.exchange = "SMART"
    strike = found.strike
    return ContractInfo(
        contract=contract,
        con_id=int(found.conId),
        symbol=found.symbol,
        sec_type=found.secType,
        expiry=found.lastTradeDateOrContractMonth,
        strike=None if strike is None or strike >= _UNSET or strike == 0 else float(strike),
        right=found.right,
        multiplier=str(found.multiplier or ""),
        exchange=found.exchange,
        primary_exchange=found.primaryExchange,
        currency=found.currency,
        local_symbol=found.localSymbol,
        trading_class=found.tradingClass,
        min_tick=float(details.minTick or 0.0),
        under_con_id=int(details.underConId or 0),
        long_name=details.longName or "",
        time_zone=details.timeZoneId or "",
        valid_exchanges=tuple(x for x in (details.validExchanges or "").split(",") if x),
        order_types=tuple(x for x in (details.orderTypes or "").split(",") if x),
    )


def _info_to_json(info: ContractInfo) -> dict[str, Any]:
    fields = {a.name: getattr(info, a.name) for a in ContractInfo.__attrs_attrs__
              if a.name != "contract"}
    fields["contract"] = {k: v for k, v in vars(info.contract).items()
                          if isinstance(v, str | int | float | bool)}
    return fields


def _info_from_json(data: dict[str, Any]) -> ContractInfo:
    contract = Contract()
    for name, value in data.pop("contract").items():
        setattr(contract, name, value)
    data["valid_exchanges"] = tuple(data["valid_exchanges"])
    data["order_types"] = tuple(data["order_types"])
    return ContractInfo(contract=contract, **data)


class ContractCache:
    """See the module docstring. Not thread-safe: one actor owns it."""

    def __init__(self, ttl: float, path: Path | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.ttl = ttl
        self.path = path
        self._clock = clock
        self._details: dict[Hashable, tuple[float, tuple[ContractInfo, ...]]] = {}
        self._chains: dict[int, tuple[float, tuple[ChainDefinition, ...]]] = {}
        self.hits = 0
        self.misses = 0
        if path is not None:
            self._load(path)

    def __len__(self) -> int:
        return len(self._details)

    def details(self, contract: Contract) -> tuple[ContractInfo, ...] | None:
        found: tuple[ContractInfo, ...] | None = self._get(self._details, contract_key(contract))
        return found

    def store_details(self, contract: Contract, infos: tuple[ContractInfo, ...]) -> None:
        now = self._clock()
        self._details[contract_key(contract)] = (now, infos)
        for info in infos:  # later requests by conId hit as well
            self._details[("conid", info.con_id)] = (now, (info,))
        self._save()

    def chain(self, underlying_con_id: int) -> tuple[ChainDefinition, ...] | None:
        found: tuple[ChainDefinition, ...] | None = self._get(self._chains, underlying_con_id)
        return found

    def store_chain(self, underlying_con_id: int, chain: tuple[ChainDefinition, ...]) -> None:
        self._chains[underlying_con_id] = (self._clock(), chain)
        self._save()

    def _get(self, table: dict[Any, tuple[float, Any]], key: Hashable) -> Any:
        entry = table.get(key)
        if entry is None or self._clock() - entry[0] > self.ttl:
            self.misses += 1
            if entry is not None:
                del table[key]
            return None
        self.hits += 1
        return entry[1]

    # -- persistence -------------------------------------------------------------------

    def _save(self) -> None:
        if self.path is None:
            return
        data = {
            "details": [[_key_to_json(key), stamp, [_info_to_json(i) for i in infos]]
                        for key, (stamp, infos) in self._details.items()],
            "chains": [[con_id, stamp, [_chain_to_json(c) for c in chain]]
                       for con_id, (stamp, chain) in self._chains.items()],
        }
        tmp = self.path.with_suffix(".tmp")
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                json.dump(data, file)
            os.replace(tmp, self.path)
        except OSError as exc:
            # A cache that cannot be written is only a cold cache next time.
            log.warning("contract cache %s not saved: %s", self.path, exc)

    def _load(self, path: Path) -> None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            for key, stamp, infos in data["details"]:
                self._details[_key_from_json(key)] = (
                    float(stamp), tuple(_info_from_json(i) for i in infos))
            for con_id, stamp, chain in data["chains"]:
                self._chains[int(con_id)] = (
                    float(stamp), tuple(_chain_from_json(c) for c in chain))
        except FileNotFoundError:
            return
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("contract cache %s unreadable, starting cold: %s", path, exc)
            self._details.clear()
            self._chains.clear()


def _key_to_json(key: Hashable) -> list[Any]:
    assert isinstance(key, tuple)
    return list(key)


def _key_from_json(key: list[Any]) -> Hashable:
    return tuple(key)


def _chain_to_json(chain: ChainDefinition) -> dict[str, Any]:
    return {a.name: getattr(chain, a.name) for a in ChainDefinition.__attrs_attrs__}


def _chain_from_json(data: dict[str, Any]) -> ChainDefinition:
    data["expirations"] = tuple(data["expirations"])
    data["strikes"] = tuple(float(s) for s in data["strikes"])
    return ChainDefinition(**data)
