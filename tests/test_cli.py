"""The CLI end to end, in subprocesses, as an operator would use it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "ibkr_connector.cli"]
COMMANDS = ["run", "demo", "sim", "fault", "tree", "status", "stats", "restart", "stop", "start"]


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 30
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def test_demo_exits_zero_and_narrates_every_stage() -> None:
    result = cli("demo", timeout=60)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for stage in ("[connected] server version 200", "[     tree]", "[  restart]",
                  "[recovered] reconnected", "[    crash]", "[ operator] `restart watchdog`",
                  "[ shutdown] runtime stopped", "TWS session threads left behind: 0"):
        assert stage in out
    assert "DU1234567" not in out  # the account is masked


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str) -> None:
    result = cli(command, "--help")
    assert result.returncode == 0
    assert "usage:" in result.stdout


def test_a_bad_setting_is_one_line_and_a_non_zero_exit(tmp_path: Path) -> None:
    result = cli("run", "--control", str(tmp_path / "c.sock"), env={"IBKR_PORT": "abc"})
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "IBKR_PORT" in result.stderr
    assert "Traceback" not in result.stderr


def assert_one_line_error(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 2, result
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in result.stderr


def test_an_unknown_variable_stops_run_with_one_line(tmp_path: Path) -> None:
    result = cli("run", "--control", str(tmp_path / "c.sock"), env={"IBKR_PROT": "4002"})
    assert_one_line_error(result, "unknown variable IBKR_PROT (did you mean IBKR_PORT?)")


def test_a_control_path_that_is_not_a_socket_says_so(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("not a socket")
    assert_one_line_error(cli("tree", "--control", str(path)), "is not a socket (a regular file)")


def test_a_runtime_whose_queue_is_full_is_reported_busy(tmp_path: Path) -> None:
    path = tmp_path / "c.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stuck, \
            socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as waiting:
        stuck.bind(str(path))
        stuck.listen(0)  # one client waits in the queue; the next is refused by the kernel
        waiting.connect(str(path))
        result = cli("status", "--control", str(path), "--timeout", "0.2")
    assert_one_line_error(result, "is busy")


def test_operator_commands_without_a_service_fail_clearly(tmp_path: Path) -> None:
    result = cli("tree", "--control", str(tmp_path / "none.sock"))
    assert result.returncode == 2
    assert "none.sock" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture
def service(tmp_path: Path):  # type: ignore[no-untyped-def]
    control = tmp_path / "control.sock"
    env = {**os.environ, "IBKR_AUDIT_PATH": str(tmp_path / "audit.jsonl"),
           "IBKR_RECONNECT_INITIAL_DELAY": "0.1", "IBKR_RECONNECT_MAX_DELAY": "0.5"}
    proc = subprocess.Popen([*CLI, "run", "--sim", "--control", str(control),
                             "--sim-control", str(tmp_path / "fault.sock")], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while True:
        if control.exists() and cli("status", "--control", str(control)).stdout.count(
                "state: connected"):
            break
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"service did not come up: {proc.communicate()}")
        time.sleep(0.1)
    yield control, proc
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


def test_tree_and_restart_against_a_running_service(service) -> None:  # type: ignore[no-untyped-def]
    control, proc = service
    tree = cli("tree", "--control", str(control))
    assert tree.returncode == 0
    for name in ("connection", "limiter", "watchdog", "bus", "audit"):
        assert name in tree.stdout
    assert cli("restart", "watchdog", "--control", str(control)).returncode == 0
    after = cli("tree", "--control", str(control)).stdout
    watchdog_line = next(line for line in after.splitlines() if "watchdog" in line)
    assert "restarts 1" in watchdog_line
    unknown = cli("restart", "nosuch", "--control", str(control))
    assert unknown.returncode == 2
    assert "nosuch" in unknown.stderr
    stats = cli("stats", "--control", str(control))
    assert "request_rate_per_s" in stats.stdout
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0  # Ctrl-C / SIGTERM stop cleanly
    assert not control.exists()


def test_fault_works_against_run_sim(service, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    control, _proc = service
    fault = str(tmp_path / "fault.sock")
    status = cli("fault", "--control", fault, "status")
    assert status.returncode == 0, status.stderr
    assert status.stdout.startswith("ok: status; port ")
    assert cli("fault", "--control", fault, "drop").returncode == 0
    deadline = time.monotonic() + 20
    while "reconnects: 1" not in cli("status", "--control", str(control)).stdout:
        assert time.monotonic() < deadline, "the service did not reconnect after the drop"
        time.sleep(0.1)
    # The two sockets are easy to mix up; each says which one it is.
    assert_one_line_error(cli("tree", "--control", fault), "a TWS simulator's fault socket")
    wrong = cli("fault", "--control", str(control), "drop")
    assert wrong.returncode != 0
    assert "not a simulator's fault socket" in wrong.stderr
