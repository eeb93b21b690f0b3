"""The simulated market: instruments, a seeded random walk, option chains and quotes.

Sans-IO and deterministic: ``SimMarket`` is created from a seed and a start time and moved
on by ``advance(now)`` (Trio time, passed in); the same seed and the same ``advance``
calls give the same prices, byte for byte. The walk runs on a fixed grid of
``tick_interval`` seconds, so how often ``advance`` is called does not change the path
(except for gaps longer than ``_MAX_STEPS`` steps, which are taken as one step).

What it models, and the choices made where real markets vary:

* underlyings SPY, QQQ, AAPL (stocks, SMART) and SPX (index, CBOE), with IB's real conIds;
  an index has no bid/ask (``-1``, size 0, as TWS sends "no data") and only a last price;
* option expiries: the next eight Fridays (weeklies) plus the third Fridays (monthlies) of
  the next three months; SPX monthlies trade as class ``SPX``, its weeklies as ``SPXW``;
  options expire at 21:00 UTC (16:00 New York standard time) of their date;
* strikes at the underlying's increment within ±8 % of the opening spot for weeklies;
  monthlies reach ±20 %, on the fine increment near the money and every fifth one beyond
  ±10 %. So the union of strikes (what ``reqSecDefOptParams`` lists) holds strikes that
  exist for monthlies only, as in real chains;
* option prices are Black–Scholes (no dividends) with a smile ``atm·(1 − 0.8 m + 2 m²)``,
  ``m = ln(K/S)/√T``; quotes straddle the theoretical value by about 1 % (at least one
  tick), times the symbol's spread factor;
* option ticks: SPY and QQQ quote in pennies at every price (they are in the penny
  interval programme's all-penny group); AAPL in pennies below $3 and nickels above;
  SPX in nickels below $3 and dimes above. ``min_tick`` is the fine tick.
"""

from __future__ import annotations

import datetime
import functools
import math
import random
from collections.abc import Iterable, Mapping

import attrs

from ibkr_connector import black_scholes

__all__ = ["Chain", "Instrument", "Quote", "SimMarket", "Underlying", "UNDERLYINGS"]

_SECONDS_PER_TRADING_YEAR = 252 * 6.5 * 3600
_SECONDS_PER_YEAR = 365 * 24 * 3600
_EXPIRY_HOUR_UTC = 21
_MAX_STEPS = 10_000
_FIRST_OPTION_CON_ID = 700_000_000


@attrs.frozen
class Instrument:
    """One contract the simulated TWS knows (stock, index or option)."""

    con_id: int
    symbol: str
    sec_type: str  # "STK", "IND" or "OPT"
    exchange: str
    primary_exchange: str
    currency: str
    trading_class: str
    min_tick: float
    local_symbol: str
    long_name: str = ""
    expiry: str = ""  # "YYYYMMDD" for options
    strike: float = 0.0
    right: str = ""  # "C" or "P" for options
    multiplier: int = 1
    underlying_con_id: int = 0
    valid_exchanges: tuple[str, ...] = ("SMART",)


@attrs.frozen
class Quote:
    """Top of book at the market's current time; ``-1`` prices mean "no quote"."""

    bid: float
    ask: float
    last: float
    bid_size: int
    ask_size: int
    last_size: int
    volume: int


@attrs.frozen
class Chain:
    """One ``reqSecDefOptParams`` answer line: an (exchange, trading class) of options."""

    exchange: str
    underlying_con_id: int
    trading_class: str
    multiplier: int
    expiries: tuple[str, ...]
    strikes: tuple[float, ...]


@attrs.frozen
class Underlying:
    """How one underlying and its option chain are built."""

    symbol: str
    sec_type: str
    con_id: int
    spot: float
    vol: float
    exchange: str
    primary_exchange: str
    long_name: str
    strike_step: float
    tick_below_3: float
    tick_above_3: float
    monthly_class: str
    weekly_class: str
    option_exchanges: tuple[str, ...]


