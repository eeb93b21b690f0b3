"""``ibkr-connector run``: the runtime as a long-running service.

It connects (retrying with the watchdog's backoff if TWS is not up yet), serves the control
socket for operators, and stops cleanly on SIGINT or SIGTERM (what systemd sends), with
every actor stopped in reverse order and no thread left behind.
"""

from __future__ import annotations

import logging
import signal
from contextlib import AsyncExitStack
from pathlib import Path

import attrs
import trio

from .config import IBKRConfig
from .runtime import open_runtime
from .simulator import SimulatorConfig, open_simulator

__all__ = ["serve"]

log = logging.getLogger(__name__)


async def serve(config: IBKRConfig, control_path: Path, use_simulator: bool = False) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with AsyncExitStack() as stack:
            if use_simulator:
                sim = await stack.enter_async_context(open_simulator(SimulatorConfig()))
                config = attrs.evolve(config, host=sim.host, port=sim.port)
                log.info("serving against the bundled simulator on %s:%d", sim.host, sim.port)
            runtime = await stack.enter_async_context(
                open_runtime(config, control_path=control_path))
            log.info("control socket at %s", control_path)
            await runtime.keep_connected()
            async for signum in signals:
                log.info("received %s; stopping", signal.Signals(signum).name)
                break
    log.info("stopped cleanly")
