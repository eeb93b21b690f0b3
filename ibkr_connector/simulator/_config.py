"""Configuration of the bundled TWS simulator.

The simulator is a test bed: every knob here exists so a test (or an operator running
``ibkr-connector sim``) can reproduce one behaviour of a real TWS deterministically. The
class is validated at construction so a bad value fails where it was written, not later
inside the server task.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

__all__ = [
    "DEFAULT_SERVER_VERSION",
    "MAX_SERVER_VERSION",
    "MIN_SERVER_VERSION",
    "SimulatorConfig",
]

#: Highest version the simulator speaks. 201 (``MIN_SERVER_VER_PROTOBUF``) switches the
#: client to raw-integer message ids and protobuf payloads, which this simulator does not
#: implement; 200 is the highest all-text version and exercises every classic gate in use.
MAX_SERVER_VERSION = 200
#: Lowest version the simulator speaks: every message it sends is encoded faithfully for
#: any version from here up (the version gates it honours start at 153 and 166).
MIN_SERVER_VERSION = 150
DEFAULT_SERVER_VERSION = 200


def _check_server_version(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not MIN_SERVER_VERSION <= value <= MAX_SERVER_VERSION:
        raise ValueError(
            f"{attribute.name} must be between {MIN_SERVER_VERSION} and "
            f"{MAX_SERVER_VERSION} (classic text protocol), got {value}"
        )


def _check_accounts(_: object, attribute: attrs.Attribute[tuple[str, ...]],
                    value: tuple[str, ...]) -> None:
    if not value:
        raise ValueError(f"{attribute.name} must name at least one account")
    for account in value:
        if not account or not account.isascii() or not account.isalnum():
            raise ValueError(f"{attribute.name}: account codes must be ASCII letters/digits")


def _as_tuple(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


def _as_upper_tuple(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(symbol.upper() for symbol in value)


def _check_port(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not 0 <= value <= 65535:
        raise ValueError(f"{attribute.name} must be between 0 and 65535, got {value}")


@attrs.frozen
class SimulatorConfig:
    """How the simulated TWS behaves.

    ``port=0`` picks a free port (read it back from ``TwsSimulator.port``). ``start_time``
    is the simulated wall clock (Unix seconds) at start-up; ``None`` uses the real clock.
    With a fixed ``start_time`` and ``seed`` every byte the simulator writes is
    reproducible, because simulated wall time advances with ``trio.current_time()``.
    """

    host: str = "127.0.0.1"
    port: int = attrs.field(default=0, validator=_check_port)
    server_version: int = attrs.field(default=DEFAULT_SERVER_VERSION,
                                      validator=_check_server_version)
    accounts: tuple[str, ...] = attrs.field(default=("DU1234567",), converter=_as_tuple,
                                            validator=_check_accounts)
    first_order_id: int = attrs.field(default=1, validator=attrs.validators.ge(0))
    max_messages_per_second: int = attrs.field(default=50, validator=attrs.validators.ge(1))
    disconnect_on_pacing_violation: bool = False
    seed: int = 0
    max_market_data_lines: int = attrs.field(default=100, validator=attrs.validators.ge(1))
    # -- the simulated market (see ``_market`` and ``_market_data``) --
    #: Seconds between steps of the price walk (and between streamed updates).
    market_tick_interval: float = attrs.field(default=0.25, validator=attrs.validators.gt(0))
    #: Symbols with no live-data permission: live requests get 354; with market data
    #: type 3/4 they get 10167 and delayed ticks (or 10168 if delayed data is off).
    unsubscribed_symbols: tuple[str, ...] = attrs.field(default=(), converter=_as_upper_tuple)
    delayed_data_available: bool = True
    #: Symbols whose options are permitted but whose underlying is not: an option request
    #: gets 10090 and, when ``greeks_need_underlying`` (TWS's documented rule; the exact
    #: behaviour is unverified), no live option computations (ticks 10-13).
    unsubscribed_underlyings: tuple[str, ...] = attrs.field(default=(),
                                                            converter=_as_upper_tuple)
    greeks_need_underlying: bool = True
    #: Simultaneous tick-by-tick streams per client before 10190 (TWS: 5 % of lines).
    max_tick_by_tick_streams: int = attrs.field(default=5, validator=attrs.validators.ge(1))
    #: Real TWS has no real-time tick-by-tick for options (10189); True allows it.
    tick_by_tick_options: bool = False
    start_time: float | None = None
    # -- the order engine (see ``_orders``) --
    #: Cash each account starts with.
    initial_cash: float = attrs.field(default=1_000_000.0, validator=attrs.validators.gt(0))
    #: Fill at most this many units per fill step (0: fill the whole order at once).
    partial_fill_quantity: int = attrs.field(default=0, validator=attrs.validators.ge(0))
