"""The simulator's fault control socket: JSON lines over a Unix socket (mode 0600).

``ibkr-connector sim`` serves it so that ``ibkr-connector fault`` (or any program) can
inject faults into a running simulator. One request per line, one JSON answer per line::

    {"command": "drop"}                              -> {"ok": true}
    {"command": "refuse", "seconds": 30}
    {"command": "error", "code": 1100, "req_id": -1, "message": "", "client_id": null}
    {"command": "delay", "seconds": 0.5}
    {"command": "malformed", "kind": "bad_msg_id", "client_id": null}
    {"command": "status"}                            -> {"ok": true, "port": 7497, ...}
    {"command": "market", "action": "widen", "symbol": "SPY", "factor": 3}
        actions: stall/resume SYMBOL (ticks stop), halt/unhalt SYMBOL, widen SYMBOL
        FACTOR (1 restores), farm_down/farm_up (2103, then 2104)
    {"command": "order", "action": "reject", "reason": "..."}
        actions: drop_ack (the next placeOrder reaches IB, its ack never comes: the
        connection drops), delay_ack SECONDS (0 clears), reject [REASON] (next order: 201)

A bad request is answered ``{"ok": false, "error": "..."}``; the connection stays open.
Parsing is sans-IO (``parse_command``); ``serve_control`` is the Trio side and
``send_control_command`` a small blocking client for the CLI.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import socket
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import trio

from ibkr_connector._errors import IBKRError
from ibkr_connector._userdirs import ensure_directory, runtime_dir
from ibkr_connector.simulator._faults import MALFORMED_KINDS
from ibkr_connector.simulator._server import TwsSimulator

__all__ = [
    "Command",
    "ControlError",
    "Delay",
    "Drop",
    "MARKET_ACTIONS",
    "ORDER_ACTIONS",
    "Malformed",
    "MarketFault",
    "OrderFault",
    "Refuse",
    "SendError",
    "Status",
    "default_control_path",
    "encode_command",
    "execute",
    "parse_command",
    "send_control_command",
    "serve_control",
]

logger = logging.getLogger(__name__)

_MAX_LINE = 64 * 1024
_BACKLOG = 4096  # a burst of clients waits to be accepted; the kernel caps it at somaxconn


class ControlError(IBKRError):
    """A control request or the control socket itself is unusable; the text says why."""


@attrs.frozen
class Drop:
    pass


@attrs.frozen
class Refuse:
    seconds: float


@attrs.frozen
class SendError:
    code: int
    message: str = ""
    req_id: int = -1
    client_id: int | None = None


@attrs.frozen
class Delay:
    seconds: float


@attrs.frozen
class Malformed:
    kind: str = "bad_msg_id"
    client_id: int | None = None


@attrs.frozen
class Status:
    pass


MARKET_ACTIONS: tuple[str, ...] = ("stall", "resume", "halt", "unhalt", "widen", "farm_down",
                                   "farm_up")


@attrs.frozen
class MarketFault:
    """A fault in the simulated market: see ``MARKET_ACTIONS`` and the module docstring."""

    action: str
    symbol: str = ""
    factor: float = 1.0


ORDER_ACTIONS: tuple[str, ...] = ("drop_ack", "delay_ack", "reject")


@attrs.frozen
class OrderFault:
    """A fault of the order desk: see ``ORDER_ACTIONS`` and the module docstring."""

    action: str
    seconds: float = 0.0
    reason: str = ""


Command = Drop | Refuse | SendError | Delay | Malformed | Status | MarketFault | OrderFault

_NAMES: dict[type[Any], str] = {Drop: "drop", Refuse: "refuse", SendError: "error",
                                Delay: "delay", Malformed: "malformed", Status: "status",
                                MarketFault: "market", OrderFault: "order"}


def _integer(request: Mapping[str, Any], key: str, default: int | None) -> int | None:
    value = request.get(key, default)
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise ControlError(f"{key!r} must be an integer")


def _seconds(request: Mapping[str, Any]) -> float:
    value = request.get("seconds")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ControlError("'seconds' must be a number")
    if value < 0 or not math.isfinite(value):
        raise ControlError("'seconds' must be finite and >= 0")
    return float(value)


def parse_command(line: bytes | str) -> Command:
    """One JSON request line as a typed command; ``ControlError`` says what is wrong."""
    try:
        request = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ControlError(f"not JSON: {exc}") from None
    if not isinstance(request, dict):
        raise ControlError("a request must be a JSON object")
    name = request.get("command")
    if name is None and "cmd" in request:  # the runtime's control protocol
        raise ControlError("this is a TWS simulator's fault socket, not the control socket of "
                           "`ibkr-connector run`: operator commands (tree, status, ...) go to "
                           "that one (--control PATH / IBKR_CONTROL_PATH)")
    if name == "drop":
        return Drop()
    if name == "refuse":
        return Refuse(_seconds(request))
    if name == "delay":
        return Delay(_seconds(request))
    if name == "status":
        return Status()
    if name == "market":
        return _market_fault(request)
    if name == "order":
        return _order_fault(request)
    client_id = _integer(request, "client_id", None)
    if name == "error":
        code = _integer(request, "code", None)
        if code is None:
            raise ControlError("'error' needs an integer 'code'")
        message = request.get("message", "")
        if not isinstance(message, str):
            raise ControlError("'message' must be a string")
        req_id = _integer(request, "req_id", -1)
        return SendError(code, message, -1 if req_id is None else req_id, client_id)
    if name == "malformed":
        kind = request.get("kind", "bad_msg_id")
        if kind not in MALFORMED_KINDS:
            raise ControlError(f"'kind' must be one of {', '.join(MALFORMED_KINDS)}")
        return Malformed(kind, client_id)
    raise ControlError(f"unknown command {name!r}; known: {', '.join(_NAMES.values())}")


def _market_fault(request: Mapping[str, Any]) -> MarketFault:
    action, symbol = request.get("action"), request.get("symbol", "")
    if action not in MARKET_ACTIONS:
        raise ControlError(f"'action' must be one of {', '.join(MARKET_ACTIONS)}")
    if not isinstance(symbol, str) or (not symbol and not action.startswith("farm")):
        raise ControlError(f"{action!r} needs a 'symbol'")
    factor = request.get("factor", 1.0)
    if isinstance(factor, bool) or not isinstance(factor, int | float) or not (
            math.isfinite(factor) and factor >= 1):
        raise ControlError("'factor' must be a finite number >= 1")
    return MarketFault(action, symbol, float(factor))


def _order_fault(request: Mapping[str, Any]) -> OrderFault:
    action, reason = request.get("action"), request.get("reason", "")
    if action not in ORDER_ACTIONS:
        raise ControlError(f"'action' must be one of {', '.join(ORDER_ACTIONS)}")
    if not isinstance(reason, str):
        raise ControlError("'reason' must be a string")
    seconds = _seconds(request) if action == "delay_ack" else 0.0
    return OrderFault(action, seconds, reason)


def _apply_order_fault(sim: TwsSimulator, fault: OrderFault) -> None:
    if fault.action == "drop_ack":
        sim.drop_next_order_ack()
    elif fault.action == "delay_ack":
        sim.set_order_ack_delay(fault.seconds)
    elif fault.reason:
        sim.reject_next_order(fault.reason)
    else:
        sim.reject_next_order()


async def _apply_market_fault(sim: TwsSimulator, fault: MarketFault) -> None:
    if fault.action in ("farm_down", "farm_up"):
        await sim.data_farm_outage(fault.action == "farm_down")
    elif fault.action in ("stall", "resume"):
        sim.stall_ticker(fault.symbol, fault.action == "stall")
    elif fault.action in ("halt", "unhalt"):
        sim.halt(fault.symbol, fault.action == "halt")
    else:
        sim.widen_spreads(fault.symbol, fault.factor)


def encode_command(command: Command) -> bytes:
    """The JSON line ``parse_command`` reads back as ``command``."""
    request = {"command": _NAMES[type(command)], **attrs.asdict(command)}
    return json.dumps(request).encode() + b"\n"


async def execute(sim: TwsSimulator, command: Command) -> dict[str, Any]:
    """Apply ``command`` to ``sim``; the answer to send back."""
    try:
        if isinstance(command, Drop):
            await sim.drop_all()
        elif isinstance(command, Refuse):
            await sim.refuse_for(command.seconds)
        elif isinstance(command, SendError):
            await sim.send_error(command.code, command.message, req_id=command.req_id,
                                 client_id=command.client_id)
        elif isinstance(command, Delay):
            sim.set_reply_delay(command.seconds)
        elif isinstance(command, Malformed):
            await sim.send_malformed(client_id=command.client_id, kind=command.kind)
        elif isinstance(command, MarketFault):
            await _apply_market_fault(sim, command)
        elif isinstance(command, OrderFault):
            _apply_order_fault(sim, command)
    except (LookupError, ValueError) as exc:
        return {"ok": False, "error": str(exc).strip("'\"")}
    return {"ok": True, "host": sim.host, "port": sim.port, "listening": sim.listening,
            "clients": sorted(sim.connected_client_ids()), "received": len(sim.received),
            "reply_delay": sim.reply_delay(), "server_version": sim.config.server_version,
            "market": {"halted": sorted(sim.market.halted), "stalled": sorted(sim.market.stalled),
                       "farm_down": sim.market.farm_down}}


def default_control_path() -> str:
    """A per-user path: ``$XDG_RUNTIME_DIR/ibkr-connector/sim-control.sock`` or, without
    it, ``/tmp/ibkr-connector-<uid>/sim-control.sock``: the runtime's own directory."""
    return str(runtime_dir() / "sim-control.sock")


