"""Configuration: what the runtime needs to know before it opens a socket.

`IBKRConfig` and `WatchdogConfig` are frozen attrs classes checked at construction, so a bad
value is a `ConfigError` naming the setting before anything reaches the wire. They can be
built in code, from ``IBKR_*`` environment variables, or from a TOML file (environment wins
over the file, the file over the defaults). The defaults are those of the seed design.

One table, three sources. Every field is declared with :func:`setting` (or, for a nested
table such as ``watchdog``, :func:`section`), and everything else is derived from those
declarations: the ``IBKR_<NAME>`` variable, the TOML key (``[ibkr]`` for `IBKRConfig`,
``[ibkr.<section>]`` for a section), how a variable's text is parsed, what type a TOML or
code value must have, and the rules it must pass. So the same value is refused the same way
whichever source it came from (``port = 7497.5``, ``IBKR_PORT=7497.5`` and
``IBKRConfig(port=7497.5)`` all fail naming ``port``), and an ``IBKR_*`` variable or TOML
key that names no field is an error rather than silently ignored.

To add a setting, declare the field and nothing else::

    quote_timeout: float = setting(10.0, FLOAT, POSITIVE, example=5.0,
                                   help="seconds to wait for a first quote")

``kind`` (`INT`, `FLOAT`, `TEXT`, `PATH`, `TIME_OF_DAY`, or a new `Kind`, all in
:mod:`._settings`) says what type it takes and how a variable's text is parsed; the checks
(`POSITIVE`, `PORT`, ... or a new `Check`) are the rules it must pass; ``example`` is a
valid non-default value (the tests set every field to it through each source, and walk
every kind's and check's ``refuses`` examples); ``help`` is its meaning for
:func:`settings_table` and ``docs/operations.md`` (whose table must list the new
``IBKR_*`` variable: a test says so). A field that is neither
a setting nor a section is refused when the class is created. A new group of settings is a
class built the same way (``@attrs.frozen(kw_only=True, field_transformer=bind_settings)``),
attached with ``section(TheConfig)``; its variables share
the flat ``IBKR_`` namespace, and a clash is refused at import. Rules that span fields go in
``__attrs_post_init__``, raising `ConfigError` with the field names in the message (the
loader prefixes the variables or keys that set them).
"""

from __future__ import annotations

import datetime
import difflib
import functools
import logging
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, cast

import attrs

from ._settings import (
    AT_LEAST_ONE,
    BOOL,
    CLIENT_ID,
    FLOAT,
    FRACTION,
    INT,
    LOG_LEVEL,
    LOG_LEVEL_NAME,
    NON_NEGATIVE,
    NOT_BLANK,
    PATH,
    PORT,
    POSITIVE,
    PREFIX,
    TEXT,
    TIME_OF_DAY,
    TIMEZONE,
    UNDER_A_DAY,
    WALL_CLOCK,
    Check,
    ConfigError,
    Kind,
    SettingInfo,
    bind_settings,
    section,
    sections_of,
    setting,
    walk_settings,
)
from .allow_list import HOSTS

__all__ = [
    "NOT_SETTINGS", "Check", "ConfigError", "IBKRConfig", "Kind", "SettingInfo",
    "WatchdogConfig", "load_config", "section", "setting", "settings_table",
]

_PACING_BUDGET = 49
#: ``IBKR_*`` variables that are read but are not settings: the config file itself, and the
#: switches of the tests that run against a real TWS (``tests/test_real_tws.py``).
NOT_SETTINGS: Final = frozenset({"IBKR_CONFIG", "IBKR_REAL_TWS", "IBKR_REAL_CLIENT_ID",
                                 "IBKR_REAL_TWS_ALLOW_LIVE", "IBKR_REAL_TWS_RESTART_TIMEOUT"})


# -- the classes ---------------------------------------------------------------------------------


@attrs.frozen(kw_only=True, field_transformer=bind_settings)
class WatchdogConfig:
    """How the watchdog judges health and paces reconnects.

    The daily restart window is when TWS/Gateway restarts itself (IBC's AutoRestartTime, in
    the TWS machine's local time); a disconnect inside it is expected, not alarmed.
    """

    health_check_interval: float = setting(
        30.0, FLOAT, POSITIVE, example=10.0, help="seconds between health probes")
    reconnect_initial_delay: float = setting(
        2.0, FLOAT, POSITIVE, example=1.0, help="first reconnect delay (s)")
    reconnect_max_delay: float = setting(
        60.0, FLOAT, POSITIVE, example=30.0, help="longest reconnect delay (s)")
    reconnect_multiplier: float = setting(
        2.0, FLOAT, AT_LEAST_ONE, example=1.5, help="growth of the delay per failed attempt")
    reconnect_jitter: float = setting(
        0.1, FLOAT, FRACTION, example=0.2, help="each delay is spread by this +- fraction")
    stable_after: float = setting(
        60.0, FLOAT, POSITIVE, example=120.0,
        help="a connection up this long (s) starts the delays over when lost")
    daily_restart_time: datetime.time = setting(
        datetime.time(23, 55), TIME_OF_DAY, WALL_CLOCK, example=datetime.time(5, 30),
        help="TWS's auto-restart time, wall clock of the TWS machine")
    # REAL-TWS: TWS's daily auto-restart drops the socket for under 15 min and accepts clients after
    daily_restart_duration: float = setting(
        15 * 60.0, FLOAT, POSITIVE, UNDER_A_DAY, example=600.0,
        help="how long (s) after that time a disconnect counts as expected")
    daily_restart_timezone: str | None = setting(
        None, TEXT, TIMEZONE, example="America/New_York",
        help="IANA zone of that clock (default: this host's)")

    def __attrs_post_init__(self) -> None:
        if self.reconnect_max_delay < self.reconnect_initial_delay:
            raise ConfigError(
                "reconnect_max_delay must be >= reconnect_initial_delay, got "
                f"{self.reconnect_max_delay!r} < {self.reconnect_initial_delay!r}"
            )


