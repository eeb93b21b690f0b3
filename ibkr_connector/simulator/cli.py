"""``ibkr-connector sim`` and ``ibkr-connector fault``: the simulator from a shell.

``sim`` serves a simulated TWS (loopback by default) and its fault control socket until
Ctrl-C or SIGTERM, then exits cleanly with status 0. ``fault`` sends one command to a
running ``sim`` (or ``run --sim``, which serves the same socket) through it. The top-level
parser (``ibkr_connector.cli``) calls ``add_sim_commands``; each subcommand's
``func(args)`` returns the exit status. User errors print one line on stderr and return
non-zero, without a traceback.
"""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any

import trio

from ibkr_connector.simulator._config import DEFAULT_SERVER_VERSION, SimulatorConfig
from ibkr_connector.simulator._control import (
    MARKET_ACTIONS,
    ORDER_ACTIONS,
    Command,
    ControlError,
    Delay,
    Drop,
    Malformed,
    MarketFault,
    OrderFault,
    Refuse,
    SendError,
    Status,
    default_control_path,
    send_control_command,
    serve_control,
)
from ibkr_connector.simulator._faults import MALFORMED_KINDS
from ibkr_connector.simulator._recording_cli import add_replay_arguments, run_replay
from ibkr_connector.simulator._server import open_simulator

__all__ = ["add_sim_commands", "run_fault", "run_sim"]

# argparse's ``_SubParsersAction`` is private; accept whatever ``add_subparsers`` returned.
_SubParsers = Any


def add_sim_commands(subparsers: _SubParsers) -> None:
    """Register ``sim`` and ``fault`` on the top-level parser's subparsers."""
    sim = subparsers.add_parser("sim", help="run the bundled TWS simulator",
                                description="Serve a simulated TWS until Ctrl-C.")
    sim.add_argument("--port", type=int, default=7497, help="TCP port (0 = any free port)")
    sim.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback)")
    sim.add_argument("--server-version", type=int, default=DEFAULT_SERVER_VERSION,
                     help="highest API version to negotiate")
    sim.add_argument("--seed", type=int, default=0, help="seed for generated data")
    sim.add_argument("--account", action="append", dest="accounts", metavar="CODE",
                     help="managed account code (repeatable; default DU1234567)")
    sim.add_argument("--control", default=None, metavar="PATH",
                     help=f"fault control socket (default {default_control_path()})")
    sim.add_argument("--tick-interval", type=float, default=0.25, metavar="SECONDS",
                     help="seconds between steps of the simulated market (default 0.25)")
    sim.add_argument("--max-lines", type=int, default=100, metavar="N",
                     help="market-data lines per client before error 101 (default 100)")
    sim.add_argument("--unsubscribed", action="append", default=[], metavar="SYMBOL",
                     help="no live data for SYMBOL: 354, or 10167 + delayed (repeatable)")
    add_replay_arguments(sim)
    sim.set_defaults(func=run_sim)

    fault = subparsers.add_parser("fault", help="inject a fault into a running simulator",
                                  description="Send one fault command to a running "
                                  "`ibkr-connector sim` or `ibkr-connector run --sim`.")
    fault.add_argument("--control", default=None, metavar="PATH",
                       help=f"the simulator's control socket (default {default_control_path()})")
    kinds = fault.add_subparsers(dest="fault", metavar="FAULT", required=True)
    kinds.add_parser("drop", help="close every client connection")
    refuse = kinds.add_parser("refuse", help="restart: refuse connections for SECONDS")
    refuse.add_argument("seconds", type=float)
    error = kinds.add_parser("error", help="send an error/notice code (1100, 1101, 2110...)")
    error.add_argument("code", type=int)
    error.add_argument("--req-id", type=int, default=-1)
    error.add_argument("--message", default="")
    error.add_argument("--client-id", type=int, default=None)
    delay = kinds.add_parser("delay", help="delay replies by SECONDS (0 clears)")
    delay.add_argument("seconds", type=float)
    malformed = kinds.add_parser("malformed", help="send a malformed frame")
    malformed.add_argument("--kind", choices=MALFORMED_KINDS, default="bad_msg_id")
    malformed.add_argument("--client-id", type=int, default=None)
    kinds.add_parser("status", help="show the simulator's port and clients")
    market = kinds.add_parser("market", help="a market fault: stall/resume, halt/unhalt, "
                              "widen a symbol; farm_down/farm_up (2103/2104)")
    market.add_argument("action", choices=MARKET_ACTIONS)
    market.add_argument("symbol", nargs="?", default="", help="SPY, QQQ, AAPL or SPX")
    market.add_argument("--factor", type=float, default=1.0,
                        help="spread multiple for widen (1 restores)")
    order = kinds.add_parser("order", help="an order fault: drop_ack (drop the connection "
                             "between the next placeOrder and its ack), delay_ack SECONDS, "
                             "reject (the next order gets 201)")
    order.add_argument("action", choices=ORDER_ACTIONS)
    order.add_argument("seconds", type=float, nargs="?", default=0.0,
                       help="ack delay for delay_ack (0 clears)")
    order.add_argument("--reason", default="", help="the 201 reason for reject")
    fault.set_defaults(func=run_fault)


