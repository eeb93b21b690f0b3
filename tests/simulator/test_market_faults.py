"""Market faults through the control socket and `ibkr-connector fault market`: stall,
halt, widen, and a data-farm outage (2103, then 2104), seen by the unmodified EClient."""

from __future__ import annotations

import argparse
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
import trio
from ibapi.contract import Contract

from ibkr_connector.simulator import (
    ControlError,
    SimulatorConfig,
    open_simulator,
    send_control_command,
)
from ibkr_connector.simulator._control import (
    MarketFault,
    encode_command,
    parse_command,
    serve_control,
)
from ibkr_connector.simulator.cli import add_sim_commands

from .marketclient import market_client


@pytest.fixture
def control_path() -> Iterator[str]:
    directory = tempfile.mkdtemp(prefix="simmkt")
    yield f"{directory}/control.sock"
    shutil.rmtree(directory, ignore_errors=True)


async def ask(path: str, command: Any) -> dict[str, Any]:
    return await trio.to_thread.run_sync(send_control_command, path, command)


def spy() -> Contract:
    contract = Contract()
    contract.symbol, contract.secType = "SPY", "STK"
    contract.exchange, contract.currency = "SMART", "USD"
    return contract


@pytest.mark.parametrize("command", [MarketFault("widen", "SPY", 3.0),
                                     MarketFault("farm_down"), MarketFault("halt", "SPX")])
def test_market_commands_round_trip_through_json(command: MarketFault) -> None:
    assert parse_command(encode_command(command)) == command


@pytest.mark.parametrize(("line", "complaint"), [
    (b'{"command": "market", "action": "melt"}', "action"),
    (b'{"command": "market", "action": "halt"}', "symbol"),
    (b'{"command": "market", "action": "widen", "symbol": "SPY", "factor": 0.5}', "factor")])
def test_bad_market_commands_are_explained(line: bytes, complaint: str) -> None:
    with pytest.raises(ControlError, match=complaint):
        parse_command(line)


async def test_market_faults_reach_a_subscribed_client(control_path: str) -> None:
    config = SimulatorConfig(market_tick_interval=0.05)
    async with open_simulator(config) as sim, trio.open_nursery() as nursery:
        await nursery.start(serve_control, sim, control_path)
        client = market_client()
        try:
            await client.connect(sim.port, 5)
            await client.wait_for("nextValidId")
            await client.call(client.client.reqMktData, 1, spy(), "", False, False, [])
            await client.wait_for("tickReqParams")

            answer = await ask(control_path, MarketFault("halt", "SPY"))
            assert answer["market"]["halted"] == ["SPY"]
            assert await client.wait_for("tickGeneric", lambda a: a == (1, 49, 1.0))

            await ask(control_path, MarketFault("farm_down"))
            assert (await client.wait_for("error", lambda a: a[1] == 2103))[0] == -1
            assert sim.market.farm_down
            await ask(control_path, MarketFault("unhalt", "SPY"))
            await ask(control_path, MarketFault("farm_up"))
            await client.wait_for("error", lambda a: a[1] == 2104)
            # Back up: the line catches up with what changed during the outage.
            assert await client.wait_for("tickGeneric", lambda a: a == (1, 49, 0.0))

            answer = await ask(control_path, MarketFault("widen", "MSFT", 2.0))
            assert answer == {"ok": False, "error": "unknown symbol 'MSFT'; known: SPY, QQQ, "
                                                    "AAPL, SPX"}
        finally:
            await client.close()
        nursery.cancel_scope.cancel()


async def test_fault_market_subcommand_stalls_a_ticker(control_path: str) -> None:
    async with open_simulator() as sim, trio.open_nursery() as nursery:
        await nursery.start(serve_control, sim, control_path)
        parser = argparse.ArgumentParser()
        add_sim_commands(parser.add_subparsers(required=True))
        args = parser.parse_args(["fault", "--control", control_path, "market", "stall", "QQQ"])
        assert await trio.to_thread.run_sync(args.func, args) == 0
        assert sim.market.stalled == {"QQQ"}
        args = parser.parse_args(["fault", "--control", control_path, "market", "widen",
                                  "SPY", "--factor", "4"])
        assert await trio.to_thread.run_sync(args.func, args) == 0
        assert sim.market.spread_factor("SPY") == 4.0
        nursery.cancel_scope.cancel()


def test_sim_subcommand_takes_market_settings() -> None:
    parser = argparse.ArgumentParser()
    add_sim_commands(parser.add_subparsers(required=True))
    args = parser.parse_args(["sim", "--tick-interval", "0.1", "--max-lines", "3",
                              "--unsubscribed", "aapl"])
    assert (args.tick_interval, args.max_lines, args.unsubscribed) == (0.1, 3, ["aapl"])
