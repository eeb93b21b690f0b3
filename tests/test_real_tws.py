"""Against a real TWS / IB Gateway (paper account), only when IBKR_REAL_TWS=host:port is set."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ibkr_connector.config import IBKRConfig
from ibkr_connector.protocol import events as ev
from ibkr_connector.protocol.requests import ReqCurrentTime
from ibkr_connector.runtime import open_runtime

REAL = os.environ.get("IBKR_REAL_TWS")
pytestmark = [
    pytest.mark.real_tws,
    pytest.mark.skipif(not REAL, reason="set IBKR_REAL_TWS=host:port to run against a real TWS"),
]


async def test_connects_and_answers_current_time(tmp_path: Path) -> None:
    assert REAL is not None
    host, _, port = REAL.rpartition(":")
    config = IBKRConfig(host=host or "127.0.0.1", port=int(port),
                        client_id=int(os.environ.get("IBKR_REAL_CLIENT_ID", "917")))
    async with open_runtime(config, audit_path=tmp_path / "audit.jsonl", connect=True) as rt:
        times = rt.events((ev.CurrentTime,))
        await rt.submit(ReqCurrentTime())
        reply = await times.receive()
        status = (await rt.status()).connection
    assert reply.time > 1_600_000_000  # type: ignore[attr-defined]
    assert status.server_version and status.server_version >= 176
