"""The operator's side of the control endpoint: one request, one reply, one clear error.

Layer: ``actors/``, beside :mod:`.control` (the server) and :mod:`.control_wire` (the
protocol). ``ibkr-connector tree | status | stats | restart | stop | start`` and the demo
call :func:`control_request`; every way of not getting a usable reply is a `ControlError`
subclass whose one-line message names the path and says what to do:

- no file, or a stale socket nobody listens on: `ControlUnavailable`;
- the runtime's accept queue is full and stays full until the timeout: `ControlBusy` (the
  runtime itself answers a client beyond its connection limit with a "busy" error reply);
- accepted but no reply in time: `ControlTimeout`;
- the path is not a socket, or another program's socket that does not speak this protocol
  (the simulator's fault socket answers with a pointer to the right one): `NotAControlSocket`.

The socket is connected by hand rather than with ``trio.open_unix_socket``: a non-blocking
``connect`` to a Unix socket whose backlog is full fails with ``EAGAIN``, which trio takes
for "in progress" and then reports as connected, so the request went nowhere and the client
saw the connection closed without a reply. Here ``EAGAIN`` means busy, and the connect is
retried with a short backoff until the caller's deadline.

Cancellation: the call is cancellable at every await; a command cancelled after it was sent
may still be carried out by the runtime.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import stat
from pathlib import Path
from typing import Final

import trio

from .control_wire import (
    _ACTOR_COMMANDS,
    ControlBusy,
    ControlTimeout,
    ControlUnavailable,
    NotAControlSocket,
    _short,
    is_reply,
)

__all__ = ["control_request"]

_MAX_REPLY: Final = 16 * 1024 * 1024  # what the client accepts; a tree is a few KiB
_RECEIVE_SIZE: Final = 16 * 1024
_FIRST_RETRY: Final = 0.005  # a full accept queue drains in microseconds per client
_LAST_RETRY: Final = 0.1


async def control_request(path: Path, command: str, *args: str,
                          timeout: float = 5.0) -> dict[str, object]:  # noqa: ASYNC109
    """Send one command to the runtime at ``path`` and return its reply object.

    ``args`` is the actor name for restart / stop / start. The reply's ``ok`` says whether
    the runtime did it; failing to get a reply at all raises a `ControlError` (see the
    module docstring), after at most ``timeout`` seconds, with a message naming the path.
    """
    if command in _ACTOR_COMMANDS:
        if len(args) != 1:
            raise ValueError(f"{command} takes one actor name, got {len(args)} arguments")
        request: dict[str, str] = {"cmd": command, "actor": args[0]}
    elif args:
        raise ValueError(f"{command} takes no arguments, got {len(args)}")
    else:
        request = {"cmd": command}
    path = Path(path)
    deadline = trio.current_time() + timeout
    stream = await _connect(path, deadline, timeout)
    with trio.move_on_at(deadline):
        return await _exchange(stream, path, json.dumps(request).encode() + b"\n")
    raise ControlTimeout(f"the runtime at {path} did not reply within {timeout:g} s (is it "
                         "the control socket of `ibkr-connector run`?)")


def _check_is_socket(path: Path) -> None:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ControlUnavailable(
            f"no control socket at {path}: is `ibkr-connector run` running as this user, with "
            "the same IBKR_CONTROL_PATH / XDG_RUNTIME_DIR?") from None
    except OSError as exc:
        raise ControlUnavailable(f"cannot reach the control socket {path}: {exc}") from None
    if not stat.S_ISSOCK(info.st_mode):
        what = "a directory" if stat.S_ISDIR(info.st_mode) else "a regular file" if (
            stat.S_ISREG(info.st_mode)) else "not a socket"
        raise NotAControlSocket(f"{path} is not a socket ({what}): --control / "
                                "IBKR_CONTROL_PATH must name the control socket of "
                                "`ibkr-connector run`")


async def _connect(path: Path, deadline: float, patience: float) -> trio.SocketStream:
    _check_is_socket(path)
    delay = _FIRST_RETRY
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            sock.connect(os.fspath(path))  # a local socket: done at once, or refused
        except BlockingIOError:
            sock.close()  # EAGAIN: its accept queue is full
            if trio.current_time() + delay > deadline:
                raise ControlBusy(f"the runtime at {path} is busy: its connection queue stayed "
                                  f"full for {patience:g} s; try again") from None
            await trio.sleep(delay)
            delay = min(2 * delay, _LAST_RETRY)
            continue
        except OSError as exc:
            sock.close()
            raise _connect_error(path, exc) from None
        await trio.lowlevel.checkpoint()
        return trio.SocketStream(trio.socket.from_stdlib_socket(sock))


def _connect_error(path: Path, exc: OSError) -> ControlUnavailable:
    if exc.errno == errno.ENOENT:
        return ControlUnavailable(f"no control socket at {path}: the runtime has just stopped?")
    if exc.errno == errno.ECONNREFUSED:
        return ControlUnavailable(f"nothing listens on {path} (a stale socket: the runtime "
                                  "has stopped)")
    return ControlUnavailable(f"cannot reach the control socket {path}: {exc}")


async def _exchange(stream: trio.SocketStream, path: Path, data: bytes) -> dict[str, object]:
    received = bytearray()
    async with stream:
        try:
            await stream.send_all(data)
            while b"\n" not in received and len(received) <= _MAX_REPLY:
                chunk = await stream.receive_some(_RECEIVE_SIZE)
                if not chunk:
                    break
                received += chunk
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # judged below by what did arrive
    line = bytes(received).split(b"\n", 1)[0]
    if not line.strip():
        raise ControlUnavailable(f"the runtime at {path} closed the connection without a "
                                 "reply (it may be shutting down, or this is not the control "
                                 "socket of `ibkr-connector run`)")
    try:
        reply = json.loads(line)
    except ValueError:
        reply = None
    if not is_reply(reply):
        raise NotAControlSocket(f"{path} does not speak the ibkr-connector control protocol "
                                f"(it replied {_short(line, 80)}): is it another program's "
                                "socket?")
    assert isinstance(reply, dict)
    return reply
