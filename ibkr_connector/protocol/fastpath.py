"""The fast path: the hot market-data frames decoded straight into their events.

A tick is the one message TWS sends by the hundred thousand (an option chain's snapshot, a
busy open). Through ibapi it costs a ``Decoder`` dispatch, an iterator, a ``decode`` call
per field, an attribute object and one or two EWrapper callbacks, which then build our
event. Here the six hot messages -- TICK_PRICE, TICK_SIZE, TICK_STRING, TICK_GENERIC,
TICK_OPTION_COMPUTATION and TICK_BY_TICK -- go from the frame's fields to the frozen event
in one function each. Everything else, and every hot frame that is not in the plain
well-formed shape, is left to ibapi's own ``Decoder`` (the caller falls back when a
decoder here returns None or raises), so ibapi stays the authority on the wire: an odd
frame produces exactly what ibapi produces, its errors included.

The functions mirror ibapi 10.50's ``processTick*Msg`` and ``interpretWithSignature``
field by field (``decode``: an empty number is 0, "Infinity" is infinite, the size
sentinels are ``UNSET_DECIMAL``) and the bridge's conversions after it (unset greeks
become None). `tests/test_fastpath.py` proves it: generated frames at server versions
157-200, well-formed or not, give identical events through both paths.

Valid from server version 156 (every field gate these messages have is below it) through
200; above that TWS speaks protobuf and ibapi decodes it all.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import attrs
from ibapi.const import UNSET_DECIMAL
from ibapi.server_versions import MIN_SERVER_VER_PRICE_BASED_VOLATILITY, MIN_SERVER_VER_PROTOBUF
from ibapi.ticktype import TickTypeEnum

from . import events as ev

__all__ = [
    "SIZE_TICK_OF_PRICE", "FastDecoder", "fast_decoders", "opt_delta", "opt_value",
    "slot_setters",
]

FastDecoder = Callable[[list[bytes]], "ev.TwsEvent | None"]
"""Takes a frame's fields (``payload.split(b"\\0")``: the message id first, and the
unterminated remainder last, which ibapi ignores); returns the event, or None for
"let ibapi decode this one". May raise on a malformed frame: the caller falls back then
too, and ibapi raises what it raises."""

_UNSET_DOUBLE = 1.7976931348623157e308

#: The size tick type ibapi reports after a TICK_PRICE of each tick type (bid, ask, last,
#: and their delayed variants); other price ticks carry no size.
SIZE_TICK_OF_PRICE: dict[int, int] = {1: 0, 2: 3, 4: 5, 66: 69, 67: 70, 68: 71}


def opt_value(value: float | None) -> float | None:
    """ibapi marks absent greeks with UNSET_DOUBLE (and some with -1/-2); keep None instead."""
    if value is None or value == _UNSET_DOUBLE or value == -1.0 or value == -2.0:  # noqa: PLR1714
        return None
    return float(value)


def opt_delta(value: float | None) -> float | None:
    """Greeks may legitimately be -1 (delta of a deep ITM put), so only UNSET means absent."""
    if value is None or value == _UNSET_DOUBLE:
        return None
    return float(value)


_Setter = Callable[[object, Any], None]


def slot_setters(cls: Any, *names: str) -> tuple[_Setter, ...]:
    """The slot setters of *cls*, checked against its attrs fields so they cannot drift.

    A frozen attrs class sets each field through ``object.__setattr__`` in its generated
    ``__init__``; for the events that arrive by the hundred thousand, writing the slots
    through their descriptors on a bare instance is a third cheaper and gives an identical,
    equally frozen value.
    """
    fields = tuple(field.name for field in attrs.fields(cls))
    if fields != names or "__slots__" not in vars(cls):
        raise TypeError(f"{cls.__name__} is not a slotted attrs class with fields {names}")
    return tuple(getattr(cls, name).__set__ for name in names)


# -- field conversions, as ibapi's ``decode`` does them ----------------------------------------

_UNSET_SIZES = frozenset({b"2147483647", b"9223372036854775807", b"1.7976931348623157E308",
                          b"-9223372036854775808"})
_decimals: dict[bytes, Decimal] = {}
_DECIMAL_CACHE = 4096


def _decimal(raw: bytes) -> Decimal:
    """``decode(Decimal, ...)``: sizes repeat, and a Decimal is immutable, so each distinct
    text is parsed once (up to a bound)."""
    value = _decimals.get(raw)
    if value is None:
        value = UNSET_DECIMAL if not raw or raw in _UNSET_SIZES else Decimal(raw.decode())
        if len(_decimals) < _DECIMAL_CACHE:
            _decimals[raw] = value
    return value


def _text(raw: bytes) -> str | None:
    """A field as ``interpretWithSignature`` reads it (unicode-escape) when that equals
    plain ASCII; None (ibapi decides) for anything with escapes or other bytes."""
    if b"\\" in raw or not raw.isascii():
        return None
    return raw.decode("ascii")


# -- the decoders ----------------------------------------------------------------------------

_new = object.__new__
_TickPrice, _TickSize, _TickString, _TickGeneric = (
    ev.TickPrice, ev.TickSize, ev.TickString, ev.TickGeneric
)
_tp0, _tp1, _tp2, _tp3, _tp4, _tp5, _tp6 = slot_setters(
    _TickPrice, "req_id", "tick_type", "price", "can_auto_execute", "past_limit", "pre_open",
    "size",
)
_ts0, _ts1, _ts2 = slot_setters(_TickSize, "req_id", "tick_type", "size")
_tx0, _tx1, _tx2 = slot_setters(_TickString, "req_id", "tick_type", "value")
_tg0, _tg1, _tg2 = slot_setters(_TickGeneric, "req_id", "tick_type", "value")
_sized = SIZE_TICK_OF_PRICE
_NOT_SET = TickTypeEnum.NOT_SET

# attrMask -> (canAutoExecute, pastLimit, preOpen), for the masks TWS sends.
_MASKS = {str(m).encode(): (m & 1 != 0, m & 2 != 0, m & 4 != 0) for m in range(8)}


def _tick_price(f: list[bytes]) -> ev.TwsEvent | None:
    # msgId, version, reqId, tickType, price, size, attrMask (processTickPriceMsg)
    if len(f) < 8:
        return None
    int(f[1] or 0)  # the version: unused, but ibapi parses it
    tick_type = int(f[3] or 0)
    size = _decimal(f[5])  # parsed for every tick type, as ibapi does
    bits = _MASKS.get(f[6])
    if bits is None:
        mask = int(f[6] or 0)
        bits = (mask & 1 != 0, mask & 2 != 0, mask & 4 != 0)
    event = _new(_TickPrice)
    _tp0(event, int(f[2] or 0))
    _tp1(event, tick_type)
    _tp2(event, float(f[4] or 0))
    _tp3(event, bits[0])
    _tp4(event, bits[1])
    _tp5(event, bits[2])
    _tp6(event, size if tick_type in _sized else None)
    return event


def _tick_size(f: list[bytes]) -> ev.TwsEvent | None:
    # msgId, version, reqId, tickType, size; tick type NOT_SET (111 in ibapi 10.50, its
    # enum's last member, not -1) makes no callback
    if len(f) < 6:
        return None
    int(f[1] or 0)
    tick_type = int(f[3] or 0)
    if tick_type == _NOT_SET:
        return None
    event = _new(_TickSize)
    _ts0(event, int(f[2] or 0))
    _ts1(event, tick_type)
    _ts2(event, _decimal(f[4]))
    return event


def _tick_string(f: list[bytes]) -> ev.TwsEvent | None:
    # interpretWithSignature: exactly version, reqId, tickType, value
    if len(f) != 6:
        return None
    value = _text(f[4])
    if value is None:
        return None
    event = _new(_TickString)
    _tx0(event, int(f[2]))
    _tx1(event, int(f[3]))
    _tx2(event, value)
    return event


def _tick_generic(f: list[bytes]) -> ev.TwsEvent | None:
    if len(f) != 6:
        return None
    event = _new(_TickGeneric)
    _tg0(event, int(f[2]))
    _tg1(event, int(f[3]))
    _tg2(event, float(f[4]))
    return event


def _tick_option_computation(f: list[bytes]) -> ev.TwsEvent | None:
    # From server version 156 on: no version field, and every greek is present.
    if len(f) < 13:
        return None
    iv, delta, opt_price, pv_dividend, gamma, vega, theta, und_price = (
        float(raw or 0) for raw in f[4:12]
    )
    return ev.TickOptionComputation(
        int(f[1] or 0), int(f[2] or 0), int(f[3] or 0),
        None if iv < 0 else opt_value(iv),
        None if delta == -2 else opt_delta(delta),
        None if opt_price == -1 else opt_value(opt_price),
        None if pv_dividend == -1 else opt_value(pv_dividend),
        None if gamma == -2 else opt_delta(gamma),
        None if vega == -2 else opt_delta(vega),
        None if theta == -2 else opt_delta(theta),
        None if und_price == -1 else opt_value(und_price),
    )


def _utf8(raw: bytes) -> str:
    return raw.decode("UTF-8", errors="backslashreplace")


def _tick_by_tick(f: list[bytes]) -> ev.TwsEvent | None:
    # reqId, tickType, time, then per tick type (processTickByTickMsg; no version field)
    if len(f) < 5:
        return None
    req_id, tick_type, time = int(f[1] or 0), int(f[2] or 0), int(f[3] or 0)
    if tick_type in (1, 2):
        if len(f) < 10:
            return None
        price, size, mask = float(f[4] or 0), _decimal(f[5]), int(f[6] or 0)
        return ev.TickByTickAllLast(req_id, tick_type, time, price, size, mask & 1 != 0,
                                    mask & 2 != 0, _utf8(f[7]), _utf8(f[8]))
    if tick_type == 3:
        if len(f) < 10:
            return None
        bid, ask = float(f[4] or 0), float(f[5] or 0)
        bid_size, ask_size, mask = _decimal(f[6]), _decimal(f[7]), int(f[8] or 0)
        return ev.TickByTickBidAsk(req_id, time, bid, ask, bid_size, ask_size,
                                   mask & 1 != 0, mask & 2 != 0)
    if tick_type == 4:
        if len(f) < 6:
            return None
        return ev.TickByTickMidPoint(req_id, time, float(f[4] or 0))
    return None  # tick type 0 or unknown: ibapi makes no callback


_DECODERS: dict[bytes, FastDecoder] = {
    b"1": _tick_price,
    b"2": _tick_size,
    b"21": _tick_option_computation,
    b"45": _tick_generic,
    b"46": _tick_string,
    b"99": _tick_by_tick,
}


def fast_decoders(server_version: int) -> dict[bytes, FastDecoder]:
    """The fast decoders by message id (as the frame's first field, bytes) for a session at
    *server_version*; empty where the fast path does not apply (all goes to ibapi)."""
    if MIN_SERVER_VER_PRICE_BASED_VOLATILITY <= server_version < MIN_SERVER_VER_PROTOBUF:
        return dict(_DECODERS)
    return {}
