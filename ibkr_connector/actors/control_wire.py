"""The control endpoint's wire: JSON lines in and out, sans I/O.

Layer: ``actors/``, beside :mod:`.control`, which owns the socket, the peer check, the
serving tasks and the client. Everything here is pure, h11-style: fed bytes or values, it
hands back lines, typed requests, reply dicts or terminal text, and never touches a socket,
a clock or a task, so it is testable with plain bytes and nothing here can be cancelled
half-way.

Wire: one JSON object per line each way. ``{"cmd": "tree"}`` or ``{"cmd": "restart",
"actor": "watchdog"}`` in; ``{"ok": true, "result": ...}`` or ``{"ok": false, "error":
"unknown actor 'foo' ..."}`` out. A line longer than :data:`MAX_LINE` gets an error and
the connection is closed (there is no way to resynchronise inside an oversized line).
:class:`LineBuffer` splits the byte stream, :func:`parse_request` validates a line into a
:class:`ControlRequest`, :func:`tree_to_dict` and :func:`to_jsonable` make replies plain
JSON, and :func:`format_tree` renders a ``tree`` reply for a terminal.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import attrs

from .._errors import IBKRError
from ..supervisor import ChildInfo

__all__ = [
    "COMMANDS", "MAX_LINE", "BadRequest", "ControlBusy", "ControlError", "ControlRequest",
    "ControlTimeout", "ControlUnavailable", "LineBuffer", "NotAControlSocket", "format_tree",
    "format_uptime", "is_reply", "parse_request", "to_jsonable", "tree_to_dict",
]

#: Longest request line accepted, newline excluded.
MAX_LINE: Final = 64 * 1024
COMMANDS: Final = ("tree", "status", "stats", "restart", "stop", "start")
_ACTOR_COMMANDS: Final = frozenset({"restart", "stop", "start"})


class ControlError(IBKRError):
    """The control endpoint cannot be served or its reply is unusable; names the path."""


class ControlUnavailable(ControlError):
    """Nothing alive answers on the control socket (not running, stale file, wrong user)."""


class ControlBusy(ControlUnavailable):
    """The runtime is alive but takes no more connections right now; try again shortly."""


class ControlTimeout(ControlUnavailable, TimeoutError):
    """The runtime accepted the connection but did not reply in time."""


class NotAControlSocket(ControlError):
    """The path is no socket, or another program's: it does not speak this protocol."""


class LineBuffer:
    """Splits a byte stream into lines of at most ``limit`` bytes (newline excluded).

    After an oversized line, ``overflowed`` is set and nothing further is returned: the
    complete lines before it are still answered, then the connection is closed.
    """

    __slots__ = ("_limit", "_pending", "overflowed")

    def __init__(self, limit: int = MAX_LINE) -> None:
        self._limit = limit
        self._pending = bytearray()
        self.overflowed = False

    def feed(self, data: bytes) -> list[bytes]:
        if self.overflowed:
            return []
        self._pending += data
        lines: list[bytes] = []
        start = 0
        while (end := self._pending.find(b"\n", start)) >= 0:
            if end - start > self._limit:
                self.overflowed = True
                break
            lines.append(bytes(self._pending[start:end]).rstrip(b"\r"))
            start = end + 1
        del self._pending[:start]
        if len(self._pending) > self._limit:
            self.overflowed = True
        return lines

    def finish(self) -> list[bytes]:
        """At end of input: the unterminated last line, if there is one."""
        rest = bytes(self._pending).strip()
        self._pending.clear()
        return [rest] if rest and not self.overflowed else []


class BadRequest(IBKRError, ValueError):
    """A request line the endpoint cannot act on; the message is the operator's reply."""


