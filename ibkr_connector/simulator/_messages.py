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

from ibkr_connector.simulator._codec import frame

__all__ = [
    "DEFAULT_ERROR_TEXT",
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
MANAGED_ACCTS = 15
CURRENT_TIME = 49
TICK_SNAPSHOT_END = 57
TICK_REQ_PARAMS = 81
CURRENT_TIME_IN_MILLIS = 109

# Version gates from ``ibapi.server_versions``.
MIN_VER_ENCODE_MSG_ASCII7 = 153
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
DEFAULT_ERROR_TEXT: dict[int, str] = {
    100: "Max rate of messages per second has been exceeded",
    101: "Max number of tickers has been reached.",
    300: "Can't find EId with tickerId:",
    320: "Server error when reading an API client request.",
    322: "Error processing request. Duplicate ticker id",
    326: "Unable to connect as the client id is already in use. Retry with a unique client id.",
    354: "Requested market data is not subscribed.",
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
