"""The values the simulated TWS's order engine hands out, and the messages it emits.

The engine (``_orders``) never writes bytes: it answers with ``Notice`` values, each a
typed message for one client id, and the session encodes them for that connection's
server version (``_order_messages``). Keeping the messages typed means one engine serves
clients at 157 and 200 alike, and the engine is tested with plain values.
"""

from __future__ import annotations

from decimal import Decimal

import attrs

from ibkr_connector.simulator._order_wire import PlaceOrder
from ibkr_connector.simulator._requests import ContractSpec

__all__ = [
    "AccountDownloadEndMsg",
    "AccountSummaryEndMsg",
    "AccountSummaryMsg",
    "AccountTimeMsg",
    "AccountUpdateMultiEndMsg",
    "AccountUpdateMultiMsg",
    "AccountValueMsg",
    "CommissionMsg",
    "CompletedOrderMsg",
    "CompletedOrdersEndMsg",
    "DONE_STATES",
    "ErrorMsg",
    "ExecDetailsEndMsg",
    "ExecDetailsMsg",
    "Fill",
    "MarginImpact",
    "Message",
    "NextValidIdMsg",
    "Notice",
    "OpenOrderEndMsg",
    "OpenOrderMsg",
    "OrderStatusMsg",
    "OrderView",
    "PortfolioMsg",
    "PositionEndMsg",
    "PositionMsg",
]

#: Statuses after which an order never changes again (ib_async's ``DoneStates``).
DONE_STATES = frozenset({"Filled", "Cancelled", "ApiCancelled", "Inactive"})


@attrs.frozen
class OrderView:
    """One order as TWS reports it at one moment. ``contract`` is the resolved contract
    (TWS fills in conId, local symbol, trading class); ``terms`` what the client sent,
    with the latest modification applied."""

    client_id: int
    order_id: int
    perm_id: int
    account: str
    contract: ContractSpec
    terms: PlaceOrder
    status: str
    filled: Decimal
    remaining: Decimal
    avg_fill_price: float = 0.0
    last_fill_price: float = 0.0
    completed_time: str = ""
    completed_status: str = ""


@attrs.frozen
class MarginImpact:
    """A whatIf answer: margin before, change and after, and the commission estimate."""

    init_before: float
    maint_before: float
    equity_before: float
    init_change: float
    maint_change: float
    equity_change: float
    init_after: float
    maint_after: float
    equity_after: float
    commission: float
    min_commission: float
    max_commission: float
    currency: str = "USD"


@attrs.frozen
class Fill:
    """One execution (``ibapi.execution.Execution``) with its contract."""

    exec_id: str
    order_id: int
    client_id: int
    perm_id: int
    contract: ContractSpec
    time: str
    account: str
    side: str  # BOT / SLD
    shares: Decimal
    price: float
    cum_qty: Decimal
    avg_price: float
    order_ref: str = ""
    commission: float = 0.0
    currency: str = "USD"
    realized_pnl: float | None = None
    timestamp: float = 0.0  # simulated Unix time, for reqExecutions' time filter


@attrs.frozen
class OpenOrderMsg:
    order: OrderView
    what_if: MarginImpact | None = None


@attrs.frozen
class OrderStatusMsg:
    order: OrderView


@attrs.frozen
class OpenOrderEndMsg:
    pass


@attrs.frozen
class CompletedOrderMsg:
    order: OrderView


@attrs.frozen
class CompletedOrdersEndMsg:
    pass


@attrs.frozen
class ExecDetailsMsg:
    req_id: int
    fill: Fill


@attrs.frozen
class ExecDetailsEndMsg:
    req_id: int


@attrs.frozen
class CommissionMsg:
    fill: Fill


@attrs.frozen
class ErrorMsg:
    req_id: int
    code: int
    text: str


@attrs.frozen
class NextValidIdMsg:
    order_id: int


@attrs.frozen
class PositionMsg:
    account: str
    contract: ContractSpec
    position: Decimal
    avg_cost: float


@attrs.frozen
class PositionEndMsg:
    pass


@attrs.frozen
class AccountValueMsg:
    key: str
    value: str
    currency: str
    account: str


@attrs.frozen
class PortfolioMsg:
    contract: ContractSpec
    position: Decimal
    market_price: float
    market_value: float
    avg_cost: float
    unrealized_pnl: float
    realized_pnl: float
    account: str


@attrs.frozen
class AccountTimeMsg:
    hhmm: str


@attrs.frozen
class AccountDownloadEndMsg:
    account: str


@attrs.frozen
class AccountSummaryMsg:
    req_id: int
    account: str
    tag: str
    value: str
    currency: str


@attrs.frozen
class AccountSummaryEndMsg:
    req_id: int


@attrs.frozen
class AccountUpdateMultiMsg:
    req_id: int
    account: str
    model_code: str
    key: str
    value: str
    currency: str


@attrs.frozen
class AccountUpdateMultiEndMsg:
    req_id: int


Message = (OpenOrderMsg | OrderStatusMsg | OpenOrderEndMsg | CompletedOrderMsg
           | CompletedOrdersEndMsg | ExecDetailsMsg | ExecDetailsEndMsg | CommissionMsg
           | ErrorMsg | NextValidIdMsg | PositionMsg | PositionEndMsg | AccountValueMsg
           | PortfolioMsg | AccountTimeMsg | AccountDownloadEndMsg | AccountSummaryMsg
           | AccountSummaryEndMsg | AccountUpdateMultiMsg | AccountUpdateMultiEndMsg)


@attrs.frozen
class Notice:
    """``message`` for the connection of ``client_id``."""

    client_id: int
    message: Message
