"""What an order call names, resolved into what goes on the wire: the qualified contract
(or the BAG of a spread), the order checked against the instrument's tick, and the legs.

The orders actor calls `resolve` before it takes an order id, so every refusal here
(`InvalidOrder`, `UnknownContract`) costs nothing at TWS. Contract details come from the
market-data actor (cached there), through its mailbox like any other actor's request.
"""

from __future__ import annotations

import attrs
from ibapi.contract import Contract
from ibapi.order import Order

from ..supervisor import Address
from ..trade import Leg
from .market_data_messages import ContractInfo, GetContractDetails, UnknownContract
from .orders_messages import Place, PlaceVerticalSpread
from .vertical_spread import build_spread, check_order, leg_queries

__all__ = ["Resolved", "qualify", "resolve"]


@attrs.frozen
class Resolved:
    """An order ready for an id: ``tick`` is the price increment its prices must keep
    (None when unknown: a BAG given as is)."""

    contract: Contract = attrs.field(eq=False)
    order: Order = attrs.field(eq=False)
    legs: tuple[Leg, ...] = ()
    tick: float | None = None


async def qualify(market_data: Address, contract: Contract, timeout: float  # noqa: ASYNC109
                  ) -> ContractInfo:
    """The one instrument ``contract`` names, or `UnknownContract` (none, or several)."""
    infos = await market_data.call(GetContractDetails(contract), timeout=timeout)
    assert isinstance(infos, tuple)
    if len(infos) != 1:
        raise UnknownContract(f"the contract is ambiguous: {len(infos)} instruments match")
    info = infos[0]
    assert isinstance(info, ContractInfo)
    return info


async def resolve(market_data: Address, target: Place | PlaceVerticalSpread,
                  timeout: float) -> Resolved:  # noqa: ASYNC109
    """Check and resolve ``target``; raises before anything is sent."""
    if isinstance(target, PlaceVerticalSpread):
        long_query, short_query = leg_queries(target)
        long = await qualify(market_data, long_query, timeout)
        short = await qualify(market_data, short_query, timeout)
        contract, order, legs = build_spread(target, long, short)
        return Resolved(contract, order, legs, min(long.min_tick, short.min_tick))
    if target.contract.secType == "BAG":
        check_order(target.order)
        return Resolved(target.contract, target.order)
    info = await qualify(market_data, target.contract, timeout)
    check_order(target.order, info.min_tick)
    return Resolved(info.contract, target.order, (), info.min_tick)
