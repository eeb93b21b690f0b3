"""ibkr-connector: a supervised, Trio-based runtime for Interactive Brokers TWS / IB Gateway.

Everything an embedding program needs is importable from here, the way trio re-exports
its public names from private modules: the runtime and its configuration, contracts,
live `Ticker` and `Trade` objects, the events on the bus, the typed requests, and the
errors, every one of which derives from `IBKRError`. The TWS wire events are also
available as a module, ``ibkr_connector.events`` (``events.Position`` is TWS's position
message; ``Position`` here is the order book's).

The subpackages (`protocol`, `supervisor`, `actors`, `simulator`) hold the machinery; see
docs/architecture.md.
"""

from ._errors import (
    ActorCrashed,
    ActorNotRunning,
    CallTimeout,
    ChildAlreadyPresent,
    ChildRunning,
    IBKRError,
    MailboxFull,
    SupervisorError,
    SupervisorEscalation,
    UnknownChild,
)
from ._settings import ConfigError
from .actors.audit import AuditRecord, AuditTrailError, read_audit_records
from .actors.bus import SubscriberOverflow, Subscription
from .actors.connection_messages import (
    ClientIdInUse,
    ConnectionEstablished,
    ConnectionLost,
    ConnectionRecovered,
    ConnectionState,
    ConnectionStatus,
    ErrorOccurred,
    LinkDown,
    LinkLost,
    LinkRestored,
    OrderIdsOutOfSync,
)
from .actors.limiter import (
    DeliveryUnknown,
    LimiterStats,
    PacingRejected,
    RequestAbandoned,
    RequestFailed,
    UnauditedOrder,
)
from .actors.market_data_messages import (
    ChainDefinition,
    ContractInfo,
    MarketDataStats,
    SubscriptionFailed,
    SubscriptionRestored,
    TickByTickKind,
    TickerStale,
    TickerUpdated,
    UnknownContract,
)
from .actors.market_data_state import MarketDataTimeout
from .actors.market_lines import LineBudgetExhausted
from .actors.order_reconciliation import ReconciliationInterrupted
from .actors.orders_messages import (
    CancelRefused,
    FillReceived,
    InvalidOrder,
    NotOurOrder,
    OrderCancelled,
    OrderError,
    OrderFilled,
    OrderImpact,
    OrderNotModifiable,
    OrderReconciled,
    OrderRejected,
    OrderStats,
    OrderStatusChanged,
    Position,
)
from .actors.watchdog import ReconnectScheduled, RestoreRequested, WatchdogAlarm, WatchdogStatus
from .allow_list import HostNotAllowed
from .black_scholes import ImpliedVolError
from .config import IBKRConfig, MarketDataConfig, WatchdogConfig, load_config
from .contracts import ContractById, ContractError, Index, Option, Stock, contract_key
from .option_chain import OptionChain
from .protocol import events
from .protocol.client import ConnectFailed, ConnectTimeout, NotConnected, RequestRefused, SendFailed
from .protocol.codes import Category, CodeInfo, classify
from .protocol.events import (
    ContractDetails,
    ExecDetails,
    MarketDataType,
    OpenOrder,
    OrderStatus,
    TickByTickAllLast,
    TickByTickBidAsk,
    TickByTickMidPoint,
    TickGeneric,
    TickOptionComputation,
    TickPrice,
    TickSize,
    TickString,
    TwsError,
    TwsEvent,
)
from .protocol.requests import (
    CancelMktData,
    CancelOrder,
    CancelTickByTickData,
    PlaceOrder,
    Priority,
    ReqAllOpenOrders,
    ReqContractDetails,
    ReqCurrentTime,
    ReqExecutions,
    ReqIds,
    ReqMarketDataType,
    ReqMktData,
    ReqOpenOrders,
    ReqPositions,
    ReqSecDefOptParams,
    ReqTickByTickData,
    Request,
    RequestError,
)
from .runtime import Runtime, RuntimeStatus, open_runtime
from .spread_greeks import SpreadGreeks, SpreadGreeksUnavailable, vertical_greeks
from .ticker import Greeks, MarketDataKind, Ticker, TickerState
from .trade import Fill, OrderNotFilled, RejectedOrder, Trade, TradeStatus

__all__ = [
    # the runtime and its configuration
    "IBKRConfig", "MarketDataConfig", "Runtime", "RuntimeStatus", "WatchdogConfig",
    "load_config", "open_runtime",
    # contracts, market data, orders: the objects a strategy holds
    "ChainDefinition", "ContractById", "ContractInfo", "Fill", "Greeks", "Index",
    "MarketDataKind", "Option", "OptionChain", "OrderImpact", "Position", "SpreadGreeks",
    "Stock", "TickByTickKind", "Ticker", "TickerState", "Trade", "TradeStatus",
    "contract_key", "vertical_greeks",
    # events on the bus
    "ConnectionEstablished", "ConnectionLost", "ConnectionRecovered", "ConnectionState",
    "ConnectionStatus", "ErrorOccurred", "FillReceived", "LinkLost", "LinkRestored",
    "OrderCancelled", "OrderFilled", "OrderIdsOutOfSync", "OrderReconciled", "OrderRejected",
    "OrderStatusChanged", "ReconnectScheduled", "RequestFailed", "RestoreRequested",
    "SubscriptionFailed", "SubscriptionRestored", "TickerStale", "TickerUpdated",
    "WatchdogAlarm", "Subscription", "AuditRecord", "read_audit_records",
    # TWS's own events (all of them: ``ibkr_connector.events``)
    "events", "ContractDetails", "ExecDetails", "MarketDataType", "OpenOrder", "OrderStatus",
    "TickByTickAllLast", "TickByTickBidAsk", "TickByTickMidPoint", "TickGeneric",
    "TickOptionComputation", "TickPrice", "TickSize", "TickString", "TwsError", "TwsEvent",
    # typed requests
    "CancelMktData", "CancelOrder", "CancelTickByTickData", "PlaceOrder", "Priority",
    "ReqAllOpenOrders", "ReqContractDetails", "ReqCurrentTime", "ReqExecutions", "ReqIds",
    "ReqMarketDataType", "ReqMktData", "ReqOpenOrders", "ReqPositions", "ReqSecDefOptParams",
    "ReqTickByTickData", "Request",
    # statistics
    "LimiterStats", "MarketDataStats", "OrderStats", "WatchdogStatus",
    # TWS codes
    "Category", "CodeInfo", "classify",
    # errors: every one derives from IBKRError
    "IBKRError", "ActorCrashed", "ActorNotRunning", "AuditTrailError", "CallTimeout",
    "CancelRefused", "ChildAlreadyPresent", "ChildRunning", "ClientIdInUse", "ConfigError",
    "ConnectFailed", "ConnectTimeout", "HostNotAllowed",
    "ContractError", "DeliveryUnknown", "ImpliedVolError", "InvalidOrder", "LineBudgetExhausted",
    "LinkDown", "MailboxFull", "MarketDataTimeout", "NotConnected", "NotOurOrder",
    "OrderError", "OrderNotFilled", "OrderNotModifiable", "ReconciliationInterrupted",
    "PacingRejected", "RejectedOrder", "RequestAbandoned",
    "RequestError", "RequestRefused", "SendFailed", "SpreadGreeksUnavailable",
    "SubscriberOverflow", "SupervisorError", "SupervisorEscalation", "UnauditedOrder",
    "UnknownChild", "UnknownContract",
]
__version__ = "0.1.0"
