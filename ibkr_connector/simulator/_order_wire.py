"""Order and account requests as the simulated TWS reads them (client -> server).

Part of the sans-IO session layer, beside ``_requests`` (which knows where each request's
id sits, and holds the field cursor and the contract record and reader that market-data
requests share with ``placeOrder``): this module reads the requests the order engine acts
on into frozen values. Field orders are those of ``ibapi/client.py`` 10.50 and
``ib_async`` 2.1, checked in the tests by encoding real requests with both clients at
several server versions.

``placeOrder`` is read sequentially up to its ``whatIf`` flag, because its layout has
optional blocks (combo legs, delta-neutral, scale, hedge, algo) whose presence depends on
earlier fields; nothing after ``whatIf`` changes what the simulator does, so the tail (the
part that moves most between versions) is not interpreted. Unset values arrive as ``""``
(ib_async, and ibapi's "handle empty" fields) or as the literal sentinels ibapi writes
with plain ``make_field``; both read as ``None``.
"""

from __future__ import annotations

from decimal import Decimal

import attrs

from ibkr_connector.simulator._requests import (
    ComboLegSpec,
    ContractSpec,
    FieldCursor,
    read_contract,
)

__all__ = [
    "AccountSummaryRequest",
    "AccountUpdatesMultiRequest",
    "AccountUpdatesRequest",
    "CancelOrder",
    "ExecutionFilter",
    "ExecutionsRequest",
    "PlaceOrder",
    "parse_account_summary",
    "parse_account_updates",
    "parse_account_updates_multi",
    "parse_cancel_order",
    "parse_executions_request",
    "parse_place_order",
]

#: ``MIN_SERVER_VER_FA_PROFILE_DESUPPORT``: placeOrder loses its faProfile field.
_MIN_VER_NO_FA_PROFILE = 177
#: ``MIN_SERVER_VER_MANUAL_ORDER_TIME``: cancelOrder gains manualOrderCancelTime.
_MIN_VER_MANUAL_ORDER_TIME = 169
#: ``MIN_SERVER_VER_RFQ_FIELDS`` .. ``UNDO_RFQ_FIELDS``: three placeholder fields.
_RFQ_VERSIONS = range(187, 190)
#: ``MIN_SERVER_VER_CME_TAGGING_FIELDS``: cancelOrder drops its version field.
_MIN_VER_CANCEL_NO_VERSION = 192
#: ``MIN_SERVER_VER_PARAMETRIZED_DAYS_OF_EXECUTIONS``: the execution filter's day fields.
_MIN_VER_EXECUTION_DAYS = 200


@attrs.frozen
class PlaceOrder:
    """The parts of ``placeOrder`` the simulated TWS acts on."""

    order_id: int
    contract: ContractSpec
    action: str
    total_quantity: Decimal
    order_type: str
    lmt_price: float | None
    aux_price: float | None
    tif: str = "DAY"
    account: str = ""
    order_ref: str = ""
    transmit: bool = True
    parent_id: int = 0
    outside_rth: bool = False
    leg_prices: tuple[float | None, ...] = ()
    smart_combo_routing: tuple[tuple[str, str], ...] = ()
    what_if: bool = False


@attrs.frozen
class CancelOrder:
    order_id: int
    manual_order_cancel_time: str = ""


@attrs.frozen
class ExecutionFilter:
    """``ibapi.execution.ExecutionFilter``: empty or zero values match everything."""

    client_id: int = 0
    account: str = ""
    time: str = ""
    symbol: str = ""
    sec_type: str = ""
    exchange: str = ""
    side: str = ""
    last_n_days: int = 0
    specific_dates: tuple[str, ...] = ()


@attrs.frozen
class ExecutionsRequest:
    req_id: int
    filter: ExecutionFilter


@attrs.frozen
class AccountUpdatesRequest:
    subscribe: bool
    account: str


@attrs.frozen
class AccountSummaryRequest:
    req_id: int
    group: str
    tags: tuple[str, ...]


@attrs.frozen
class AccountUpdatesMultiRequest:
    req_id: int
    account: str
    model_code: str


def _combo_block(it: FieldCursor) -> tuple[tuple[ComboLegSpec, ...],
                                          tuple[float | None, ...],
                                          tuple[tuple[str, str], ...]]:
    legs = []
    for _ in range(it.integer()):
        con_id, ratio, action, exchange = it.integer(), it.integer(), it.text(), it.text()
        open_close = it.integer()
        it.skip(3)  # shortSaleSlot, designatedLocation, exemptCode
        legs.append(ComboLegSpec(con_id, ratio, action, exchange, open_close))
    prices = tuple(it.number() for _ in range(it.integer()))
    params = tuple((it.text(), it.text()) for _ in range(it.integer()))
    return tuple(legs), prices, params


