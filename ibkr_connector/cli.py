"""``ibkr-connector``: run the service, try it on the simulator, inspect and repair it.

Every user error is one line on stderr and a non-zero exit, never a traceback: an
operator at 23:55 with TWS restarting needs the reason, not a stack.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import trio

from ._errors import IBKRError
from .config import IBKRConfig, load_config

__all__ = ["main"]

EXIT_USAGE = 2


class UserError(IBKRError):
    """A problem the user can fix; printed as one line."""


def _config(args: argparse.Namespace) -> IBKRConfig:
    return load_config(file=getattr(args, "config", None))


def _control_path(args: argparse.Namespace, config: IBKRConfig | None = None) -> Path:
    from .actors.control import default_control_path

    if getattr(args, "control", None):
        return Path(args.control)
    if config is None:
        config = _config(args)
    return config.control_path or default_control_path()


# -- run ----------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    config = _config(args)
    logging.basicConfig(level=config.log_level_number,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from .service import serve
    from .simulator import default_control_path as default_fault_path
    from .supervisor import SupervisorEscalation

    fault_path = Path(args.sim_control or default_fault_path()) if args.sim else None
    try:
        trio.run(serve, config, _control_path(args, config), args.sim, fault_path)
    except (IBKRError, SupervisorEscalation, BaseExceptionGroup) as exc:
        # The tree gave up (e.g. the control socket belongs to another live runtime): its
        # escalation names the actor and the last error, which is the one line to print.
        # Our own errors (a fault socket already served...) are one line too.
        known = _first_of(exc, (IBKRError, SupervisorEscalation))
        if known is None:
            raise
        raise UserError(str(known)) from None
    return 0


def _first_of(exc: BaseException, kinds: tuple[type[BaseException], ...]) -> BaseException | None:
    """The first exception of *kinds* in *exc*, looking inside exception groups."""
    if isinstance(exc, kinds):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _first_of(inner, kinds)
            if found is not None:
                return found
    return None


# -- demo -------------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    # The narration is the output; the runtime's own warnings about the faults the demo
    # injects on purpose would only drown it. Real errors still show.
    logging.basicConfig(level=logging.ERROR, format="            log: %(message)s")

    return trio.run(run_demo)


# -- operator commands: talk to a running service over its control socket -------------------------


# Restarting the connection may wait out its 10 s shutdown timeout before it answers.
_ACTOR_COMMAND_TIMEOUT = 30.0


def _control(args: argparse.Namespace, command: str, *params: str) -> dict[str, object]:
    from .actors.control import ControlError, control_request

    timeout = args.timeout or (_ACTOR_COMMAND_TIMEOUT if params else 5.0)
    try:
        path = _control_path(args)
        reply = trio.run(lambda: control_request(path, command, *params, timeout=timeout))
    except ControlError as exc:
        raise UserError(str(exc)) from None
    if not reply.get("ok"):
        raise UserError(str(reply.get("error", "the service refused the command")))
    return reply


def cmd_tree(args: argparse.Namespace) -> int:
    from .actors.control import format_tree

    reply = _control(args, "tree")
    print(format_tree(reply["result"]))  # type: ignore[arg-type]
    return 0


def _print_mapping(data: object, indent: int = 0) -> None:
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(value, dict):
                print(f"{' ' * indent}{key}:")
                _print_mapping(value, indent + 2)
            else:
                print(f"{' ' * indent}{key}: {value}")
    else:
        print(f"{' ' * indent}{data}")


def cmd_status(args: argparse.Namespace) -> int:
    _print_mapping(_control(args, "status")["result"])
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    _print_mapping(_control(args, "stats")["result"])
    return 0


def _actor_command(name: str) -> object:
    def handler(args: argparse.Namespace) -> int:
        _control(args, name, args.actor)
        print(f"{name} {args.actor}: done")
        return 0

    return handler


# -- parser -----------------------------------------------------------------------------------


def _positive_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"must be > 0 seconds, got {text!r}")
    return seconds


def _operator_options(parser: argparse.ArgumentParser, timeout: float) -> None:
    parser.add_argument("--control", help="control socket path (default: per-user runtime dir)")
    parser.add_argument("--config", help="TOML config file (default: $IBKR_CONFIG)")
    parser.add_argument("--timeout", type=_positive_seconds, metavar="SECONDS",
                        help=f"give up waiting for the service after this long "
                        f"(default {timeout:g})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ibkr-connector",
        description="A supervised Trio runtime for Interactive Brokers TWS / IB Gateway.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser("run", help="connect to TWS per config and serve until interrupted",
                         description="Connect to TWS (IBKR_* variables, IBKR_CONFIG file) and "
                         "serve until Ctrl-C. Operators reach it through the control socket.")
    run.add_argument("--config", help="TOML config file (default: $IBKR_CONFIG)")
    run.add_argument("--control", help="control socket path (default: per-user runtime dir)")
    run.add_argument("--sim", action="store_true",
                     help="start the bundled simulator and connect to it instead of TWS")
    run.add_argument("--sim-control", metavar="PATH",
                     help="with --sim: the simulator's fault socket, for `ibkr-connector "
                     "fault --control PATH` (default: the one `fault` uses by default)")
    run.set_defaults(func=cmd_run)

    demo = sub.add_parser("demo", help="show the whole product working against the simulator",
                          description="Start the embedded simulator and the runtime, inject a "
                          "TWS restart and an actor crash, restart an actor through the control "
                          "socket, and shut down cleanly. Needs no TWS.")
    demo.set_defaults(func=cmd_demo)

    from .audit_report import add_audit_command
    from .simulator.cli import add_sim_commands

    add_sim_commands(sub)
    from .simulator._recording_cli import add_recording_commands

    add_recording_commands(sub)
    add_audit_command(sub)

    for name, help_text, func in (
        ("tree", "print the running service's supervision tree", cmd_tree),
        ("status", "connection state, server version, reconnects, request rate", cmd_status),
        ("stats", "metrics: request rate, uptime, reconnects, subscriptions, latency", cmd_stats),
    ):
        p = sub.add_parser(name, help=help_text, description=help_text)
        _operator_options(p, 5.0)
        p.set_defaults(func=func)

    for name, help_text in (
        ("restart", "restart an actor of the running service"),
        ("stop", "stop an actor (it stays stopped until started)"),
        ("start", "start a stopped actor"),
    ):
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("actor", help="actor name, as `ibkr-connector tree` shows it")
        _operator_options(p, _ACTOR_COMMAND_TIMEOUT)
        p.set_defaults(func=_actor_command(name))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except IBKRError as exc:
        print(f"ibkr-connector: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("ibkr-connector: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
