"""The control endpoint's wire, sans I/O: lines from bytes, requests from lines, plain JSON
from rich values, and the terminal rendering of a tree. Plain bytes and values, no sockets;
the endpoint itself is tested over a real socket in ``test_control.py``."""

from __future__ import annotations

import datetime
import decimal
import enum
import json
from pathlib import Path

import pytest

from ibkr_connector.actors import control, control_wire
from ibkr_connector.actors.control_wire import (
    BadRequest,
    ControlRequest,
    LineBuffer,
    format_tree,
    format_uptime,
    parse_request,
    to_jsonable,
    tree_to_dict,
)
from ibkr_connector.supervisor import ChildInfo, ChildState


class LinkState(enum.Enum):
    CONNECTED = "connected"


def test_line_buffer_joins_chunks_and_splits_lines() -> None:
    buffer = LineBuffer(limit=16)
    assert buffer.feed(b'{"cmd"') == []
    assert buffer.feed(b': 1}\r\n{"a"\n{"b') == [b'{"cmd": 1}', b'{"a"']
    assert buffer.finish() == [b'{"b']
    assert not buffer.overflowed


def test_line_buffer_flags_a_line_over_its_limit_terminated_or_not() -> None:
    terminated = LineBuffer(limit=4)
    assert terminated.feed(b"ok\ntoolong\nlater\n") == [b"ok"]
    assert terminated.overflowed and terminated.feed(b"x\n") == []
    unterminated = LineBuffer(limit=4)
    assert unterminated.feed(b"abcde") == []
    assert unterminated.overflowed and unterminated.finish() == []


def test_parse_request_accepts_the_documented_forms() -> None:
    assert parse_request(b'{"cmd": "tree"}') == ControlRequest("tree")
    assert parse_request(b'{"cmd": "stop", "actor": "bus"}') == ControlRequest(
        "stop", "bus")
    with pytest.raises(BadRequest, match="unknown command 'xxxxx"):
        parse_request(json.dumps({"cmd": "x" * 10_000}).encode())


def test_to_jsonable_turns_rich_values_into_plain_json_and_refuses_the_rest() -> None:
    value = {1: frozenset({2}), "p": Path("/a"), "d": decimal.Decimal("1.50"),
             "t": datetime.datetime(2026, 1, 2, 15, 4, 5), "e": LinkState.CONNECTED,
             "n": float("nan")}
    assert to_jsonable(value) == {"1": [2], "p": "/a", "d": "1.50", "t": "2026-01-02T15:04:05",
                                  "e": "connected", "n": "nan"}
    with pytest.raises(TypeError, match="cannot encode object"):
        to_jsonable(object())


@pytest.mark.parametrize(("seconds", "text"), [
    (0.4, "0s"), (42, "42s"), (307, "5m07s"), (3720, "1h02m"), (3 * 86400 + 4 * 3600, "3d04h"),
    (-1, "0s"),
])
def test_format_uptime(seconds: float, text: str) -> None:
    assert format_uptime(seconds) == text


def test_format_tree_draws_an_aligned_tree() -> None:
    def leaf(name: str, **kw: object) -> dict[str, object]:
        base: dict[str, object] = {"name": name, "kind": "worker", "state": "running",
                                   "restarts": 0, "last_error": None, "uptime": 3725.0,
                                   "mailbox_depth": 0, "children": []}
        return {**base, **kw}

    tree = leaf("ibkr", kind="supervisor", children=[
        leaf("core", kind="supervisor", children=[leaf("bus", mailbox_depth=3), leaf("audit")]),
        leaf("session", kind="supervisor", children=[
            leaf("connection", state="restarting", uptime=None, restarts=2,
                 last_error="ConnectFailed: refused\nby TWS")]),
    ])
    assert format_tree(tree) == "\n".join([
        "ibkr                running     up 1h02m   restarts 0",
        "├── core            running     up 1h02m   restarts 0",
        "│   ├── bus         running     up 1h02m   restarts 0  mailbox 3",
        "│   └── audit       running     up 1h02m   restarts 0",
        "└── session         running     up 1h02m   restarts 0",
        "    └── connection  restarting  -          restarts 2  "
        "last error: ConnectFailed: refused by TWS",
    ])


def test_format_tree_renders_a_live_tree_reply() -> None:
    info = ChildInfo("root", "supervisor", ChildState.RUNNING, 0, None, 61.0, 0, (
        ChildInfo("only", "worker", ChildState.STOPPED, 4, "boom", None, 7),))
    assert format_tree(tree_to_dict(info)).splitlines() == [
        "root      running     up 1m01s   restarts 0",
        "└── only  stopped     -          restarts 4  mailbox 7  last error: boom",
    ]


@pytest.mark.parametrize("name", control_wire.__all__)
def test_the_wire_names_are_still_importable_from_control(name: str) -> None:
    assert name in control.__all__
    assert getattr(control, name) is getattr(control_wire, name)


@pytest.mark.parametrize(("obj", "ours"), [
    ({"ok": True, "result": None}, True),
    ({"ok": False, "error": "unknown actor"}, True),
    ({"ok": True}, False),  # the simulator's fault socket answers like this
    ({"ok": True, "result": 1, "port": 7497}, False),
    ({"ok": False, "error": 5}, False),
    ({"ok": "yes", "result": 1}, False),
    ([True], False),
])
def test_a_reply_of_this_protocol_is_told_from_another_programs(obj: object, ours: bool) -> None:
    assert control_wire.is_reply(obj) is ours


def test_a_fault_command_sent_here_points_to_the_simulators_socket() -> None:
    with pytest.raises(BadRequest, match="not a simulator's fault socket"):
        parse_request(b'{"command": "drop"}')