def _skip_to_what_if(it: FieldCursor, server_version: int) -> None:
    """From the deprecated sharesAllocation field up to (not including) whatIf."""
    it.skip(7)  # sharesAllocation, discretionaryAmt, goodAfterTime, goodTillDate, fa x3
    if server_version < _MIN_VER_NO_FA_PROFILE:
        it.skip()  # faProfile
    # modelCode, shortSaleSlot, designatedLocation, exemptCode, ocaType, rule80A,
    # settlingFirm, allOrNone, minQty, percentOffset, eTradeOnly, firmQuoteOnly,
    # nbboPriceCap, auctionStrategy, startingPrice, stockRefPrice, delta,
    # stockRangeLower, stockRangeUpper, overridePercentageConstraints, volatility,
    # volatilityType
    it.skip(22)
    delta_neutral_type = it.text()
    it.skip()  # deltaNeutralAuxPrice
    if delta_neutral_type:
        it.skip(8)
    it.skip(4)  # continuousUpdate, referencePriceType, trailStopPrice, trailingPercent
    it.skip(2)  # scaleInitLevelSize, scaleSubsLevelSize
    increment = it.number()
    if increment is not None and increment > 0:
        it.skip(7)
    it.skip(3)  # scaleTable, activeStartTime, activeStopTime
    if it.text():  # hedgeType
        it.skip()  # hedgeParam
    it.skip(4)  # optOutSmartRouting, clearingAccount, clearingIntent, notHeld
    if it.flag():  # deltaNeutralContract present
        it.skip(3)
    if it.text():  # algoStrategy
        it.skip(2 * it.integer())
    it.skip()  # algoId


def parse_place_order(fields: tuple[str, ...], server_version: int) -> PlaceOrder:
    """``PLACE_ORDER`` (3) at server version >= 145 (no version field)."""
    it = FieldCursor(fields, "placeOrder")
    order_id = it.integer(-1)
    contract = read_contract(it)
    it.skip(2)  # secIdType, secId
    action, quantity, order_type = it.text(), it.decimal(), it.text()
    lmt_price, aux_price = it.number(), it.number()
    tif, _oca_group, account, _open_close = it.text(), it.text(), it.text(), it.text()
    it.skip()  # origin
    order_ref, transmit, parent_id = it.text(), it.flag(), it.integer()
    it.skip(4)  # blockOrder, sweepToFill, displaySize, triggerMethod
    outside_rth = it.flag()
    it.skip()  # hidden
    legs: tuple[ComboLegSpec, ...] = ()
    prices: tuple[float | None, ...] = ()
    params: tuple[tuple[str, str], ...] = ()
    if contract.sec_type == "BAG":
        legs, prices, params = _combo_block(it)
        contract = attrs.evolve(contract, combo_legs=legs)
    _skip_to_what_if(it, server_version)
    what_if = it.flag()
    return PlaceOrder(order_id=order_id, contract=contract, action=action,
                      total_quantity=quantity, order_type=order_type, lmt_price=lmt_price,
                      aux_price=aux_price, tif=tif or "DAY", account=account,
                      order_ref=order_ref, transmit=transmit, parent_id=parent_id,
                      outside_rth=outside_rth, leg_prices=prices, smart_combo_routing=params,
                      what_if=what_if)


def parse_cancel_order(fields: tuple[str, ...], server_version: int) -> CancelOrder:
    """``CANCEL_ORDER`` (4): a version field below 192, the manual cancel time from 169."""
    it = FieldCursor(fields, "cancelOrder")
    if server_version < _MIN_VER_CANCEL_NO_VERSION:
        it.skip()
    order_id = it.integer(-1)
    manual_time = ""
    if server_version >= _MIN_VER_MANUAL_ORDER_TIME and it.left():
        manual_time = it.text()
    return CancelOrder(order_id, manual_time)


def parse_executions_request(fields: tuple[str, ...], server_version: int) -> ExecutionsRequest:
    """``REQ_EXECUTIONS`` (7, version 3): reqId and the filter; day fields from 200."""
    it = FieldCursor(fields, "reqExecutions")
    it.skip()
    req_id = it.integer(-1)
    client_id, account, time = it.integer(), it.text(), it.text()
    symbol, sec_type, exchange, side = it.text(), it.text(), it.text(), it.text()
    last_n_days = 0
    dates: tuple[str, ...] = ()
    if server_version >= _MIN_VER_EXECUTION_DAYS and it.left():
        last_n_days = it.integer()
        dates = tuple(it.text() for _ in range(it.integer()))
    return ExecutionsRequest(req_id, ExecutionFilter(client_id, account, time, symbol,
                                                     sec_type, exchange, side, last_n_days,
                                                     dates))


def parse_account_updates(fields: tuple[str, ...]) -> AccountUpdatesRequest:
    """``REQ_ACCT_DATA`` (6): version, subscribe flag, account code."""
    it = FieldCursor(fields, "reqAccountUpdates")
    it.skip()
    return AccountUpdatesRequest(it.flag(), it.text())


def parse_account_summary(fields: tuple[str, ...]) -> AccountSummaryRequest:
    """``REQ_ACCOUNT_SUMMARY`` (62): version, reqId, group, comma-separated tags."""
    it = FieldCursor(fields, "reqAccountSummary")
    it.skip()
    req_id, group = it.integer(-1), it.text()
    tags = tuple(tag.strip() for tag in it.text().split(",") if tag.strip())
    return AccountSummaryRequest(req_id, group, tags)


def parse_account_updates_multi(fields: tuple[str, ...]) -> AccountUpdatesMultiRequest:
    """``REQ_ACCOUNT_UPDATES_MULTI`` (76): version, reqId, account, modelCode, ledger flag."""
    it = FieldCursor(fields, "reqAccountUpdatesMulti")
    it.skip()
    return AccountUpdatesMultiRequest(it.integer(-1), it.text(), it.text())
