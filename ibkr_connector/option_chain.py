"""`OptionChain`: an underlying's listed options, and live tickers for a window of them.

Other libraries build a chain from ``reqSecDefOptParams`` alone and then ask TWS for
every expiry x strike pair it lists, which is the *union* of strikes over all expiries:
many pairs do not exist, and each one costs an error 200 (a storm of them, paced). Here
the strikes of an expiry are the ones TWS's contract details list for that expiry, so a
chain never names a contract that does not exist, and asking it for one is an
`UnknownContract` before anything reaches the wire.

The selection (which expiries, which strikes around spot) is plain functions, tested
without I/O; the runtime does the asking (`Runtime.subscribe_option_chain`).
"""

from __future__ import annotations

import bisect
import datetime
from collections.abc import Iterable, Mapping, Sequence

import attrs

from .actors.market_data_messages import ChainDefinition, ContractInfo, UnknownContract
from .contracts import normalise_expiry, normalise_right
from .ticker import Ticker

__all__ = ["OptionChain", "select_expiries", "strikes_around"]

OptionKey = tuple[str, float, str]
"""(expiry ``YYYYMMDD``, strike, right ``C``/``P``)."""


def select_expiries(expirations: Iterable[str], count: int | None = None,
                    wanted: Sequence[str] | None = None,
                    today: datetime.date | None = None) -> list[str]:
    """The expiries to show: ``wanted`` ones (each must be listed and not expired), or
    the next ``count`` listed ones from today on."""
    today_text = (today or datetime.date.today()).strftime("%Y%m%d")
    listed = sorted(set(expirations))
    if wanted is not None:
        chosen = []
        for expiry in wanted:
            expiry = normalise_expiry(expiry)
            if expiry < today_text:
                raise UnknownContract(f"expiry {expiry} has passed")
            if expiry not in listed:
                raise UnknownContract(f"expiry {expiry} is not listed for this underlying")
            chosen.append(expiry)
        return sorted(set(chosen))
    upcoming = [e for e in listed if e >= today_text]
    return upcoming if count is None else upcoming[:count]


def strikes_around(strikes: Sequence[float], spot: float, each_side: int) -> list[float]:
    """Up to ``each_side`` strikes below spot and as many at or above it, ascending."""
    ordered = sorted(strikes)
    split = bisect.bisect_left(ordered, spot)
    return ordered[max(0, split - each_side):split + each_side]


@attrs.define(eq=False)
class OptionChain:
    """The chain of one underlying: what is listed, and the tickers subscribed for it.

    ``strikes_by_expiry`` holds the strikes that really exist for each *selected* expiry
    (resolved from contract details); ``expirations`` every listed expiry. ``tickers``
    holds the live option tickers of the window, by (expiry, strike, right).
    """

    underlying: ContractInfo
    underlying_ticker: Ticker
    definitions: tuple[ChainDefinition, ...]
    expirations: tuple[str, ...]
    strikes_by_expiry: Mapping[str, tuple[float, ...]]
    contracts: Mapping[OptionKey, ContractInfo]
    tickers: dict[OptionKey, Ticker] = attrs.Factory(dict)

    @property
    def multiplier(self) -> str:
        return self.definitions[0].multiplier if self.definitions else "100"

    @property
    def trading_classes(self) -> tuple[str, ...]:
        return tuple(sorted({d.trading_class for d in self.definitions}))

    def strikes(self, expiry: str) -> tuple[float, ...]:
        """The strikes listed for ``expiry`` (one of the selected expiries)."""
        expiry = normalise_expiry(expiry)
        try:
            return self.strikes_by_expiry[expiry]
        except KeyError:
            raise UnknownContract(
                f"expiry {expiry} is not among this chain's selected expiries "
                f"{sorted(self.strikes_by_expiry)}") from None

    def contract(self, expiry: str, strike: float, right: str) -> ContractInfo:
        """The listed option, or `UnknownContract` if TWS lists no such contract."""
        key = (normalise_expiry(expiry), float(strike), normalise_right(right))
        info = self.contracts.get(key)
        if info is None:
            self.strikes(key[0])  # a clearer error for an unknown expiry
            raise UnknownContract(
                f"{self.underlying.symbol} {key[0]} {key[1]:g}{key[2]} is not listed "
                "(not every strike exists for every expiry)")
        return info

    def ticker(self, expiry: str, strike: float, right: str) -> Ticker:
        """The live ticker of a listed option in the subscribed window."""
        info = self.contract(expiry, strike, right)
        key = (info.expiry, float(strike), info.right)
        try:
            return self.tickers[key]
        except KeyError:
            raise UnknownContract(
                f"{self.underlying.symbol} {key[0]} {key[1]:g}{key[2]} is listed but "
                "outside the subscribed window") from None
