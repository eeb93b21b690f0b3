"""One connection's market data, sans-IO: what the simulated TWS answers and streams.

``MarketDataSession`` turns the market-data requests (contract details, option-chain
parameters, ``reqMktData`` and its cancel, market data type, tick-by-tick) into frames,
and ``updates(now)`` into the ticks that changed since the last call. The Trio server
calls ``updates`` once per walk step; tests call it directly. Every tick is a diff against
what this line was last sent, so the first call after a request (or after a data-farm
outage) is the full burst.

Choices where TWS's behaviour is not written down (each is what a real TWS was seen to do
or the simplest reading of IB's documentation):

* reply order to ``reqMktData``: tickReqParams, any warning (10167, 10090), marketDataType,
  then the burst; a snapshot ends with tickSnapshotEnd and holds no line;
* a snapshot with generic ticks is refused with 321, as TWS does;
* delayed data (types 3/4 on an unsubscribed symbol) is the current price under delayed
  tick ids (66-76, 80-83); the simulator does not hold a 15-minute history;
* an unknown underlying in ``reqSecDefOptParams`` gets only the end message;
* a combo (``BAG``) line streams the net of its legs on every step (see ``_combos``);
* tick-by-tick with ``numberOfTicks > 0`` streams live ticks only (no history first).
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Callable, Iterator
from typing import Protocol

import attrs

from ibkr_connector import black_scholes
from ibkr_connector.simulator import _messages as msg
from ibkr_connector.simulator._combos import ComboLeg, ComboRefused, combo_legs, combo_ticks
from ibkr_connector.simulator._config import SimulatorConfig
from ibkr_connector.simulator._market import Instrument, SimMarket
from ibkr_connector.simulator._requests import (
    ContractSpec,
    RequestFieldError,
    parse_req_contract_details,
    parse_req_mkt_data,
    parse_req_sec_def_opt_params,
    parse_req_tick_by_tick,
)

__all__ = ["DELAYED", "MarketDataSession"]

#: Live tick id -> its delayed twin.
DELAYED: dict[int, int] = {1: 66, 2: 67, 4: 68, 0: 69, 3: 70, 5: 71, 6: 72, 7: 73, 8: 74,
                           9: 75, 14: 76, 10: 80, 11: 81, 12: 82, 13: 83, 45: 88}
_PRICE_SIZE = ((1, 0, "bid", "bid_size"), (2, 3, "ask", "ask_size"), (4, 5, "last", "last_size"))
_GENERIC_TICKS = frozenset({100, 101, 104, 106})
_TICK_BY_TICK_KINDS = ("Last", "AllLast", "BidAsk", "MidPoint")
_HALTED = 49
_TBT_FAILED = "Failed to request tick-by-tick data."

#: Records ``value`` as sent under ``key``; True if it differs from what was sent before.
Changed = Callable[[int, object], bool]


class Connection(Protocol):
    """What the market-data layer needs from its client session."""

    @property
    def server_version(self) -> int: ...

    def error(self, req_id: int, code: int, message: str, now: float) -> bytes: ...


@attrs.define
class _Line:
    req_id: int
    inst: Instrument | None  # None for a combo
    delayed: bool
    greeks: bool
    generic: frozenset[int]
    sent: dict[int, object] = attrs.Factory(dict)
    legs: tuple[ComboLeg, ...] = ()  # a combo's legs

    @property
    def symbols(self) -> frozenset[str]:
        """The symbols whose feed this line follows (a stall of any one stalls it)."""
        if self.inst is not None:
            return frozenset((self.inst.symbol,))
        return frozenset(leg.inst.symbol for leg in self.legs)


@attrs.define
class _Stream:
    req_id: int
    inst: Instrument
    kind: str
    sent: object = None


class MarketDataSession:
    """Market-data state of one client connection. ``subscriptions`` is the session's set
    of streaming ``reqMktData`` ids, kept in step with the lines held here."""

    def __init__(self, market: SimMarket, config: SimulatorConfig, connection: Connection,
                 subscriptions: set[int]) -> None:
        self.market = market
        self.config = config
        self.connection = connection
        self.subscriptions = subscriptions
        self.data_type = 1
        self.lines: dict[int, _Line] = {}
        self.streams: dict[int, _Stream] = {}

    def _error(self, req_id: int, code: int, now: float, text: str = "") -> bytes:
        return self.connection.error(req_id, code, text or msg.DEFAULT_ERROR_TEXT[code], now)

    def _resolve(self, contract: ContractSpec) -> list[Instrument]:
        return self.market.match(
            con_id=contract.con_id, symbol=contract.symbol, sec_type=contract.sec_type,
            expiry=contract.expiry, strike=contract.strike, right=contract.right,
            multiplier=contract.multiplier, exchange=contract.exchange,
            currency=contract.currency, local_symbol=contract.local_symbol,
            trading_class=contract.trading_class)

    # -- reference data ----------------------------------------------------------------------

    def req_contract_details(self, fields: tuple[str, ...], now: float) -> list[bytes]:
        request = parse_req_contract_details(fields)
        if request.contract.sec_type == "BAG":
            text = ("Error validating request.-'bI' : cause - 'BAG' isn't supported for "
                    "contract data request")
            return [self._error(request.req_id, 321, now, text)]
        found = self._resolve(request.contract)
        if not found:
            return [self._error(request.req_id, 200, now)]
        version = self.connection.server_version
        return [*(msg.contract_data(version, request.req_id, inst, self._extras(inst))
                  for inst in found), msg.contract_data_end(request.req_id)]

    def _extras(self, inst: Instrument) -> msg.ContractDetailsExtras:
        day = datetime.datetime.fromtimestamp(self.market.wall_time(), tz=datetime.UTC)
        hours = ";".join(f"{d:%Y%m%d}:0930-{d:%Y%m%d}:1600" for d in
                         (day + datetime.timedelta(days=i) for i in range(2)))
        under = self.market.underlying_of(inst)
        stock_type = "ETF" if "TRUST" in inst.long_name else (
            "COMMON" if inst.sec_type == "STK" else "")
        return msg.ContractDetailsExtras(
            last_trade_time="16:00:00" if inst.sec_type == "OPT" else "",
            trading_hours=hours, liquid_hours=hours, under_symbol=under.symbol,
            under_sec_type=under.sec_type if inst.sec_type == "OPT" else "",
            stock_type=stock_type)

    def req_sec_def_opt_params(self, fields: tuple[str, ...], now: float) -> list[bytes]:
        request = parse_req_sec_def_opt_params(fields)
        chains = self.market.chains(request.symbol, request.sec_type, request.con_id)
        return [*(msg.sec_def_opt_params(request.req_id, c.exchange, c.underlying_con_id,
                                         c.trading_class, c.multiplier, c.expiries, c.strikes)
                  for c in chains), msg.sec_def_opt_params_end(request.req_id)]

    # -- top of book -------------------------------------------------------------------------

    def req_market_data_type(self, fields: tuple[str, ...], now: float) -> list[bytes]:
        try:
            data_type = int(fields[1])
        except (IndexError, ValueError):
            raise RequestFieldError("reqMarketDataType type missing or not an integer") from None
        if data_type not in (1, 2, 3, 4):
            raise RequestFieldError(f"market data type must be 1-4, got {data_type}")
        self.data_type = data_type
        return []

    def req_mkt_data(self, fields: tuple[str, ...], now: float) -> list[bytes]:
        request = parse_req_mkt_data(fields)
        req_id = request.req_id
        if req_id in self.lines:
            return [self._error(req_id, 322, now)]
        generic = _generic_ticks(request.generic_ticks)
        # REAL-TWS: a snapshot with generic ticks is refused with 321 and this text
        if request.snapshot and generic:
            text = ("Error validating request.-'bW' : cause - Snapshot market data "
                    "subscription is not applicable to generic ticks")
            return [self._error(req_id, 321, now, text)]
        # REAL-TWS: a snapshot holds no line while active (no 101 for snapshots past 100 lines)
        if not request.snapshot and len(self.lines) >= self.config.max_market_data_lines:
            return [self._error(req_id, 101, now)]
        inst: Instrument | None = None
        legs: tuple[ComboLeg, ...] = ()
        if request.sec_type == "BAG":
            try:
                legs = combo_legs(self.market, request.contract.combo_legs)
            except ComboRefused as refused:
                return [self._error(req_id, refused.code, now, refused.text)]
        else:
            found = self._resolve(request.contract)
            if len(found) != 1:
                return [self._error(req_id, 200, now)]
            inst = found[0]
        out, line = self._open_line(req_id, inst, generic, now, legs)
        if line is None:
            return out
        if not self.market.farm_down and not line.symbols & self.market.stalled:
            out += self._ticks(line)
        if request.snapshot:
            out.append(msg.tick_snapshot_end(req_id))
        else:
            self.lines[req_id] = line
            self.subscriptions.add(req_id)
        return out

    def _open_line(self, req_id: int, inst: Instrument | None, generic: frozenset[int],
                   now: float, legs: tuple[ComboLeg, ...] = ()
                   ) -> tuple[list[bytes], _Line | None]:
        symbol = inst.symbol if inst else legs[0].inst.symbol
        min_tick = inst.min_tick if inst else min(leg.inst.min_tick for leg in legs)
        out = [msg.tick_req_params(req_id, min_tick, "9c0001", 3)]
        delayed, greeks = False, inst is not None and inst.sec_type == "OPT"
        if symbol in self.config.unsubscribed_symbols:
            if self.data_type in (1, 2):
                return [self._error(req_id, 354, now)], None
            if not self.config.delayed_data_available:
                return [self._error(req_id, 10168, now)], None
            delayed = True
            # REAL-TWS: 10167 comes before marketDataType 3 and the delayed ticks
            out.append(self._error(req_id, 10167, now))
        # REAL-TWS: 10090 if the underlying is unsubscribed, then no live greeks (10-13)
        elif greeks and symbol in self.config.unsubscribed_underlyings:
            out.append(self._error(req_id, 10090, now))
            greeks = not self.config.greeks_need_underlying
        out.append(msg.market_data_type(req_id, self.data_type if delayed else 1))
        return out, _Line(req_id, inst, delayed, greeks, generic, legs=legs)

    def cancel_mkt_data(self, req_id: int, now: float) -> list[bytes]:
        if self.lines.pop(req_id, None) is None:
            return [self._error(req_id, 300, now, f"{msg.DEFAULT_ERROR_TEXT[300]}{req_id}")]
        self.subscriptions.discard(req_id)
        return []

    # -- tick-by-tick ------------------------------------------------------------------------

    def req_tick_by_tick(self, fields: tuple[str, ...], now: float) -> list[bytes]:
        request = parse_req_tick_by_tick(fields)
        req_id = request.req_id
        if req_id in self.streams:
            return [self._error(req_id, 322, now)]
        if len(self.streams) >= self.config.max_tick_by_tick_streams:
            return [self._error(req_id, 10190, now)]
        found = self._resolve(request.contract)
        if len(found) != 1:
            return [self._error(req_id, 200, now)]
        inst = found[0]
        if request.kind not in _TICK_BY_TICK_KINDS:
            text = f"{_TBT_FAILED}Invalid tick type {request.kind!r}"
            return [self._error(req_id, 10189, now, text)]
        # REAL-TWS: tick-by-tick on an option or an index is refused with 10189
        if inst.sec_type == "IND" or (inst.sec_type == "OPT"
                                      and not self.config.tick_by_tick_options):
            return [self._error(req_id, 10189, now)]
        if inst.symbol in self.config.unsubscribed_symbols:
            return [self._error(req_id, 354, now)]
        stream = _Stream(req_id, inst, request.kind)
        self.streams[req_id] = stream
        return [] if self.market.farm_down else list(self._stream_ticks(stream))

    def cancel_tick_by_tick(self, fields: tuple[str, ...], now: float) -> list[bytes]:
        try:
            req_id = int(fields[0])
        except (IndexError, ValueError):
            raise RequestFieldError("cancelTickByTickData id missing or not an integer") from None
        self.streams.pop(req_id, None)
        return []

    # -- streaming ---------------------------------------------------------------------------

    def updates(self) -> list[bytes]:
        """Every tick that changed since it was last sent, on every live line and stream
        (nothing during a data-farm outage, nothing for a stalled symbol)."""
        if self.market.farm_down:
            return []
        out: list[bytes] = []
        stalled = self.market.stalled
        for line in self.lines.values():
            if not line.symbols & stalled:
                out += self._ticks(line)
        for stream in self.streams.values():
            if stream.inst.symbol not in stalled:
                out += self._stream_ticks(stream)
        return out

    def close(self) -> None:
        self.lines.clear()
        self.streams.clear()
        self.subscriptions.clear()

    def _ticks(self, line: _Line) -> list[bytes]:
        if line.inst is None:
            return list(combo_ticks(self.market, line.req_id, line.legs, line.sent,
                                    functools.partial(_tick_id, line)))
        return list(_line_ticks(self.market, self.connection.server_version, line))

    def _stream_ticks(self, stream: _Stream) -> Iterator[bytes]:
        quote = self.market.quote(stream.inst.con_id)
        time = int(self.market.wall_time())
        if stream.kind == "BidAsk":
            state: object = (quote.bid, quote.ask, quote.bid_size, quote.ask_size)
            if state != stream.sent:
                yield msg.tick_by_tick_bid_ask(stream.req_id, time, quote.bid, quote.ask,
                                               quote.bid_size, quote.ask_size)
        elif stream.kind == "MidPoint":
            mid = round((quote.bid + quote.ask) / 2, 8)
            state = mid
            if state != stream.sent:
                yield msg.tick_by_tick_mid_point(stream.req_id, time, mid)
        else:
            state = quote.volume
            if stream.sent is not None and state != stream.sent:
                yield msg.tick_by_tick_last(stream.req_id, stream.kind == "AllLast", time,
                                            quote.last, quote.last_size,
                                            stream.inst.primary_exchange or "ARCA")
        stream.sent = state


def _generic_ticks(text: str) -> frozenset[int]:
    ticks = set()
    for item in text.split(","):
        item = item.strip()
        if item.isdigit():
            ticks.add(int(item))
    return frozenset(ticks & _GENERIC_TICKS)


def _line_ticks(market: SimMarket, version: int, line: _Line) -> Iterator[bytes]:
    """The ticks of ``line`` whose values differ from what it was last sent."""
    inst = line.inst
    assert inst is not None
    quote = market.quote(inst.con_id)
    rid, sent = line.req_id, line.sent

    def tick_id(live: int) -> int:
        return _tick_id(line, live)

    def changed(key: int, value: object) -> bool:
        if sent.get(key) == value:
            return False
        sent[key] = value
        return True

    for price_tick, size_tick, price_name, size_name in _PRICE_SIZE:
        price, size = getattr(quote, price_name), getattr(quote, size_name)
        if price < 0:
            continue  # an index has no bid or ask
        if changed(price_tick, price):
            sent[size_tick] = size
            yield msg.tick_price(rid, tick_id(price_tick), price, size)
        elif changed(size_tick, size):
            yield msg.tick_size(rid, tick_id(size_tick), size)
    if changed(8, quote.volume):
        yield msg.tick_size(rid, tick_id(8), quote.volume)
    if changed(9, 0):  # the prior close, once
        yield msg.tick_price(rid, tick_id(9), market.prior_close(inst.con_id))
    if changed(_HALTED, inst.symbol in market.halted):
        yield msg.tick_generic(rid, _HALTED, 1.0 if inst.symbol in market.halted else 0.0)
    yield from _generic(market, line, changed)
    if line.greeks:
        yield from _computations(market, version, line, changed, tick_id)


def _tick_id(line: _Line, live: int) -> int:
    """The id a live tick is sent under on ``line`` (its delayed twin on a delayed line)."""
    return DELAYED.get(live, live) if line.delayed else live


def _generic(market: SimMarket, line: _Line, changed: Changed) -> Iterator[bytes]:
    inst = line.inst
    assert inst is not None
    seed = inst.con_id % 9973
    if 100 in line.generic and changed(29, True):
        yield msg.tick_size(line.req_id, 29, 1000 + seed * 3)
        yield msg.tick_size(line.req_id, 30, 800 + seed * 2)
    if 101 in line.generic and changed(27, True):
        yield msg.tick_size(line.req_id, 27, 20000 + seed * 11)
        yield msg.tick_size(line.req_id, 28, 15000 + seed * 7)
    spec_vol = market.atm_vol(inst)
    if 104 in line.generic and changed(23, True):
        yield msg.tick_generic(line.req_id, 23, round(spec_vol * 0.9, 6))
    if 106 in line.generic and changed(24, round(spec_vol, 4)):
        yield msg.tick_generic(line.req_id, 24, round(spec_vol, 6))


def _computations(market: SimMarket, version: int, line: _Line, changed: Changed,
                  tick_id: Callable[[int], int]) -> Iterator[bytes]:
    """Option computations: bid/ask/last (10-12) from the implied vol of each quoted price,
    model (13) from the market's own smile, all on the current underlying price."""
    inst = line.inst
    assert inst is not None
    vol, model, spot = market.model(inst.con_id)
    quote = market.quote(inst.con_id)
    years = market.years_to_expiry(inst)
    for live, price in ((10, quote.bid), (11, quote.ask), (12, quote.last), (13, None)):
        if price is None:
            iv, greeks, opt_price = vol, model, model.price
        else:
            opt_price = price
            try:
                iv = black_scholes.implied_vol(inst.right, price, spot, inst.strike, years,
                                               market.rate)
                greeks = black_scholes.greeks(inst.right, spot, inst.strike, years, iv,
                                              market.rate)
            except (black_scholes.ImpliedVolError, ValueError):
                iv, greeks = -1.0, None
        key = (round(spot, 4), opt_price)
        if not changed(1000 + live, key):
            continue
        yield msg.tick_option_computation(
            version, line.req_id, tick_id(live), implied_vol=iv,
            delta=greeks.delta if greeks else -2.0, opt_price=opt_price, pv_dividend=0.0,
            gamma=greeks.gamma if greeks else -2.0, vega=greeks.vega if greeks else -2.0,
            theta=greeks.theta if greeks else -2.0, und_price=spot)
