"""The order book as a plain value: trades, executions and positions, fed TWS's events.

Sans-IO (h11's model): the orders actor feeds it what TWS said (``openOrder``,
``orderStatus``, ``execDetails``, commission reports, error codes already classified) and
publishes the events each call returns; the book itself never awaits, sends or logs
anything but DEBUG. It is created by the runtime, so a restart of the orders actor keeps
every trade, fill and position.

Its promises, each tested with plain values:

- an execution is counted once, whichever way it arrives (live, or again in
  ``reqExecutions``' answer after a reconnect): the key is TWS's ``execId``;
- positions are the net of the distinct executions of single instruments (a combo's own
  execution books nothing: its legs do);
- an order whose delivery is unknown stays ``Unknown`` until a reconciliation has seen
  TWS's complete answer; then it is adopted (TWS has it, or filled it) or ``NotPlaced``.
"""

from __future__ import annotations

import collections
import logging
from decimal import Decimal
from typing import Any

import attrs

from ..protocol import codes
from ..protocol import events as ev
from ..trade import Fill, Leg, Rejection, Trade, TradeStatus
from .orders_messages import (
    FillReceived,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    OrderStats,
    OrderStatusChanged,
    Position,
)

__all__ = ["OrderBook", "TradeKey", "legs_of"]

log = logging.getLogger(__name__)

TradeKey = tuple[int, int]
"""(client id, order id): order ids are per client, and other clients' orders are shown."""

_ACK_SAMPLES = 10_000


def legs_of(contract: Any) -> tuple[Leg, ...]:
    """The legs of a combo contract as TWS (or we) spelt them; () for anything else."""
    return tuple(Leg(leg.conId, leg.action, int(leg.ratio))
                 for leg in (getattr(contract, "comboLegs", None) or ()))


@attrs.define
class _Holding:
    account: str
    con_id: int
    symbol: str
    sec_type: str
    quantity: Decimal = Decimal(0)
    avg_price: float | None = None

    def apply(self, signed: Decimal, price: float) -> None:
        before = self.quantity
        after = before + signed
        if after == 0:
            self.avg_price = None
        elif before == 0 or (before > 0) != (after > 0):
            self.avg_price = price  # opened, or crossed through zero
        elif abs(after) > abs(before) and self.avg_price is not None:
            self.avg_price = (float(abs(before)) * self.avg_price
                              + float(abs(signed)) * price) / float(abs(after))
        self.quantity = after


