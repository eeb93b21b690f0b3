"""The operator's control endpoint: a private Unix socket speaking JSON lines.

It is the one way into a running service from outside the process: ``ibkr-connector tree
| status | stats | restart | stop | start`` are thin clients of it (:func:`control_request`).
In the tree it is the ``control`` actor (:func:`run_control`); what it drives is a
:class:`ControlTarget` (the ``Runtime``), so this module knows nothing of IB.

Wire: one JSON object per line each way (``{"cmd": "tree"}`` in, ``{"ok": true, "result":
...}`` out). The protocol itself, sans I/O, is :mod:`.control_wire`; this module owns the
socket, the peer check, the serving tasks and the client, and re-exports the wire's public
names so callers import everything control-related from here.

Who may talk to it: the socket file is mode 0600 (set between ``bind`` and ``listen``: no
``connect`` can succeed before ``listen``, so there is no window, and no process-wide umask
change racing the threads that create files), and every peer's uid is checked with
``SO_PEERCRED``; another uid gets an error line and is disconnected. Only the server
process's own user gets in, whatever the directory's permissions.

Robustness: each connection is its own task, and whatever one client sends or fails to
read ends at most its own connection; an exception from the target becomes an error reply.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import socket
import stat
import struct
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Final, Protocol

import attrs
import trio

from .._userdirs import DEFAULT_FALLBACK_BASE, ensure_directory, runtime_dir
from ..supervisor import ChildInfo, Mailbox, SupervisorError, UnknownChild, serve
from .control_client import control_request
from .control_wire import (
    COMMANDS,
    MAX_LINE,
    BadRequest,
    ControlBusy,
    ControlError,
    ControlRequest,
    ControlTimeout,
    ControlUnavailable,
    LineBuffer,
    NotAControlSocket,
    _failure,
    _find,
    _names,
    _short,
    format_tree,
    format_uptime,
    is_reply,
    parse_request,
    to_jsonable,
    tree_to_dict,
)

__all__ = [
    "COMMANDS", "DEFAULT_MAX_CONNECTIONS", "MAX_LINE", "BadRequest", "ControlBusy",
    "ControlError", "ControlRequest", "ControlTarget", "ControlTimeout", "ControlUnavailable",
    "LineBuffer", "NotAControlSocket", "PeerCredentials", "control_request",
    "default_control_path", "format_tree", "format_uptime", "is_reply", "parse_request",
    "peer_credentials", "run_control", "serve_control", "to_jsonable", "tree_to_dict",
]

log = logging.getLogger(__name__)

#: A connection silent this long (or not reading its replies) is closed.
DEFAULT_IDLE_TIMEOUT: Final = 300.0
#: Clients served at once; one more is answered "busy" and disconnected.
DEFAULT_MAX_CONNECTIONS: Final = 128
_RECEIVE_SIZE: Final = 16 * 1024
# Room for a burst of clients connecting at once (a monitoring script, a shell loop): they
# wait in the kernel's queue until accepted instead of being refused. The kernel caps it
# at net.core.somaxconn (4096 on current Linux).
_BACKLOG: Final = 4096
_BUSY_SEND_TIMEOUT: Final = 1.0
_FALLBACK_BASE = DEFAULT_FALLBACK_BASE  # where the socket lives without XDG_RUNTIME_DIR


class ControlTarget(Protocol):
    """What the endpoint drives; the ``Runtime`` implements it.

    The actor commands raise ``UnknownChild`` for names not in the tree; any other
    ``SupervisorError`` or ``ValueError`` is shown to the operator as it is.
    """

    def tree(self) -> ChildInfo:
        """A snapshot of the whole supervision tree, the root first."""

    async def status_report(self) -> Mapping[str, object]:
        """Connection state, server version, accounts (masked), reconnects, request rate."""

    async def stats(self) -> Mapping[str, object]:
        """Counters and rates; anything ``to_jsonable`` can encode."""

    async def restart(self, actor: str) -> None:
        """Stop the actor gracefully and start it again."""

    async def stop(self, actor: str) -> None:
        """Stop the actor for good (until ``start``)."""

    async def start(self, actor: str) -> None:
        """Start a stopped actor."""


# -- where the socket lives --------------------------------------------------------------


def default_control_path() -> Path:
    """``$XDG_RUNTIME_DIR/ibkr-connector/control.sock``, else ``/tmp/ibkr-connector-<uid>/...``.

    The directory is created mode 0700. It must be a real directory owned by this user:
    in a shared ``/tmp`` anyone could have made it first, so a foreign or symlinked one
    is refused (``ControlError``) rather than used, by the server and the client alike.
    """
    directory = runtime_dir(_FALLBACK_BASE)
    _ensure_directory(directory, private=True)
    return directory / "control.sock"


def _ensure_directory(directory: Path, *, private: bool) -> None:
    try:
        ensure_directory(directory, private=private)
    except OSError as exc:
        raise ControlError(f"cannot use {directory} for the control socket: {exc}") from exc


# -- peer credentials ----------------------------------------------------------------------


@attrs.frozen
class PeerCredentials:
    pid: int | None
    uid: int
    gid: int | None


_UCRED: Final = struct.Struct("=iII")  # Linux struct ucred: pid_t pid; uid_t uid; gid_t gid


def peer_credentials(sock: trio.socket.SocketType) -> PeerCredentials:
    """Who is at the other end of a connected Unix socket, as the kernel recorded at connect.

    Linux: ``SO_PEERCRED``. macOS and the BSDs: ``LOCAL_PEERCRED`` (``struct xucred``: no
    pid). Raises ``OSError`` where neither exists; the endpoint then refuses every peer.
    """
    if hasattr(socket, "SO_PEERCRED"):
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
        pid, uid, gid = _UCRED.unpack(raw)
        return PeerCredentials(pid, uid, gid)
    local_peercred = getattr(socket, "LOCAL_PEERCRED", None)
    if local_peercred is not None:
        # struct xucred { u_int cr_version; uid_t cr_uid; short cr_ngroups; gid_t cr_groups[16]; }
        raw = sock.getsockopt(0, local_peercred, 76)  # level SOL_LOCAL = 0
        _version, uid = struct.unpack_from("=II", raw)
        (gid,) = struct.unpack_from("=I", raw, 12)
        return PeerCredentials(None, uid, gid)
    raise OSError("this platform offers no way to read a Unix socket peer's credentials")


# -- the server ------------------------------------------------------------------------------


async def answer(request: ControlRequest, target: ControlTarget) -> dict[str, object]:
    """Carry out one valid request; every failure becomes an error reply (never raises)."""
    try:
        if request.cmd == "tree":
            return {"ok": True, "result": tree_to_dict(target.tree())}
        if request.cmd == "status":
            return {"ok": True, "result": to_jsonable(await target.status_report())}
        if request.cmd == "stats":
            return {"ok": True, "result": to_jsonable(await target.stats())}
        actor = request.actor
        assert actor is not None  # parse_request guarantees it for the actor commands
        action = {"restart": target.restart, "stop": target.stop, "start": target.start}
        await action[request.cmd](actor)
        return {"ok": True, "result": _find(tree_to_dict(target.tree()), actor)}
    except UnknownChild:
        names = ", ".join(_names(tree_to_dict(target.tree())))
        return _failure(f"unknown actor {_short(request.actor)}; actors: {names}")
    except (SupervisorError, ValueError) as exc:
        return _failure(str(exc))
    except Exception as exc:
        log.exception("control command %r failed", request.cmd)
        return _failure(f"internal error in {request.cmd!r}: {type(exc).__name__}: {exc}")


async def serve_control(
    path: Path,
    target: ControlTarget,
    *,
    own_name: str | None = None,
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    task_status: trio.TaskStatus[Path] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the endpoint at ``path`` until cancelled; reports ``path`` once listening.

    A socket file left by a dead process is replaced; one a live process listens on is
    not (``ControlError``), nor is any other kind of file. The file is removed on exit if
    it is still ours. ``own_name`` is the endpoint's own actor name: stopping it (or a
    supervisor above it) would lock the operator out, so that is refused, and restarting
    it is answered before it happens, since the restart ends this connection.

    A burst of clients waits in the listen queue; beyond ``max_connections`` open at once,
    a client is told the runtime is busy and disconnected (each one holds a descriptor,
    and the runtime's TWS socket needs one too).
    """
    path = Path(path)
    _ensure_directory(path.parent, private=False)
    await _remove_stale_socket(path)
    sock = _bind(path)
    identity = _identity(path)
    serve_one = functools.partial(_serve_connection, target=target, own_name=own_name,
                                  idle_timeout=idle_timeout)
    open_connections = 0

    async def handler(stream: trio.SocketStream) -> None:
        nonlocal open_connections
        if open_connections >= max_connections:
            await _refuse_busy(stream, max_connections)
            return
        open_connections += 1
        try:
            await serve_one(stream)
        finally:
            open_connections -= 1

    try:
        listener = trio.SocketListener(sock)
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, handler, [listener])
            log.info("control endpoint listening on %s", path)
            task_status.started(path)
    finally:
        sock.close()
        if identity is not None and _identity(path) == identity:
            _unlink(path)


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


