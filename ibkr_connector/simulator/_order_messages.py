"""Order, execution, position and account messages, encoded for one server version.

The writing half for the order engine's typed messages (``_order_types``), beside
``_messages`` which writes the session-level ones. Field orders are those of
``ibapi/decoder.py`` + ``orderdecoder.py`` 10.50 and ``ib_async/decoder.py`` 2.1; the tests
feed every frame to both decoders at several versions. Rules both clients impose:

* unset doubles are written in Java's form ``1.7976931348623157E308`` (ibapi reads the
  Python form as a huge Decimal), integers as plain digits, booleans as 1/0;
* ib_async unpacks several messages into exact tuples (position 16 fields, portfolio 20,
  commission 8), so nothing extra may trail them;
* a whatIf ``openOrder`` carries its margins as numeric strings, never ``""`` (ib_async
  calls ``float()`` on ``initMarginChange`` to decide the answer has come);
* ``openOrder`` carries the placing client id and a stable permId: ib_async keys trades on
  them.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from ibkr_connector.simulator import _messages as wire
from ibkr_connector.simulator._codec import frame
from ibkr_connector.simulator._order_types import (
    AccountDownloadEndMsg,
    AccountSummaryEndMsg,
    AccountSummaryMsg,
    AccountTimeMsg,
    AccountUpdateMultiEndMsg,
    AccountUpdateMultiMsg,
    AccountValueMsg,
    CommissionMsg,
    CompletedOrderMsg,
    CompletedOrdersEndMsg,
    ErrorMsg,
    ExecDetailsEndMsg,
    ExecDetailsMsg,
    Fill,
    MarginImpact,
    Message,
    NextValidIdMsg,
    OpenOrderEndMsg,
    OpenOrderMsg,
    OrderStatusMsg,
    OrderView,
    PortfolioMsg,
    PositionEndMsg,
    PositionMsg,
)
from ibkr_connector.simulator._requests import ContractSpec

__all__ = ["UNSET_DOUBLE", "encode_message"]

UNSET_DOUBLE = "1.7976931348623157E308"

# Version gates (``ibapi.server_versions``).
_DURATION = 158
_POST_TO_ATS = 160
_AUTO_CANCEL_PARENT = 162
_PEGBEST_PEGMID = 170
_FA_PROFILE_DESUPPORT = 177
_PENDING_PRICE_REVISION = 178
_CUSTOMER_ACCOUNT = 183
_PROFESSIONAL_CUSTOMER = 184
_BOND_ACCRUED_INTEREST = 185
_INCLUDE_OVERNIGHT = 189
_CME_TAGGING_IN_OPEN_ORDER = 193
_FULL_ORDER_PREVIEW = 195
_SUBMITTER = 198
_IMBALANCE_ONLY = 199


def _num(value: float | Decimal | None) -> str:
    """A number as TWS writes it: integral values without a fraction."""
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return str(value.normalize()) if value == value.to_integral() else str(value)
    number = float(value)
    return str(int(number)) if number.is_integer() and abs(number) < 1e15 else repr(number)


def _contract_fields(c: ContractSpec) -> list[object]:
    """conId .. tradingClass as openOrder, execDetails and position carry them."""
    return [c.con_id, c.symbol, c.sec_type, c.expiry, _num(c.strike), c.right,
            c.multiplier, c.exchange, c.currency, c.local_symbol, c.trading_class]


def _order_head(order: OrderView) -> list[object]:
    terms = order.terms
    lmt = _num(terms.lmt_price) if terms.lmt_price is not None else ""
    aux = _num(terms.aux_price) if terms.aux_price is not None else ""
    return [terms.action, _num(terms.total_quantity), terms.order_type, lmt, aux, terms.tif,
            "", order.account, "", 0, terms.order_ref]


def _combo_fields(order: OrderView) -> list[object]:
    legs = order.contract.combo_legs
    out: list[object] = ["", len(legs)]  # comboLegsDescrip, count
    for leg in legs:
        out += [leg.con_id, leg.ratio, leg.action, leg.exchange, leg.open_close, 0, "", -1]
    prices = order.terms.leg_prices
    out.append(len(prices))
    out += [_num(p) if p is not None else "" for p in prices]
    params = order.terms.smart_combo_routing
    out.append(len(params))
    for tag, value in params:
        out += [tag, value]
    return out


def _margin_fields(impact: MarginImpact | None) -> list[object]:
    if impact is None:
        unset: list[object] = [UNSET_DOUBLE] * 9
        return [*unset, "", "", "", ""]
    values = (impact.init_before, impact.maint_before, impact.equity_before,
              impact.init_change, impact.maint_change, impact.equity_change,
              impact.init_after, impact.maint_after, impact.equity_after)
    return [*(_num(round(v, 2)) for v in values), _num(impact.commission),
            _num(impact.min_commission), _num(impact.max_commission), impact.currency]


def open_order(m: OpenOrderMsg, sv: int) -> list[object]:
    """``OPEN_ORDER`` (5) in the minimal form both decoders read (no delta-neutral,
    scale, algo, PEG BENCH or conditions blocks)."""
    order, what_if = m.order, m.what_if
    out: list[object] = [5, order.order_id, *_contract_fields(order.contract),
                         *_order_head(order), order.client_id, order.perm_id,
                         int(order.terms.outside_rth), 0, "0", "", "", "", "", ""]
    if sv < _FA_PROFILE_DESUPPORT:
        out.append("")
    out += ["", "", "", "", "",  # modelCode, goodTillDate, rule80A, percentOffset, settling
            0, "", -1, 0,  # shortSaleSlot, designatedLocation, exemptCode, auctionStrategy
            "", "", "", "", "",  # startingPrice .. stockRangeUpper
            "", 0, 0, 0, "", 3,  # displaySize, block, sweep, allOrNone, minQty, ocaType
            0, 0, "",  # eTradeOnly, firmQuoteOnly, nbboPriceCap
            order.terms.parent_id, 0,  # parentId, triggerMethod
            "", 0, "", "",  # volatility, volatilityType, deltaNeutral type ("") and aux
            0, 0, "", "",  # continuousUpdate, referencePriceType, trailStop, trailingPct
            "", "",  # basisPoints, basisPointsType
            *_combo_fields(order),
            "", "", "",  # scaleInit, scaleSubs, scalePriceIncrement
            "",  # hedgeType
            0, "", "IB", 0,  # optOutSmartRouting, clearingAccount, clearingIntent, notHeld
            0,  # deltaNeutralContract present
            "",  # algoStrategy
            0,  # solicited
            int(what_if is not None), order.status, *_margin_fields(what_if)]
    if sv >= _FULL_ORDER_PREVIEW:
        out += ["USD" if what_if else "", *[""] * 9, "", "", 0]
    out += ["",  # warningText
            0, 0,  # randomizeSize, randomizePrice
            0,  # conditions
            "None", *[UNSET_DOUBLE] * 6, 0,  # adjusted order params
            "", "", "",  # softDollarTier
            "0", 1, 0, 0, 0]  # cashQty, dontUseAutoPriceForHedge, isOms, discUpTo, priceMgmt
    if sv >= _DURATION:
        out.append("")
    if sv >= _POST_TO_ATS:
        out.append("")
    if sv >= _AUTO_CANCEL_PARENT:
        out.append(0)
    if sv >= _PEGBEST_PEGMID:
        out += ["", "", "", "", ""]
    out += _tail(sv, open_order=True)
    return out


def _tail(sv: int, *, open_order: bool) -> list[object]:
    out: list[object] = []
    if sv >= _CUSTOMER_ACCOUNT:
        out.append("")
    if sv >= _PROFESSIONAL_CUSTOMER:
        out.append(0)
    if open_order:
        if sv >= _BOND_ACCRUED_INTEREST:
            out.append("")
        if sv >= _INCLUDE_OVERNIGHT:
            out.append(0)
        if sv >= _CME_TAGGING_IN_OPEN_ORDER:
            out += ["", ""]
    if sv >= _SUBMITTER:
        out.append("")
    if open_order and sv >= _IMBALANCE_ONLY:
        out.append(0)
    return out


def completed_order(m: CompletedOrderMsg, sv: int) -> list[object]:
    """``COMPLETED_ORDER`` (101): no order id, no client id; its own field order."""
    order = m.order
    out: list[object] = [101, *_contract_fields(order.contract), *_order_head(order),
                         order.perm_id, int(order.terms.outside_rth), 0, "0", "",
                         "", "", ""]
    if sv < _FA_PROFILE_DESUPPORT:
        out.append("")
    out += ["", "", "", "", "",  # modelCode, goodTillDate, rule80A, percentOffset, settling
            0, "", -1,  # shortSaleSlot, designatedLocation, exemptCode
            "", "", "", "", "",  # startingPrice .. stockRangeUpper
            "", 0, 0, "", 3,  # displaySize, sweep, allOrNone, minQty, ocaType
            0,  # triggerMethod
            "", 0, "", "",  # volatility, volatilityType, deltaNeutral type ("") and aux
            0, 0, "", "",  # continuousUpdate, referencePriceType, trailStop, trailingPct
            *_combo_fields(order),
            "", "", "", "",  # scaleInit, scaleSubs, scalePriceIncrement, hedgeType
            "", "IB", 0,  # clearingAccount, clearingIntent, notHeld
            0, "", 0,  # deltaNeutralContract present, algoStrategy, solicited
            order.status, 0, 0,  # status, randomizeSize, randomizePrice
            0,  # conditions
            UNSET_DOUBLE, UNSET_DOUBLE,  # trailStopPrice, lmtPriceOffset
            "0", 1, 0,  # cashQty, dontUseAutoPriceForHedge, isOmsContainer
            "", _num(order.filled), 0, 0,  # autoCancelDate, filledQty, refFutConId, acParent
            "", 0, 0, 0,  # shareholder, imbalanceOnly, routeMarketableToBbo, parentPermId
            order.completed_time, order.completed_status]
    if sv >= _PEGBEST_PEGMID:
        out += ["", "", "", "", ""]
    out += _tail(sv, open_order=False)
    return out


def order_status(m: OrderStatusMsg, sv: int) -> list[object]:
    """``ORDER_STATUS`` (3), no version field from 131."""
    o = m.order
    return [3, o.order_id, o.status, _num(o.filled), _num(o.remaining),
            _num(o.avg_fill_price), o.perm_id, o.terms.parent_id, _num(o.last_fill_price),
            o.client_id, "", 0]


def exec_details(m: ExecDetailsMsg, sv: int) -> list[object]:
    """``EXECUTION_DATA`` (11), no version field from 136; reqId -1 for live fills."""
    f: Fill = m.fill
    out: list[object] = [11, m.req_id, f.order_id, *_contract_fields(f.contract),
                         f.exec_id, f.time, f.account, f.contract.exchange or "SMART",
                         f.side, _num(f.shares), _num(f.price), f.perm_id, f.client_id, 0,
                         _num(f.cum_qty), _num(f.avg_price), f.order_ref, "", "", "", 1]
    if sv >= _PENDING_PRICE_REVISION:
        out.append(0)
    if sv >= _SUBMITTER:
        out.append("")
    return out


def commission(m: CommissionMsg, sv: int) -> list[object]:
    f = m.fill
    realized = UNSET_DOUBLE if f.realized_pnl is None else _num(round(f.realized_pnl, 2))
    return [59, 1, f.exec_id, _num(round(f.commission, 4)), f.currency, realized,
            UNSET_DOUBLE, 0]


def position(m: PositionMsg, sv: int) -> list[object]:
    return [61, 3, m.account, *_contract_fields(m.contract), _num(m.position),
            _num(m.avg_cost)]


def portfolio(m: PortfolioMsg, sv: int) -> list[object]:
    c = m.contract
    return [7, 8, c.con_id, c.symbol, c.sec_type, c.expiry, _num(c.strike), c.right,
            c.multiplier, c.primary_exchange, c.currency, c.local_symbol, c.trading_class,
            _num(m.position), _num(m.market_price), _num(round(m.market_value, 2)),
            _num(m.avg_cost), _num(round(m.unrealized_pnl, 2)),
            _num(round(m.realized_pnl, 2)), m.account]


_ENCODERS: dict[type[Any], Callable[[Any, int], list[object]]] = {
    OpenOrderMsg: open_order,
    OrderStatusMsg: order_status,
    OpenOrderEndMsg: lambda m, sv: [53, 1],
    CompletedOrderMsg: completed_order,
    CompletedOrdersEndMsg: lambda m, sv: [102],
    ExecDetailsMsg: exec_details,
    ExecDetailsEndMsg: lambda m, sv: [55, 1, m.req_id],
    CommissionMsg: commission,
    NextValidIdMsg: lambda m, sv: [9, 1, m.order_id],
    PositionMsg: position,
    PositionEndMsg: lambda m, sv: [62, 1],
    AccountValueMsg: lambda m, sv: [6, 2, m.key, m.value, m.currency, m.account],
    PortfolioMsg: portfolio,
    AccountTimeMsg: lambda m, sv: [8, 1, m.hhmm],
    AccountDownloadEndMsg: lambda m, sv: [54, 1, m.account],
    AccountSummaryMsg: lambda m, sv: [63, 1, m.req_id, m.account, m.tag, m.value,
                                      m.currency],
    AccountSummaryEndMsg: lambda m, sv: [64, 1, m.req_id],
    AccountUpdateMultiMsg: lambda m, sv: [73, 1, m.req_id, m.account, m.model_code, m.key,
                                          m.value, m.currency],
    AccountUpdateMultiEndMsg: lambda m, sv: [74, 1, m.req_id],
}


def encode_message(message: Message, server_version: int, time_ms: int) -> bytes:
    """One whole frame for ``message`` as a client at ``server_version`` reads it."""
    if isinstance(message, ErrorMsg):
        return wire.error(server_version, message.req_id, message.code, message.text,
                          time_ms=time_ms)
    return frame(_ENCODERS[type(message)](message, server_version))