@attrs.define
class OrderBook:
    """Every trade, execution and position this runtime knows; see the module docstring."""

    client_id: int | None = None
    """Our client id (from the connection); orders of any other id are read-only."""
    trades: dict[TradeKey, Trade] = attrs.Factory(dict)
    fills: dict[str, Fill] = attrs.Factory(dict)
    unresolved: set[TradeKey] = attrs.Factory(set)
    """Own orders whose delivery is unknown, waiting for a complete reconciliation."""
    exec_complete_until: str = ""
    """Every execution at or after this time (TWS's text) may be missing: the time of the
    last one seen while the link had not dropped since the last complete reconciliation.
    Reconciliation asks TWS for executions from here: a fill later than some fill seen
    live can still be one we missed (an order whose ack was lost, filled before a later
    order's fill arrived live), so the latest fill seen is not a safe start."""
    _latest_exec_time: str = ""
    _exec_gap: bool = False  # the link dropped since the last complete reconciliation
    placed: int = 0
    reconciliations: int = 0
    _holdings: dict[tuple[str, int], _Holding] = attrs.Factory(dict)
    _commissions: dict[str, float] = attrs.Factory(dict)
    _ack_ms: collections.deque[float] = attrs.Factory(
        lambda: collections.deque(maxlen=_ACK_SAMPLES))
    _open_seen: set[TradeKey] | None = None

    # -- our own orders --------------------------------------------------------------------

    def add(self, trade: Trade, now: float) -> None:
        """A trade we are about to write: it is in the book before TWS can answer."""
        self.trades[(trade.client_id, trade.order_id)] = trade
        self.placed += 1
        trade.placed_at = now
        trade._set_status(TradeStatus.PENDING_SUBMIT, now, "placed")

    def own(self, order_id: int) -> Trade | None:
        return self.trades.get((self.client_id, order_id)) if self.client_id is not None else None

    def delivery_unknown(self, trade: Trade, now: float) -> list[object]:
        """The write broke off: ``Unknown`` until reconciliation (unless TWS answered)."""
        key = (trade.client_id, trade.order_id)
        if trade.status is TradeStatus.PENDING_SUBMIT:
            self.unresolved.add(key)
            trade._set_status(TradeStatus.UNKNOWN, now, "delivery unknown")
            return [self.status_event(trade)]
        return []

    def not_sent(self, trade: Trade, now: float, why: str) -> list[object]:
        """The order certainly never reached TWS (abandoned, refused before the wire)."""
        if trade.status is TradeStatus.PENDING_SUBMIT:
            trade._set_status(TradeStatus.NOT_PLACED, now, why)
            return [self.status_event(trade)]
        return []

    # -- what TWS says ---------------------------------------------------------------------

    def on_open_order(self, event: ev.OpenOrder, now: float) -> list[object]:
        order = event.order
        key = (int(order.clientId), event.order_id)
        if self._open_seen is not None:
            self._open_seen.add(key)
        trade = self.trades.get(key)
        if trade is None:
            trade = self.trades[key] = Trade(
                event.order_id, key[0], event.contract, order, legs=legs_of(event.contract),
                read_only=key[0] != self.client_id, remaining=Decimal(order.totalQuantity))
            log.debug("adopted order %d of client %d from TWS", key[1], key[0])
        else:
            trade.order.lmtPrice = order.lmtPrice
            trade.order.totalQuantity = order.totalQuantity
        trade.perm_id = int(order.permId) or trade.perm_id
        self._acknowledged(trade, now)
        status = TradeStatus.from_tws(getattr(event.order_state, "status", ""))
        if status is not None and trade._set_status(status, now, "openOrder"):
            return self._after_status(trade)
        return []

    def on_status(self, event: ev.OrderStatus, now: float) -> list[object]:
        trade = self.trades.get((event.client_id, event.order_id))
        status = TradeStatus.from_tws(event.status)
        if trade is None or status is None:
            return []
        self._acknowledged(trade, now)
        if event.filled < trade.filled_quantity:
            return []  # older than what we know: TWS's cumulative filled never goes back
        trade.perm_id = event.perm_id or trade.perm_id
        trade.filled_quantity, trade.remaining = Decimal(event.filled), Decimal(event.remaining)
        if trade.filled_quantity > 0 and 0 < event.avg_fill_price < 1.7e308:
            trade.avg_fill_price = event.avg_fill_price
        if trade._set_status(status, now, "orderStatus"):
            return self._after_status(trade)
        return []

    def on_execution(self, event: ev.ExecDetails, now: float) -> list[object]:
        """One ``execDetails`` (live or replayed): counted once per ``execId``."""
        ex, contract = event.execution, event.contract
        if ex.execId in self.fills:
            return []
        fill = Fill(ex.execId, int(ex.orderId), int(ex.clientId), int(ex.permId), ex.acctNumber,
                    int(contract.conId), contract.symbol, contract.secType, ex.side,
                    Decimal(ex.shares), float(ex.price), ex.time,
                    self._commissions.pop(ex.execId, None))
        self.fills[fill.exec_id] = fill
        self._latest_exec_time = max(self._latest_exec_time, fill.time)
        if not self._exec_gap:
            self.exec_complete_until = self._latest_exec_time
        # REAL-TWS: a combo fill arrives per leg plus one BAG-level execDetails
        if fill.sec_type != "BAG":
            holding = self._holdings.setdefault(
                (fill.account, fill.con_id),
                _Holding(fill.account, fill.con_id, fill.symbol, fill.sec_type))
            holding.apply(fill.shares if fill.side == "BOT" else -fill.shares, fill.price)
        out: list[object] = [FillReceived(fill.order_id, fill.exec_id, fill.con_id, fill.side,
                                          fill.shares, fill.price)]
        trade = self.trades.get((fill.client_id, fill.order_id))
        if trade is not None:
            trade.fills.append(fill)
            trade._touch()
            out += self._filled_by_executions(trade, now)
        return out

    def _filled_by_executions(self, trade: Trade, now: float) -> list[object]:
        """An order whose executions add up to its quantity is filled, even if TWS's
        ``Filled`` status was lost with the link (TWS lists only open orders afterwards;
        the executions come back through ``reqExecutions``)."""
        own = [f for f in trade.fills if f.sec_type == trade.contract.secType]
        executed = sum((f.shares for f in own), Decimal(0))
        total = Decimal(trade.order.totalQuantity)
        if trade.is_done or not own or executed < total:
            return []
        trade.filled_quantity, trade.remaining = executed, Decimal(0)
        trade.avg_fill_price = sum(float(f.shares) * f.price for f in own) / float(executed)
        trade._set_status(TradeStatus.FILLED, now, "executions")
        return self._after_status(trade)

    def on_commission(self, exec_id: str, commission: float) -> None:
        fill = self.fills.get(exec_id)
        if fill is None:
            self._commissions[exec_id] = commission  # the report came first
            return
        updated = self.fills[exec_id] = attrs.evolve(fill, commission=commission)
        trade = self.trades.get((fill.client_id, fill.order_id))
        if trade is not None:
            trade.fills[:] = [updated if f.exec_id == exec_id else f for f in trade.fills]
            trade._touch()

    def on_completed_order(self, perm_id: int, status_text: str, now: float) -> list[object]:
        """``completedOrder`` (matched by permId: it carries no order id): how an order
        TWS no longer lists ended, e.g. cancelled by TWS while the link was down."""
        status = TradeStatus.from_tws(status_text)
        if status is TradeStatus.FILLED:
            return []  # a fill is the executions' to tell: they carry the quantities
        trade = next((t for t in self.trades.values() if perm_id and t.perm_id == perm_id),
                     None)
        if trade is None or status is None or trade.is_done:
            return []
        if trade._set_status(status, now, "completedOrder"):
            return self._after_status(trade)
        return []

    def on_error(self, order_id: int, info: codes.CodeInfo, tws_text: str,
                 now: float) -> list[object]:
        """A classified TWS error for one of our order ids."""
        trade = self.own(order_id)
        if trade is None or trade.is_done:
            return []
        strategy = info.strategy
        rejected = OrderRejected(order_id, info.code, info.meaning, tws_text)
        if strategy is codes.Strategy.REJECT_ORDER or (
                strategy in (codes.Strategy.FAIL_REQUEST, codes.Strategy.RESYNC_ORDER_IDS)
                and trade.status in (TradeStatus.PENDING_SUBMIT, TradeStatus.UNKNOWN)):
            # 201 is followed by Inactive; a request error (110, 200, 103) for an order
            # TWS never acknowledged leaves it with no status at all: it never lived.
            self.unresolved.discard((trade.client_id, order_id))
            trade.rejection = Rejection(info.code, info.meaning, tws_text)
            trade._set_status(TradeStatus.INACTIVE, now, f"rejected {info.code}")
            return [rejected, self.status_event(trade)]
        if strategy is codes.Strategy.ORDER_CANCELLED:
            if trade._set_status(TradeStatus.CANCELLED, now, "202"):
                return self._after_status(trade)
            return []
        if strategy in (codes.Strategy.FAIL_REQUEST, codes.Strategy.REJECT_ORDER):
            # A modification TWS refused: the order lives on with its earlier terms.
            trade.log.append(attrs.evolve(trade.log[-1], time=now,
                                          note=f"modification refused {info.code}"))
            trade._touch()
            return [rejected]
        return []

    # -- reconciliation --------------------------------------------------------------------

    def link_lost(self) -> None:
        """The link to TWS (or TWS's to IB) dropped: executions may be missed from now on,
        until a reconciliation round completes."""
        self._exec_gap = True

    def begin_reconciliation(self) -> None:
        """TWS is about to list every open order: remember which ones it names, and which
        own orders wait for its word: those of unknown delivery, and those written with
        no answer yet (the answer may have been lost with the link). Each of these was
        written before the request for the list, so TWS's list accounts for it."""
        self._open_seen = set()
        self.unresolved.update(
            key for key, trade in self.trades.items()
            if not trade.read_only and trade.status is TradeStatus.PENDING_SUBMIT)

    def finish_reconciliation(self, now: float) -> tuple[list[Trade], list[Trade]]:
        """TWS's open orders and executions are complete: resolve every order of unknown
        delivery. Returns (adopted, not placed)."""
        seen = self._open_seen or set()
        self._open_seen = None
        self.reconciliations += 1
        # TWS's answers were complete: nothing before the latest fill is missing now.
        self._exec_gap = False
        self.exec_complete_until = self._latest_exec_time
        adopted, not_placed = [], []
        for key in sorted(self.unresolved):
            trade = self.trades[key]
            if key in seen or trade.fills or trade.status not in (TradeStatus.UNKNOWN,
                                                                   TradeStatus.PENDING_SUBMIT):
                adopted.append(trade)
            else:
                trade._set_status(TradeStatus.NOT_PLACED, now, "not at TWS after reconnect")
                not_placed.append(trade)
        self.unresolved.clear()
        return adopted, not_placed

    def abandon_reconciliation(self) -> None:
        self._open_seen = None

    # -- views -----------------------------------------------------------------------------

    def positions(self) -> tuple[Position, ...]:
        return tuple(Position(h.account, h.con_id, h.symbol, h.sec_type, h.quantity, h.avg_price)
                     for h in self._holdings.values() if h.quantity != 0)

    def stats(self) -> OrderStats:
        samples = sorted(self._ack_ms)
        by_status = collections.Counter(t.status.value for t in self.trades.values())
        return OrderStats(_percentile(samples, 0.50), _percentile(samples, 0.99),
                          dict(by_status), self.placed, self.reconciliations)

    # -- internals -------------------------------------------------------------------------

    def _acknowledged(self, trade: Trade, now: float) -> None:
        if trade.acknowledged_at is None:
            trade.acknowledged_at = now
            if trade.placed_at is not None:
                self._ack_ms.append((now - trade.placed_at) * 1000.0)

    def _after_status(self, trade: Trade) -> list[object]:
        out: list[object] = [self.status_event(trade)]
        if trade.status is TradeStatus.FILLED:
            out.append(OrderFilled(trade.order_id, trade.filled_quantity, trade.avg_fill_price))
        elif trade.status in (TradeStatus.CANCELLED, TradeStatus.API_CANCELLED):
            out.append(OrderCancelled(trade.order_id, trade.filled_quantity))
        return out

    @staticmethod
    def status_event(trade: Trade) -> OrderStatusChanged:
        return OrderStatusChanged(trade.order_id, trade.client_id, trade.status.value,
                                  trade.filled_quantity, trade.remaining)


def _percentile(samples: list[float], q: float) -> float | None:
    if not samples:
        return None
    return round(samples[min(len(samples) - 1, int(q * len(samples)))], 3)