async def _remove_stale_socket(path: Path) -> None:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise ControlError(f"{path} exists and is not a socket; refusing to replace it")
    try:
        probe = await trio.open_unix_socket(os.fspath(path))
    except ConnectionRefusedError:
        _unlink(path)
        log.info("removed a stale control socket at %s (nothing was listening)", path)
        return
    except FileNotFoundError:
        return
    except OSError as exc:
        raise ControlError(f"cannot tell whether {path} is in use: {exc}") from exc
    await probe.aclose()
    raise ControlError(f"another process is already serving the control socket {path}; "
                       "is a second runtime running? (set IBKR_CONTROL_PATH to run two)")


def _unlink(path: Path) -> None:
    path.unlink(missing_ok=True)


def _bind(path: Path) -> trio.socket.SocketType:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    bound = False
    try:
        sock.bind(os.fspath(path))  # a local name: no lookup, nothing to wait for
        bound = True
        os.chmod(path, 0o600)  # before listen(): nobody can have connected yet
        sock.listen(_BACKLOG)
    except OSError as exc:
        sock.close()
        if bound:
            _unlink(path)
        raise ControlError(f"cannot serve the control socket at {path}: {exc}") from exc
    return trio.socket.from_stdlib_socket(sock)


async def _refuse_busy(stream: trio.SocketStream, limit: int) -> None:
    log.warning("control: %d clients already connected; told one more the runtime is busy",
                limit)
    reply = _failure(f"the runtime is busy: {limit} control connections are open; try again")
    with trio.move_on_after(_BUSY_SEND_TIMEOUT):
        try:
            async with stream:
                await stream.send_all(json.dumps(reply).encode() + b"\n")
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass


