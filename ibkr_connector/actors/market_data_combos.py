"""Combo (``BAG``) lines of the market-data actor: checked, keyed by their legs.

TWS refuses contract details for a BAG (321 "'BAG' isn't supported for contract data
request") but streams its quote, the net of its legs. So a BAG is not resolved like every
other contract: it is accepted as given once every leg names a conId, a ratio of at least
one and BUY or SELL (anything else is a `ContractError` before the wire), and its line is
keyed by its legs, in any order: the same legs are one line and one `Ticker`, and
`unsubscribe` finds it from any BAG with those legs.
"""

from __future__ import annotations

import copy
from collections.abc import Hashable

from ibapi.contract import ComboLeg, Contract

from ..contracts import ContractError
from .market_data_messages import ContractInfo

__all__ = ["combo_info", "combo_key", "is_combo"]


def is_combo(contract: Contract) -> bool:
    return str(contract.secType).upper() == "BAG"


def _legs(contract: Contract) -> tuple[tuple[int, int, str, str], ...]:
    """(conId, ratio, action, exchange) of each leg, sorted; a `ContractError` for a BAG
    TWS would refuse or could not quote."""
    legs = contract.comboLegs or []
    if not legs:
        raise ContractError("a BAG needs combo legs (TWS answers 321 without them)")
    out = []
    for leg in legs:
        if not isinstance(leg, ComboLeg):
            raise ContractError(f"a combo leg must be an ibapi ComboLeg, got {leg!r}")
        con_id, ratio = leg.conId, leg.ratio
        if isinstance(con_id, bool) or not isinstance(con_id, int) or con_id <= 0:
            raise ContractError("every combo leg needs the conId of its instrument "
                                "(qualify the leg first)")
        if isinstance(ratio, bool) or not isinstance(ratio, int) or ratio < 1:
            raise ContractError(f"a combo leg's ratio must be a whole number >= 1, got {ratio!r}")
        if leg.action not in ("BUY", "SELL"):
            raise ContractError(f"a combo leg's action must be BUY or SELL, got {leg.action!r}")
        out.append((con_id, ratio, leg.action, str(leg.exchange or "")))
    return tuple(sorted(out))


def combo_key(contract: Contract) -> Hashable:
    """The line key of a BAG: its legs (a `ContractError` if TWS could not quote it)."""
    return ("bag", _legs(contract))


def combo_info(contract: Contract) -> ContractInfo:
    """What the line holds for a BAG in place of contract details: a copy of the contract
    (a caller changing its own afterwards changes nothing here), conId 0 as TWS has none
    to give. Raises `ContractError` as `combo_key` does."""
    _legs(contract)
    own = copy.deepcopy(contract)
    return ContractInfo(
        contract=own, con_id=0, symbol=own.symbol, sec_type="BAG", expiry="", strike=None,
        right="", multiplier="", exchange=own.exchange, primary_exchange="",
        currency=own.currency, local_symbol="", trading_class="", min_tick=0.0,
        under_con_id=0, long_name="", time_zone="", valid_exchanges=(own.exchange,),
        order_types=())
