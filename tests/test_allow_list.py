"""The IP allow-list: the runtime opens a socket only to loopback or to a host the operator
listed in ``allow_remote_hosts``, because the TWS API is unencrypted (docs/security.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing

import ibkr_connector
from ibkr_connector.actors import connection as connection_module
from ibkr_connector.allow_list import HostNotAllowed, check_host, host_allowed, is_loopback
from ibkr_connector.config import ConfigError, IBKRConfig, load_config
from ibkr_connector.protocol.client import ConnectFailed, TwsSession
from ibkr_connector.runtime import open_runtime


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "127.255.1.9", "::1", "[::1]",
                                  "localhost", "LocalHost", "localhost.", "::ffff:127.0.0.1"])
def test_loopback_is_always_allowed(host: str) -> None:
    assert is_loopback(host)
    assert host_allowed(host, ())
    check_host(host, ())


@pytest.mark.parametrize("host", ["10.0.0.5", "192.168.1.20", "tws.lan", "0.0.0.0",
                                  "fd00::5", "::ffff:10.0.0.5", "localhost.evil.example"])
def test_a_remote_host_is_refused_naming_the_setting(host: str) -> None:
    assert not host_allowed(host, ())
    with pytest.raises(HostNotAllowed) as caught:
        check_host(host, ())
    message = str(caught.value)
    assert repr(host) in message
    assert "allow_remote_hosts" in message and "IBKR_ALLOW_REMOTE_HOSTS" in message
    assert "\n" not in message


@pytest.mark.parametrize(("host", "allowed"), [
    ("10.0.0.5", ("10.0.0.5",)),
    ("10.0.0.77", ("10.0.0.0/24",)),
    ("::ffff:10.0.0.77", ("10.0.0.0/24",)),
    ("fd00::5", ("fd00::/8",)),
    ("TWS.lan", ("tws.lan",)),
    ("tws.lan.", ("tws.lan",)),
])
def test_a_listed_host_is_allowed(host: str, allowed: tuple[str, ...]) -> None:
    assert host_allowed(host, allowed)


@pytest.mark.parametrize(("host", "allowed"), [
    ("10.0.1.5", ("10.0.0.0/24",)),
    ("10.0.0.6", ("10.0.0.5",)),
    ("tws.lan", ("10.0.0.0/8",)),  # a name is never resolved to match an address
    ("other.lan", ("tws.lan",)),
    ("fd00::5", ("10.0.0.0/8",)),
])
def test_a_host_the_list_does_not_cover_is_refused(host: str, allowed: tuple[str, ...]) -> None:
    assert not host_allowed(host, allowed)


def test_the_setting_is_read_from_the_environment_and_toml(tmp_path: Path) -> None:
    config = load_config({"IBKR_ALLOW_REMOTE_HOSTS": " 10.0.0.5, 192.168.1.9/24 ,TWS.lan,"})
    assert config.allow_remote_hosts == ("10.0.0.5", "192.168.1.0/24", "tws.lan")
    path = tmp_path / "ibkr.toml"
    path.write_text('[ibkr]\nallow_remote_hosts = ["fd00::/8", "gw.example"]\n')
    assert load_config({}, file=path).allow_remote_hosts == ("fd00::/8", "gw.example")
    assert IBKRConfig().allow_remote_hosts == ()


@pytest.mark.parametrize("bad", ["10.0.0.0/33", "bad host!", "http://tws.lan", "-x.lan"])
def test_a_malformed_entry_is_a_config_error_naming_the_variable(bad: str) -> None:
    with pytest.raises(ConfigError, match="^IBKR_ALLOW_REMOTE_HOSTS must"):
        load_config({"IBKR_ALLOW_REMOTE_HOSTS": f"10.0.0.5,{bad}"})


def test_the_error_is_an_exported_connect_failure() -> None:
    assert ibkr_connector.HostNotAllowed is HostNotAllowed
    assert issubclass(HostNotAllowed, ConnectFailed)
    assert issubclass(HostNotAllowed, ibkr_connector.IBKRError)


# -- where the connection is opened ------------------------------------------------------------


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Hosts a session tried to open a socket to; the open itself fails at once."""
    hosts: list[str] = []

    async def fake_open(self: TwsSession, host: str, port: int, client_id: int,
                        timeout: float) -> None:  # noqa: ASYNC109
        hosts.append(host)
        raise ConnectFailed(f"no TWS at {host}:{port} in this test")

    monkeypatch.setattr(TwsSession, "open", fake_open)
    return hosts


async def test_connect_to_a_refused_host_opens_no_socket(
        opened: list[str], tmp_path: Path, io_clock: trio.testing.MockClock) -> None:
    config = IBKRConfig(host="10.0.0.5", client_id=3)
    async with open_runtime(config, audit_path=tmp_path / "a.jsonl") as runtime:
        with pytest.raises(HostNotAllowed, match="allow_remote_hosts"):
            await runtime.connect()
        status = await runtime.status()
    assert opened == []
    assert not status.connection.wanted
    assert "allow_remote_hosts" in str(status.connection.last_error)


async def test_a_refused_host_is_not_retried_by_the_watchdog(
        opened: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        io_clock: trio.testing.MockClock) -> None:
    checks: list[str] = []

    def counting_check(host: str, allowed: tuple[str, ...]) -> None:
        checks.append(host)
        check_host(host, allowed)

    monkeypatch.setattr(connection_module, "check_host", counting_check)
    config = IBKRConfig(host="tws.lan", client_id=3)
    async with open_runtime(config, audit_path=tmp_path / "a.jsonl") as runtime:
        await runtime.keep_connected()
        await trio.sleep(300.0)  # the watchdog's backoff would have tried many times
        status = await runtime.status()
    assert checks == ["tws.lan"]
    assert opened == []
    assert not status.watchdog.reconnecting


async def test_a_listed_remote_host_is_connected_to(
        opened: list[str], tmp_path: Path, io_clock: trio.testing.MockClock) -> None:
    config = IBKRConfig(host="10.0.0.77", allow_remote_hosts="10.0.0.0/24", client_id=3)
    async with open_runtime(config, audit_path=tmp_path / "a.jsonl") as runtime:
        with pytest.raises(ConnectFailed) as caught:
            await runtime.connect()
    assert not isinstance(caught.value, HostNotAllowed)
    assert opened == ["10.0.0.77"]