async def _serve_connection(stream: trio.SocketStream, *, target: ControlTarget,
                            own_name: str | None, idle_timeout: float) -> None:
    """One client, start to end. Never raises but ``Cancelled``: failures end this connection."""
    try:
        async with stream:
            await _converse(stream, target, own_name, idle_timeout)
    except (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError):
        log.debug("control client went away or stopped reading")
    except Exception:
        log.exception("control connection failed; the endpoint keeps serving")


async def _converse(stream: trio.SocketStream, target: ControlTarget, own_name: str | None,
                    idle_timeout: float) -> None:
    async def send(reply: Mapping[str, object]) -> None:
        data = json.dumps(reply).encode() + b"\n"  # ASCII: even a lone surrogate survives
        with trio.fail_after(idle_timeout):
            await stream.send_all(data)

    try:
        peer = peer_credentials(stream.socket)
    except OSError as exc:
        log.warning("control: cannot read a client's credentials (%s); refused", exc)
        await send(_failure(f"permission denied: cannot verify the peer's credentials: {exc}"))
        return
    if peer.uid != os.getuid():
        log.warning("control: refused a client with uid %d (pid %s); only uid %d may connect",
                    peer.uid, peer.pid, os.getuid())
        await send(_failure(f"permission denied: uid {peer.uid} is not the runtime's "
                            f"uid {os.getuid()}"))
        return
    buffer = LineBuffer(MAX_LINE)
    while True:
        with trio.move_on_after(idle_timeout) as idle:
            data = await stream.receive_some(_RECEIVE_SIZE)
        if idle.cancelled_caught:
            await send(_failure(f"idle for {idle_timeout:g} s; closing"))
            return
        for line in buffer.feed(data) if data else buffer.finish():
            if not await _handle_line(line, target, own_name, peer, send):
                return
        if buffer.overflowed:
            await send(_failure(f"request line longer than {MAX_LINE} bytes; closing"))
            return
        if not data:
            return


async def _handle_line(line: bytes, target: ControlTarget, own_name: str | None,
                       peer: PeerCredentials,
                       send: Callable[[Mapping[str, object]], Awaitable[None]]) -> bool:
    """Answer one line; False when the connection must end (the endpoint restarts)."""
    try:
        request = parse_request(line)
    except BadRequest as exc:
        await send(_failure(str(exc)))
        return True
    if request.actor is not None:
        log.info("control: operator (pid %s) asked to %s %s", peer.pid, request.cmd,
                 _short(request.actor))
        tree = tree_to_dict(target.tree())
        node = _find(tree, request.actor)
        # The root is no child: the tree itself refuses to stop or restart it, clearly.
        encloses_us = node is not None and node is not tree and own_name in _names(node)
        if encloses_us and request.cmd == "stop":
            await send(_failure(f"refusing to stop {request.actor!r}: the control endpoint "
                                f"{own_name!r} is part of it and you would be locked out; "
                                "restart it instead"))
            return True
        if encloses_us and request.cmd == "restart":
            assert node is not None
            # The restart cancels this very task: answer first, then let it happen.
            await send({"ok": True, "result": {**node, "state": "restarting"}})
            try:
                await target.restart(request.actor)
            except (SupervisorError, ValueError) as exc:
                log.warning("control: restarting %r failed: %s", request.actor, exc)
            return False
    await send(await answer(request, target))
    return True


async def run_control(
    mailbox: Mailbox,
    *,
    path: Path,
    target: ControlTarget,
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """The supervised actor: serves the endpoint until its supervisor stops it.

    It takes no messages: its handler table is empty, so `serve` fails each call with
    ``TypeError`` (operators use its socket); a stop request ends the loop, which cancels
    the server and removes the socket file.
    """
    async with trio.open_nursery() as nursery:
        await nursery.start(functools.partial(
            serve_control, path, target, own_name=mailbox.name, idle_timeout=idle_timeout))
        task_status.started()
        await serve(mailbox, {})
        nursery.cancel_scope.cancel()
