"""Nothing sensitive at INFO or above: a session with orders, TWS errors quoting accounts,
prices and quantities, and faults (a stream reset, a drop, a malformed frame) leaves no
account id, price or quantity in any log record at INFO+ (every logger) nor in any
`status_report` / `stats` answer. TWS's texts go to DEBUG only; operators see the code and
the table's meaning."""

from __future__ import annotations

import logging
import re
from decimal import Decimal
from pathlib import Path

import pytest
import trio
import trio.testing
from ibapi.contract import Contract
from ibapi.order import Order

from ibkr_connector.actors.connection import ConnectionRecovered, ErrorOccurred
from ibkr_connector.config import IBKRConfig
from ibkr_connector.protocol.requests import PlaceOrder
from ibkr_connector.runtime import Runtime, mask_account, open_runtime
from ibkr_connector.simulator import SimulatorConfig, TwsSimulator, open_simulator

ACCOUNTS = ("DU7654321", "U99887766")
QUANTITY = 7373
PRICE = 8642.19
TWS_TEXT = f"Order rejected - account {ACCOUNTS[0]} qty {QUANTITY} @ {PRICE} ({ACCOUNTS[1]})"


def _secrets() -> list[re.Pattern[str]]:
    found = []
    for account in ACCOUNTS:
        hidden = account[2:-2]  # what mask_account hides
        assert hidden not in mask_account(account)
        found += [re.compile(re.escape(account)), re.compile(re.escape(hidden))]
    return found + [
        re.compile(rf"(?<![\d.]){QUANTITY}(?!\d)"),
        re.compile(r"(?<![\d.])8642(?!\d)"),
    ]


def _contract() -> Contract:
    c = Contract()
    c.symbol, c.secType, c.exchange, c.currency = "SPY", "OPT", "SMART", "USD"
    c.lastTradeDateOrContractMonth, c.strike, c.right, c.multiplier = "20261218", 600.0, "C", "100"
    return c


def _order() -> Order:
    o = Order()
    o.action, o.totalQuantity, o.orderType, o.lmtPrice = "BUY", Decimal(QUANTITY), "LMT", PRICE
    o.account = ACCOUNTS[0]
    return o


async def _errors_quoting_the_order(sim: TwsSimulator, rt: Runtime, ids: range) -> None:
    errors = rt.events(ErrorOccurred)
    sent = [(201, ids[0]), (110, ids[1]), (399, ids[2]), (202, ids[2]), (103, ids[1]),
            (10148, ids[0]), (321, ids[1]), (2103, -1), (1100, -1), (1102, -1), (2110, -1),
            (9999, -1)]
    for code, order_id in sent:
        await sim.send_error(code, f"{TWS_TEXT} [{code}]", req_id=order_id)
    with trio.fail_after(30):
        seen = []
        while len(seen) < len(sent):
            seen.append((await errors.receive()).code)
    errors.close()


async def _then_recovered(rt: Runtime, fault: object) -> None:
    recovered = rt.events(ConnectionRecovered)
    await fault()  # type: ignore[operator]
    with trio.fail_after(120):
        await recovered.receive()
    recovered.close()


async def test_no_account_price_or_quantity_at_info_or_in_status(
    tmp_path: Path, io_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    answers: list[object] = []
    config = SimulatorConfig(accounts=ACCOUNTS, market_tick_interval=3600.0)
    async with open_simulator(config) as sim, open_runtime(
            IBKRConfig(port=sim.port), audit_path=tmp_path / "audit.jsonl", connect=True) as rt:

        async def look() -> None:
            answers.extend([await rt.status_report(), await rt.stats()])

        ids = await rt.allocate_order_ids(3)
        for order_id in ids:
            await rt.submit(PlaceOrder(order_id, _contract(), _order()))
        await _errors_quoting_the_order(sim, rt, ids)
        await look()
        for fault in (lambda: sim.send_error(505, TWS_TEXT), sim.drop_all, sim.send_malformed):
            await _then_recovered(rt, fault)
            await look()
    logged = [r for r in caplog.records if r.levelno >= logging.INFO]
    texts = [r.getMessage() + (logging.Formatter().formatException(r.exc_info)
                               if r.exc_info else "") for r in logged]
    assert any(TWS_TEXT in r.getMessage() for r in caplog.records
               if r.levelno == logging.DEBUG)  # the text is kept, at DEBUG
    assert any("201" in t for t in texts)  # the codes themselves are logged
    leaks = [(p.pattern, t) for t in texts + [repr(a) for a in answers]
             for p in _secrets() if p.search(t)]
    assert leaks == []
