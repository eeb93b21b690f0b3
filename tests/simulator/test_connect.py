"""The unmodified ibapi EClient connects: handshake, versions, startApi replies, time, ids."""

from __future__ import annotations

import re

import pytest
import trio
from ibapi.comm import make_field

from ibkr_connector.simulator import SimulatorConfig, open_simulator

from .ibclient import ClientFactory
from .rawclient import RawClient

FARM_CODES = [2104, 2106, 2158]


@pytest.mark.parametrize("version", [200, 176, 187])
async def test_eclient_handshake_negotiates_the_configured_version(version: int,
        ib_client: ClientFactory) -> None:
    async with open_simulator(SimulatorConfig(server_version=version)) as sim:
        client = ib_client()
        await client.connect(sim.port, 1)
        assert client.client.serverVersion() == version
        assert re.fullmatch(rb"\d{8} \d\d:\d\d:\d\d UTC", client.client.twsConnectionTime())
        assert await client.wait_for("managedAccounts") == ("DU1234567",)
        assert await client.wait_for("nextValidId") == (1,)
        notices = [await client.wait_for("error") for _ in FARM_CODES]
        assert [(req_id, code) for req_id, code, _, _ in notices] == [(-1, c) for c in FARM_CODES]
        assert all((error_time > 0) == (version >= 194) for _, _, _, error_time in notices)
        await sim.wait_for_clients(1)
        assert sim.connected_client_ids() == {1}


async def test_current_time_round_trip(ib_client: ClientFactory) -> None:
    async with open_simulator(SimulatorConfig(start_time=1_700_000_000.0)) as sim:
        client = ib_client()
        await client.connect(sim.port, 1)
        await client.wait_for("nextValidId")
        await client.call(client.client.reqCurrentTime)
        (seconds,) = await client.wait_for("currentTime")
        assert 1_700_000_000 <= seconds < 1_700_000_060
        await client.call(client.client.reqCurrentTimeInMillis)
        (millis,) = await client.wait_for("currentTimeInMillis")
        assert seconds * 1000 <= millis < (seconds + 60) * 1000
        assert [m.msg_id for m in sim.received] == [71, 49, 105]


async def test_req_ids_answers_next_valid_id(ib_client: ClientFactory) -> None:
    async with open_simulator(SimulatorConfig(first_order_id=500)) as sim:
        client = ib_client()
        await client.connect(sim.port, 3)
        assert await client.wait_for("nextValidId") == (500,)
        await client.call(client.client.reqIds, 1)
        assert await client.wait_for("nextValidId") == (500,)


async def test_second_connection_with_a_client_id_in_use_gets_326_and_is_closed(
        ib_client: ClientFactory) -> None:
    async with open_simulator() as sim:
        first, second = ib_client(), ib_client()
        await first.connect(sim.port, 5)
        await first.wait_for("nextValidId")
        await second.connect(sim.port, 5)
        (req_id, code, text, _) = await second.wait_for("error", lambda a: a[1] == 326)
        assert (req_id, code) == (-1, 326)
        assert "already in use" in text
        await second.wait_for("connectionClosed")
        assert sim.connected_client_ids() == {5}
        await first.call(first.client.reqCurrentTime)
        await first.wait_for("currentTime")


async def test_unknown_message_id_is_answered_320_and_the_connection_stays(
        ib_client: ClientFactory) -> None:
    async with open_simulator() as sim:
        client = ib_client()
        await client.connect(sim.port, 1)
        await client.wait_for("nextValidId")
        await client.call(client.client.sendMsg, 999, make_field(1))
        (req_id, code, text, _) = await client.wait_for("error", lambda a: a[1] == 320)
        assert req_id == -1 and "999" in text
        await client.call(client.client.reqCurrentTime)
        await client.wait_for("currentTime")
        assert client.client.isConnected()
        assert sim.received[-2].msg_id == 999


async def test_a_client_capped_below_the_server_gets_its_own_maximum() -> None:
    async with open_simulator() as sim:
        client = await RawClient.open(sim.port)
        assert (await client.handshake("v100..187"))[0] == "187"
        await client.aclose()


async def test_bad_clients_are_closed_and_the_server_keeps_serving(
        ib_client: ClientFactory) -> None:
    async with open_simulator() as sim:
        http = await RawClient.open(sim.port)
        await http.stream.send_all(b"GET / HTTP/1.1\r\n\r\n")
        assert await http.read_all_until_closed() == []
        no_start = await RawClient.open(sim.port)
        await no_start.handshake()
        await no_start.send(49, 1)
        assert await no_start.read_all_until_closed() == []
        bad_id = await RawClient.connected(sim.port, 2)
        await bad_id.stream.send_all(b"\0\0\0\x04ab1\0")
        frames = await bad_id.read_all_until_closed()
        assert [f[0] for f in frames][:2] == ["15", "9"]
        assert sim.connected_client_ids() == frozenset()
        client = ib_client()
        await client.connect(sim.port, 2)
        assert await client.wait_for("nextValidId") == (1,)


async def test_wait_for_clients_returns_once_enough_have_started() -> None:
    async with open_simulator() as sim, trio.open_nursery() as nursery:
        done = trio.Event()

        async def waiter() -> None:
            await sim.wait_for_clients(2)
            done.set()

        nursery.start_soon(waiter)
        one = await RawClient.connected(sim.port, 1)
        await one.read_until(9)
        assert not done.is_set()
        two = await RawClient.connected(sim.port, 2)
        with trio.fail_after(2):
            await done.wait()
        await one.aclose()
        await two.aclose()
