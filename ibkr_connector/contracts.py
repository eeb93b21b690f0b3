"""Contract constructors: the few lines a trader types to name an instrument.

Every class here *is* an ibapi ``Contract`` (a subclass that only fills fields), so it goes
wherever ibapi's does, and an ibapi ``Contract`` built by hand is accepted everywhere these
are. Arguments are checked at construction: a misspelt right, an expiry that is not a date,
a strike of zero or a non-ASCII symbol is a `ContractError` in the caller's stack, never a
TWS error 200 seconds later.

`contract_key` is a contract's identity for the runtime (one market-data line per key,
however many subscribers): the conId when TWS has given one, else the fields that name it.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Hashable

from ibapi.contract import Contract, ContractDetails

from ._errors import IBKRError

__all__ = [
    "ContractError",
    "ContractById",
    "Index",
    "Option",
    "Stock",
    "contract_key",
    "describe",
    "from_details",
]

_RIGHTS = {"C": "C", "CALL": "C", "P": "P", "PUT": "P"}


class ContractError(IBKRError, ValueError):
    """A contract cannot name an instrument as given; nothing was sent."""


def _text(name: str, value: object, *, required: bool = True) -> str:
    if not isinstance(value, str):
        raise ContractError(f"{name} must be a string, got {value!r}")
    value = value.strip()
    if required and not value:
        raise ContractError(f"{name} must not be empty")
    if not (value.isascii() and value.isprintable()):
        raise ContractError(f"{name} must be printable ASCII, got {value!r}")
    return value


def normalise_right(right: object) -> str:
    """'C', 'CALL', 'c' -> 'C'; 'P', 'PUT' -> 'P'; anything else is a ContractError."""
    if isinstance(right, str) and right.strip().upper() in _RIGHTS:
        return _RIGHTS[right.strip().upper()]
    raise ContractError(f"right must be C, P, CALL or PUT, got {right!r}")


def normalise_expiry(expiry: object) -> str:
    """A date, 'YYYYMMDD' or 'YYYY-MM-DD' -> 'YYYYMMDD' (TWS's form)."""
    if isinstance(expiry, datetime.datetime):
        expiry = expiry.date()
    if isinstance(expiry, datetime.date):
        return expiry.strftime("%Y%m%d")
    if isinstance(expiry, str):
        text = expiry.strip().replace("-", "")
        try:
            datetime.datetime.strptime(text, "%Y%m%d")
        except ValueError:
            pass
        else:
            if len(text) == 8:
                return text
    raise ContractError(f"expiry must be a date or 'YYYYMMDD', got {expiry!r}")


def _strike(strike: object) -> float:
    if isinstance(strike, bool) or not isinstance(strike, int | float):
        raise ContractError(f"strike must be a number, got {strike!r}")
    value = float(strike)
    if not math.isfinite(value) or value <= 0:
        raise ContractError(f"strike must be a finite number > 0, got {strike!r}")
    return value


class Stock(Contract):  # type: ignore[misc]
    """A stock or ETF, routed SMART in USD unless told otherwise."""

    def __init__(self, symbol: str, exchange: str = "SMART", currency: str = "USD", *,
                 primary_exchange: str = "") -> None:
        super().__init__()
        self.symbol = _text("symbol", symbol).upper()
        self.secType = "STK"
        self.exchange = _text("exchange", exchange)
        self.currency = _text("currency", currency)
        self.primaryExchange = _text("primary_exchange", primary_exchange, required=False)


class Index(Contract):  # type: ignore[misc]
    """An index (SPX, NDX, VIX...): quotes and option underlyings, never traded itself."""

    def __init__(self, symbol: str, exchange: str = "CBOE", currency: str = "USD") -> None:
        super().__init__()
        self.symbol = _text("symbol", symbol).upper()
        self.secType = "IND"
        self.exchange = _text("exchange", exchange)
        self.currency = _text("currency", currency)


class Option(Contract):  # type: ignore[misc]
    """A listed equity or index option: symbol, expiry, strike and right name it.

    ``trading_class`` tells apart classes sharing a symbol (SPX monthlies vs SPXW weeklies).
    """

    def __init__(self, symbol: str, expiry: str | datetime.date, strike: float, right: str,
                 exchange: str = "SMART", currency: str = "USD", *, multiplier: str = "100",
                 trading_class: str = "") -> None:
        super().__init__()
        self.symbol = _text("symbol", symbol).upper()
        self.secType = "OPT"
        self.lastTradeDateOrContractMonth = normalise_expiry(expiry)
        self.strike = _strike(strike)
        self.right = normalise_right(right)
        self.exchange = _text("exchange", exchange)
        self.currency = _text("currency", currency)
        self.multiplier = _text("multiplier", multiplier, required=False)
        self.tradingClass = _text("trading_class", trading_class, required=False)


class ContractById(Contract):  # type: ignore[misc]
    """Any instrument by its IB conId (what contract details return): the shortest name."""

    def __init__(self, con_id: int, exchange: str = "SMART") -> None:
        super().__init__()
        if isinstance(con_id, bool) or not isinstance(con_id, int) or con_id <= 0:
            raise ContractError(f"con_id must be an int > 0, got {con_id!r}")
        self.conId = con_id
        self.exchange = _text("exchange", exchange)


def _strike_key(contract: Contract) -> float | None:
    strike = contract.strike
    return None if strike is None or strike >= 1.7e308 or strike == 0 else float(strike)


def contract_key(contract: Contract) -> Hashable:
    """The runtime's identity of a contract: ``("conid", n)`` once TWS has given a conId,
    else the naming fields (upper-cased where TWS ignores case)."""
    if contract.conId:
        return ("conid", int(contract.conId))
    return (
        "spec", contract.symbol.upper(), contract.secType.upper(),
        contract.lastTradeDateOrContractMonth, _strike_key(contract), contract.right.upper(),
        contract.multiplier, contract.exchange.upper(), contract.currency.upper(),
        contract.tradingClass, contract.localSymbol,
    )


def describe(contract: Contract) -> str:
    """A short human name for logs and errors (no account data lives in a contract)."""
    if contract.secType == "OPT":
        strike = _strike_key(contract)
        return (f"{contract.symbol} {contract.lastTradeDateOrContractMonth} "
                f"{strike:g}{contract.right}" if strike is not None
                else f"{contract.symbol} {contract.lastTradeDateOrContractMonth} {contract.right}")
    name = contract.symbol or contract.localSymbol or f"conId {contract.conId}"
    return f"{name} {contract.secType}".strip()


def from_details(details: ContractDetails) -> Contract:
    """The fully qualified contract of a contract-details answer (conId and all), routed
    SMART: the form every later request about it should use."""
    found = details.contract
    contract = Contract()
    for name, value in vars(found).items():
        setattr(contract, name, value)
    contract.comboLegs = []
    if contract.secType in ("STK", "OPT"):
        contract.exchange = "SMART"
    return contract
