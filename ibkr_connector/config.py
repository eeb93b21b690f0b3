"""Configuration: what the runtime needs to know before it opens a socket.

`IBKRConfig` and `WatchdogConfig` are frozen attrs classes validated at construction, so a
bad value is a `ConfigError` naming the setting before anything reaches the wire. They can be
built in code, from ``IBKR_*`` environment variables, or from a TOML file (environment wins
over the file, the file over the defaults). The defaults are those of the seed design.
"""

from __future__ import annotations

import datetime
import logging
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs

__all__ = ["ConfigError", "IBKRConfig", "WatchdogConfig", "load_config"]

_LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
_PACING_BUDGET = 49


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the setting and the bad value."""


def _positive(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not value > 0:
        raise ConfigError(f"{attribute.name} must be > 0, got {value!r}")


def _non_negative(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if value < 0:
        raise ConfigError(f"{attribute.name} must be >= 0, got {value!r}")


def _port(instance: object, attribute: attrs.Attribute[Any], value: int) -> None:
    if not 1 <= value <= 65535:
        raise ConfigError(f"{attribute.name} must be a TCP port 1..65535, got {value!r}")


def _client_id(instance: object, attribute: attrs.Attribute[Any], value: int) -> None:
    # TWS takes any 32-bit signed id; 0 is the "master" id that also sees manual orders.
    if not 0 <= value <= 2**31 - 1:
        raise ConfigError(f"{attribute.name} must be 0..2147483647, got {value!r}")


def _log_level(instance: object, attribute: attrs.Attribute[Any], value: str) -> None:
    if value not in _LOG_LEVELS:
        levels = ", ".join(_LOG_LEVELS)
        raise ConfigError(f"{attribute.name} must be one of {levels}, got {value!r}")


def _upper(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


@attrs.frozen(kw_only=True)
class WatchdogConfig:
    """How the watchdog judges health and paces reconnects.

    The daily restart window is when TWS/Gateway restarts itself (IBC's AutoRestartTime, in
    the TWS machine's local time); a disconnect inside it is expected, not alarmed.
    """

    health_check_interval: float = attrs.field(default=30.0, validator=_positive)
    reconnect_initial_delay: float = attrs.field(default=2.0, validator=_positive)
    reconnect_max_delay: float = attrs.field(default=60.0, validator=_positive)
    reconnect_multiplier: float = attrs.field(default=2.0, validator=_positive)
    reconnect_jitter: float = attrs.field(default=0.1, validator=_non_negative)
    stable_after: float = attrs.field(default=60.0, validator=_positive)
    daily_restart_time: datetime.time = attrs.field(default=datetime.time(23, 55))
    daily_restart_duration: float = attrs.field(default=15 * 60.0, validator=_positive)
    daily_restart_timezone: str | None = None

    def __attrs_post_init__(self) -> None:
        if self.reconnect_max_delay < self.reconnect_initial_delay:
            raise ConfigError(
                "reconnect_max_delay must be >= reconnect_initial_delay, got "
                f"{self.reconnect_max_delay!r} < {self.reconnect_initial_delay!r}"
            )
        if self.reconnect_jitter >= 1:
            raise ConfigError(f"reconnect_jitter must be < 1, got {self.reconnect_jitter!r}")


@attrs.frozen(kw_only=True)
class IBKRConfig:
    """Where TWS is and how hard the runtime may talk to it."""

    host: str = "127.0.0.1"
    port: int = attrs.field(default=7497, validator=_port)
    client_id: int = attrs.field(default=1, validator=_client_id)
    # IB's limit is 50 client messages in any 1 s window. A token bucket admits at most
    # burst + rate in one second, and the startApi of a reconnect also counts, so
    # rate + burst must leave one message free: 45 + 3 + 1 = 49.
    requests_per_second: float = attrs.field(default=45.0, validator=_positive)
    burst: float = attrs.field(default=3.0, validator=_positive)
    connection_timeout: float = attrs.field(default=30.0, validator=_positive)
    request_timeout: float = attrs.field(default=60.0, validator=_positive)
    # A request TWS rejects for pacing (error 100) is retried up to max_retries times,
    # after the limiter has stopped sending for retry_delay (TWS's window is 1 s).
    max_retries: int = attrs.field(default=3, validator=_non_negative)
    retry_delay: float = attrs.field(default=1.0, validator=_non_negative)
    log_level: str = attrs.field(default="INFO", converter=_upper, validator=_log_level)
    # On 326 (client id in use) try the next id instead of failing, up to this many times.
    client_id_retries: int = attrs.field(default=0, validator=_non_negative)
    audit_path: Path | None = None
    control_path: Path | None = None
    watchdog: WatchdogConfig = attrs.field(factory=WatchdogConfig)

    def __attrs_post_init__(self) -> None:
        if not self.host:
            raise ConfigError("host must not be empty")
        if self.requests_per_second + self.burst > _PACING_BUDGET:
            raise ConfigError(
                f"requests_per_second + burst must be <= {_PACING_BUDGET} (IB allows 50 "
                "messages a second and a reconnect's startApi needs one), got "
                f"{self.requests_per_second!r} + {self.burst!r}"
            )

    @property
    def log_level_number(self) -> int:
        return int(logging.getLevelName(self.log_level))


# name -> (section, field, parser). Section None is IBKRConfig itself.
def _parse_int(text: str) -> int:
    return int(text.strip())


def _parse_float(text: str) -> float:
    return float(text.strip())


def _parse_time(text: str) -> datetime.time:
    return datetime.time.fromisoformat(text.strip())


def _parse_path(text: str) -> Path:
    return Path(text).expanduser()


def _parse_str(text: str) -> str:
    return text.strip()


_Parser = Callable[[str], object]
_FIELDS: dict[str, tuple[str | None, str, _Parser]] = {
    "HOST": (None, "host", _parse_str),
    "PORT": (None, "port", _parse_int),
    "CLIENT_ID": (None, "client_id", _parse_int),
    "REQUESTS_PER_SECOND": (None, "requests_per_second", _parse_float),
    "BURST": (None, "burst", _parse_float),
    "CONNECTION_TIMEOUT": (None, "connection_timeout", _parse_float),
    "REQUEST_TIMEOUT": (None, "request_timeout", _parse_float),
    "MAX_RETRIES": (None, "max_retries", _parse_int),
    "RETRY_DELAY": (None, "retry_delay", _parse_float),
    "LOG_LEVEL": (None, "log_level", _parse_str),
    "CLIENT_ID_RETRIES": (None, "client_id_retries", _parse_int),
    "AUDIT_PATH": (None, "audit_path", _parse_path),
    "CONTROL_PATH": (None, "control_path", _parse_path),
    "HEALTH_CHECK_INTERVAL": ("watchdog", "health_check_interval", _parse_float),
    "RECONNECT_INITIAL_DELAY": ("watchdog", "reconnect_initial_delay", _parse_float),
    "RECONNECT_MAX_DELAY": ("watchdog", "reconnect_max_delay", _parse_float),
    "STABLE_AFTER": ("watchdog", "stable_after", _parse_float),
    "DAILY_RESTART_TIME": ("watchdog", "daily_restart_time", _parse_time),
    "DAILY_RESTART_DURATION": ("watchdog", "daily_restart_duration", _parse_float),
    "DAILY_RESTART_TIMEZONE": ("watchdog", "daily_restart_timezone", _parse_str),
}


def _from_toml(path: Path) -> dict[str, dict[str, object]]:
    """Read ``[ibkr]`` and ``[ibkr.watchdog]`` tables (or top-level keys) from a TOML file."""
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid TOML: {exc}") from None
    table = data.get("ibkr", data)
    if not isinstance(table, dict):
        raise ConfigError(f"config file {str(path)!r}: [ibkr] must be a table")
    watchdog = table.get("watchdog", {})
    if not isinstance(watchdog, dict):
        raise ConfigError(f"config file {str(path)!r}: [ibkr.watchdog] must be a table")
    known = {field for section, field, _ in _FIELDS.values() if section is None}
    known_wd = {field for section, field, _ in _FIELDS.values() if section == "watchdog"}
    top = {k: v for k, v in table.items() if k != "watchdog"}
    for key in top:
        if key not in known:
            raise ConfigError(f"config file {str(path)!r}: unknown setting {key!r}")
    for key in watchdog:
        if key not in known_wd:
            raise ConfigError(f"config file {str(path)!r}: unknown setting watchdog.{key}")
    parsed: dict[str, dict[str, object]] = {"": {}, "watchdog": {}}
    for section, field, parser in _FIELDS.values():
        source = top if section is None else watchdog
        if field in source:
            value = source[field]
            if isinstance(value, str) and parser is not _parse_str:
                value = _coerce(parser, value, f"{path}: {field}")
            elif parser is _parse_path and isinstance(value, str):
                value = _parse_path(value)
            parsed[section or ""][field] = value
    return parsed


def _coerce(parser: _Parser, text: str, where: str) -> object:
    try:
        return parser(text)
    except ValueError as exc:
        raise ConfigError(f"{where}: cannot parse {text!r} ({exc})") from None


def load_config(
    environ: Mapping[str, str] | None = None,
    *,
    file: Path | str | None = None,
) -> IBKRConfig:
    """Build an `IBKRConfig` from an optional TOML file and ``IBKR_*`` variables.

    ``IBKR_CONFIG`` names the TOML file when *file* is not given. Every error names the
    variable (or file key) that caused it, e.g. ``IBKR_PORT: cannot parse 'abc'``.
    """
    env = os.environ if environ is None else environ
    file = file if file is not None else env.get("IBKR_CONFIG")
    values: dict[str, dict[str, object]] = {"": {}, "watchdog": {}}
    if file:
        values = _from_toml(Path(file))
    origin: dict[str, str] = {}
    for suffix, (section, field, parser) in _FIELDS.items():
        name = f"IBKR_{suffix}"
        if name in env:
            values[section or ""][field] = _coerce(parser, env[name], name)
            origin[field] = name
    try:
        watchdog = WatchdogConfig(**values["watchdog"])  # type: ignore[arg-type]
        return IBKRConfig(watchdog=watchdog, **values[""])  # type: ignore[arg-type]
    except ConfigError as exc:
        raise ConfigError(_name_origin(str(exc), origin)) from None
    except TypeError as exc:
        raise ConfigError(f"invalid configuration: {exc}") from None


def _name_origin(message: str, origin: Mapping[str, str]) -> str:
    """Prefix a validator's message with the environment variables that set its fields."""
    words = set(re.findall(r"\w+", message))
    names = [variable for field, variable in origin.items() if field in words]
    return f"{', '.join(names)}: {message}" if names else message