@attrs.frozen(kw_only=True, field_transformer=bind_settings)
class MarketDataConfig:
    """Market-data lines, caching and health ([ibkr.market_data] in TOML)."""

    # TWS gives 100 lines by default (more with quote boosters) and answers 101 past them;
    # the runtime keeps this budget itself so that 101 is never reached.
    max_market_data_lines: int = setting(100, INT, AT_LEAST_ONE, example=50,
                                         help="market-data lines the runtime may hold")
    # TWS allows tick-by-tick streams up to 5 % of the lines (10190 past it).
    # REAL-TWS: the tick-by-tick cap is 5 streams for 100 lines (10190 past it)
    max_tick_by_tick_streams: int = setting(5, INT, AT_LEAST_ONE, example=3,
                                            help="tick-by-tick streams the runtime may hold")
    allow_delayed_market_data: bool = setting(
        True, BOOL, example=False,
        help="on 354/10089 switch to delayed data rather than fail the ticker")
    contract_cache_ttl: float = setting(
        86400.0, FLOAT, NON_NEGATIVE, example=3600.0,
        help="seconds contract details and chain definitions are reused")
    contract_cache_path: Path | None = setting(
        None, PATH, example=Path("/var/lib/ibkr/contracts.json"),
        help="keep the contract cache in this file across restarts")
    ticker_stale_after: float = setting(
        60.0, FLOAT, NON_NEGATIVE, example=30.0,
        help="seconds without an update before a ticker is marked stale (0: never)")


@attrs.frozen(kw_only=True, field_transformer=bind_settings)
class IBKRConfig:
    """Where TWS is and how hard the runtime may talk to it."""

    host: str = setting("127.0.0.1", TEXT, NOT_BLANK, example="10.0.0.5",
                        help="where TWS / IB Gateway listens")
    # The API is unencrypted: a host that is not loopback must be listed here, or the
    # connection refuses to open a socket to it (allow_list; docs/security.md).
    allow_remote_hosts: tuple[str, ...] = setting(
        (), HOSTS, example="10.0.0.5, 192.168.1.0/24, tws.lan",
        help="non-loopback hosts (names, IPs, CIDRs) the runtime may connect to")
    port: int = setting(7497, INT, PORT, example=4002,
                        help="TWS 7497 paper / 7496 live; IB Gateway 4002 / 4001")
    client_id: int = setting(1, INT, CLIENT_ID, example=7,
                             help="API client id; one connection per id (326 otherwise)")
    # REAL-TWS: 50 msg/s in any 1 s window, startApi included; 2000 at 45/s draw no error 100
    # IB's limit is 50 client messages in any 1 s window. A token bucket admits at most
    # burst + rate in one second, and the startApi of a reconnect also counts, so
    # rate + burst must leave one message free: 45 + 3 + 1 = 49.
    requests_per_second: float = setting(45.0, FLOAT, POSITIVE, example=40.0,
                                         help="the limiter's token rate")
    burst: float = setting(3.0, FLOAT, POSITIVE, example=2.0,
                           help="the limiter's bucket size")
    connection_timeout: float = setting(30.0, FLOAT, POSITIVE, example=10.0,
                                        help="seconds a connection handshake may take")
    request_timeout: float = setting(60.0, FLOAT, POSITIVE, example=20.0,
                                     help="seconds a request may wait for the wire")
    # A request TWS rejects for pacing (error 100) is retried up to max_retries times,
    # after the limiter has stopped sending for retry_delay (TWS's window is 1 s).
    max_retries: int = setting(3, INT, NON_NEGATIVE, example=5,
                               help="retries of a request TWS rejected for pacing (100)")
    retry_delay: float = setting(1.0, FLOAT, NON_NEGATIVE, example=2.0,
                                 help="pause (s) after a pacing rejection")
    log_level: str = setting("INFO", LOG_LEVEL_NAME, LOG_LEVEL, example="DEBUG",
                             help="DEBUG also shows TWS's raw message texts")
    client_id_retries: int = setting(0, INT, NON_NEGATIVE, example=2,
                                     help="on 326, try the next client id this many times")
    audit_path: Path | None = setting(None, PATH, example=Path("/var/lib/ibkr/audit.jsonl"),
                                      help="the audit trail")
    # An order's intent is fsync'd before the order goes out: inline that costs the write,
    # in a worker thread two wake-ups more (actors/file_work.py says when which is used).
    audit_inline_budget: float = setting(
        0.001, FLOAT, NON_NEGATIVE, example=0.0,
        help="audit writes run in the event loop while each takes under this many "
        "seconds, else in a worker thread (0: always a thread)")
    control_path: Path | None = setting(None, PATH, example=Path("/run/ibkr/control.sock"),
                                        help="the control socket")
    watchdog: WatchdogConfig = section(WatchdogConfig)
    market_data: MarketDataConfig = section(MarketDataConfig)

    def __attrs_post_init__(self) -> None:
        if self.requests_per_second + self.burst > _PACING_BUDGET:
            raise ConfigError(
                f"requests_per_second + burst must be <= {_PACING_BUDGET} (IB allows 50 "
                "messages a second and a reconnect's startApi needs one), got "
                f"{self.requests_per_second!r} + {self.burst!r}"
            )

    @property
    def log_level_number(self) -> int:
        return int(logging.getLevelName(self.log_level))


