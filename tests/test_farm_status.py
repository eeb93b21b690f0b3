"""Data-farm notices keep a per-farm health state that `status` shows."""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing

from ibkr_connector.config import IBKRConfig, WatchdogConfig
from ibkr_connector.runtime import open_runtime
from ibkr_connector.simulator import TwsSimulator


async def test_status_shows_each_farm_with_its_last_state(
    sim: TwsSimulator, tmp_path: Path, io_clock: trio.testing.MockClock
) -> None:
    config = IBKRConfig(port=sim.port, watchdog=WatchdogConfig(health_check_interval=30.0))
    async with open_runtime(config, audit_path=tmp_path / "a.jsonl", connect=True) as runtime:
        await sim.send_error(2103, "Market data farm connection is broken:usfarm")
        await sim.send_error(2106, "HMDS data farm connection is OK:ushmds")
        with trio.fail_after(5):
            while True:
                farms = (await runtime.status_report())["data_farms"]
                assert isinstance(farms, dict)
                if farms.get("usfarm") == "broken" and farms.get("ushmds") == "ok":
                    break
                await trio.sleep(0.05)
        await sim.send_error(2104, "Market data farm connection is OK:usfarm")
        with trio.fail_after(5):
            while (await runtime.status_report())["data_farms"]["usfarm"] != "ok":  # type: ignore[index]
                await trio.sleep(0.05)
