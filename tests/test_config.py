"""Configuration: seed-design defaults, IBKR_* variables, TOML, and errors that name the culprit.

The walk at the bottom is parametrised from the config classes' own fields: a setting added
later is set through every source and refused with every bad value its kind and checks
declare, with no change here.
"""

import datetime
import json
import math
import re
from pathlib import Path

import pytest

from ibkr_connector._errors import IBKRError
from ibkr_connector._settings import sections_of
from ibkr_connector.config import (
    NOT_SETTINGS,
    ConfigError,
    IBKRConfig,
    SettingInfo,
    WatchdogConfig,
    load_config,
    settings_table,
)

DOCS = Path(__file__).resolve().parent.parent / "docs" / "operations.md"


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


def test_a_cross_field_error_from_toml_names_the_keys(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "[ibkr]\nrequests_per_second = 45\nburst = 10\n")
    with pytest.raises(ConfigError, match=r"ibkr\.toml': burst.*requests_per_second \+ burst"):
        load_config({}, file=path)


def test_config_errors_are_ibkr_errors_and_value_errors() -> None:
    assert issubclass(ConfigError, IBKRError)
    assert issubclass(ConfigError, ValueError)


# -- regressions from the review ----------------------------------------------------------------


def test_the_backoff_shape_is_settable_from_the_environment_and_toml(tmp_path: Path) -> None:
    env = {"IBKR_RECONNECT_JITTER": "0.3", "IBKR_RECONNECT_MULTIPLIER": "1.5"}
    assert load_config(env).watchdog.reconnect_jitter == 0.3
    assert load_config(env).watchdog.reconnect_multiplier == 1.5
    path = write_toml(tmp_path, "[ibkr.watchdog]\nreconnect_jitter = 0.25\n"
                                "reconnect_multiplier = 3\n")
    wd = load_config({}, file=path).watchdog
    assert (wd.reconnect_jitter, wd.reconnect_multiplier) == (0.25, 3.0)


@pytest.mark.parametrize(("line", "named"), [
    ("port = 7497.5", "port must be an integer, got 7497.5"),
    ("port = true", "port must be an integer, got True"),
    ("host = 123", "host must be a string, got 123"),
    ("audit_path = 5", "audit_path must be a path string, got 5"),
    ("audit_path = ''", "audit_path must be a non-empty path"),
    ("retry_delay = nan", "retry_delay must be a finite number, got nan"),
    ("[watchdog]\ndaily_restart_timezone = 'Mars/Olympus'", "watchdog.daily_restart_timezone"),
])
def test_toml_values_are_type_checked(tmp_path: Path, line: str, named: str) -> None:
    path = write_toml(tmp_path, line + "\n")
    with pytest.raises(ConfigError, match=re.escape(named)):
        load_config({}, file=path)


def test_not_a_number_never_reaches_the_limiter() -> None:
    with pytest.raises(ConfigError, match="IBKR_RETRY_DELAY must be a finite number"):
        load_config({"IBKR_RETRY_DELAY": "nan"})
    with pytest.raises(ConfigError, match="retry_delay must be a finite number"):
        IBKRConfig(retry_delay=math.nan)


def test_an_unknown_time_zone_is_an_error_at_load() -> None:
    with pytest.raises(ConfigError, match="IBKR_DAILY_RESTART_TIMEZONE must be an IANA"):
        load_config({"IBKR_DAILY_RESTART_TIMEZONE": "America/Nowhere"})


def test_an_unknown_variable_is_a_one_line_error_naming_it() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config({"IBKR_PROT": "4002"})
    assert str(caught.value) == "unknown variable IBKR_PROT (did you mean IBKR_PORT?)"


@pytest.mark.parametrize("variable", sorted(NOT_SETTINGS))
def test_variables_that_are_not_settings_are_left_alone(variable: str) -> None:
    assert load_config({variable: "127.0.0.1:7497"} if variable != "IBKR_CONFIG" else {})


def test_an_unknown_toml_key_is_a_one_line_error_naming_it(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "[ibkr]\nprot = 4001\n")
    with pytest.raises(ConfigError, match=r"unknown setting 'prot' \(did you mean port\?\)$"):
        load_config({}, file=path)
    path = write_toml(tmp_path, "[ibkr.watchdog]\nhealth = 1\n")
    with pytest.raises(ConfigError, match=r"unknown setting 'watchdog.health'"):
        load_config({}, file=path)


