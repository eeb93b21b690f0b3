"""Configuration: seed-design defaults, IBKR_* variables, TOML, and errors that name the culprit."""

import datetime
from pathlib import Path

import pytest

from ibkr_connector.config import ConfigError, IBKRConfig, WatchdogConfig, load_config


def test_defaults_are_the_seed_designs() -> None:
    cfg = IBKRConfig()
    assert (cfg.host, cfg.port, cfg.client_id) == ("127.0.0.1", 7497, 1)
    assert cfg.requests_per_second == 45
    assert (cfg.connection_timeout, cfg.request_timeout) == (30, 60)
    assert (cfg.max_retries, cfg.retry_delay, cfg.log_level) == (3, 1, "INFO")
    wd = cfg.watchdog
    assert (wd.reconnect_initial_delay, wd.reconnect_max_delay) == (2, 60)
    assert wd.daily_restart_time == datetime.time(23, 55)
    assert wd.health_check_interval == 30


def test_environment_variables_override_defaults() -> None:
    cfg = load_config({"IBKR_PORT": "4002", "IBKR_CLIENT_ID": "7", "IBKR_LOG_LEVEL": "debug",
                       "IBKR_DAILY_RESTART_TIME": "05:30", "IBKR_REQUESTS_PER_SECOND": "40"})
    assert (cfg.port, cfg.client_id, cfg.log_level) == (4002, 7, "DEBUG")
    assert cfg.requests_per_second == 40
    assert cfg.watchdog.daily_restart_time == datetime.time(5, 30)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"IBKR_PORT": "abc"}, "IBKR_PORT"),
        ({"IBKR_PORT": "70000"}, "IBKR_PORT"),
        ({"IBKR_REQUESTS_PER_SECOND": "-5"}, "IBKR_REQUESTS_PER_SECOND"),
        ({"IBKR_REQUESTS_PER_SECOND": "80"}, "IBKR_REQUESTS_PER_SECOND"),
        ({"IBKR_LOG_LEVEL": "LOUD"}, "IBKR_LOG_LEVEL"),
        ({"IBKR_CLIENT_ID": "-1"}, "IBKR_CLIENT_ID"),
        ({"IBKR_HEALTH_CHECK_INTERVAL": "0"}, "IBKR_HEALTH_CHECK_INTERVAL"),
        ({"IBKR_DAILY_RESTART_TIME": "25:00"}, "IBKR_DAILY_RESTART_TIME"),
    ],
)
def test_a_bad_variable_is_an_error_naming_it(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_config(env)


def test_toml_file_is_read_and_environment_wins(tmp_path: Path) -> None:
    path = tmp_path / "ibkr.toml"
    path.write_text("[ibkr]\nport = 4001\nclient_id = 3\n"
                    "[ibkr.watchdog]\nhealth_check_interval = 10\n")
    cfg = load_config({"IBKR_CONFIG": str(path), "IBKR_CLIENT_ID": "9"})
    assert (cfg.port, cfg.client_id) == (4001, 9)
    assert cfg.watchdog.health_check_interval == 10


def test_unknown_toml_key_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "ibkr.toml"
    path.write_text("[ibkr]\nprot = 4001\n")
    with pytest.raises(ConfigError, match="prot"):
        load_config({}, file=path)


def test_missing_toml_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config({}, file=tmp_path / "nope.toml")


def test_rate_plus_burst_must_leave_room_under_ibs_limit() -> None:
    assert IBKRConfig().requests_per_second + IBKRConfig().burst <= 49
    with pytest.raises(ConfigError, match="requests_per_second \\+ burst"):
        IBKRConfig(requests_per_second=45, burst=5)
    with pytest.raises(ConfigError, match="IBKR_BURST"):
        load_config({"IBKR_BURST": "10"})


def test_inconsistent_backoff_is_rejected() -> None:
    with pytest.raises(ConfigError, match="reconnect_max_delay"):
        WatchdogConfig(reconnect_initial_delay=10, reconnect_max_delay=5)
