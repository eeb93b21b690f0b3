"""What the simulator knows about client -> server requests (``ibapi.message.OUT``).

Part of the sans-IO session layer: the codec hands the session a message id and its text
fields; this module says which field is the request's own id (TWS quotes it back in error
100 and other request errors) and reads the few requests the simulator acts on. It also
holds what every contract-carrying request shares: the field cursor and one ``ContractSpec``
record with its one reader, so that market data and ``placeOrder`` (``_order_wire``) read a
contract the same way. Positions were taken from ``ibapi/client.py`` 10.50 and are checked
in the tests by encoding every request with the unmodified ``EClient``.
"""

from __future__ import annotations

import enum
from decimal import Decimal, InvalidOperation

import attrs

__all__ = [
    "KNOWN_REQUESTS",
    "ComboLegSpec",
    "ContractDetailsRequest",
    "ContractSpec",
    "FieldCursor",
    "MarketDataRequest",
    "Out",
    "RequestFieldError",
    "SecDefOptParamsRequest",
    "TickByTickRequest",
    "parse_req_contract_details",
    "parse_req_mkt_data",
    "parse_req_sec_def_opt_params",
    "parse_req_tick_by_tick",
    "read_contract",
    "read_market_data_leg",
    "request_id_index",
    "request_id_of",
]


class Out(enum.IntEnum):
    """The client -> server ids the session acts on (values from ``ibapi.message.OUT``)."""

    REQ_MKT_DATA = 1
    CANCEL_MKT_DATA = 2
    PLACE_ORDER = 3
    CANCEL_ORDER = 4
    REQ_IDS = 8
    REQ_CONTRACT_DATA = 9
    REQ_CURRENT_TIME = 49
    REQ_MARKET_DATA_TYPE = 59
    START_API = 71
    REQ_SEC_DEF_OPT_PARAMS = 78
    REQ_TICK_BY_TICK_DATA = 97
    CANCEL_TICK_BY_TICK_DATA = 98
    REQ_CURRENT_TIME_IN_MILLIS = 105


#: Every id ``ibapi`` 10.50 can send (``OUT``): anything else is an unknown message.
KNOWN_REQUESTS: frozenset[int] = frozenset(
    [*range(1, 26), *range(49, 52), *range(54, 60), *range(61, 110)]
)

#: ``MIN_SERVER_VER_CME_TAGGING_FIELDS``: CANCEL_ORDER drops its version field.
_MIN_VER_CANCEL_ORDER_NO_VERSION = 192
#: ``MIN_SERVER_VER_SCANNER_GENERIC_OPTS``: REQ_SCANNER_SUBSCRIPTION drops its version.
_MIN_VER_SCANNER_NO_VERSION = 143
#: ``MIN_SERVER_VER_REPLACE_FA_END``: REPLACE_FA gains a trailing request id.
_MIN_VER_REPLACE_FA_REQ_ID = 157

# Index (among the fields after the message id) of the request's own id: 1 after a version
# field, 0 when the request has none.
_REQUEST_ID_INDEX: dict[int, int] = {
    1: 1, 2: 1, 3: 0, 7: 1, 9: 1, 10: 1, 11: 1, 20: 0, 21: 1, 23: 1, 25: 1,
    50: 1, 51: 1, 54: 1, 55: 1, 56: 1, 57: 1, 62: 1, 63: 1, 67: 1, 68: 1, 69: 1, 70: 1,
    74: 1, 75: 1, 76: 1, 77: 1, 78: 0, 79: 0, 81: 0, 83: 0, 84: 0, 86: 0, 87: 0, 88: 0,
    89: 0, 90: 0, 92: 0, 93: 0, 94: 0, 95: 0, 96: 0, 97: 0, 98: 0, 100: 0, 101: 0,
    102: 0, 103: 0, 104: 0,
}


class RequestFieldError(ValueError):
    """A known request whose fields cannot be read (TWS answers 320 and carries on)."""


def _int(fields: tuple[str, ...], index: int, what: str) -> int:
    try:
        return int(fields[index])
    except (IndexError, ValueError):
        raise RequestFieldError(f"{what} missing or not an integer") from None


def request_id_index(msg_id: int, server_version: int) -> int | None:
    """Where the request's own id is among the fields after the message id, or None if
    the request has none (replay uses it to rewrite recorded ids)."""
    if msg_id == Out.CANCEL_ORDER:
        return 0 if server_version >= _MIN_VER_CANCEL_ORDER_NO_VERSION else 1
    if msg_id == 22:  # REQ_SCANNER_SUBSCRIPTION
        return 0 if server_version >= _MIN_VER_SCANNER_NO_VERSION else 1
    if msg_id == 19:  # REPLACE_FA: version, faDataType, cxml, reqId
        return 3 if server_version >= _MIN_VER_REPLACE_FA_REQ_ID else None
    return _REQUEST_ID_INDEX.get(msg_id)