def test_a_section_given_as_a_value_is_an_error(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "[ibkr]\nwatchdog = 5\n")
    with pytest.raises(ConfigError, match="watchdog must be a table"):
        load_config({}, file=path)


def test_a_field_without_a_declaration_is_refused_when_the_class_is_made() -> None:
    import attrs

    from ibkr_connector._settings import bind_settings

    with pytest.raises(TypeError, match="neither setting"):
        @attrs.frozen(kw_only=True, field_transformer=bind_settings)
        class Broken:
            timeout: float = 1.0


# -- every field, every source --------------------------------------------------------------------


SETTINGS = settings_table()


def write_toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ibkr.toml"
    path.write_text(text)
    return path


def toml_literal(value: object) -> str:
    """``value`` as TOML source: the file form of a value given in code."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # nan, inf, -inf are TOML floats
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, datetime.time):
        return value.isoformat()
    return json.dumps(str(value))  # strings and paths: a TOML basic string


def toml_setting(info: SettingInfo, value: object) -> str:
    *sections, name = info.key.split(".")
    header = "[ibkr" + "".join(f".{s}" for s in sections) + "]"
    return f"{header}\n{name} = {toml_literal(value)}\n"


def refused_values(info: SettingInfo) -> list[object]:
    return [*info.kind.refuses, *(bad for check in info.checks for bad in check.refuses)]


def refused_texts(info: SettingInfo) -> list[str]:
    return [*info.kind.refuses_text, *(str(bad) for check in info.checks for bad in check.refuses)]


def get(config: IBKRConfig, info: SettingInfo) -> object:
    value: object = config
    for part in info.key.split("."):
        value = getattr(value, part)
    return value


def by_key(values: list[SettingInfo]) -> list[object]:
    return [pytest.param(info, id=info.key) for info in values]


@pytest.mark.parametrize("info", by_key(list(SETTINGS)))
def test_every_setting_is_set_by_its_variable_and_its_toml_key(
        info: SettingInfo, tmp_path: Path) -> None:
    expected = info.validate(info.example)
    assert expected != info.validate(info.default), "the example must differ from the default"
    assert get(load_config({info.variable: str(info.example)}), info) == expected
    path = write_toml(tmp_path, toml_setting(info, info.example))
    assert get(load_config({}, file=path), info) == expected


@pytest.mark.parametrize(("info", "bad"), [
    pytest.param(info, bad, id=f"{info.key}={bad!r}")
    for info in SETTINGS for bad in refused_values(info)
])
def test_every_setting_refuses_bad_values_from_code_and_toml(
        info: SettingInfo, bad: object, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=rf"^{info.name} must") as caught:
        info.validate(bad)
    assert "\n" not in str(caught.value)
    path = write_toml(tmp_path, toml_setting(info, bad))
    with pytest.raises(ConfigError, match=rf"ibkr\.toml': {re.escape(info.key)} must"):
        load_config({}, file=path)


@pytest.mark.parametrize(("info", "bad"), [
    pytest.param(info, bad, id=f"{info.variable}={bad!r}")
    for info in SETTINGS for bad in refused_texts(info)
])
def test_every_variable_refuses_bad_text(info: SettingInfo, bad: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{info.variable} must") as caught:
        load_config({info.variable: bad})
    assert "\n" not in str(caught.value)


def test_the_code_constructor_checks_what_the_loader_checks() -> None:
    # The table's validate is what the attrs converters run: one rule, whichever source.
    for info in SETTINGS:
        *sections, name = info.key.split(".")
        cls: type[object] = IBKRConfig
        for part in sections:
            cls = sections_of(cls)[part]
        assert getattr(cls(**{name: info.example}), name) == info.validate(info.example)
        for bad in refused_values(info):
            with pytest.raises(ConfigError, match=rf"^{name} must"):
                cls(**{name: bad})


def test_the_runbook_lists_every_variable() -> None:
    text = DOCS.read_text()
    missing = [info.variable for info in SETTINGS if f"`{info.variable}`" not in text]
    assert not missing, f"docs/operations.md does not list {missing}"
