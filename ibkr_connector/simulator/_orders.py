"""The simulated TWS's order engine, sans-IO: placement, validation, lifecycles, fills.

"IB's side" of every order: the engine lives in ``SimulatorState`` (through the order desk),
so orders, order ids, executions and positions survive a client's reconnect and a
simulated TWS restart, as they do at IB. It is fed decoded requests (``_order_wire``) and
the simulated market (``SimMarket``), and answers with ``Notice`` values addressed to
client ids; it never sees a socket or a clock (wall time is passed in).

The lifecycles and codes are those of the protocol brief §5: a new order answers
``openOrder`` + ``orderStatus`` PreSubmitted, then Submitted; a marketable order (MKT, or
LMT through the quote) fills at once, a resting LMT when ``advance`` finds the market
through its limit (a BAG at the net of its legs). Each fill is ``execDetails`` (per leg
and for the BAG), ``orderStatus``, ``openOrder`` once filled, and a
``commissionAndFeesReport`` per execution. Refusals: 10149 (id <= 0), 103 (id not above
every id the client used), 200 (unknown contract), 321 (BAG without legs), 110 (price
off the tick), 201 + ``Inactive`` (bad combo, bad order, injected reject), 104/105 for
modifications, 10147/10148 for cancels.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from decimal import Decimal

import attrs

from ibkr_connector.simulator._accounts import Change, Ledger, what_if_impact
from ibkr_connector.simulator._market import Instrument, SimMarket
from ibkr_connector.simulator._order_types import (
    DONE_STATES,
    CommissionMsg,
    ErrorMsg,
    ExecDetailsMsg,
    Fill,
    Notice,
    OpenOrderMsg,
    OrderStatusMsg,
    OrderView,
)
from ibkr_connector.simulator._order_wire import PlaceOrder
from ibkr_connector.simulator._requests import ComboLegSpec, ContractSpec

__all__ = ["BAG_CON_ID", "DEFAULT_REJECT_REASON", "OrderEngine", "commission_for",
           "contract_of"]

#: The conId TWS gives every SMART-routed combo contract.
BAG_CON_ID = 28812380
#: The reason an injected rejection gives when none is named (a real TWS text).
DEFAULT_REJECT_REASON = "Riskless combination orders are not allowed"
_FIRST_PERM_ID = 1_000_000_001
_SUPPORTED_TYPES = frozenset({"MKT", "LMT"})
_TEXT = {
    103: "Duplicate order id",
    104: "Can't modify a filled order.",
    105: "Order being modified does not match original order.",
    110: "The price does not conform to the minimum price variation for this contract.",
    200: "No security definition has been found for the request",
    202: "Order Canceled - reason:",
    321: "Error validating request.-'bN' : cause - Security type 'BAG' requires combo leg "
         "details.",
}


def contract_of(inst: Instrument) -> ContractSpec:
    """The contract TWS reports for an instrument (what a qualified contract holds)."""
    return ContractSpec(inst.con_id, inst.symbol, inst.sec_type, inst.expiry,
                        inst.strike, inst.right,
                        str(inst.multiplier) if inst.sec_type == "OPT" else "",
                        inst.exchange, inst.primary_exchange, inst.currency,
                        inst.local_symbol, inst.trading_class)


def commission_for(sec_type: str, shares: Decimal) -> float:
    """IB's fixed rates: 0.65 per option contract, 0.005 per share; at least 1.00."""
    rate = 0.65 if sec_type == "OPT" else 0.005
    return round(max(1.0, rate * float(shares)), 4)


class OrderRefused(Exception):
    """Raised inside the engine to answer a request with one error and nothing else."""

    def __init__(self, code: int, text: str = "") -> None:
        super().__init__(code, text or _TEXT[code])
        self.code, self.text = code, text or _TEXT[code]


@attrs.define
class _Leg:
    inst: Instrument
    spec: ComboLegSpec


@attrs.define
class _Order:
    view: OrderView
    legs: list[_Leg]
    inst: Instrument | None  # None for a BAG


