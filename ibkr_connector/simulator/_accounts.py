"""The simulated accounts: cash, positions, and the values TWS reports for them.

Sans-IO, part of "IB's side" of the simulator: the ledger lives in the order desk, which
lives in ``SimulatorState``, so positions survive client reconnects and simulated TWS
restarts. Every execution is applied here once; ``positions`` and the account values are
derived from the ledger and the simulated market's marks, never kept twice.

The margin model is deliberately simple and documented rather than IB's: initial margin
is 25 % of a stock position's value, the whole market value of a short option, nothing for
a long option (paid in full); maintenance margin is 80 % of initial. It gives whatIf and
the account values consistent, non-trivial numbers to test against.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal

import attrs

from ibkr_connector.simulator._order_types import (
    AccountDownloadEndMsg,
    AccountSummaryEndMsg,
    AccountSummaryMsg,
    AccountTimeMsg,
    AccountUpdateMultiEndMsg,
    AccountUpdateMultiMsg,
    AccountValueMsg,
    MarginImpact,
    Message,
    PortfolioMsg,
)
from ibkr_connector.simulator._requests import ContractSpec

__all__ = [
    "ACCOUNT_VALUE_KEYS",
    "Change",
    "Holding",
    "Ledger",
    "account_multi_messages",
    "account_summary_messages",
    "account_update_messages",
    "margin_requirement",
    "portfolio_message",
    "what_if_impact",
]

_STOCK_MARGIN_RATE = 0.25
_SHORT_OPTION_MARGIN_RATE = 1.0
_MAINTENANCE_SHARE = 0.8
_BUYING_POWER_LEVERAGE = 4.0

#: The keys ``reqAccountUpdates`` and ``reqAccountSummary`` report (in this order).
ACCOUNT_VALUE_KEYS: tuple[str, ...] = (
    "NetLiquidation", "TotalCashValue", "SettledCash", "GrossPositionValue",
    "EquityWithLoanValue", "InitMarginReq", "MaintMarginReq", "FullInitMarginReq",
    "FullMaintMarginReq", "AvailableFunds", "ExcessLiquidity", "BuyingPower",
    "UnrealizedPnL", "RealizedPnL",
)

Marks = Callable[[int], float | None]


@attrs.define
class Holding:
    """One position: signed quantity and average cost per unit (multiplier and opening
    commission included, as TWS reports it: 735.65 for an option bought at 7.35)."""

    account: str
    contract: ContractSpec
    multiplier: float
    quantity: Decimal = Decimal(0)
    avg_cost: float = 0.0
    realized: float = 0.0


def margin_requirement(sec_type: str, quantity: float, mark: float, multiplier: float) -> float:
    """Initial margin of ``quantity`` (signed) at ``mark`` under the simple model above."""
    value = abs(quantity) * mark * multiplier
    if sec_type == "OPT":
        return value * _SHORT_OPTION_MARGIN_RATE if quantity < 0 else 0.0
    return value * _STOCK_MARGIN_RATE


class Ledger:
    """Cash and positions per account, with realized P&L. Not thread-safe."""

    def __init__(self, accounts: Iterable[str], initial_cash: float) -> None:
        self.accounts = tuple(accounts)
        self._cash = dict.fromkeys(self.accounts, float(initial_cash))
        self._holdings: dict[tuple[str, int], Holding] = {}

    def cash(self, account: str) -> float:
        return self._cash.get(account, 0.0)

    def holdings(self, account: str | None = None) -> list[Holding]:
        """Every position ever opened (flat ones included, as TWS lists them for the day)."""
        return [h for (acct, _), h in sorted(self._holdings.items())
                if account is None or acct == account]

    def holding(self, account: str, con_id: int) -> Holding | None:
        return self._holdings.get((account, con_id))

    def apply(self, account: str, contract: ContractSpec, multiplier: float, bought: bool,
              shares: Decimal, price: float, commission: float) -> tuple[Holding, float | None]:
        """Book one execution; returns the holding and the P&L it realized (None if it
        only opened or added to the position)."""
        key = (account, contract.con_id)
        holding = self._holdings.get(key)
        if holding is None:
            holding = self._holdings[key] = Holding(account, contract, multiplier)
        signed = shares if bought else -shares
        unit_cost = price * multiplier
        self._cash[account] = self.cash(account) - float(signed) * unit_cost - commission
        old = holding.quantity
        realized: float | None = None
        if old == 0 or (old > 0) == (signed > 0):
            total = old + signed
            # IB's average cost includes the commission paid to open.
            holding.avg_cost = (float(abs(old)) * holding.avg_cost
                                + float(shares) * unit_cost + commission) / float(abs(total))
        else:
            closed = min(abs(old), shares)
            direction = 1.0 if old > 0 else -1.0
            realized = direction * float(closed) * (unit_cost - holding.avg_cost) - commission
            holding.realized += realized
            if shares > abs(old):
                holding.avg_cost = unit_cost  # flipped: the rest opened at this price
        holding.quantity = old + signed
        if holding.quantity == 0:
            holding.avg_cost = 0.0
        return holding, realized

    def values(self, account: str, marks: Marks) -> dict[str, float]:
        """The account values TWS reports (``ACCOUNT_VALUE_KEYS``), marked to ``marks``."""
        cash = self.cash(account)
        gross = market_value = unrealized = realized = init = 0.0
        for h in self.holdings(account):
            realized += h.realized
            if h.quantity == 0:
                continue
            mark = self._mark(h, marks)
            value = float(h.quantity) * mark * h.multiplier
            market_value += value
            gross += abs(value)
            unrealized += value - float(h.quantity) * h.avg_cost
            init += margin_requirement(h.contract.sec_type, float(h.quantity), mark,
                                       h.multiplier)
        net = cash + market_value
        maint = init * _MAINTENANCE_SHARE
        return {
            "NetLiquidation": net, "TotalCashValue": cash, "SettledCash": cash,
            "GrossPositionValue": gross, "EquityWithLoanValue": net, "InitMarginReq": init,
            "MaintMarginReq": maint, "FullInitMarginReq": init, "FullMaintMarginReq": maint,
            "AvailableFunds": net - init, "ExcessLiquidity": net - maint,
            "BuyingPower": max(net - init, 0.0) * _BUYING_POWER_LEVERAGE,
            "UnrealizedPnL": unrealized, "RealizedPnL": realized,
        }

    @staticmethod
    def _mark(holding: Holding, marks: Marks) -> float:
        mark = marks(holding.contract.con_id)
        if mark is None:  # no quote: carry it at cost
            return holding.avg_cost / holding.multiplier if holding.multiplier else 0.0
        return mark


def _money(value: float) -> str:
    return f"{value:.2f}"


def portfolio_message(holding: Holding, marks: Marks) -> PortfolioMsg:
    """``updatePortfolio`` for one holding, marked now."""
    mark = Ledger._mark(holding, marks)
    value = float(holding.quantity) * mark * holding.multiplier
    unrealized = value - float(holding.quantity) * holding.avg_cost
    contract = holding.contract
    return PortfolioMsg(contract, holding.quantity, mark, value, holding.avg_cost, unrealized,
                        holding.realized, holding.account)


def account_update_messages(ledger: Ledger, account: str, marks: Marks,
                            hhmm: str) -> list[Message]:
    """What ``reqAccountUpdates(True, account)`` answers: every value, every open
    position, the update time, and ``accountDownloadEnd``."""
    values = ledger.values(account, marks)
    out: list[Message] = [AccountValueMsg("AccountCode", account, "", account)]
    out += [AccountValueMsg(key, _money(values[key]), "USD", account)
            for key in ACCOUNT_VALUE_KEYS]
    out += [portfolio_message(h, marks) for h in ledger.holdings(account) if h.quantity]
    return [*out, AccountTimeMsg(hhmm), AccountDownloadEndMsg(account)]


def account_summary_messages(ledger: Ledger, req_id: int, tags: Iterable[str],
                             marks: Marks) -> list[Message]:
    """``reqAccountSummary``: the requested tags this simulator knows, per account."""
    wanted = [tag for tag in tags if tag in ACCOUNT_VALUE_KEYS or tag == "AccountType"]
    out: list[Message] = []
    for account in ledger.accounts:
        values = ledger.values(account, marks)
        for tag in wanted:
            if tag == "AccountType":
                out.append(AccountSummaryMsg(req_id, account, tag, "INDIVIDUAL", ""))
            else:
                out.append(AccountSummaryMsg(req_id, account, tag, _money(values[tag]), "USD"))
    return [*out, AccountSummaryEndMsg(req_id)]


def account_multi_messages(ledger: Ledger, req_id: int, account: str, model_code: str,
                           marks: Marks) -> list[Message]:
    """``reqAccountUpdatesMulti`` (ib_async asks at start-up): values, then the end."""
    accounts = [account] if account in ledger.accounts else list(ledger.accounts)
    out: list[Message] = []
    for acct in accounts:
        values = ledger.values(acct, marks)
        out += [AccountUpdateMultiMsg(req_id, acct, model_code, key, _money(values[key]), "USD")
                for key in ACCOUNT_VALUE_KEYS]
    return [*out, AccountUpdateMultiEndMsg(req_id)]


@attrs.frozen
class Change:
    """What an order would do to one position: ``quantity`` signed, with its commission."""

    con_id: int
    sec_type: str
    multiplier: float
    quantity: float
    commission: float


def what_if_impact(ledger: Ledger, account: str, changes: Iterable[Change],
                   marks: Marks) -> MarginImpact:
    """The whatIf answer: margins before, the change the order makes, and after."""
    values = ledger.values(account, marks)
    delta = commission = 0.0
    for change in changes:
        held = ledger.holding(account, change.con_id)
        before = float(held.quantity) if held else 0.0
        mark = marks(change.con_id) or 0.0
        delta += (margin_requirement(change.sec_type, before + change.quantity, mark,
                                     change.multiplier)
                  - margin_requirement(change.sec_type, before, mark, change.multiplier))
        commission += change.commission
    init, maint = values["InitMarginReq"], values["MaintMarginReq"]
    equity = values["EquityWithLoanValue"]
    maint_delta = delta * _MAINTENANCE_SHARE
    return MarginImpact(init, maint, equity, delta, maint_delta, -commission, init + delta,
                        maint + maint_delta, equity - commission, commission, commission,
                        commission)
