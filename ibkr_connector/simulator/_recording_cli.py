"""``ibkr-connector record``, ``fidelity`` and ``sim --replay``: the shell side of
recordings (``_recording``, ``_proxy``, ``_replay``, ``_fidelity``).

Like the other commands, a user error (bad address, unreadable file, port in use) is one
line on stderr and a non-zero status, never a traceback.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Any

import trio

from ibkr_connector.simulator._fidelity import format_report, run_fidelity
from ibkr_connector.simulator._proxy import run_recording_proxy
from ibkr_connector.simulator._recording import RecordingError, read_recording
from ibkr_connector.simulator._replay import serve_replay

__all__ = ["add_recording_commands", "add_replay_arguments", "parse_host_port",
           "run_fidelity_command", "run_record", "run_replay"]


def _fail(message: str, status: int = 1) -> int:
    print(f"ibkr-connector: error: {message}", file=sys.stderr)
    return status


def parse_host_port(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (or ``[v6]:PORT``) -> (host, port); ValueError with the reason."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def add_recording_commands(subparsers: Any) -> None:
    """Register ``record`` and ``fidelity`` on the top-level parser's subparsers."""
    record = subparsers.add_parser(
        "record", help="record a TWS API session through a transparent proxy",
        description="Listen on PORT, forward every connection to the upstream TWS "
        "unchanged, and write every frame both ways to FILE (JSON lines, mode 0600). "
        "Account ids are masked in the file unless --no-mask.")
    record.add_argument("--upstream", required=True, metavar="HOST:PORT",
                        help="the TWS or Gateway to forward to")
    record.add_argument("--listen", required=True, type=int, metavar="PORT",
                        help="port the clients connect to instead of TWS's")
    record.add_argument("--listen-host", default="127.0.0.1", metavar="HOST",
                        help="address to listen on (default loopback)")
    record.add_argument("--out", required=True, type=Path, metavar="FILE")
    record.add_argument("--no-mask", dest="mask", action="store_false",
                        help="keep account ids in the recording")
    record.set_defaults(func=run_record)

    fidelity = subparsers.add_parser(
        "fidelity", help="compare the simulator's answers with a recording",
        description="Send the recording's client requests to the bundled simulator and "
        "report, per message type, where its answers differ. Exit 0 when identical within "
        "the comparison rules, 1 otherwise.")
    fidelity.add_argument("file", type=Path, metavar="FILE")
    fidelity.add_argument("--conn", type=int, default=None,
                          help="which recorded connection (default the first)")
    fidelity.add_argument("--speed", type=float, default=1.0,
                          help="replay the recorded pace this many times faster")
    fidelity.set_defaults(func=run_fidelity_command)


def add_replay_arguments(sim: argparse.ArgumentParser) -> None:
    """``sim --replay FILE [--speed X]``."""
    sim.add_argument("--replay", type=Path, default=None, metavar="FILE",
                     help="answer clients from a recording instead of simulating")
    sim.add_argument("--speed", type=float, default=1.0,
                     help="with --replay: play recorded delays this many times faster")


async def _until_signalled(serve: Any, what: str) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            port = await nursery.start(serve)
            print(f"ibkr-connector {what}: listening on port {port}", flush=True)
            async for _ in signals:
                nursery.cancel_scope.cancel()
                break


def _serve(serve: Any, what: str) -> int:
    try:
        trio.run(_until_signalled, serve, what)
    except KeyboardInterrupt:
        return 0
    except OSError as exc:
        return _fail(f"{what}: {exc.strerror or exc}")
    return 0


def run_record(args: argparse.Namespace) -> int:
    try:
        upstream = parse_host_port(args.upstream)
    except ValueError as exc:
        return _fail(str(exc), 2)
    print(f"ibkr-connector record: forwarding to {upstream[0]}:{upstream[1]}, writing "
          f"{args.out}{'' if args.mask else ' (accounts NOT masked)'}", flush=True)

    async def serve(task_status: trio.TaskStatus[int]) -> None:
        await run_recording_proxy(upstream, args.listen, args.out, mask=args.mask,
                                  listen_host=args.listen_host, task_status=task_status)
    return _serve(serve, "record")


def run_replay(args: argparse.Namespace) -> int:
    """``sim --replay``: called by ``sim`` when ``--replay`` is given."""
    if args.speed <= 0:
        return _fail("--speed must be > 0", 2)
    try:
        recording = read_recording(args.replay)
    except (OSError, RecordingError) as exc:
        return _fail(f"cannot read {args.replay}: {exc}")
    if not recording.connections():
        return _fail(f"{args.replay} holds no connection")

    async def serve(task_status: trio.TaskStatus[int]) -> None:
        await serve_replay(recording, args.port, host=args.host, speed=args.speed,
                           task_status=task_status)
    return _serve(serve, "sim --replay")


def run_fidelity_command(args: argparse.Namespace) -> int:
    if args.speed <= 0:
        return _fail("--speed must be > 0", 2)
    try:
        recording = read_recording(args.file)
        if args.conn is not None and args.conn not in recording.connections():
            return _fail(f"{args.file} has no connection {args.conn}", 2)
        report = trio.run(lambda: run_fidelity(recording, conn=args.conn, speed=args.speed))
    except (OSError, RecordingError, ValueError) as exc:
        return _fail(f"cannot check {args.file}: {exc}")
    print(format_report(report))
    return 0 if report.identical else 1
