"""Server -> client messages of the simulated TWS, encoded as the ``ibapi`` decoder reads them.

The writing half of the simulator's codec (``_codec`` parses, this module writes), kept
apart like h11's ``_readers``/``_writers``. Every function returns one whole frame. The
field orders and version gates are those of ``ibapi/decoder.py`` 10.50, which the tests
check by feeding these frames to the unmodified ``ibapi`` ``Decoder``:

* ``ERR_MSG`` carries a leading version field only below 194 (``MIN_SERVER_VER_ERROR_TIME``)
  and an error time (ms) from 194; the advanced-reject JSON from 166; from 153 the text is
  read with ``unicode-escape``, so it is written that way.
* ``CURRENT_TIME_IN_MILLIS`` exists from 197 and has no version field.
* Messages the decoder maps straight onto an ``EWrapper`` method (``NEXT_VALID_ID``,
  ``MANAGED_ACCTS``, ``CURRENT_TIME``) must carry exactly one version field followed by one
  field per argument, or the decoder silently drops them.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from ibkr_connector.simulator._codec import frame
from ibkr_connector.simulator._market import Instrument

__all__ = [
    "DEFAULT_ERROR_TEXT",
    "ContractDetailsExtras",
    "contract_data",
    "contract_data_end",
    "market_data_type",
    "sec_def_opt_params",
    "sec_def_opt_params_end",
    "tick_by_tick_bid_ask",
    "tick_by_tick_last",
    "tick_by_tick_mid_point",
    "tick_generic",
    "tick_option_computation",
    "tick_string",
    "FARM_NOTICES",
    "current_time",
    "current_time_in_millis",
    "error",
    "managed_accounts",
    "next_valid_id",
    "tick_price",
    "tick_req_params",
    "tick_size",
    "tick_snapshot_end",
]

# Incoming (server -> client) message ids, from ``ibapi.message.IN``.
TICK_PRICE = 1
TICK_SIZE = 2
ERR_MSG = 4
NEXT_VALID_ID = 9
CONTRACT_DATA = 10
MANAGED_ACCTS = 15
TICK_OPTION_COMPUTATION = 21
TICK_GENERIC = 45
TICK_STRING = 46
CURRENT_TIME = 49
CONTRACT_DATA_END = 52
TICK_SNAPSHOT_END = 57
MARKET_DATA_TYPE = 58
SECURITY_DEFINITION_OPTION_PARAMETER = 75
SECURITY_DEFINITION_OPTION_PARAMETER_END = 76
TICK_REQ_PARAMS = 81
TICK_BY_TICK = 99
CURRENT_TIME_IN_MILLIS = 109

# Version gates from ``ibapi.server_versions``.
MIN_VER_ENCODE_MSG_ASCII7 = 153
MIN_VER_PRICE_BASED_VOLATILITY = 156
MIN_VER_SIZE_RULES = 164
MIN_VER_LAST_TRADE_DATE = 182
MIN_VER_INELIGIBILITY_REASONS = 186
MIN_VER_ADVANCED_ORDER_REJECT = 166
MIN_VER_ERROR_TIME = 194
MIN_VER_CURRENT_TIME_IN_MILLIS = 197

#: What a freshly connected client is told about IB's data farms: information, not errors.
FARM_NOTICES: tuple[tuple[int, str], ...] = (
    (2104, "Market data farm connection is OK:usfarm"),
    (2106, "HMDS data farm connection is OK:ushmds"),
    (2158, "Sec-def data farm connection is OK:secdefnj"),
)

#: TWS's wording for the codes the simulator sends (IB's API message-code table).
# REAL-TWS: error texts are TWS's wording (clients may match them; fidelity compares codes only)
DEFAULT_ERROR_TEXT: dict[int, str] = {
    100: "Max rate of messages per second has been exceeded",
    101: "Max number of tickers has been reached.",
    200: "No security definition has been found for the request",
    300: "Can't find EId with tickerId:",
    320: "Server error when reading an API client request.",
    322: "Error processing request. Duplicate ticker id",
    326: "Unable to connect as the client id is already in use. Retry with a unique client id.",
    354: "Requested market data is not subscribed. Check API status by selecting the Account "
         "menu then under Management choose Market Data Subscription Manager and/or "
         "availability of delayed data.",
    502: "Couldn't connect to TWS.",
    504: "Not connected",
    1100: "Connectivity between IB and Trader Workstation has been lost.",
    1101: "Connectivity between IB and Trader Workstation has been restored - data lost.",
    1102: "Connectivity between IB and Trader Workstation has been restored - data maintained.",
    2103: "Market data farm connection is broken:usfarm",
    2104: "Market data farm connection is OK:usfarm",
    2105: "HMDS data farm connection is broken:ushmds",
    2106: "HMDS data farm connection is OK:ushmds",
    2110: "Connectivity between Trader Workstation and server is broken. "
          "It will be restored automatically.",
    2157: "Sec-def data farm connection is broken:secdefnj",
    2158: "Sec-def data farm connection is OK:secdefnj",
    10090: "Part of requested market data is not subscribed. Subscription-independent ticks "
           "are still active.Delayed market data is available.",
    10167: "Requested market data is not subscribed. Displaying delayed market data.",
    10168: "Requested market data is not subscribed. Delayed market data is not enabled.",
    10189: "Failed to request tick-by-tick data.Invalid Real-time Query:"
           "Tick-by-tick data is not available for this contract.",
    10190: "Max number of tick-by-tick requests has been reached.",
}


def _text(value: str, server_version: int) -> str:
    # From 153 the decoder reads the text with "unicode-escape": write it the same way so
    # backslashes and non-ASCII characters arrive unchanged.
    if server_version >= MIN_VER_ENCODE_MSG_ASCII7:
        return value.encode("unicode_escape").decode("ascii")
    return value


def error(server_version: int, req_id: int, code: int, message: str, *,
          time_ms: int, advanced_order_reject_json: str = "") -> bytes:
    """``ERR_MSG``: errors, warnings and notices alike (``EWrapper.error``)."""
    fields: list[object] = [ERR_MSG]
    if server_version < MIN_VER_ERROR_TIME:
        fields.append(2)
    fields += [req_id, code, _text(message, server_version)]
    if server_version >= MIN_VER_ADVANCED_ORDER_REJECT:
        fields.append(advanced_order_reject_json.encode("unicode_escape").decode("ascii"))
    if server_version >= MIN_VER_ERROR_TIME:
        fields.append(time_ms)
    return frame(fields)


def next_valid_id(order_id: int) -> bytes:
    return frame((NEXT_VALID_ID, 1, order_id))


def managed_accounts(accounts: Iterable[str]) -> bytes:
    return frame((MANAGED_ACCTS, 1, ",".join(accounts)))


def current_time(seconds: int) -> bytes:
    return frame((CURRENT_TIME, 1, seconds))


def current_time_in_millis(millis: int) -> bytes:
    return frame((CURRENT_TIME_IN_MILLIS, millis))


def _number(value: float) -> str:
    # Integral values as integers ("100", not "100.0"), like TWS writes sizes.
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def tick_price(req_id: int, tick_type: int, price: float, size: float = 0,
               attr_mask: int = 0) -> bytes:
    """``TICK_PRICE`` (version 6); for bid/ask/last the client also reports the size."""
    return frame((TICK_PRICE, 6, req_id, tick_type, repr(float(price)), _number(size),
                  attr_mask))


def tick_size(req_id: int, tick_type: int, size: float) -> bytes:
    return frame((TICK_SIZE, 6, req_id, tick_type, _number(size)))


def tick_req_params(req_id: int, min_tick: float, bbo_exchange: str,
                    snapshot_permissions: int) -> bytes:
    """``TICK_REQ_PARAMS``: TWS's first answer to every ``reqMktData``."""
    return frame((TICK_REQ_PARAMS, req_id, repr(float(min_tick)), bbo_exchange,
                  snapshot_permissions))