def _fail(message: str, status: int = 1) -> int:
    print(f"ibkr-connector: error: {message}", file=sys.stderr)
    return status


def run_sim(args: argparse.Namespace) -> int:
    """Handler of ``sim``: serve until interrupted; 0 on a clean stop."""
    if args.replay is not None:
        return run_replay(args)
    try:
        accounts: tuple[str, ...] = tuple(args.accounts) if args.accounts else ("DU1234567",)
        config = SimulatorConfig(host=args.host, port=args.port,
                                 server_version=args.server_version, seed=args.seed,
                                 accounts=accounts, market_tick_interval=args.tick_interval,
                                 max_market_data_lines=args.max_lines,
                                 unsubscribed_symbols=args.unsubscribed)
    except (ValueError, TypeError) as exc:
        return _fail(str(exc), 2)
    control = args.control or default_control_path()
    try:
        trio.run(_serve, config, control)
    except KeyboardInterrupt:
        return 0
    except BaseExceptionGroup as group:  # errors raised inside nurseries arrive grouped
        match = group.subgroup(lambda exc: isinstance(exc, ControlError | OSError))
        if match is None:
            raise
        return _user_error(_first_leaf(match), config)
    except (ControlError, OSError) as exc:
        return _user_error(exc, config)
    return 0


def _first_leaf(error: BaseException) -> BaseException:
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


def _user_error(error: BaseException, config: SimulatorConfig) -> int:
    if isinstance(error, OSError):
        return _fail(f"cannot listen on {config.host}:{config.port}: {error.strerror or error}")
    return _fail(str(error))


async def _serve(config: SimulatorConfig, control: str) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with open_simulator(config) as sim, trio.open_nursery() as nursery:
            await nursery.start(serve_control, sim, control)
            print(f"ibkr-connector sim: listening on {sim.host}:{sim.port} "
                  f"(server version {config.server_version}); control socket {control}",
                  flush=True)
            async for _ in signals:
                print("ibkr-connector sim: stopping", flush=True)
                nursery.cancel_scope.cancel()
                break


def _command(args: argparse.Namespace) -> Command:
    if args.fault == "drop":
        return Drop()
    if args.fault == "refuse":
        return Refuse(args.seconds)
    if args.fault == "error":
        return SendError(args.code, args.message, args.req_id, args.client_id)
    if args.fault == "delay":
        return Delay(args.seconds)
    if args.fault == "malformed":
        return Malformed(args.kind, args.client_id)
    if args.fault == "market":
        return MarketFault(args.action, args.symbol, args.factor)
    if args.fault == "order":
        return OrderFault(args.action, args.seconds, args.reason)
    return Status()


def run_fault(args: argparse.Namespace) -> int:
    """Handler of ``fault``: 0 when the simulator applied the command."""
    if getattr(args, "seconds", 0) < 0:
        return _fail("SECONDS must be >= 0", 2)
    control = args.control or default_control_path()
    try:
        answer = send_control_command(control, _command(args))
    except ControlError as exc:
        return _fail(str(exc))
    if not answer.get("ok"):
        return _fail(str(answer.get("error", "the simulator refused the command")))
    clients = ", ".join(str(c) for c in answer.get("clients", [])) or "none"
    print(f"ok: {args.fault}; port {answer.get('port')}, "
          f"{'listening' if answer.get('listening') else 'not listening'}, clients: {clients}")
    return 0