class OrderEngine:
    """Every order, execution and position of one simulated TWS."""

    def __init__(self, market: SimMarket, accounts: Iterable[str], *,
                 initial_cash: float = 1_000_000.0, first_order_id: int = 1,
                 partial_fill_quantity: Decimal | None = None) -> None:
        self.market = market
        self.ledger = Ledger(accounts, initial_cash)
        self.first_order_id = first_order_id
        self.partial_fill_quantity = partial_fill_quantity
        self.reject_next: str | None = None
        self._orders: dict[tuple[int, int], _Order] = {}
        #: The orders that may fill (status Submitted): the fill check visits only these,
        #: so its cost does not grow with every order ever placed.
        self._working: dict[tuple[int, int], _Order] = {}
        self._max_id: dict[int, int] = {}
        self._next_perm_id = _FIRST_PERM_ID
        self._exec_seq = 0
        self._fills: list[Fill] = []

    # -- observation -----------------------------------------------------------------------

    def next_order_id(self, client_id: int) -> int:
        """``nextValidId`` for ``client_id``: above every id it ever used (persistent)."""
        return max(self.first_order_id, self._max_id.get(client_id, 0) + 1)

    def use_order_id(self, client_id: int, order_id: int) -> None:
        """Count ``order_id`` as used by ``client_id`` (TWS saw it, even unreadable)."""
        self._max_id[client_id] = max(self._max_id.get(client_id, 0), order_id)

    def orders(self) -> list[OrderView]:
        return [o.view for o in self._orders.values()]

    def order(self, client_id: int, order_id: int) -> OrderView | None:
        found = self._orders.get((client_id, order_id))
        return found.view if found else None

    def fills(self) -> list[Fill]:
        return list(self._fills)

    # -- placing -----------------------------------------------------------------------------

    def place(self, client_id: int, request: PlaceOrder, wall: float) -> list[Notice]:
        """Answer ``placeOrder``: a new order, a modification (same id, still open) or a
        whatIf preview; the notices include any immediate fills."""
        key = (client_id, request.order_id)
        try:
            if request.order_id <= 0:
                raise OrderRefused(10149, f"Invalid order id: {request.order_id}")
            existing = self._orders.get(key)
            if existing is not None and existing.view.status not in DONE_STATES:
                return self._modify(existing, request, wall)
            if existing is not None and existing.view.status == "Filled":
                raise OrderRefused(104)
            if request.order_id < self.next_order_id(client_id):
                raise OrderRefused(103)
            self._max_id[client_id] = request.order_id
            inst, legs = self._resolve(request.contract)
            account = request.account or self.ledger.accounts[0]
            self._check_price(request, inst, legs)
        except OrderRefused as refusal:
            return [Notice(client_id, ErrorMsg(request.order_id, refusal.code, refusal.text))]
        contract = contract_of(inst) if inst else self._bag_contract(request.contract, legs)
        if request.what_if:
            return [Notice(client_id, self._what_if(client_id, request, contract, inst, legs,
                                                    account))]
        self._next_perm_id += 1
        view = OrderView(client_id, request.order_id, self._next_perm_id - 1, account, contract,
                         request, "PreSubmitted", Decimal(0), request.total_quantity)
        order = self._orders[key] = _Order(view, legs, inst)
        notices = self._publish(order, open_order=True)
        reason = self._rejection(request, inst, legs)
        if reason is not None:
            notices.append(Notice(client_id, ErrorMsg(request.order_id, 201,
                                                      f"Order rejected - reason:{reason}")))
            return notices + self._finish(order, "Inactive", wall)
        if request.transmit:
            self._set(order, status="Submitted")
            notices += self._publish(order, open_order=True)
            notices += self._try_fill(order, wall)
        return notices

    def _modify(self, order: _Order, request: PlaceOrder, wall: float) -> list[Notice]:
        view = order.view
        old = view.terms
        if (request.contract.sec_type != old.contract.sec_type or request.action != old.action
                or (request.contract.con_id and request.contract.con_id != view.contract.con_id
                    and view.contract.sec_type != "BAG")):
            raise OrderRefused(105)
        self._check_price(request, order.inst, order.legs)
        if request.total_quantity <= view.filled:
            raise OrderRefused(105, "Order being modified does not match original order: "
                                    "the new quantity is not above the filled quantity.")
        self._set(order, terms=request, remaining=request.total_quantity - view.filled,
                  status="Submitted" if request.transmit else view.status)
        return self._publish(order, open_order=True) + self._try_fill(order, wall)

    def _resolve(self, spec: ContractSpec) -> tuple[Instrument | None, list[_Leg]]:
        if spec.sec_type == "BAG":
            if not spec.combo_legs:
                raise OrderRefused(321)
            legs = []
            for leg in spec.combo_legs:
                inst = self.market.instrument(leg.con_id)
                if inst is None:
                    raise OrderRefused(200)
                legs.append(_Leg(inst, leg))
            return None, legs
        found = self.market.match(
            con_id=spec.con_id, symbol=spec.symbol, sec_type=spec.sec_type, expiry=spec.expiry,
            strike=spec.strike, right=spec.right, multiplier=spec.multiplier,
            currency=spec.currency, local_symbol=spec.local_symbol,
            trading_class=spec.trading_class)
        if len(found) != 1:
            raise OrderRefused(200)
        return found[0], []

    def _check_price(self, request: PlaceOrder, inst: Instrument | None,
                     legs: list[_Leg]) -> None:
        price = request.lmt_price
        if request.order_type != "LMT" or price is None:
            return
        if inst is not None:
            tick = (self.market.option_tick(inst, abs(price)) if inst.sec_type == "OPT"
                    else inst.min_tick)
        else:
            tick = min(leg.inst.min_tick for leg in legs)
        if abs(price / tick - round(price / tick)) > 1e-6:
            raise OrderRefused(110)

    def _rejection(self, request: PlaceOrder, inst: Instrument | None,
                   legs: list[_Leg]) -> str | None:
        """Why TWS would reject the (created) order with 201, or None."""
        if self.reject_next is not None:
            reason, self.reject_next = self.reject_next, None
            return reason
        if inst is not None and inst.sec_type == "IND":
            return f"{inst.symbol} is an index: it is not tradable"
        if request.order_type not in _SUPPORTED_TYPES:
            return f"Order type {request.order_type} is not supported by this simulator"
        if request.order_type == "LMT" and request.lmt_price is None:
            return "Limit price is required for LMT orders"
        if request.total_quantity <= 0:
            return "The order size must be positive"
        if request.action not in ("BUY", "SELL"):
            return f"Invalid action {request.action}"
        if legs:
            return self._combo_problem(request, legs)
        return None

    @staticmethod
    def _combo_problem(request: PlaceOrder, legs: list[_Leg]) -> str | None:
        if len(legs) < 2:
            return "A combination order needs at least two legs"
        if any(leg.spec.ratio <= 0 or leg.spec.action not in ("BUY", "SELL") for leg in legs):
            return "Invalid combo leg: ratio must be positive and action BUY or SELL"
        if len({leg.inst.symbol for leg in legs}) > 1 or (
                request.contract.symbol and legs[0].inst.symbol != request.contract.symbol):
            return "Combo legs must share the combo's underlying"
        con_ids = [leg.inst.con_id for leg in legs]
        if len(set(con_ids)) != len(con_ids):
            return "Riskless combination orders are not allowed"
        return None

    def _bag_contract(self, spec: ContractSpec, legs: list[_Leg]) -> ContractSpec:
        first = legs[0].inst if legs else None
        return attrs.evolve(spec, con_id=BAG_CON_ID, symbol=spec.symbol or (
            first.symbol if first else ""), exchange=spec.exchange or "SMART",
            currency=spec.currency or "USD")

    # -- whatIf --------------------------------------------------------------------------------

    def _what_if(self, client_id: int, request: PlaceOrder, contract: ContractSpec,
                 inst: Instrument | None, legs: list[_Leg], account: str) -> OpenOrderMsg:
        sign = 1 if request.action == "BUY" else -1
        parts = [(inst, 1, sign)] if inst else [
            (leg.inst, leg.spec.ratio, sign * (1 if leg.spec.action == "BUY" else -1))
            for leg in legs]
        changes = [Change(part.con_id, part.sec_type, float(part.multiplier),
                          direction * ratio * float(request.total_quantity),
                          commission_for(part.sec_type, request.total_quantity * ratio))
                   for part, ratio, direction in parts if part is not None]
        view = OrderView(client_id, request.order_id, 0, account, contract, request,
                         "PreSubmitted", Decimal(0), request.total_quantity)
        return OpenOrderMsg(view, what_if_impact(self.ledger, account, changes, self.mark))

    # -- cancelling ------------------------------------------------------------------------------

    def cancel(self, client_id: int, order_id: int, wall: float) -> list[Notice]:
        """Answer ``cancelOrder``: only the placing client may cancel (10147 otherwise)."""
        order = self._orders.get((client_id, order_id))
        if order is None:
            text = f"OrderId {order_id} that needs to be cancelled is not found."
            return [Notice(client_id, ErrorMsg(order_id, 10147, text))]
        if order.view.status in DONE_STATES:
            text = (f"OrderId {order_id} that needs to be cancelled can not be cancelled, "
                    f"state: {order.view.status}.")
            return [Notice(client_id, ErrorMsg(order_id, 10148, text))]
        self._set(order, status="PendingCancel")
        notices = self._publish(order, open_order=False)
        notices += self._finish(order, "Cancelled", wall, open_order=False)
        notices.append(Notice(client_id, ErrorMsg(order_id, 202, _TEXT[202])))
        return notices

    def cancel_all(self, wall: float) -> list[Notice]:
        """``reqGlobalCancel``: every open order of every client."""
        notices: list[Notice] = []
        for (client_id, order_id), order in list(self._orders.items()):
            if order.view.status not in DONE_STATES:
                notices += self.cancel(client_id, order_id, wall)
        return notices

    # -- filling -----------------------------------------------------------------------------------

    def advance(self, wall: float) -> list[Notice]:
        """Fill what the market now crosses (one partial-fill step per working order)."""
        notices: list[Notice] = []
        # In placement order (permIds rise with it), as a scan of every order would be.
        for order in sorted(self._working.values(), key=lambda o: o.view.perm_id):
            if order.view.status == "Submitted":
                notices += self._try_fill(order, wall)
        return notices

    def working(self) -> bool:
        """True while some order may still fill (the desk keeps advancing)."""
        return bool(self._working)

    def mark(self, con_id: int) -> float | None:
        """A fair price now: the mid of a two-sided quote, else the last trade."""
        inst = self.market.instrument(con_id)
        if inst is None:
            return None
        quote = self.market.quote(con_id)
        if quote.bid > 0 and quote.ask > 0:
            return round((quote.bid + quote.ask) / 2, 6)
        return quote.last if quote.last > 0 else None

    def _side_price(self, inst: Instrument, buying: bool) -> float | None:
        quote = self.market.quote(inst.con_id)
        price = quote.ask if buying else quote.bid
        if price <= 0:
            price = quote.last
        return price if price > 0 else None

    def _execution_prices(self, order: _Order) -> tuple[float, list[float]] | None:
        """(net price, price per leg) at which the order would trade now, or None."""
        buying = order.view.terms.action == "BUY"
        if order.inst is not None:
            price = self._side_price(order.inst, buying)
            return None if price is None else (price, [])
        prices = []
        net = 0.0
        for leg in order.legs:
            leg_buys = (leg.spec.action == "BUY") == buying
            price = self._side_price(leg.inst, leg_buys)
            if price is None:
                return None
            prices.append(price)
            net += (price if leg.spec.action == "BUY" else -price) * leg.spec.ratio
        return round(net, 6), prices

    def _try_fill(self, order: _Order, wall: float) -> list[Notice]:
        terms = order.view.terms
        if order.view.status != "Submitted":
            return []
        found = self._execution_prices(order)
        if found is None:
            return []
        net, leg_prices = found
        if terms.order_type == "LMT" and terms.lmt_price is not None:
            limit = terms.lmt_price
            if (terms.action == "BUY" and net > limit + 1e-9) or (
                    terms.action == "SELL" and net < limit - 1e-9):
                return []
        step = order.view.remaining
        if self.partial_fill_quantity:
            step = min(step, self.partial_fill_quantity)
        return self._fill(order, step, net, leg_prices, wall)

    def _fill(self, order: _Order, quantity: Decimal, net: float, leg_prices: list[float],
              wall: float) -> list[Notice]:
        view, terms = order.view, order.view.terms
        filled = view.filled + quantity
        avg = (float(view.filled) * view.avg_fill_price + float(quantity) * net) / float(filled)
        self._set(order, filled=filled, remaining=terms.total_quantity - filled,
                  avg_fill_price=round(avg, 6), last_fill_price=net)
        stamp = _exec_time(wall)
        buying = terms.action == "BUY"
        fills: list[Fill] = []
        if order.inst is not None:
            fills.append(self._execute(order, order.inst, contract_of(order.inst), buying,
                                       quantity, net, stamp, wall))
        else:
            for leg, price in zip(order.legs, leg_prices, strict=True):
                leg_buys = (leg.spec.action == "BUY") == buying
                fills.append(self._execute(order, leg.inst, contract_of(leg.inst), leg_buys,
                                           quantity * leg.spec.ratio, price, stamp, wall))
            fills.append(self._record(order, view.contract, buying, quantity, net, stamp,
                                      wall, 0.0, None))
        client = view.client_id
        notices = [Notice(client, ExecDetailsMsg(-1, f)) for f in fills]
        if order.view.remaining == 0:
            notices += self._finish(order, "Filled", wall)
        else:
            notices += self._publish(order, open_order=False)
        notices += [Notice(client, CommissionMsg(f)) for f in fills]
        return notices

    def _execute(self, order: _Order, inst: Instrument, contract: ContractSpec, buying: bool,
                 shares: Decimal, price: float, stamp: str, wall: float) -> Fill:
        commission = commission_for(inst.sec_type, shares)
        _, realized = self.ledger.apply(order.view.account, contract, float(inst.multiplier),
                                        buying, shares, price, commission)
        return self._record(order, contract, buying, shares, price, stamp, wall, commission,
                            realized)

    def _record(self, order: _Order, contract: ContractSpec, buying: bool, shares: Decimal,
                price: float, stamp: str, wall: float, commission: float,
                realized: float | None) -> Fill:
        self._exec_seq += 1
        view = order.view
        same = [f for f in self._fills if f.perm_id == view.perm_id
                and f.contract.con_id == contract.con_id]
        cum = sum((f.shares for f in same), Decimal(0)) + shares
        avg = (sum(float(f.shares) * f.price for f in same) + float(shares) * price) / float(cum)
        fill = Fill(f"0000e0d5.{self._exec_seq:08x}.01.01", view.order_id, view.client_id,
                    view.perm_id, contract, stamp, view.account, "BOT" if buying else "SLD",
                    shares, price, cum, round(avg, 6), view.terms.order_ref, commission,
                    realized_pnl=realized, timestamp=wall)
        self._fills.append(fill)
        return fill

    # -- internals ---------------------------------------------------------------------------------

    def _set(self, order: _Order, **changes: object) -> None:
        view = order.view = attrs.evolve(order.view, **changes)  # type: ignore[arg-type]
        key = (view.client_id, view.order_id)
        if view.status == "Submitted":
            self._working[key] = order
        else:
            self._working.pop(key, None)

    def _publish(self, order: _Order, *, open_order: bool) -> list[Notice]:
        client, view = order.view.client_id, order.view
        head = [Notice(client, OpenOrderMsg(view))] if open_order else []
        return head + [Notice(client, OrderStatusMsg(view))]

    def _finish(self, order: _Order, status: str, wall: float, *,
                open_order: bool = True) -> list[Notice]:
        self._set(order, status=status, completed_time=_exec_time(wall),
                  completed_status=status)
        return self._publish(order, open_order=open_order)


def _exec_time(wall: float) -> str:
    stamp = datetime.datetime.fromtimestamp(wall, tz=datetime.UTC)
    return stamp.strftime("%Y%m%d %H:%M:%S UTC")

