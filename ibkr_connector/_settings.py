"""The machinery behind `ibkr_connector.config`: typed, checked settings declared on attrs fields.

A config class declares each field with :func:`setting` (a `Kind` saying what type it takes
and how a variable's text is parsed, `Check` rules it must pass, a valid ``example`` and a
``help`` line) or :func:`section` (a nested config class), and is decorated with
``attrs.frozen(kw_only=True, field_transformer=bind_settings)``. That binds each field's
converter to its own name, so a value from code, TOML or the environment is refused the same
way and the error names the field; :func:`walk_settings` derives the table (TOML key,
``IBKR_*`` variable) the loader in ``config`` works from. Nothing here knows IB.
"""

from __future__ import annotations

import datetime
import functools
import math
import os
import zoneinfo
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

import attrs

from ._errors import IBKRError

__all__ = [
    "AT_LEAST_ONE", "BOOL", "CLIENT_ID", "FLOAT", "FRACTION", "INT", "LOG_LEVEL", "LOG_LEVEL_NAME",
    "NON_NEGATIVE", "NOT_BLANK", "PATH", "PORT", "POSITIVE", "TEXT", "TIMEZONE",
    "TIME_OF_DAY", "UNDER_A_DAY", "WALL_CLOCK", "Check", "ConfigError", "Invalid", "Kind",
    "SettingInfo", "bind_settings", "section", "sections_of", "setting", "walk_settings",
]

LOG_LEVELS: Final = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
PREFIX: Final = "IBKR_"


class ConfigError(IBKRError, ValueError):
    """A configuration value is invalid; the one-line message names the setting and value."""


class Invalid(Exception):
    """A value broke a rule; the reason reads after the setting's name ("must be > 0, ...")."""


# -- kinds: what type a setting takes -----------------------------------------------------------


@attrs.frozen
class Kind:
    """The type a setting takes: ``convert`` checks (and normalises) a value from code or
    TOML, ``parse`` turns a variable's text into such a value. ``refuses`` and
    ``refuses_text`` are examples each rejects; the tests walk them for every field."""

    noun: str
    convert: Callable[[object], object]
    parse: Callable[[str], object]
    refuses: tuple[object, ...]
    refuses_text: tuple[str, ...] = ()


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _to_int(value: object) -> int:
    if not _is_int(value):
        raise Invalid(f"must be an integer, got {value!r}")
    assert isinstance(value, int)
    return value


def _parse_number(cast: Callable[[str], object], noun: str, text: str) -> object:
    try:
        return cast(text.strip())
    except ValueError:
        raise Invalid(f"must be {noun}, got {text!r}") from None


def _to_float(value: object) -> float:
    if not (_is_int(value) or isinstance(value, float)):
        raise Invalid(f"must be a number, got {value!r}")
    assert isinstance(value, int | float)
    number = float(value)
    if not math.isfinite(number):
        raise Invalid(f"must be a finite number, got {value!r}")
    return number


def _to_text(value: object) -> str:
    if not isinstance(value, str):
        raise Invalid(f"must be a string, got {value!r}")
    return value.strip()


def _to_level(value: object) -> str:
    return _to_text(value).upper()


def _to_path(value: object) -> Path:
    if isinstance(value, str):
        if not value.strip():
            raise Invalid(f"must be a non-empty path, got {value!r}")
        return Path(value).expanduser()
    if isinstance(value, os.PathLike):
        return Path(value).expanduser()
    raise Invalid(f"must be a path string, got {value!r}")


def _to_time(value: object) -> datetime.time:
    if isinstance(value, datetime.time):
        return value
    if isinstance(value, str):
        try:
            return datetime.time.fromisoformat(value.strip())
        except ValueError:
            pass
    raise Invalid(f"must be a time of day such as '23:55', got {value!r}")


def _to_bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise Invalid(f"must be true or false, got {value!r}")
    return value


