"""``ibkr-connector demo``: the whole product, working, in a few readable lines.

No TWS needed: it starts the bundled simulator on a free loopback port, runs the supervised
runtime against it, and narrates what a user would otherwise have to take on trust — an
option chain with live greeks, a vertical spread's net greeks and its combo quote, a TWS
restart recovered, a crashing actor restarted by its supervisor, an operator restart through
the control socket, and a clean shutdown with no thread left behind.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import trio

from .actors.connection import ConnectionEstablished, ConnectionLost, ConnectionRecovered
from .actors.control import control_request, format_tree
from .actors.watchdog import ReconnectScheduled
from .config import IBKRConfig, WatchdogConfig
from .option_chain import OptionChain
from .protocol.client import session_threads
from .runtime import Runtime, mask_account, open_runtime
from .simulator import SimulatorConfig, open_simulator
from .spread_greeks import vertical_greeks
from .supervisor import ChildSpec, Mailbox, Restart, SupervisionEventKind

__all__ = ["run_demo"]


def say(stage: str, text: str) -> None:
    print(f"[{stage:>9}] {text}", flush=True)


class _BadTick(Exception):
    pass


async def _strategy(
    mailbox: Mailbox, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """A toy user actor: it crashes on a price it cannot handle, as real code sometimes does."""
    task_status.started()
    async for envelope in mailbox:
        price = envelope.message
        if not isinstance(price, float) or price <= 0:
            raise _BadTick(f"cannot handle price {price!r}")
        envelope.reply(None)


async def _first(subscription: AsyncIterator[object], kind: type) -> object:
    async for event in subscription:
        if isinstance(event, kind):
            return event
    raise RuntimeError(f"event stream ended before {kind.__name__}")


async def _show_market_data(runtime: Runtime) -> None:
    """An option chain with live greeks, and the net greeks of one vertical spread."""
    chain = await runtime.subscribe_option_chain("SPY", expiries=1, strikes_each_side=2,
                                                 rights=("C",))
    expiry = next(iter(chain.strikes_by_expiry))
    spot = chain.underlying_ticker.mid
    say("chain", f"SPY {expiry}: {len(chain.strikes(expiry))} listed strikes; "
                 f"underlying {spot:.2f}; {len(chain.tickers)} call tickers streaming")
    with trio.fail_after(10):
        for ticker in chain.tickers.values():
            async for _ in ticker.updates():
                if ticker.model_greeks is not None and ticker.bid is not None:
                    break
    print("            strike      bid      ask    delta    gamma     vega    theta     iv")
    for (_, strike, _), ticker in sorted(chain.tickers.items()):
        g = ticker.model_greeks
        assert g is not None
        print(f"            {strike:6.1f} {ticker.bid:8.2f} {ticker.ask:8.2f} "
              f"{g.delta or 0:8.3f} {g.gamma or 0:8.4f} {g.vega or 0:8.3f} "
              f"{g.theta or 0:8.3f} {g.implied_vol or 0:6.1%}")
    strikes = sorted(k for (_, k, _) in chain.tickers)
    low, high = strikes[len(strikes) // 2 - 1], strikes[len(strikes) // 2]
    net = vertical_greeks(chain.ticker(expiry, low, "C"), chain.ticker(expiry, high, "C"))
    say("spread", f"bull call vertical {low:g}/{high:g}: net {net.net_price:.2f}, delta "
                  f"{net.delta:.3f}, gamma {net.gamma:.4f}, vega {net.vega:.3f}, theta "
                  f"{net.theta:.3f} per spread ("
                  + ("Black-Scholes for the " + " and ".join(net.computed_legs) + " leg"
                     if net.computed_legs else "from TWS's greeks of each leg") + ")")
    await _show_trading(runtime, chain, expiry, low, high)
    await runtime.unsubscribe_option_chain(chain)


async def _show_trading(runtime: Runtime, chain: OptionChain, expiry: str, low: float,
                        high: float) -> None:
    """Quote a vertical spread as one combo, whatIf it, place it marketable and see it
    fill, cancel another."""
    spread = await runtime.subscribe_vertical_spread("SPY", expiry, "C", low, high)
    with trio.fail_after(10):
        async for _ in spread.updates():
            if spread.bid is not None and spread.ask is not None:
                break
    say("quote", f"vertical {low:g}/{high:g} as one combo line: bid {spread.bid:.2f}, "
                 f"ask {spread.ask:.2f} (the net of its legs' quotes)")
    await runtime.unsubscribe(spread.contract)
    long_leg, short_leg = chain.ticker(expiry, low, "C"), chain.ticker(expiry, high, "C")
    assert long_leg.ask is not None and short_leg.bid is not None
    debit = math.ceil((long_leg.ask - short_leg.bid) * 100) / 100  # pay up to the far side
    impact = await runtime.what_if_vertical_spread("SPY", expiry, "C", low, high, 1,
                                                   limit_price=debit)
    say("whatIf", f"vertical {low:g}/{high:g} at {debit:.2f}: initial margin change "
                  f"{impact.init_margin_change}, commission {impact.commission} "
                  f"(nothing placed)")
    trade = await runtime.place_vertical_spread("SPY", expiry, "C", low, high, 1,
                                                limit_price=debit)
    with trio.fail_after(15):
        await trade.filled()
    say("order", f"order {trade.order_id} ({trade.order.orderRef}): {trade.status.value} at "
                 f"{trade.avg_fill_price:.2f} net, {len(trade.fills)} executions "
                 f"(one per leg and the combo), commission {trade.commission:.2f}")
    resting = await runtime.place_vertical_spread("SPY", expiry, "C", low, high, 1,
                                                  limit_price=0.01)
    await runtime.cancel(resting)
    with trio.fail_after(15):
        await resting.done()
    say("order", f"order {resting.order_id} resting at 0.01: {resting.status.value} "
                 f"after cancel")
    for position in await runtime.positions():
        say("position", f"{position.symbol} {position.sec_type} conId {position.con_id}: "
                        f"{position.quantity:+}")


async def run_demo() -> int:
    started = trio.current_time()
    with tempfile.TemporaryDirectory(prefix="ibkr-demo-") as tmp:
        control_path = Path(tmp) / "control.sock"
        async with open_simulator(SimulatorConfig()) as sim:
            say("simulator", f"bundled TWS simulator listening on {sim.host}:{sim.port}")
            config = IBKRConfig(
                host=sim.host, port=sim.port, client_id=1,
                watchdog=WatchdogConfig(reconnect_initial_delay=0.5, reconnect_max_delay=2.0,
                                        health_check_interval=5.0),
            )
            async with open_runtime(config, audit_path=Path(tmp) / "audit.jsonl",
                                    control_path=control_path) as runtime:
                connection_events = runtime.events(
                    (ConnectionEstablished, ConnectionLost, ConnectionRecovered))
                reconnects = runtime.events((ReconnectScheduled,))
                status = await runtime.connect()
                accounts = ", ".join(mask_account(a) for a in status.accounts)
                say("connected", f"server version {status.server_version}, account {accounts}, "
                                 f"next order id {status.next_order_id}")

                await _show_market_data(runtime)

                tree = await control_request(control_path, "tree")
                say("tree", "the supervision tree:")
                for line in format_tree(tree["result"]).splitlines():  # type: ignore[arg-type]
                    print(f"            {line}")

                # -- a TWS restart ---------------------------------------------------------
                refused_for = 2.0
                await sim.refuse_for(refused_for)
                down_at = trio.current_time()
                say("restart", f"TWS restart injected: connections refused for {refused_for:g} s")
                lost = await _first(connection_events, ConnectionLost)
                say("restart", f"runtime noticed: {lost.reason}")  # type: ignore[attr-defined]
                recovered = await _first(connection_events, ConnectionRecovered)
                back_at = down_at + refused_for
                took = trio.current_time() - back_at
                step = 0.0
                while reconnects.pending():
                    scheduled = reconnects.receive_nowait()
                    if isinstance(scheduled, ReconnectScheduled):
                        step = scheduled.delay
                reconnects.close()
                say("recovered", f"reconnected {took:.2f} s after TWS was back (backoff step "
                                 f"in force: {step:.2f} s; reconnect "
                                 f"#{recovered.reconnects})")  # type: ignore[attr-defined]

                # -- an actor crash --------------------------------------------------------
                supervision = runtime.supervisor.subscribe()
                await runtime.supervisor.start_child(
                    ChildSpec("strategy", _strategy, restart=Restart.PERMANENT))
                strategy = runtime.supervisor.address("strategy")
                await strategy.call(101.5)
                say("crash", "a user actor 'strategy' gets a price it cannot handle...")
                await strategy.cast(-1.0)
                async for event in supervision:
                    if event.kind is SupervisionEventKind.RESTARTED and event.child == "strategy":
                        break
                await strategy.call(102.0)
                say("crash", "...it crashed, its supervisor restarted it, and it serves again")

                # -- an operator restart through the control socket ----------------------------
                await control_request(control_path, "restart", "watchdog")
                async for event in supervision:
                    if event.kind is SupervisionEventKind.STARTED and event.child == "watchdog":
                        break
                info = runtime.tree().find("watchdog")
                assert info is not None
                say("operator", f"`restart watchdog` over the control socket: watchdog is "
                                f"{info.state.name.lower()}, restarts={info.restarts}")
                supervision.close()
                connection_events.close()
            say("shutdown", "runtime stopped: every actor stopped in reverse order")
    leftover = session_threads()
    say("shutdown", f"TWS session threads left behind: {len(leftover)}; "
                    f"demo took {trio.current_time() - started:.1f} s")
    return 0 if not leftover else 1
