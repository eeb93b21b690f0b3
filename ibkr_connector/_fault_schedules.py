"""Fault schedules as plain values: what can go wrong with TWS, drawn by hypothesis and
played against a simulator (`run_schedule`). The public face is ``ibkr_connector.testing``.

A `FaultSchedule` is a tuple of `Step` (a delay, then one fault). Faults are plain frozen
values, so hypothesis shrinks a failing schedule to the smallest one that still fails, and
its repr is a readable recipe.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeAlias

import attrs
import trio
from hypothesis import strategies as st

from .simulator import MALFORMED_KINDS, TwsSimulator

__all__ = [
    "Drop", "Fault", "FaultSchedule", "LinkFlap", "Malformed", "ReplyDelay", "RestartActor",
    "Step", "TwsErrorNotice", "TwsRestart", "apply_fault", "fault_schedules", "faults",
    "kills_connection", "run_schedule",
]


@attrs.frozen
class Drop:
    """TWS closes every API connection at once (a crash, a network cut)."""


@attrs.frozen
class TwsRestart:
    """TWS goes away and refuses connections for ``seconds`` (the daily restart)."""

    seconds: float


@attrs.frozen
class LinkFlap:
    """TWS loses its own link to IB (1100) and gets it back: 1101 (data lost) or 1102."""

    data_lost: bool


@attrs.frozen
class TwsErrorNotice:
    """Any other code TWS may send unprompted (farm notices, 2110, ...)."""

    code: int


@attrs.frozen
class Malformed:
    """A frame ibapi cannot decode."""

    kind: str = "bad_msg_id"


@attrs.frozen
class ReplyDelay:
    """TWS answers slowly for a while (0 restores it)."""

    seconds: float


@attrs.frozen
class RestartActor:
    """An operator restarts one actor of the runtime (applied by the caller's hook)."""

    actor: str


Fault: TypeAlias = (
    Drop | TwsRestart | LinkFlap | TwsErrorNotice | Malformed | ReplyDelay | RestartActor
)


@attrs.frozen
class Step:
    """Wait ``after`` seconds (trio time), then inject ``fault``."""

    after: float
    fault: Fault


FaultSchedule: TypeAlias = tuple[Step, ...]

# Codes TWS sends unprompted that a runtime must take in its stride.
_NOTICE_CODES = (2103, 2104, 2105, 2106, 2107, 2108, 2110, 2157, 2158)


def faults(
    *, max_outage: float = 0.6, actors: tuple[str, ...] = ("connection", "limiter", "watchdog")
) -> st.SearchStrategy[Fault]:
    """Any one fault. ``max_outage`` bounds TWS restarts and reply delays (seconds)."""
    outage = st.floats(min_value=0.05, max_value=max_outage, allow_nan=False)
    options: list[st.SearchStrategy[Fault]] = [
        st.just(Drop()),
        st.builds(TwsRestart, outage),
        st.builds(LinkFlap, st.booleans()),
        st.builds(TwsErrorNotice, st.sampled_from(_NOTICE_CODES)),
        st.builds(Malformed, st.sampled_from(MALFORMED_KINDS)),
        st.builds(ReplyDelay, st.floats(min_value=0.0, max_value=max_outage / 4,
                                        allow_nan=False)),
    ]
    if actors:
        options.append(st.builds(RestartActor, st.sampled_from(actors)))
    return st.one_of(options)


def fault_schedules(
    *, max_faults: int = 4, max_gap: float = 0.5, max_outage: float = 0.6,
    actors: tuple[str, ...] = ("connection", "limiter", "watchdog"),
) -> st.SearchStrategy[FaultSchedule]:
    """Up to ``max_faults`` faults, each after a gap of at most ``max_gap`` seconds."""
    step = st.builds(Step, st.floats(min_value=0.0, max_value=max_gap, allow_nan=False),
                     faults(max_outage=max_outage, actors=actors))
    return st.lists(step, min_size=1, max_size=max_faults).map(tuple)


RestartHook = Callable[[str], Awaitable[None]]


async def apply_fault(sim: TwsSimulator, fault: Fault, restart: RestartHook | None = None) -> None:
    """Inject one fault into *sim* (or, for `RestartActor`, through *restart*)."""
    if isinstance(fault, Drop):
        await sim.drop_all()
    elif isinstance(fault, TwsRestart):
        await sim.refuse_for(fault.seconds)
    elif isinstance(fault, LinkFlap):
        await sim.send_error(1100, "Connectivity between IB and Trader Workstation has been lost.")
        if fault.data_lost:
            await sim.send_error(1101, "Connectivity between IB and TWS has been restored- "
                                       "data lost.")
        else:
            await sim.send_error(1102, "Connectivity between IB and TWS has been restored- "
                                       "data maintained.")
    elif isinstance(fault, TwsErrorNotice):
        await sim.send_error(fault.code, f"notice {fault.code}")
    elif isinstance(fault, Malformed):
        await sim.send_malformed(kind=fault.kind)
    elif isinstance(fault, ReplyDelay):
        sim.set_reply_delay(fault.seconds)
    elif isinstance(fault, RestartActor):
        if restart is not None:
            await restart(fault.actor)
    else:  # pragma: no cover - the union is closed
        raise TypeError(f"unknown fault {fault!r}")


async def run_schedule(sim: TwsSimulator, schedule: FaultSchedule,
                       restart: RestartHook | None = None) -> None:
    """Play *schedule* against *sim*; returns after the last fault is injected."""
    for step in schedule:
        await trio.sleep(step.after)
        await apply_fault(sim, step.fault, restart)


def kills_connection(fault: Fault) -> bool:
    """Whether *fault* ends the TWS session (and so may lose a frame in flight)."""
    return isinstance(fault, Drop | TwsRestart | Malformed) or (
        isinstance(fault, RestartActor) and fault.actor == "connection")