def tick_snapshot_end(req_id: int) -> bytes:
    return frame((TICK_SNAPSHOT_END, 1, req_id))


def tick_generic(req_id: int, tick_type: int, value: float) -> bytes:
    return frame((TICK_GENERIC, 6, req_id, tick_type, _number(value)))


def tick_string(req_id: int, tick_type: int, value: str) -> bytes:
    return frame((TICK_STRING, 6, req_id, tick_type, value))


def market_data_type(req_id: int, data_type: int) -> bytes:
    """``MARKET_DATA_TYPE``: which kind of data (1 live ... 4 delayed-frozen) a ticker gets."""
    return frame((MARKET_DATA_TYPE, 1, req_id, data_type))


def tick_option_computation(server_version: int, req_id: int, tick_type: int, *,
                            implied_vol: float, delta: float, opt_price: float,
                            pv_dividend: float, gamma: float, vega: float, theta: float,
                            und_price: float, price_based: bool = True) -> bytes:
    """``TICK_OPTION_COMPUTATION``: no version field from 156, where the tick attribute
    (1 price-based, 0 return-based) follows the tick type. "Not computed" is -1 for
    implied vol, option price, PV dividend and underlying price, -2 for the greeks."""
    fields: list[object] = [TICK_OPTION_COMPUTATION]
    if server_version < MIN_VER_PRICE_BASED_VOLATILITY:
        fields.append(6)
    fields += [req_id, tick_type]
    if server_version >= MIN_VER_PRICE_BASED_VOLATILITY:
        fields.append(int(price_based))
    fields += [repr(float(v)) for v in (implied_vol, delta, opt_price, pv_dividend, gamma,
                                         vega, theta, und_price)]
    return frame(fields)


