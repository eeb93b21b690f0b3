"""Fault-injection testing for users of ibkr-connector: strategies, a runner, a fixture.

What our own suite uses to prove the runtime's promises, packaged so a strategy's authors
can run their code through the same faults::

    # conftest.py (at your project's root; or import the fixture by name)
    pytest_plugins = ["ibkr_connector.testing"]

    # test_my_strategy.py
    from hypothesis import given
    from ibkr_connector.testing import fault_schedules, run_schedule

    @given(schedule=fault_schedules())
    async def test_survives(schedule): ...

A `FaultSchedule` is a tuple of `Step` (a delay, then one fault). Faults are plain frozen
values, so hypothesis shrinks a failing schedule to the smallest one that still fails, and
its repr is a readable recipe. Needs the ``test`` extra (hypothesis, pytest-trio).

The deterministic simulation (`simulate`, `simulation_schedules`, `World`) runs the whole
runtime and an in-process TWS in one Trio loop on a virtual clock, so hundreds of
schedules with minutes of outages take seconds, and a user's own strategy runs inside
them: see docs/testing.md.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ._fault_schedules import (
    Drop,
    Fault,
    FaultSchedule,
    LinkFlap,
    Malformed,
    ReplyDelay,
    RestartActor,
    Step,
    TwsErrorNotice,
    TwsRestart,
    apply_fault,
    fault_schedules,
    faults,
    kills_connection,
    run_schedule,
)
from ._simulation import SimulationFailure, World, replay_command, simulate, simulate_seed
from ._simulation_steps import (
    Action,
    Cancel,
    CrashConnection,
    LoseNextAck,
    Modify,
    PacingError,
    Place,
    RejectNextOrder,
    SimStep,
    SlowOrderAcks,
    StopActor,
    Subscribe,
    Unsubscribe,
    random_schedule,
    simulation_schedules,
)
from .simulator import SimulatorConfig, TwsSimulator, open_simulator

__all__ = [
    # fault schedules against a simulator over real sockets
    "Drop", "Fault", "FaultSchedule", "LinkFlap", "Malformed", "ReplyDelay", "RestartActor",
    "Step", "TwsErrorNotice", "TwsRestart", "apply_fault", "fault_schedules", "faults",
    "kills_connection", "run_schedule", "tws_simulator",
    # the deterministic simulation (one Trio loop, virtual time, a seed is a run)
    "Action", "Cancel", "CrashConnection", "LoseNextAck", "Modify", "PacingError", "Place",
    "RejectNextOrder", "SimStep", "SimulationFailure", "SlowOrderAcks", "StopActor",
    "Subscribe", "Unsubscribe", "World", "random_schedule", "replay_command", "simulate",
    "simulate_seed", "simulation_schedules",
]


@pytest.fixture
async def tws_simulator() -> AsyncIterator[TwsSimulator]:
    """The bundled simulator on a free loopback port, for the length of one test."""
    async with open_simulator(SimulatorConfig()) as simulator:
        yield simulator