_TRUE_TEXT = ("1", "true", "yes", "on")
_FALSE_TEXT = ("0", "false", "no", "off")


def _parse_bool(text: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE_TEXT:
        return True
    if word in _FALSE_TEXT:
        return False
    raise Invalid(f"must be one of {', '.join(_TRUE_TEXT + _FALSE_TEXT)}, got {text!r}")


INT: Final = Kind("an integer", _to_int, functools.partial(_parse_number, int, "an integer"),
                  refuses=(7497.5, True, "7497"), refuses_text=("abc", "7497.5", ""))
FLOAT: Final = Kind("a number", _to_float, functools.partial(_parse_number, float, "a number"),
                    refuses=(True, "30", math.nan, math.inf, -math.inf),
                    refuses_text=("abc", "nan", "inf", "-inf", ""))
TEXT: Final = Kind("a string", _to_text, str, refuses=(123, True))
LOG_LEVEL_NAME: Final = Kind("a log level", _to_level, str, refuses=(10, True))
PATH: Final = Kind("a path", _to_path, str, refuses=(5, True, "", "  "),
                   refuses_text=("", "  "))
BOOL: Final = Kind("true or false", _to_bool, _parse_bool, refuses=(1, 0, "true", None),
                   refuses_text=("maybe", "", "2"))
TIME_OF_DAY: Final = Kind("a time of day", _to_time, str, refuses=(5, "25:00", "noon"),
                          refuses_text=("25:00", "noon"))


# -- checks: rules a value must pass ----------------------------------------------------------


@attrs.frozen
class Check:
    """A rule: ``test(value)`` is true for a good value, else the error says ``rule``.
    ``refuses`` are examples it rejects (of its kind's type); the tests walk them."""

    rule: str
    test: Callable[[Any], bool]
    refuses: tuple[object, ...]


def _zone_exists(name: str) -> bool:
    try:
        zoneinfo.ZoneInfo(name)
    except (ValueError, LookupError, OSError):  # malformed key, unknown zone, a directory
        return False
    return True


POSITIVE: Final = Check("must be > 0", lambda v: v > 0, refuses=(0, -1))
NON_NEGATIVE: Final = Check("must be >= 0", lambda v: v >= 0, refuses=(-1,))
AT_LEAST_ONE: Final = Check("must be >= 1", lambda v: v >= 1, refuses=(0.5,))
FRACTION: Final = Check("must be in [0, 1)", lambda v: 0 <= v < 1, refuses=(-0.1, 1))
UNDER_A_DAY: Final = Check("must be under 86400 (a day)", lambda v: v < 86400,
                           refuses=(86400,))
PORT: Final = Check("must be a TCP port 1..65535", lambda v: 1 <= v <= 65535,
                    refuses=(0, 65536))
# TWS takes any 32-bit signed id; 0 is the "master" id that also sees manual orders.
CLIENT_ID: Final = Check("must be 0..2147483647", lambda v: 0 <= v <= 2**31 - 1,
                         refuses=(-1, 2**31))
NOT_BLANK: Final = Check("must not be empty", bool, refuses=("", "  "))
LOG_LEVEL: Final = Check(f"must be one of {', '.join(LOG_LEVELS)}",
                         lambda v: v in LOG_LEVELS, refuses=("LOUD",))
TIMEZONE: Final = Check("must be an IANA time zone such as 'America/New_York'", _zone_exists,
                        refuses=("Mars/Olympus", "America", "../etc/passwd", ""))
WALL_CLOCK: Final = Check("must be a wall-clock time without a UTC offset",
                          lambda v: v.tzinfo is None, refuses=("23:55+02:00",))


# -- declaring fields ------------------------------------------------------------------------


_SETTING: Final = "ibkr_connector.setting"
_SECTION: Final = "ibkr_connector.section"


@attrs.frozen
class _Setting:
    kind: Kind
    checks: tuple[Check, ...]
    example: object
    help: str
    optional: bool

    def validate(self, value: object) -> object:
        """The value as stored, or ``Invalid`` saying which rule it broke."""
        if value is None and self.optional:
            return None
        converted = self.kind.convert(value)
        for check in self.checks:
            if not check.test(converted):
                raise Invalid(f"{check.rule}, got {converted!r}")
        return converted


def setting(default: object, kind: Kind, *checks: Check, example: object, help: str) -> Any:
    """Declare a configuration field: see the module docstring. ``None`` as the default
    makes the field optional (unset); sources cannot set it back to ``None``."""
    meta = _Setting(kind, checks, example, help, optional=default is None)
    return attrs.field(default=default, metadata={_SETTING: meta})


def section(cls: type[Any]) -> Any:
    """Declare a nested group of settings (``[ibkr.<name>]`` in TOML), defaulting to ``cls()``."""
    return attrs.field(factory=cls, metadata={_SECTION: cls})


def _check_setting(meta: _Setting, name: str, value: object) -> object:
    try:
        return meta.validate(value)
    except Invalid as exc:
        raise ConfigError(f"{name} {exc}") from None


def _check_section(cls: type[Any], name: str, value: object) -> object:
    if not isinstance(value, cls):
        raise ConfigError(f"{name} must be a {cls.__name__}, got {value!r}")
    return value


def bind_settings(cls: type[Any], fields: list[attrs.Attribute[Any]]
                  ) -> list[attrs.Attribute[Any]]:
    """attrs ``field_transformer``: each field's converter checks it under its own name."""
    bound = []
    for field in fields:
        if _SETTING in field.metadata:
            convert = functools.partial(_check_setting, field.metadata[_SETTING], field.name)
        elif _SECTION in field.metadata:
            convert = functools.partial(_check_section, field.metadata[_SECTION], field.name)
        else:
            raise TypeError(f"{cls.__name__}.{field.name} is declared with neither setting() "
                            "nor section(); every config field must be one (see "
                            "ibkr_connector.config)")
        bound.append(field.evolve(converter=convert))
    return bound


# -- the table derived from the fields ------------------------------------------------------------


@attrs.frozen
class SettingInfo:
    """One setting as every source names it: ``key`` is its dotted TOML key under
    ``[ibkr]`` (``watchdog.stable_after``), ``variable`` its ``IBKR_*`` name."""

    key: str
    variable: str
    name: str
    default: object
    _setting: _Setting

    @property
    def kind(self) -> Kind:
        return self._setting.kind

    @property
    def checks(self) -> tuple[Check, ...]:
        return self._setting.checks

    @property
    def example(self) -> object:
        return self._setting.example

    @property
    def help(self) -> str:
        return self._setting.help

    def parse(self, text: str, where: str) -> object:
        """A variable's text as the stored value; `ConfigError` naming ``where`` if refused."""
        try:
            return self._setting.validate(self.kind.parse(text))
        except Invalid as exc:
            raise ConfigError(f"{where} {exc}") from None

    def validate(self, value: object, where: str | None = None) -> object:
        """The value as stored; `ConfigError` naming ``where`` (or the field) if refused."""
        return _check_setting(self._setting, where or self.name, value)


def walk_settings(cls: type[Any], path: tuple[str, ...] = ()) -> Iterator[SettingInfo]:
    """Every setting of ``cls``, sections included, in declaration order."""
    for field in attrs.fields(cls):
        if _SECTION in field.metadata:
            yield from walk_settings(field.metadata[_SECTION], (*path, field.name))
        else:
            yield SettingInfo(".".join((*path, field.name)), PREFIX + field.name.upper(),
                              field.name, field.default, field.metadata[_SETTING])


def sections_of(cls: type[Any]) -> dict[str, type[Any]]:
    """``cls``'s sections by field name."""
    return {f.name: f.metadata[_SECTION] for f in attrs.fields(cls) if _SECTION in f.metadata}