@attrs.frozen
class ContractDetailsExtras:
    """The parts of a ``CONTRACT_DATA`` answer that are not in ``Instrument``."""

    last_trade_time: str = ""
    time_zone: str = "US/Eastern"
    trading_hours: str = ""
    liquid_hours: str = ""
    order_types: str = "ACTIVETIM,AD,ADJUST,ALERT,ALLOC,LMT,MKT,STP,STPLMT,TRAIL"
    under_symbol: str = ""
    under_sec_type: str = ""
    market_rule_ids: str = ""
    stock_type: str = ""


def contract_data(server_version: int, req_id: int, inst: Instrument,
                  extras: ContractDetailsExtras) -> bytes:
    """``CONTRACT_DATA`` as ``Decoder.processContractDataMsg`` reads it: a version field
    and mdSizeMultiplier below 164; lastTradeDate from 182; ineligibility reasons
    from 186. The multiplier is empty for stocks and indexes, as TWS sends it."""
    old = server_version < MIN_VER_SIZE_RULES
    fields: list[object] = [CONTRACT_DATA, *([8] if old else []), req_id, inst.symbol,
                            inst.sec_type]
    expiry = f"{inst.expiry} {extras.last_trade_time} {extras.time_zone}" if (
        inst.expiry and extras.last_trade_time) else inst.expiry
    fields.append(expiry)
    if server_version >= MIN_VER_LAST_TRADE_DATE:
        fields.append(inst.expiry)
    fields += [repr(float(inst.strike)), inst.right, inst.exchange, inst.currency,
               inst.local_symbol, inst.trading_class, inst.trading_class, inst.con_id,
               repr(float(inst.min_tick))]
    if old:
        fields.append(1)  # mdSizeMultiplier, obsolete
    fields += [str(inst.multiplier) if inst.sec_type == "OPT" else "", extras.order_types,
               ",".join(inst.valid_exchanges), 1, inst.underlying_con_id,
               inst.long_name.encode("unicode_escape").decode("ascii"), inst.primary_exchange,
               inst.expiry[:6], "", "", "", extras.time_zone, extras.trading_hours,
               extras.liquid_hours, "", "", 0,  # evRule, evMultiplier, no secIds
               1, extras.under_symbol, extras.under_sec_type, extras.market_rule_ids,
               inst.expiry, extras.stock_type]
    if server_version == 163:
        fields.append("0.0001")  # sizeMinTick, that version only
    if not old:
        fields += ["1", "1", "1" if inst.sec_type == "OPT" else "100"]
    if server_version >= MIN_VER_INELIGIBILITY_REASONS:
        fields.append(0)
    return frame(fields)


def contract_data_end(req_id: int) -> bytes:
    return frame((CONTRACT_DATA_END, 1, req_id))


def sec_def_opt_params(req_id: int, exchange: str, underlying_con_id: int,
                       trading_class: str, multiplier: int, expiries: Iterable[str],
                       strikes: Iterable[float]) -> bytes:
    expiry_list, strike_list = list(expiries), [repr(float(s)) for s in strikes]
    return frame((SECURITY_DEFINITION_OPTION_PARAMETER, req_id, exchange, underlying_con_id,
                  trading_class, multiplier, len(expiry_list), *expiry_list,
                  len(strike_list), *strike_list))


def sec_def_opt_params_end(req_id: int) -> bytes:
    return frame((SECURITY_DEFINITION_OPTION_PARAMETER_END, req_id))


def tick_by_tick_last(req_id: int, all_last: bool, time: int, price: float, size: float,
                      exchange: str, mask: int = 0, special_conditions: str = "") -> bytes:
    return frame((TICK_BY_TICK, req_id, 2 if all_last else 1, time, repr(float(price)),
                  _number(size), mask, exchange, special_conditions))


def tick_by_tick_bid_ask(req_id: int, time: int, bid: float, ask: float, bid_size: float,
                         ask_size: float, mask: int = 0) -> bytes:
    return frame((TICK_BY_TICK, req_id, 3, time, repr(float(bid)), repr(float(ask)),
                  _number(bid_size), _number(ask_size), mask))


def tick_by_tick_mid_point(req_id: int, time: int, mid_point: float) -> bytes:
    return frame((TICK_BY_TICK, req_id, 4, time, repr(float(mid_point))))
