"""The CLI end to end, in subprocesses, as an operator would use it."""

from __future__ import annotations

import os
import signal
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


def test_operator_commands_without_a_service_fail_clearly(tmp_path: Path) -> None:
    result = cli("tree", "--control", str(tmp_path / "none.sock"))
    assert result.returncode == 2
    assert "none.sock" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture
def service(tmp_path: Path):  # type: ignore[no-untyped-def]
    control = tmp_path / "control.sock"
    env = {**os.environ, "IBKR_AUDIT_PATH": str(tmp_path / "audit.jsonl")}
    proc = subprocess.Popen([*CLI, "run", "--sim", "--control", str(control)], env=env,
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