def _prepare(path: str) -> None:
    """Make the parent directory (0700, ours) and clear a stale socket left by a crash.

    Our own runtime directory gets the full check (real directory, ours, 0700); a parent
    the user named is created if missing and must at least belong to them.
    """
    parent = Path(path).absolute().parent
    try:
        ensure_directory(parent, private=parent == runtime_dir())
    except OSError as exc:
        raise ControlError(f"cannot use {parent} for the control socket: {exc}") from exc
    if os.stat(parent).st_uid != os.getuid():
        raise ControlError(f"control directory {parent} belongs to another user")
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise ControlError(f"{path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(0.5)
        probe.connect(path)
    except OSError:
        os.unlink(path)  # nobody is listening: left over from a dead simulator
        return
    finally:
        probe.close()
    raise ControlError(f"another simulator is already serving {path}")


async def serve_control(sim: TwsSimulator, path: str, *,
                        task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve the control socket at ``path`` until cancelled; the file is removed on exit.
    Use with ``nursery.start``: it reports the path once it accepts connections."""
    _prepare(path)
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    previous = os.umask(0o177)  # the socket is born 0600: no window where others connect
    try:
        await sock.bind(path)
    finally:
        os.umask(previous)
    os.chmod(path, 0o600)
    identity = os.stat(path).st_ino
    sock.listen(_BACKLOG)
    listener = trio.SocketListener(sock)
    try:
        async with trio.open_nursery() as nursery:
            task_status.started(path)
            while True:
                stream = await listener.accept()
                nursery.start_soon(_handle, sim, stream)
    finally:
        # Synchronous cleanup: an await here would raise Cancelled before it finished.
        listener.socket.close()
        try:
            if os.stat(path).st_ino == identity:
                os.unlink(path)
        except FileNotFoundError:
            pass


async def _handle(sim: TwsSimulator, stream: trio.SocketStream) -> None:
    buffer = b""
    try:
        async with stream:
            while True:
                data = await stream.receive_some(4096)
                if not data:
                    return
                buffer += data
                if len(buffer) > _MAX_LINE and b"\n" not in buffer:
                    await stream.send_all(b'{"ok": false, "error": "request line too long"}\n')
                    return
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        await stream.send_all(await _answer(sim, line))
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        logger.debug("control client went away")


async def _answer(sim: TwsSimulator, line: bytes) -> bytes:
    try:
        command = parse_command(line)
    except ControlError as exc:
        return json.dumps({"ok": False, "error": str(exc)}).encode() + b"\n"
    logger.info("control: %s", _NAMES[type(command)])
    return json.dumps(await execute(sim, command)).encode() + b"\n"


def send_control_command(path: str, command: Command, timeout: float = 5.0) -> dict[str, Any]:
    """Send one command to a running simulator and return its answer (blocking).
    ``ControlError`` when nothing serves ``path`` or the answer is unreadable."""
    try:
        if not stat.S_ISSOCK(os.stat(path).st_mode):
            raise ControlError(f"{path} is not a socket: --control must name the fault socket "
                               "`ibkr-connector sim` (or `run --sim`) printed")
    except OSError:
        pass  # judged by connect below
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(timeout)
    try:
        try:
            client.connect(path)
        except (FileNotFoundError, ConnectionRefusedError):
            raise ControlError(f"no simulator control socket at {path} "
                               "(is `ibkr-connector sim` running?)") from None
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EPERM):
                raise ControlError(f"not allowed to use {path}") from None
            raise ControlError(f"cannot reach {path}: {exc.strerror or exc}") from None
        client.sendall(encode_command(command))
        answer = b""
        while not answer.endswith(b"\n"):
            chunk = client.recv(4096)
            if not chunk:
                break
            answer += chunk
    except TimeoutError:
        raise ControlError(f"no answer from {path} within {timeout} s") from None
    finally:
        client.close()
    try:
        result = json.loads(answer)
    except ValueError:
        result = None
    if not isinstance(result, dict) or not isinstance(result.get("ok"), bool):
        raise ControlError(f"{path} does not speak the simulator's fault protocol (it answered "
                           f"{answer[:80]!r}): is it another program's socket?")
    return result
