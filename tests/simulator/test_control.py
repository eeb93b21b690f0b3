"""The fault control socket and the `sim` / `fault` subcommands."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
import trio

from ibkr_connector.simulator import ControlError, open_simulator, send_control_command
from ibkr_connector.simulator._control import (
    Delay,
    Drop,
    Malformed,
    Refuse,
    SendError,
    Status,
    encode_command,
    parse_command,
    serve_control,
)
from ibkr_connector.simulator.cli import add_sim_commands

from .rawclient import RawClient


@pytest.fixture
def control_path() -> Iterator[str]:
    # Unix socket paths are limited to ~107 bytes: pytest's tmp_path can be too long.
    directory = tempfile.mkdtemp(prefix="simctl")
    yield os.path.join(directory, "control.sock")
    shutil.rmtree(directory, ignore_errors=True)


def parse_cli(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ibkr-connector")
    add_sim_commands(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


async def ask(path: str, command: Any) -> dict[str, Any]:
    return await trio.to_thread.run_sync(send_control_command, path, command)


@pytest.mark.parametrize("command", [
    Drop(), Refuse(30.0), SendError(1100), SendError(2110, "x", 5, 2), Delay(0.5),
    Malformed("garbage", 3), Status()])
def test_commands_round_trip_through_json(command: Any) -> None:
    assert parse_command(encode_command(command)) == command


@pytest.mark.parametrize(("line", "complaint"), [
    (b"not json", "not JSON"), (b"[1]", "JSON object"), (b'{"command": "reboot"}', "unknown"),
    (b'{"command": "refuse", "seconds": -1}', ">= 0"),
    (b'{"command": "delay", "seconds": "1"}', "number"),
    (b'{"command": "error"}', "code"), (b'{"command": "error", "code": true}', "integer"),
    (b'{"command": "malformed", "kind": "x"}', "kind")])
def test_bad_requests_are_explained(line: bytes, complaint: str) -> None:
    with pytest.raises(ControlError, match=complaint):
        parse_command(line)


async def test_control_socket_applies_faults_to_the_running_simulator(control_path: str) -> None:
    async with open_simulator() as sim, trio.open_nursery() as nursery:
        await nursery.start(serve_control, sim, control_path)
        assert stat.S_IMODE(os.stat(control_path).st_mode) == 0o600
        client = await RawClient.connected(sim.port, 4)
        await client.read_until(9)
        status = await ask(control_path, Status())
        assert (status["ok"], status["port"], status["clients"]) == (True, sim.port, [4])
        assert (await ask(control_path, SendError(1100)))["ok"]
        assert (await client.read_until(4, 1100))[2] == "1100"
        assert (await ask(control_path, Delay(0.25)))["reply_delay"] == 0.25
        answer = await ask(control_path, SendError(1101, client_id=99))
        assert answer == {"ok": False, "error": "no connected client with id 99"}
        assert (await ask(control_path, Drop()))["clients"] == []
        assert await client.read_all_until_closed() == []
        nursery.cancel_scope.cancel()
    assert not await trio.Path(control_path).exists()


async def test_control_socket_replaces_a_stale_file_but_not_a_live_server(
        control_path: str) -> None:
    os.makedirs(os.path.dirname(control_path), exist_ok=True)
    stale = trio.socket.socket(trio.socket.AF_UNIX)
    await stale.bind(control_path)
    stale.close()
    async with open_simulator() as sim, trio.open_nursery() as nursery:
        await nursery.start(serve_control, sim, control_path)
        with pytest.raises(ControlError, match="already serving"):
            await serve_control(sim, control_path)
        nursery.cancel_scope.cancel()


def test_fault_without_a_simulator_fails_with_one_line(
        control_path: str, capsys: pytest.CaptureFixture[str]) -> None:
    args = parse_cli("fault", "--control", control_path, "drop")
    assert args.func(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no simulator control socket" in err


def test_sim_rejects_a_bad_version_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    args = parse_cli("sim", "--port", "0", "--server-version", "300")
    assert args.func(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "server_version" in err


def test_sim_reports_a_port_in_use_with_one_line(
        control_path: str, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        args = parse_cli("sim", "--port", str(taken.getsockname()[1]), "--control", control_path)
        assert args.func(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot listen" in err


def test_sim_reports_an_unusable_control_path_with_one_line(
        control_path: str, capsys: pytest.CaptureFixture[str]) -> None:
    with open(control_path, "w"):
        pass
    args = parse_cli("sim", "--port", "0", "--control", control_path)
    assert args.func(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a socket" in err


async def test_fault_command_talks_to_the_control_socket(
        control_path: str, capsys: pytest.CaptureFixture[str]) -> None:
    async with open_simulator() as sim, trio.open_nursery() as nursery:
        await nursery.start(serve_control, sim, control_path)
        args = parse_cli("fault", "--control", control_path, "refuse", "30")
        assert await trio.to_thread.run_sync(args.func, args) == 0
        assert not sim.listening
        assert "not listening" in capsys.readouterr().out
        nursery.cancel_scope.cancel()


_RUN_CLI = ("import argparse, sys\n"
            "from ibkr_connector.simulator.cli import add_sim_commands\n"
            "parser = argparse.ArgumentParser()\n"
            "add_sim_commands(parser.add_subparsers(required=True))\n"
            "args = parser.parse_args(sys.argv[1:])\n"
            "sys.exit(args.func(args))\n")


async def test_sim_command_serves_until_interrupted(control_path: str) -> None:
    process = await trio.lowlevel.open_process(
        [sys.executable, "-c", _RUN_CLI, "sim", "--port", "0", "--control", control_path],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert process.stdout is not None
        with trio.fail_after(10):
            banner = b""
            while b"\n" not in banner:
                chunk = await process.stdout.receive_some()
                assert chunk, "sim exited before listening"
                banner += chunk
        port = int(banner.split(b"listening on 127.0.0.1:")[1].split()[0])
        client = await RawClient.connected(port, 1)
        await client.read_until(9)
        status = await ask(control_path, Status())
        assert status["clients"] == [1]
        process.send_signal(signal.SIGINT)
        with trio.fail_after(10):
            assert await process.wait() == 0
        assert not await trio.Path(control_path).exists()
        await client.aclose()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
