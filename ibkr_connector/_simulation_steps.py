"""The steps of a simulated run: what happens (a fault, an operator's or a strategy's
action) and when, and how schedules of them are drawn.

One catalogue (`draw_action`) serves two sources: hypothesis (which shrinks a failing
schedule to the smallest that still fails) and a seeded ``random.Random`` (a thousand
schedules a CI run, a hundred thousand a soak; a seed is the whole recipe). Steps are plain
frozen values, so a schedule's repr is a readable script of the run.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Protocol, TypeAlias

import attrs
from hypothesis import strategies as st

from ._fault_schedules import (
    Drop,
    Fault,
    LinkFlap,
    Malformed,
    ReplyDelay,
    RestartActor,
    TwsErrorNotice,
    TwsRestart,
)
from .simulator import MALFORMED_KINDS

__all__ = [
    "ACTORS", "SYMBOLS", "Action", "Cancel", "CrashConnection", "LoseNextAck", "Modify",
    "PacingError", "Place", "RejectNextOrder", "SimStep", "SlowOrderAcks", "StopActor",
    "Subscribe", "Unsubscribe", "draw_action", "random_schedule", "simulation_schedules",
]

SYMBOLS = ("SPY", "QQQ", "AAPL")
#: The actors an operator may stop, start and restart in a simulated run.
ACTORS = ("connection", "limiter", "watchdog", "order_ids", "market_data", "orders")


@attrs.frozen
class Subscribe:
    """The strategy asks for a ticker (one more hold on the symbol's line)."""

    symbol: str


@attrs.frozen
class Unsubscribe:
    """The strategy drops one hold on the symbol's line (none held: a no-op)."""

    symbol: str


@attrs.frozen
class Place:
    """The strategy places a buy: at market, or resting far below the market."""

    quantity: int
    resting: bool


@attrs.frozen
class Modify:
    """The strategy adds one to the quantity of its trade number ``index`` (modulo)."""

    index: int


@attrs.frozen
class Cancel:
    """The strategy cancels its trade number ``index`` (modulo)."""

    index: int


@attrs.frozen
class StopActor:
    """An operator stops ``actor`` and starts it again ``seconds`` later."""

    actor: str
    seconds: float


@attrs.frozen
class CrashConnection:
    """The connection actor crashes (an unexpected error) at its next write."""


@attrs.frozen
class PacingError:
    """TWS refuses a message for pacing (error 100)."""


@attrs.frozen
class RejectNextOrder:
    """TWS rejects the next new order (201)."""


@attrs.frozen
class LoseNextAck:
    """The next order reaches IB but its acknowledgement is lost with the connection."""


@attrs.frozen
class SlowOrderAcks:
    """TWS answers orders and cancels ``seconds`` late (0 restores)."""

    seconds: float


Action: TypeAlias = (
    Fault | Subscribe | Unsubscribe | Place | Modify | Cancel | StopActor | CrashConnection
    | PacingError | RejectNextOrder | LoseNextAck | SlowOrderAcks
)


@attrs.frozen
class SimStep:
    """Wait ``after`` seconds (virtual time), then do ``action``."""

    after: float
    action: Action


class Draw(Protocol):
    """Where a schedule's choices come from (hypothesis or a seeded Random)."""

    def integer(self, low: int, high: int) -> int:
        """An integer in [low, high]; the simplest is ``low``."""

    def real(self, low: float, high: float) -> float:
        """A float in [low, high]; the simplest is ``low``."""


def draw_action(d: Draw, *, strategy_actions: bool = True) -> Action:
    """One action; the catalogue's order is hypothesis's order of simplicity. Without
    ``strategy_actions`` only faults and operator actions (a user's own strategy is then
    the only one trading)."""
    def pick(options: tuple[str, ...]) -> str:
        return options[d.integer(0, len(options) - 1)]

    trading: tuple[Callable[[], Action], ...] = (
        lambda: Subscribe(pick(SYMBOLS)),
        lambda: Place(d.integer(1, 5), bool(d.integer(0, 1))),
        lambda: Unsubscribe(pick(SYMBOLS)),
        lambda: Modify(d.integer(0, 7)),
        lambda: Cancel(d.integer(0, 7)),
    )
    catalogue: tuple[Callable[[], Action], ...] = (*(trading if strategy_actions else ()),
        lambda: Drop(),
        lambda: TwsRestart(d.real(1.0, 240.0)),
        lambda: LinkFlap(bool(d.integer(0, 1))),
        lambda: TwsErrorNotice(int(pick(("2103", "2104", "2105", "2106", "2110", "2158")))),
        lambda: Malformed(pick(MALFORMED_KINDS)),
        lambda: ReplyDelay(d.real(0.0, 8.0)),
        lambda: SlowOrderAcks(d.real(0.0, 8.0)),
        lambda: PacingError(),
        lambda: RestartActor(pick(ACTORS)),
        lambda: StopActor(pick(ACTORS), d.real(0.0, 60.0)),
        lambda: CrashConnection(),
        lambda: RejectNextOrder(),
        lambda: LoseNextAck(),
    )
    return catalogue[d.integer(0, len(catalogue) - 1)]()


def _draw_schedule(d: Draw, max_steps: int, strategy_actions: bool) -> tuple[SimStep, ...]:
    count = d.integer(1, max_steps)
    return tuple(SimStep(d.real(0.0, 30.0), draw_action(d, strategy_actions=strategy_actions))
                 for _ in range(count))


class _RandomDraw:
    def __init__(self, rng: random.Random) -> None:
        self._rng = rng

    def integer(self, low: int, high: int) -> int:
        return self._rng.randint(low, high)

    def real(self, low: float, high: float) -> float:
        return round(self._rng.uniform(low, high), 3)


def random_schedule(seed: int, *, max_steps: int = 12,
                    strategy_actions: bool = True) -> tuple[SimStep, ...]:
    """The schedule a seed stands for (the same on every machine and Python 3 version)."""
    return _draw_schedule(_RandomDraw(random.Random(seed)), max_steps, strategy_actions)


class _HypothesisDraw:
    def __init__(self, draw: st.DrawFn) -> None:
        self._draw = draw

    def integer(self, low: int, high: int) -> int:
        return self._draw(st.integers(low, high))

    def real(self, low: float, high: float) -> float:
        return self._draw(st.floats(low, high, allow_nan=False, allow_infinity=False))


@st.composite
def simulation_schedules(draw: st.DrawFn, max_steps: int = 12,
                         strategy_actions: bool = True) -> tuple[SimStep, ...]:
    """Hypothesis strategy: schedules of faults, operator actions and (unless
    ``strategy_actions=False``) the built-in strategy's trading."""
    return _draw_schedule(_HypothesisDraw(draw), max_steps, strategy_actions)