def request_id_of(msg_id: int, fields: tuple[str, ...], server_version: int) -> int:
    """The request's own id (ticker, order or request id), or -1 if it has none or it
    cannot be read. Never raises: it is used to answer malformed traffic too."""
    index = request_id_index(msg_id, server_version)
    if index is None:
        return -1
    try:
        return _int(fields, index, "request id")
    except RequestFieldError:
        return -1


#: What clients send for "unset" values (see the protocol brief, section 1.2): ``""`` from
#: ib_async and ibapi's "handle empty" fields, the literal sentinels from plain ``make_field``.
_UNSET = frozenset({"", "2147483647", "9223372036854775807", "-9223372036854775808",
                    "1.7976931348623157E308", "1.7976931348623157e+308"})


class FieldCursor:
    """A cursor over one request's fields, so that requests with optional blocks can be
    read in order; running out or a malformed number is a ``RequestFieldError`` naming
    the request (the text TWS's error 320 carries)."""

    def __init__(self, fields: tuple[str, ...], what: str, start: int = 0) -> None:
        self._fields = fields
        self._index = start
        self._what = what

    def text(self) -> str:
        try:
            value = self._fields[self._index]
        except IndexError:
            raise RequestFieldError(f"{self._what} is too short") from None
        self._index += 1
        return value

    def skip(self, count: int = 1) -> None:
        for _ in range(count):
            self.text()

    def integer(self, default: int = 0) -> int:
        raw = self.text()
        if raw in _UNSET:
            return default
        try:
            return int(float(raw)) if "." in raw or "e" in raw.lower() else int(raw)
        except ValueError:
            raise RequestFieldError(f"{self._what}: not an integer: {raw!r}") from None

    def number(self) -> float | None:
        raw = self.text()
        if raw in _UNSET:
            return None
        if raw == "Infinity":
            return float("inf")
        try:
            return float(raw)
        except ValueError:
            raise RequestFieldError(f"{self._what}: not a number: {raw!r}") from None

    def decimal(self) -> Decimal:
        raw = self.text()
        if raw in _UNSET:
            return Decimal(0)
        try:
            return Decimal(raw)
        except InvalidOperation:
            raise RequestFieldError(f"{self._what}: not a decimal: {raw!r}") from None

    def flag(self) -> bool:
        return self.text() not in ("", "0")

    def left(self) -> int:
        return len(self._fields) - self._index


@attrs.frozen
class ComboLegSpec:
    """One leg of a BAG as the client sent it (``ibapi.contract.ComboLeg``)."""

    con_id: int
    ratio: int
    action: str
    exchange: str
    open_close: int = 0


@attrs.frozen
class ContractSpec:
    """A contract as the client wrote it, in every request that carries one (market data,
    contract details, tick-by-tick, placeOrder). ``con_id`` and ``strike`` 0 and empty
    texts mean "not given"; ``combo_legs`` are a BAG's legs, as placeOrder (8 fields per
    leg) or reqMktData (4 fields per leg) wrote them."""

    con_id: int
    symbol: str
    sec_type: str
    expiry: str = ""
    strike: float = 0.0
    right: str = ""
    multiplier: str = ""
    exchange: str = ""
    primary_exchange: str = ""
    currency: str = ""
    local_symbol: str = ""
    trading_class: str = ""
    combo_legs: tuple[ComboLegSpec, ...] = ()


def read_contract(it: FieldCursor) -> ContractSpec:
    """The twelve contract fields every one of these requests writes in ``EClient``'s
    order, the same at server versions 157-200: conId, symbol, secType, expiry, strike,
    right, multiplier, exchange, primaryExchange, currency, localSymbol, tradingClass."""
    con_id = it.integer()
    symbol, sec_type, expiry = it.text(), it.text(), it.text()
    strike = it.number() or 0.0
    right, multiplier, exchange, primary = it.text(), it.text(), it.text(), it.text()
    currency, local_symbol, trading_class = it.text(), it.text(), it.text()
    return ContractSpec(con_id, symbol, sec_type, expiry, strike, right,
                        "" if multiplier in _UNSET else multiplier, exchange, primary,
                        currency, local_symbol, trading_class)