@functools.cache
def settings_table() -> tuple[SettingInfo, ...]:
    """Every setting of `IBKRConfig`, sections included, in declaration order."""
    table = tuple(walk_settings(IBKRConfig))
    seen: dict[str, str] = {}
    for info in table:
        if info.variable in seen or info.variable in NOT_SETTINGS:
            raise TypeError(f"{info.key} and {seen.get(info.variable, 'a reserved name')} "
                            f"would share the variable {info.variable}")
        seen[info.variable] = info.key
    return table


settings_table()  # a clash of variable names is a bug: fail at import, not at load


# -- loading ------------------------------------------------------------------------------------


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"config file {str(path)!r} cannot be read: {exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid TOML: {exc}") from None
    table = data.get("ibkr", data)
    if not isinstance(table, dict):
        raise ConfigError(f"config file {str(path)!r}: [ibkr] must be a table")
    return table


def _flatten(table: Mapping[str, Any], cls: type[Any], path: tuple[str, ...], where: str,
             out: dict[str, object]) -> None:
    """The file's values by dotted key; an unknown key or a misplaced table is an error."""
    sections = sections_of(cls)
    names = [f.name for f in attrs.fields(cls)]
    for key, value in table.items():
        dotted = ".".join((*path, key))
        if key in sections:
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: {dotted} must be a table ([ibkr.{dotted}])")
            _flatten(value, sections[key], (*path, key), where, out)
        elif key in names:
            out[dotted] = value
        else:
            raise ConfigError(f"{where}: unknown setting {dotted!r}"
                              f"{_suggest(key, names)}")


def load_config(
    environ: Mapping[str, str] | None = None,
    *,
    file: Path | str | None = None,
) -> IBKRConfig:
    """Build an `IBKRConfig` from an optional TOML file and ``IBKR_*`` variables.

    ``IBKR_CONFIG`` names the TOML file when *file* is not given. Every error is one line
    naming the variable or file key that caused it, e.g. ``IBKR_PORT must be an integer,
    got 'abc'``; an ``IBKR_*`` variable or key that is no setting is an error too.
    """
    env = os.environ if environ is None else environ
    file = file if file is not None else env.get("IBKR_CONFIG")
    table = settings_table()
    by_key = {info.key: info for info in table}
    by_variable = {info.variable: info for info in table}
    values: dict[str, object] = {}
    origin: dict[str, str] = {}
    if file:
        where = f"config file {str(file)!r}"
        raw: dict[str, object] = {}
        _flatten(_read_toml(Path(file)), IBKRConfig, (), where, raw)
        for key, value in raw.items():
            values[key] = by_key[key].validate(value, f"{where}: {key}")
            origin[key] = f"{where}: {key}"
    for variable in sorted(env):
        if not variable.startswith(PREFIX) or variable in NOT_SETTINGS:
            continue
        info = by_variable.get(variable)
        if info is None:
            raise ConfigError(f"unknown variable {variable}"
                              f"{_suggest(variable, list(by_variable))}")
        values[info.key] = info.parse(env[variable], variable)
        origin[info.key] = variable
    try:
        return cast(IBKRConfig, _build(IBKRConfig, (), values))
    except ConfigError as exc:
        raise ConfigError(_name_origin(str(exc), origin)) from None


def _build(cls: type[Any], path: tuple[str, ...], values: Mapping[str, object]) -> Any:
    kwargs: dict[str, object] = {
        name: _build(sub, (*path, name), values) for name, sub in sections_of(cls).items()}
    for field in attrs.fields(cls):
        key = ".".join((*path, field.name))
        if key in values:
            kwargs[field.name] = values[key]
    return cls(**kwargs)


def _name_origin(message: str, origin: Mapping[str, str]) -> str:
    """Prefix a cross-field rule's message with the variables or keys that set its fields."""
    words = set(re.findall(r"\w+", message))
    names = [where for key, where in origin.items() if key.rsplit(".", 1)[-1] in words]
    return f"{', '.join(names)}: {message}" if names else message
