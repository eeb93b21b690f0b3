"""Market data over real loopback sockets: the unmodified ibapi EClient (server version
200) and ib_async (which negotiates 178) get contract details, chains, ticks and greeks."""

from __future__ import annotations

import asyncio
from typing import Any

import trio
from ibapi.contract import Contract

from ibkr_connector.simulator import SimulatorConfig, open_simulator

from .marketclient import market_client

START = 1767225600.0  # 2026-01-01 00:00 UTC: the chain's expiries follow from it
SPY = 756733


def config(**kwargs: Any) -> SimulatorConfig:
    return SimulatorConfig(start_time=START, market_tick_interval=0.05, **kwargs)


def spy_call() -> Contract:
    contract = Contract()
    contract.symbol, contract.secType, contract.exchange = "SPY", "OPT", "SMART"
    contract.currency, contract.lastTradeDateOrContractMonth = "USD", "20260116"
    contract.strike, contract.right, contract.multiplier = 500.0, "C", "100"
    return contract


async def test_ibapi_gets_details_chain_ticks_and_greeks() -> None:
    async with open_simulator(config()) as sim:
        client = market_client()
        try:
            await client.connect(sim.port, 3)
            await client.wait_for("nextValidId")
            await client.call(client.client.reqContractDetails, 1, spy_call())
            (_, details) = await client.wait_for("contractDetails")
            await client.wait_for("contractDetailsEnd")
            con_id = details.contract.conId
            assert (details.contract.multiplier, details.minTick) == ("100", 0.01)

            await client.call(client.client.reqSecDefOptParams, 2, "SPY", "", "STK", SPY)
            chain = await client.wait_for("secDefOptParams", lambda a: a[1] == "SMART")
            assert "20260116" in chain[5] and 500.0 in chain[6]
            await client.wait_for("secDefOptParamsEnd")

            by_id = Contract()
            by_id.conId, by_id.exchange = con_id, "SMART"
            await client.call(client.client.reqMktData, 3, by_id, "", False, False, [])
            model = await client.wait_for("tickOptionComputation", lambda a: a[1] == 13)
            assert 0 < model[3] < 1 and model[5] > 0  # delta, gamma
            bid = await client.wait_for("tickPrice", lambda a: a[1] == 1)
            assert bid[2] > 0
            await client.call(client.client.reqMktData, 4, _spy(), "", False, False, [])
            # The walk moves on: volume (tick 8) grows with every step after the burst.
            first = await client.wait_for("tickSize", lambda a: a[:2] == (4, 8))
            later = await client.wait_for("tickSize", lambda a: a[:2] == (4, 8), within=5.0)
            assert later[2] > first[2]
            assert sim.live_subscriptions(3) == {3, 4}
        finally:
            await client.close()


def _spy() -> Contract:
    contract = Contract()
    contract.symbol, contract.secType = "SPY", "STK"
    contract.exchange, contract.currency = "SMART", "USD"
    return contract


def _ib_async_option_flow(port: int) -> tuple[Any, ...]:
    """Connect ib_async, qualify a SPY call, stream it until its greeks arrive."""
    from ib_async import IB, Option, StartupFetchNONE

    async def main() -> tuple[Any, ...]:
        ib = IB()
        await ib.connectAsync("127.0.0.1", port, clientId=9, timeout=5,
                              fetchFields=StartupFetchNONE, readonly=True)
        try:
            [contract] = await ib.qualifyContractsAsync(
                Option("SPY", "20260116", 500.0, "C", "SMART"))
            chains = await ib.reqSecDefOptParamsAsync("SPY", "", "STK", SPY)
            ticker = ib.reqMktData(contract, "", False, False)
            for _ in range(100):
                await asyncio.sleep(0.05)
                if ticker.modelGreeks is not None and ticker.bidGreeks is not None:
                    break
            return (ib.client.serverVersion(), contract.conId, contract.multiplier,
                    len(chains), ticker.bid, ticker.ask, ticker.modelGreeks,
                    ticker.bidGreeks)
        finally:
            ib.disconnect()

    return asyncio.run(main())


async def test_ib_async_qualifies_an_option_and_receives_its_greeks() -> None:
    async with open_simulator(config()) as sim:
        result = await trio.to_thread.run_sync(_ib_async_option_flow, sim.port)
    version, con_id, multiplier, chains, bid, ask, model, bid_greeks = result
    assert version == 178
    assert con_id == sim.market.match(symbol="SPY", sec_type="OPT", expiry="20260116",
                                      strike=500.0, right="C")[0].con_id
    assert multiplier == "100" and chains == 3  # SMART, CBOE, AMEX
    assert 0 < bid < ask
    assert model is not None and 0 < model.delta < 1 and model.gamma > 0
    assert model.undPrice > 0 and model.impliedVol > 0
    assert bid_greeks is not None and bid_greeks.optPrice == bid
