"""Shared fixtures: the bundled simulator on a free loopback port, and clocks.

Socket tests use `io_clock`: a MockClock that jumps only after the run loop has been idle
for a quarter of a real second. Pure-Trio tests can use autojump_threshold=0, but here a
thread (ibapi's handshake, reader and run loop) is often what Trio waits on, and jumping the
clock the instant Trio goes idle would fire a 30 s connection timeout while a 2 ms loopback
handshake is still in flight. A quarter second is far above any loopback round trip and
still turns a 60 s backoff into 0.25 s of wall time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing
from helpers import SLOW_ORDER_WRITE

from ibkr_connector.simulator import SimulatorConfig, TwsSimulator, open_simulator
from ibkr_connector.testing import tws_simulator  # noqa: F401 - the fixture users get too


@pytest.fixture
def io_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0.25)


@pytest.fixture
async def sim() -> AsyncIterator[TwsSimulator]:
    async with open_simulator(SimulatorConfig()) as simulator:
        yield simulator


@pytest.fixture
async def quiet_sim() -> AsyncIterator[TwsSimulator]:
    """A simulator whose market stands still. Its price walk (a step every 0.25 s) keeps
    `io_clock` from ever being idle long enough to jump, so tests that wait out long
    virtual timeouts (a hanging handshake, a held request) use this one."""
    async with open_simulator(SimulatorConfig(market_tick_interval=3600.0)) as simulator:
        yield simulator


@pytest.fixture
def slow_order_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every order takes SLOW_ORDER_WRITE virtual seconds to write (a full socket buffer)."""
    from ibkr_connector.protocol.client import TwsSession
    from ibkr_connector.protocol.requests import PlaceOrder, Request

    real_send = TwsSession.send

    async def slow_send(self: TwsSession, request: Request) -> None:
        if isinstance(request, PlaceOrder):
            await trio.sleep(SLOW_ORDER_WRITE)
        await real_send(self, request)

    monkeypatch.setattr(TwsSession, "send", slow_send)