UNDERLYINGS: tuple[Underlying, ...] = (
    Underlying("SPY", "STK", 756733, 500.0, 0.15, "SMART", "ARCA", "SPDR S&P 500 ETF TRUST",
               1.0, 0.01, 0.01, "SPY", "SPY", ("SMART", "CBOE", "AMEX")),
    Underlying("QQQ", "STK", 320227571, 430.0, 0.20, "SMART", "NASDAQ",
               "INVESCO QQQ TRUST SERIES 1", 1.0, 0.01, 0.01, "QQQ", "QQQ", ("SMART", "CBOE")),
    Underlying("AAPL", "STK", 265598, 190.0, 0.25, "SMART", "NASDAQ", "APPLE INC", 2.5, 0.01,
               0.05, "AAPL", "AAPL", ("SMART", "CBOE")),
    Underlying("SPX", "IND", 416904, 5000.0, 0.14, "CBOE", "", "S&P 500 Stock Index", 5.0,
               0.05, 0.10, "SPX", "SPXW", ("SMART", "CBOE")),
)


def round_to_tick(value: float, tick: float, how: str = "nearest") -> float:
    """``value`` on the ``tick`` grid (``"down"``, ``"up"`` or ``"nearest"``), 8-digit clean."""
    steps = value / tick
    n = math.floor(steps + 1e-9) if how == "down" else (
        math.ceil(steps - 1e-9) if how == "up" else round(steps))
    return round(n * tick, 8)


def _fridays(start: datetime.date) -> list[datetime.date]:
    first = start + datetime.timedelta(days=(4 - start.weekday()) % 7 or 7)
    return [first + datetime.timedelta(weeks=i) for i in range(8)]


def _third_friday(year: int, month: int) -> datetime.date:
    first = datetime.date(year, month, 1)
    return first + datetime.timedelta(days=(4 - first.weekday()) % 7 + 14)


def _monthlies(start: datetime.date) -> list[datetime.date]:
    out: list[datetime.date] = []
    year, month = start.year, start.month
    while len(out) < 3:
        day = _third_friday(year, month)
        if day > start:
            out.append(day)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def _strikes(spot: float, step: float, monthly: bool) -> list[float]:
    reach = 0.20 if monthly else 0.08
    low, high = math.ceil(spot * (1 - reach) / step), math.floor(spot * (1 + reach) / step)
    out = []
    for n in range(low, high + 1):
        strike = round(n * step, 4)
        if abs(strike / spot - 1) <= 0.10 or n % 5 == 0:
            out.append(strike)
    return out


def _occ_symbol(root: str, expiry: datetime.date, right: str, strike: float) -> str:
    return f"{root:<6}{expiry:%y%m%d}{right}{round(strike * 1000):08d}"