@attrs.frozen
class ControlRequest:
    cmd: str
    actor: str | None = None


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def parse_request(line: bytes) -> ControlRequest:
    """Validate one request line; raises ``BadRequest`` with the reply's error text."""
    try:
        obj = json.loads(line)
    except RecursionError:
        raise BadRequest("bad JSON: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError both are
        raise BadRequest(f"bad JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise BadRequest('a request is a JSON object such as {"cmd": "tree"}')
    cmd = obj.get("cmd")
    if cmd is None and "command" in obj:  # the simulator's fault protocol
        raise BadRequest("this is the control socket of `ibkr-connector run`, not a simulator's "
                         "fault socket: fault commands go to `ibkr-connector fault --control "
                         "PATH`, with the path the simulator printed")
    if not isinstance(cmd, str):
        raise BadRequest("the request has no 'cmd' string")
    if cmd not in COMMANDS:
        raise BadRequest(f"unknown command {_short(cmd)}; commands: {', '.join(COMMANDS)}")
    allowed = {"cmd", "actor"} if cmd in _ACTOR_COMMANDS else {"cmd"}
    extra = sorted(key for key in obj if key not in allowed)
    if extra:
        raise BadRequest(f"command {cmd!r} takes no field {', '.join(map(_short, extra))}")
    actor = obj.get("actor")
    if cmd in _ACTOR_COMMANDS and (not isinstance(actor, str) or not actor):
        raise BadRequest(f"command {cmd!r} needs an 'actor' name, e.g. "
                         f'{{"cmd": "{cmd}", "actor": "watchdog"}}')
    return ControlRequest(cmd, actor)


def is_reply(obj: object) -> bool:
    """Whether ``obj`` is a reply of this protocol: ``{"ok": true, "result": ...}`` or
    ``{"ok": false, "error": "..."}``. Anything else came from another program."""
    if not isinstance(obj, dict) or not set(obj) <= {"ok", "result", "error"}:
        return False
    if obj.get("ok") is True:
        return "result" in obj
    return obj.get("ok") is False and isinstance(obj.get("error"), str)


def tree_to_dict(info: ChildInfo) -> dict[str, object]:
    """A ``ChildInfo`` snapshot as the wire's nested dicts (state lowercase)."""
    state = info.state.value if isinstance(info.state, enum.Enum) else info.state
    return {
        "name": info.name,
        "kind": info.kind,
        "state": str(state).lower(),
        "restarts": info.restarts,
        "last_error": info.last_error,
        "uptime": None if info.uptime is None else round(info.uptime, 3),
        "mailbox_depth": info.mailbox_depth,
        "children": [tree_to_dict(child) for child in info.children],
    }


def to_jsonable(value: object) -> object:
    """Plain JSON data from what a target returns: mappings, attrs classes, enums, paths...

    Non-finite floats become strings so strict JSON readers (``jq``) accept every reply.
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value)
    cls = type(value)
    if attrs.has(cls):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in attrs.fields(cls)}
    if isinstance(value, Mapping):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(item) for item in value]
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, Path | decimal.Decimal):
        return str(value)
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def _find(node: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    if node.get("name") == name:
        return node
    for child in node.get("children", ()):
        found = _find(child, name)
        if found is not None:
            return found
    return None


def _names(node: Mapping[str, Any]) -> list[str]:
    found = [str(node.get("name"))]
    for child in node.get("children", ()):
        found.extend(_names(child))
    return found


def _failure(error: str) -> dict[str, object]:
    return {"ok": False, "error": error}


def format_uptime(seconds: float) -> str:
    """Compact duration for the tree: ``42s``, ``5m07s``, ``1h02m``, ``3d04h``."""
    total = max(0, int(seconds))
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def format_tree(tree: Mapping[str, Any]) -> str:
    """Render a ``tree`` result for a terminal: one aligned line per actor.

    ``ibkr  running  up 1h02m  restarts 0``, children drawn with ``├──`` / ``└──``;
    mailbox depth and the last error are shown only when there is something to see.
    Tolerates missing keys (it renders what a possibly older runtime sent).
    """
    rows: list[tuple[str, Mapping[str, Any]]] = []

    def walk(node: Mapping[str, Any], label: str, indent: str) -> None:
        rows.append((label + str(node.get("name", "?")), node))
        children = list(node.get("children") or ())
        for i, child in enumerate(children):
            last = i == len(children) - 1
            branch, rest = ("└── ", "    ") if last else ("├── ", "│   ")
            walk(child, indent + branch, indent + rest)

    walk(tree, "", "")
    width = max(len(label) for label, _ in rows)
    lines = []
    for label, node in rows:
        uptime = node.get("uptime")
        parts = [
            label.ljust(width),
            str(node.get("state", "?")).ljust(10),
            ("-" if uptime is None else f"up {format_uptime(float(uptime))}").ljust(9),
            f"restarts {node.get('restarts', 0)}",
        ]
        if node.get("mailbox_depth"):
            parts.append(f"mailbox {node['mailbox_depth']}")
        if node.get("last_error"):
            parts.append("last error: " + " ".join(str(node["last_error"]).split()))
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)