def read_market_data_leg(it: FieldCursor) -> ComboLegSpec:
    """One BAG leg of ``reqMktData``: conId, ratio, action, exchange (only these four;
    placeOrder writes eight)."""
    con_id, ratio = it.integer(), it.integer()
    return ComboLegSpec(con_id, ratio, it.text(), it.text())


@attrs.frozen
class MarketDataRequest:
    """The parts of ``reqMktData`` the simulator uses."""

    req_id: int
    contract: ContractSpec
    generic_ticks: str
    snapshot: bool

    @property
    def symbol(self) -> str:
        return self.contract.symbol

    @property
    def sec_type(self) -> str:
        return self.contract.sec_type


def parse_req_mkt_data(fields: tuple[str, ...]) -> MarketDataRequest:
    """Read ``REQ_MKT_DATA`` as ``EClient.reqMktData`` writes it (server version >= 70):
    version, reqId, conId, symbol, secType, expiry, strike, right, multiplier, exchange,
    primaryExchange, currency, localSymbol, tradingClass, [BAG: legCount + 4 per leg, read
    into ``contract.combo_legs``],
    deltaNeutral flag [+ conId, delta, price], genericTickList, snapshot, ..."""
    req_id = _int(fields, 1, "reqMktData ticker id")
    if len(fields) < 14:
        raise RequestFieldError("reqMktData is too short")
    contract = read_contract(FieldCursor(fields, "reqMktData", 2))
    index = 14
    if contract.sec_type == "BAG":
        it = FieldCursor(fields, "reqMktData", index)
        count = it.integer()
        legs = tuple(read_market_data_leg(it) for _ in range(max(count, 0)))
        contract = attrs.evolve(contract, combo_legs=legs)
        index += 1 + 4 * len(legs)
    if index >= len(fields):
        raise RequestFieldError("reqMktData is missing its delta-neutral flag")
    index += 4 if fields[index] == "1" else 1
    if index + 1 >= len(fields):
        raise RequestFieldError("reqMktData is missing generic ticks or snapshot")
    snapshot = fields[index + 1]
    if snapshot not in ("0", "1"):
        raise RequestFieldError(f"reqMktData snapshot flag is not 0/1: {snapshot!r}")
    return MarketDataRequest(req_id=req_id, contract=contract, generic_ticks=fields[index],
                             snapshot=snapshot == "1")


@attrs.frozen
class ContractDetailsRequest:
    req_id: int
    contract: ContractSpec
    include_expired: bool


def parse_req_contract_details(fields: tuple[str, ...]) -> ContractDetailsRequest:
    """``REQ_CONTRACT_DATA`` (version 8): version, reqId, the contract, includeExpired,
    secIdType, secId[, issuerId from 176]."""
    req_id = _int(fields, 1, "reqContractDetails request id")
    contract = read_contract(FieldCursor(fields, "reqContractDetails", 2))
    return ContractDetailsRequest(req_id, contract, fields[14:15] == ("1",))


@attrs.frozen
class SecDefOptParamsRequest:
    req_id: int
    symbol: str
    fut_fop_exchange: str
    sec_type: str
    con_id: int


def parse_req_sec_def_opt_params(fields: tuple[str, ...]) -> SecDefOptParamsRequest:
    """``REQ_SEC_DEF_OPT_PARAMS`` (no version): reqId, underlyingSymbol, futFopExchange,
    underlyingSecType, underlyingConId."""
    req_id = _int(fields, 0, "reqSecDefOptParams request id")
    if len(fields) < 5:
        raise RequestFieldError("reqSecDefOptParams is too short")
    con_id = 0 if fields[4] in _UNSET else _int(fields, 4, "underlying conId")
    return SecDefOptParamsRequest(req_id, fields[1], fields[2], fields[3], con_id)


@attrs.frozen
class TickByTickRequest:
    req_id: int
    contract: ContractSpec
    kind: str  # "Last", "AllLast", "BidAsk" or "MidPoint"
    number_of_ticks: int
    ignore_size: bool


def parse_req_tick_by_tick(fields: tuple[str, ...]) -> TickByTickRequest:
    """``REQ_TICK_BY_TICK_DATA`` (no version): reqId, the contract, tickType,
    numberOfTicks, ignoreSize."""
    req_id = _int(fields, 0, "reqTickByTickData request id")
    contract = read_contract(FieldCursor(fields, "reqTickByTickData", 1))
    if len(fields) < 16:
        raise RequestFieldError("reqTickByTickData is too short")
    return TickByTickRequest(req_id, contract, fields[13],
                             _int(fields, 14, "numberOfTicks"), fields[15] == "1")
