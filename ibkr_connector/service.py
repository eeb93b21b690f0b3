"""``ibkr-connector run``: the runtime as a long-running service.

It connects (retrying with the watchdog's backoff if TWS is not up yet), serves the control
socket for operators, and stops cleanly on SIGINT or SIGTERM (what systemd sends), with
every actor stopped in reverse order and no thread left behind.

With the bundled simulator (``run --sim``) it also serves the simulator's fault socket, so
``ibkr-connector fault`` can drop, refuse or delay the simulated TWS under the running
service, exactly as against ``ibkr-connector sim``.
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
from .simulator import serve_control as serve_fault_socket

__all__ = ["serve"]

log = logging.getLogger(__name__)


async def serve(config: IBKRConfig, control_path: Path, use_simulator: bool = False,
                fault_path: Path | None = None) -> None:
    """Serve until SIGINT / SIGTERM. ``fault_path`` (with ``use_simulator``) is where the
    simulator's fault socket listens; ``None`` serves none."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with AsyncExitStack() as stack:
            if use_simulator:
                sim = await stack.enter_async_context(open_simulator(SimulatorConfig()))
                config = attrs.evolve(config, host=sim.host, port=sim.port)
                log.info("serving against the bundled simulator on %s:%d", sim.host, sim.port)
                if fault_path is not None:
                    nursery = await stack.enter_async_context(trio.open_nursery())
                    stack.callback(nursery.cancel_scope.cancel)  # runs before the nursery waits
                    await nursery.start(serve_fault_socket, sim, str(fault_path))
                    log.info("simulator fault socket at %s (ibkr-connector fault --control "
                             "%s drop|refuse|error|delay|malformed|status)", fault_path,
                             fault_path)
            runtime = await stack.enter_async_context(
                open_runtime(config, control_path=control_path))
            log.info("control socket at %s", control_path)
            await runtime.keep_connected()
            async for signum in signals:
                log.info("received %s; stopping", signal.Signals(signum).name)
                break
    log.info("stopped cleanly")
