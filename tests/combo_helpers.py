"""Test helpers for combo (BAG) contracts, shared by the simulator's and the runtime's
combo market-data tests."""

from __future__ import annotations

from ibapi.contract import ComboLeg, Contract


def bag(legs: list[tuple[int, int, str]], symbol: str = "SPY") -> Contract:
    """A SMART-routed BAG of ``(conId, ratio, action)`` legs, built as a user would."""
    contract = Contract()
    contract.symbol, contract.secType = symbol, "BAG"
    contract.exchange, contract.currency = "SMART", "USD"
    contract.comboLegs = []
    for con_id, ratio, action in legs:
        leg = ComboLeg()
        leg.conId, leg.ratio, leg.action, leg.exchange = con_id, ratio, action, "SMART"
        contract.comboLegs.append(leg)
    return contract
