"""Data-farm notices decoded: which of TWS's farm connections changed, and to what.

Layer: ``protocol/``, beside :mod:`.codes`. TWS reports its links to IB's data farms
(live quotes, HMDS historical data, sec-def contract details) as notices 2103-2158 through
``EWrapper.error``; :mod:`.codes` classifies them as ``Strategy.FARM_NOTICE``, and
:func:`farm_status` turns one into a :class:`FarmStatus` the runtime uses to track farm
health (a broken farm stalls its data; it is never a lost connection).

Sans-IO: no I/O, no logging calls, no state. Every function is a pure lookup and safe to
call from any thread or task; nothing here blocks or can be cancelled half-way.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType

import attrs

__all__ = ["FarmKind", "FarmState", "FarmStatus", "farm_status", "with_farm_status"]


class FarmKind(enum.Enum):
    """Which of TWS's data-farm connections a notice is about."""

    MARKET_DATA = "market_data"  # live quotes ("usfarm", "usopt", ...)
    HISTORICAL = "historical"  # HMDS, historical data ("ushmds", ...)
    SECURITY_DEFINITION = "security_definition"  # sec-def: contract details ("secdefil", ...)


class FarmState(enum.Enum):
    """What a farm notice says about that farm."""

    OK = "ok"
    BROKEN = "broken"  # TWS reconnects it by itself; data from that farm stalls meanwhile
    INACTIVE = "inactive"  # idle, reconnected on demand: healthy
    CONNECTING = "connecting"


@attrs.frozen
class FarmStatus:
    """A farm notice decoded: which kind of farm, its state, and its name if TWS gave it."""

    kind: FarmKind
    state: FarmState
    farm: str = ""


_FARM_CODES: Mapping[int, tuple[FarmKind, FarmState]] = MappingProxyType({
    2103: (FarmKind.MARKET_DATA, FarmState.BROKEN),
    2104: (FarmKind.MARKET_DATA, FarmState.OK),
    2105: (FarmKind.HISTORICAL, FarmState.BROKEN),
    2106: (FarmKind.HISTORICAL, FarmState.OK),
    2107: (FarmKind.HISTORICAL, FarmState.INACTIVE),
    2108: (FarmKind.MARKET_DATA, FarmState.INACTIVE),
    2119: (FarmKind.MARKET_DATA, FarmState.CONNECTING),
    2157: (FarmKind.SECURITY_DEFINITION, FarmState.BROKEN),
    2158: (FarmKind.SECURITY_DEFINITION, FarmState.OK),
})


def _farm_name(message: str) -> str:
    # REAL-TWS: farm notice texts name the farm after ':' or after 'demand.'
    # TWS appends the farm after a colon ("...is OK:usfarm.nj"), except the "inactive"
    # notices, which append it after "demand." ("...available upon demand.ushmds").
    if ":" in message:
        return message.rsplit(":", 1)[1].strip()
    _, sep, rest = message.partition("demand.")
    return rest.strip() if sep else ""


def farm_status(code: int, message: str = "") -> FarmStatus | None:
    """Decode a data-farm notice so the runtime can track farm health; None otherwise.

    Pass the notice's message to learn which farm it is about (empty when absent).
    """
    entry = _FARM_CODES.get(code)
    if entry is None:
        return None
    kind, state = entry
    return FarmStatus(kind, state, _farm_name(message))


def with_farm_status(health: Mapping[str, FarmState], status: FarmStatus) -> dict[str, FarmState]:
    """Farm health after one notice: a new mapping, farm name -> its latest state.

    TWS names the farm in most notices ("usfarm", "ushmds", "secdefnj"); a notice without
    a name is filed under its kind ("market_data", ...), so it is still seen. The input
    is not changed: the caller swaps the whole mapping, and a status already handed out
    keeps the picture it was taken with.
    """
    updated = dict(health)
    updated[status.farm or status.kind.value] = status.state
    return updated