class SimMarket:
    """The market every simulated connection sees (one per simulated TWS).

    ``start`` is the Trio time of creation and ``wall_start`` the simulated Unix time at
    that moment; ``advance(now)`` moves the walk to Trio time ``now``.
    """

    def __init__(self, *, seed: int, start: float, wall_start: float,
                 tick_interval: float = 0.25, rate: float = 0.04,
                 underlyings: Iterable[Underlying] = UNDERLYINGS) -> None:
        if tick_interval <= 0:
            raise ValueError("tick_interval must be positive")
        self.tick_interval = tick_interval
        self.rate = rate
        self._rng = random.Random(seed)
        self._start = start
        self._wall_start = wall_start
        self._step = 0
        self._specs = {u.con_id: u for u in underlyings}
        self._spot = {u.con_id: u.spot for u in self._specs.values()}
        self._quotes: dict[int, Quote] = {}
        self._option_cache: dict[int, tuple[int, Quote]] = {}
        self._instruments: Mapping[int, Instrument] = {}
        self._options_of: Mapping[int, tuple[Instrument, ...]] = {}
        self.halted: set[str] = set()
        #: A market-data farm outage: no ticks flow to anyone while True.
        self.farm_down = False
        self.stalled: set[str] = set()
        self._spread_factor: dict[str, float] = {}
        self._build(datetime.datetime.fromtimestamp(wall_start, tz=datetime.UTC).date())
        for con_id in self._specs:
            self._quotes[con_id] = self._underlying_quote(con_id, False, 1000)

    # -- lookup ------------------------------------------------------------------------------

    def instrument(self, con_id: int) -> Instrument | None:
        return self._instruments.get(con_id)

    def instruments(self) -> list[Instrument]:
        return list(self._instruments.values())

    def options_near_the_money(self, count: int) -> list[Instrument]:
        """``count`` listed options, nearest the money first (then nearest expiry): what a
        bench or a test subscribes when it needs many live option lines."""
        options = [i for i in self._instruments.values() if i.sec_type == "OPT"]
        spot = {i.con_id: self.spot(i.con_id) for i in self._instruments.values()
                if i.sec_type != "OPT"}
        options.sort(key=lambda i: (abs(i.strike / spot[i.underlying_con_id] - 1), i.expiry))
        return options[:count]

    def underlying_of(self, instrument: Instrument) -> Instrument:
        """The instrument itself for a stock or index, its underlying for an option."""
        return self._instruments[instrument.underlying_con_id or instrument.con_id]

    def match(self, *, con_id: int = 0, symbol: str = "", sec_type: str = "", expiry: str = "",
              strike: float = 0.0, right: str = "", multiplier: str = "", exchange: str = "",
              currency: str = "", local_symbol: str = "",
              trading_class: str = "") -> list[Instrument]:
        """The instruments a request's contract fields describe, in conId order; empty
        fields (and strike 0) match anything. ``expiry`` may be a month (``YYYYMM``)."""
        if con_id > 0:
            found = self._instruments.get(con_id)
            candidates = [found] if found else []
        else:
            candidates = self._by_symbol(symbol.upper(), sec_type.upper())
        right = {"CALL": "C", "PUT": "P"}.get(right.upper(), right.upper())
        out = []
        for inst in candidates:
            if ((sec_type and inst.sec_type != sec_type.upper())
                    or (expiry and not inst.expiry.startswith(expiry))
                    or (strike and abs(inst.strike - strike) > 1e-6)
                    or (right and inst.right != right)
                    or (multiplier and multiplier != str(inst.multiplier))
                    or (exchange and exchange not in inst.valid_exchanges)
                    or (currency and currency != inst.currency)
                    or (local_symbol and local_symbol != inst.local_symbol)
                    or (trading_class and trading_class != inst.trading_class)):
                continue
            out.append(inst)
        return out

    def chains(self, symbol: str, sec_type: str = "", con_id: int = 0) -> list[Chain]:
        """What ``reqSecDefOptParams`` answers for an underlying: one ``Chain`` per
        (exchange, trading class), strikes the union over that class's expiries."""
        spec = next((u for u in self._specs.values() if u.symbol == symbol.upper()
                     and (not sec_type or u.sec_type == sec_type.upper())
                     and (not con_id or u.con_id == con_id)), None)
        if spec is None:
            return []
        by_class: dict[str, list[Instrument]] = {}
        for option in self._options_of[spec.con_id]:
            by_class.setdefault(option.trading_class, []).append(option)
        return [
            Chain(exchange, spec.con_id, cls, 100,
                  tuple(sorted({o.expiry for o in options})),
                  tuple(sorted({o.strike for o in options})))
            for exchange in spec.option_exchanges
            for cls, options in sorted(by_class.items())
        ]

    # -- prices ------------------------------------------------------------------------------

    def wall_time(self) -> float:
        """Simulated Unix time of the walk's current step."""
        return self._wall_start + self._step * self.tick_interval

    def spot(self, con_id: int) -> float:
        """The current price of an underlying (the walk's value, not rounded to a tick)."""
        return self._spot[con_id]

    def prior_close(self, con_id: int) -> float:
        """Yesterday's close: the walk's opening price (for an option, its model value
        at the opening spot), on the tick."""
        inst = self._instruments[con_id]
        if inst.sec_type != "OPT":
            return round_to_tick(self._specs[con_id].spot, inst.min_tick)
        spec = self._specs[inst.underlying_con_id]
        years = self.years_to_expiry(inst)
        value = black_scholes.price(inst.right, spec.spot, inst.strike, years,
                                    self.smile_vol(inst, spec.spot, years), self.rate)
        return max(round_to_tick(value, self.option_tick(inst, value)), inst.min_tick)

    def atm_vol(self, inst: Instrument) -> float:
        """The 30-day implied vol (generic tick 106): the underlying's at-the-money vol,
        for an option the smile's vol at its strike."""
        under = self.underlying_of(inst)
        if inst.sec_type != "OPT":
            return self._specs[under.con_id].vol
        return self.smile_vol(inst, self._spot[under.con_id], 30 / 365)

    def quote(self, con_id: int) -> Quote:
        """Top of book now. KeyError for an unknown conId."""
        inst = self._instruments[con_id]
        if inst.sec_type != "OPT":
            return self._quotes[con_id]
        cached = self._option_cache.get(con_id)
        if cached is None or (cached[0] != self._step and inst.symbol not in self.halted):
            cached = (self._step, self._option_quote(inst))
            self._option_cache[con_id] = cached
        return cached[1]

    def model(self, con_id: int) -> tuple[float, black_scholes.Greeks, float]:
        """(model implied vol, model greeks, underlying price) of an option now."""
        inst = self._instruments[con_id]
        spot = self._spot[inst.underlying_con_id]
        years = self.years_to_expiry(inst)
        vol = self.smile_vol(inst, spot, years)
        return vol, black_scholes.greeks(inst.right, spot, inst.strike, years, vol,
                                         self.rate), spot

    def years_to_expiry(self, inst: Instrument) -> float:
        day = datetime.datetime.strptime(inst.expiry, "%Y%m%d").replace(
            hour=_EXPIRY_HOUR_UTC, tzinfo=datetime.UTC)
        return max(day.timestamp() - self.wall_time(), 0.0) / _SECONDS_PER_YEAR

    def smile_vol(self, inst: Instrument, spot: float, years: float) -> float:
        atm = self._specs[inst.underlying_con_id].vol
        m = math.log(inst.strike / spot) / math.sqrt(max(years, 1 / 365))
        return min(max(atm * (1 - 0.8 * m + 2.0 * m * m), 0.5 * atm), 4 * atm)

    def option_tick(self, inst: Instrument, price: float) -> float:
        spec = self._specs[inst.underlying_con_id]
        return spec.tick_below_3 if price < 3 else spec.tick_above_3

    def advance(self, now: float) -> int:
        """Move the walk to Trio time ``now``; returns how many grid steps were taken."""
        target = int((now - self._start) / self.tick_interval + 1e-9)
        steps = target - self._step
        if steps <= 0:
            return 0
        if steps > _MAX_STEPS:  # a long gap: one step carrying the whole gap's variance
            self._step = target
            self._walk_once(math.sqrt(steps), steps)
            return steps
        for _ in range(steps):
            self._step += 1
            self._walk_once(1.0, 1)
        return steps

    # -- faults ------------------------------------------------------------------------------

    def set_spread_factor(self, symbol: str, factor: float) -> None:
        """Widen (``factor`` > 1) or restore (1) the quoted spreads of ``symbol`` and its
        options."""
        if not factor >= 1 or not math.isfinite(factor):
            raise ValueError("spread factor must be a finite number >= 1")
        self._spread_factor[self._known(symbol)] = factor
        self._option_cache.clear()
        for con_id, spec in self._specs.items():
            if spec.symbol == symbol.upper():
                old = self._quotes[con_id]
                self._quotes[con_id] = self._underlying_quote(
                    con_id, old.last == old.ask, old.volume, old.last_size)

    def spread_factor(self, symbol: str) -> float:
        return self._spread_factor.get(symbol, 1.0)

    def halt(self, symbol: str, halted: bool = True) -> None:
        """Halt (or resume) trading in ``symbol`` and its options: prices stop moving."""
        symbol = self._known(symbol)
        (self.halted.add if halted else self.halted.discard)(symbol)

    def stall(self, symbol: str, stalled: bool = True) -> None:
        """Stop (or resume) sending ticks for ``symbol``; the market itself moves on."""
        symbol = self._known(symbol)
        (self.stalled.add if stalled else self.stalled.discard)(symbol)

    def symbols(self) -> list[str]:
        return [u.symbol for u in self._specs.values()]

    # -- internals ---------------------------------------------------------------------------

    def _known(self, symbol: str) -> str:
        symbol = symbol.upper()
        if symbol not in self.symbols():
            raise ValueError(f"unknown symbol {symbol!r}; known: {', '.join(self.symbols())}")
        return symbol

    def _by_symbol(self, symbol: str, sec_type: str) -> list[Instrument]:
        out: list[Instrument] = []
        for spec in self._specs.values():
            if spec.symbol != symbol:
                continue
            if sec_type != "OPT":
                out.append(self._instruments[spec.con_id])
            if sec_type in ("OPT", ""):
                out.extend(self._options_of[spec.con_id])
        return out

    def _walk_once(self, scale: float, steps: int) -> None:
        dt = self.tick_interval / _SECONDS_PER_TRADING_YEAR
        for con_id, spec in self._specs.items():
            z = self._rng.gauss(0.0, 1.0)
            trade_up = self._rng.random() < 0.5
            size = self._rng.randrange(1, 10) * 100
            if spec.symbol in self.halted:
                continue
            self._spot[con_id] *= math.exp(spec.vol * math.sqrt(dt) * scale * z
                                           - 0.5 * spec.vol ** 2 * dt * steps)
            volume = self._quotes[con_id].volume + size * steps
            self._quotes[con_id] = self._underlying_quote(con_id, trade_up, volume, size)

    def _underlying_quote(self, con_id: int, trade_up: bool, volume: int,
                          last_size: int = 100) -> Quote:
        spec, spot = self._specs[con_id], self._spot[con_id]
        if spec.sec_type == "IND":
            return Quote(-1.0, -1.0, round(spot, 2), 0, 0, 0, 0)
        tick = self._instruments[con_id].min_tick
        width = max(1, round(self.spread_factor(spec.symbol)))
        bid = round_to_tick(spot - (width - 1) * tick / 2, tick, "down")
        ask = round(bid + width * tick, 8)
        sizes = 100 * (1 + (con_id + self._step) % 7), 100 * (1 + (con_id * 3 + self._step) % 5)
        return Quote(bid, ask, ask if trade_up else bid, sizes[0], sizes[1], last_size, volume)

    def _option_quote(self, inst: Instrument) -> Quote:
        _, model, _ = self.model(inst.con_id)
        theo = model.price
        tick = self.option_tick(inst, theo)
        half = max(tick, 0.01 * theo) * self.spread_factor(inst.symbol) / 2
        bid = max(round_to_tick(theo - half, tick, "down"), 0.0)
        ask = max(round_to_tick(theo + half, tick, "up"), round(bid + tick, 8))
        last = max(round_to_tick(theo, tick), inst.min_tick)
        seed = inst.con_id * 2654435761 + self._step * 40503
        return Quote(bid, ask, last, 1 + seed % 50, 1 + (seed >> 7) % 50, 1 + (seed >> 3) % 10,
                     (inst.con_id * 7919) % 5000 + self._step // 40)

    def _build(self, today: datetime.date) -> None:
        self._instruments, self._options_of = _catalogue(today, tuple(self._specs.values()))


# Two hundred thousand instruments take 60 ms to build, and a deterministic simulation
# starts a fresh market per run: markets of one day share one read-only catalogue.
@functools.lru_cache(maxsize=4)
def _catalogue(today: datetime.date, specs: tuple[Underlying, ...],
               ) -> tuple[Mapping[int, Instrument], Mapping[int, tuple[Instrument, ...]]]:
    """Every instrument (by conId) and the options of each underlying, for *today*."""
    instruments: dict[int, Instrument] = {}
    options_of: dict[int, tuple[Instrument, ...]] = {}
    weeklies, monthlies = _fridays(today), _monthlies(today)
    next_id = _FIRST_OPTION_CON_ID
    for spec in specs:
        is_index = spec.sec_type == "IND"
        instruments[spec.con_id] = Instrument(
            spec.con_id, spec.symbol, spec.sec_type, spec.exchange, spec.primary_exchange,
            "USD", spec.symbol, 0.01, spec.symbol, spec.long_name,
            valid_exchanges=(spec.exchange,) if is_index else ("SMART", spec.primary_exchange),
        )
        options: list[Instrument] = []
        for day in sorted(set(weeklies) | set(monthlies)):
            monthly = day in monthlies
            cls = spec.monthly_class if monthly else spec.weekly_class
            for strike in _strikes(spec.spot, spec.strike_step, monthly):
                for right in ("C", "P"):
                    options.append(Instrument(
                        next_id, spec.symbol, "OPT", "SMART", "", "USD", cls,
                        spec.tick_below_3, _occ_symbol(cls, day, right, strike),
                        spec.long_name, f"{day:%Y%m%d}", strike, right, 100, spec.con_id,
                        spec.option_exchanges))
                    next_id += 1
        options_of[spec.con_id] = tuple(options)
        instruments.update((o.con_id, o) for o in options)
    return instruments, options_of
