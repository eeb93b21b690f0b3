"""Fault injection: drop, refuse (TWS restart), errors, reply delay, malformed frames, ticks."""

from __future__ import annotations

import random

import pytest
import trio
import trio.testing
from ibapi.contract import Contract
from ibapi.decoder import Decoder
from ibapi.utils import BadMessage

from ibkr_connector.simulator import MALFORMED_KINDS, SimulatorConfig, open_simulator
from ibkr_connector.simulator._faults import malformed_frame

from .ibclient import ClientFactory, RecordingWrapper
from .rawclient import RawClient


def spy() -> Contract:
    contract = Contract()
    contract.symbol, contract.secType = "SPY", "STK"
    contract.exchange, contract.currency = "SMART", "USD"
    return contract


async def test_drop_all_closes_every_connection_and_keeps_listening(
        ib_client: ClientFactory) -> None:
    async with open_simulator() as sim:
        first, second = ib_client(), ib_client()
        await first.connect(sim.port, 1)
        await second.connect(sim.port, 2)
        await sim.wait_for_clients(2)
        await first.call(first.client.reqMktData, 7, spy(), "", False, False, [])
        await first.wait_for("tickReqParams")
        await sim.drop_all()
        assert sim.connected_client_ids() == frozenset()
        assert sim.live_subscriptions() == frozenset()
        await first.wait_for("connectionClosed")
        await second.wait_for("connectionClosed")
        again = ib_client()
        await again.connect(sim.port, 1)
        assert await again.wait_for("nextValidId") == (1,)


async def test_refuse_for_refuses_connections_then_accepts_on_the_same_port(
        mock_clock: trio.testing.MockClock) -> None:
    async with open_simulator() as sim:
        port = sim.port
        before = await RawClient.connected(sim.port, 1)
        await before.read_until(4, 2158)  # the last startApi reply
        await sim.refuse_for(30)
        assert await before.read_all_until_closed() == []  # returns: the server closed it
        assert not sim.listening
        with pytest.raises(OSError):
            await trio.open_tcp_stream("127.0.0.1", port)
        mock_clock.jump(29)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(OSError):
            await trio.open_tcp_stream("127.0.0.1", port)
        mock_clock.jump(1)
        await trio.testing.wait_all_tasks_blocked()
        assert sim.listening and sim.port == port
        after = await RawClient.connected(port, 1)
        assert (await after.read_until(9))[2] == "1"
        await after.aclose()


async def test_overlapping_refusals_extend_the_outage(
        mock_clock: trio.testing.MockClock) -> None:
    async with open_simulator() as sim:
        await sim.refuse_for(10)
        mock_clock.jump(5)
        await sim.refuse_for(10)
        mock_clock.jump(6)
        await trio.testing.wait_all_tasks_blocked()
        assert not sim.listening
        mock_clock.jump(4)
        await trio.testing.wait_all_tasks_blocked()
        assert sim.listening


async def test_eclient_sees_502_while_refused(ib_client: ClientFactory) -> None:
    async with open_simulator() as sim:
        await sim.refuse_for(60)
        client = ib_client()
        await client.connect(sim.port, 1)
        (req_id, code, _, _) = await client.wait_for("error")
        assert (req_id, code) == (-1, 502)
        assert not client.client.isConnected()


async def test_send_error_reaches_all_clients_or_one(ib_client: ClientFactory) -> None:
    async with open_simulator() as sim:
        first, second = ib_client(), ib_client()
        await first.connect(sim.port, 1)
        await second.connect(sim.port, 2)
        await sim.wait_for_clients(2)
        await sim.send_error(1100)
        for client in (first, second):
            (req_id, code, text, _) = await client.wait_for("error", lambda a: a[1] == 1100)
            assert req_id == -1 and "lost" in text
        await sim.send_error(1101, "restored", req_id=-1, client_id=2)
        assert (await second.wait_for("error", lambda a: a[1] == 1101))[2] == "restored"
        await sim.send_error(2110, client_id=1)
        await first.wait_for("error", lambda a: a[1] == 2110)
        assert not any(name == "error" and args[1] == 1101 for name, args in first.drain())
        with pytest.raises(LookupError):
            await sim.send_error(1100, client_id=99)


async def test_reply_delay_holds_replies_back(autojump_clock: trio.testing.MockClock) -> None:
    async with open_simulator() as sim:
        client = await RawClient.connected(sim.port, 1)
        await client.read_until(9)
        sim.set_reply_delay(2.5)
        start = trio.current_time()
        await client.send(49, 1)
        await client.read_until(49)
        assert trio.current_time() - start >= 2.5
        sim.set_reply_delay(0)
        start = trio.current_time()
        await client.send(49, 1)
        await client.read_until(49)
        assert trio.current_time() == start
        with pytest.raises(ValueError):
            sim.set_reply_delay(-1)
        await client.aclose()


async def test_malformed_frames_are_written_as_defined() -> None:
    async with open_simulator(SimulatorConfig(seed=3)) as sim:
        client = await RawClient.connected(sim.port, 1)
        for _ in range(5):
            await client.read_frame()  # accounts, next id, three farm notices
        rng = random.Random(3)
        for kind in MALFORMED_KINDS:
            await sim.send_malformed(kind=kind)
            expected = malformed_frame(kind, rng)
            assert await client.read_frame() == expected[4:]
        with pytest.raises(ValueError):
            await sim.send_malformed(kind="nonsense")
        await client.aclose()


def _ibapi_reading(payload: bytes) -> str:
    """What EClient.run + Decoder make of one payload: 'ok', an error code, or 'raises'."""
    wrapper = RecordingWrapper()
    try:
        cut = payload.index(b"\0")
        msg_id = int(payload[:cut])
        Decoder(wrapper, 200).interpret(tuple(payload[cut + 1 :].split(b"\0")[:-1]), msg_id)
    except (ValueError, BadMessage, TypeError):
        return "raises"
    events = [args[1] for name, args in list(wrapper.events.queue) if name == "error"]
    return str(events[0]) if events else "ok"


@pytest.mark.parametrize(("kind", "reading"), [
    ("bad_msg_id", "raises"), ("unknown_msg_id", "505"), ("truncated", "raises"),
    ("garbage", "raises")])
def test_each_malformed_kind_is_rejected_by_ibapi(kind: str, reading: str) -> None:
    assert _ibapi_reading(malformed_frame(kind, random.Random(0))[4:]) == reading


async def test_ticks_are_pushed_to_subscribers_only(ib_client: ClientFactory) -> None:
    async with open_simulator() as sim:
        sim.stall_ticker("SPY")  # only the pushed ticks, not the market's own
        client = ib_client()
        await client.connect(sim.port, 1)
        await client.call(client.client.reqMktData, 7, spy(), "", False, False, [])
        await client.wait_for("tickReqParams")
        assert sim.live_subscriptions(1) == {7}
        await sim.push_tick_price(8, 1, 99.0)  # nobody subscribed: nothing is sent
        await sim.push_tick_price(7, 1, 101.5, size=3)
        assert await client.wait_for("tickPrice") == (7, 1, 101.5)
        assert not any(name == "tickPrice" and args[0] == 8 for name, args in client.drain())
        await client.call(client.client.cancelMktData, 7)
        await client.call(client.client.reqCurrentTime)  # answered after the cancel
        await client.wait_for("currentTime")
        assert sim.live_subscriptions() == frozenset()


async def test_flood_writes_every_tick_in_order() -> None:
    async with open_simulator() as sim:
        sim.stall_ticker("SPY")  # only the flood, not the market's own ticks
        client = await RawClient.connected(sim.port, 1)
        await client.read_until(9)
        await client.send(1, 11, 5, 0, "SPY", "STK", "", "", "", "", "SMART", "", "USD", "", "",
                          0, "", 0, 0, "")
        await client.read_until(81)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sim.flood_tick_prices, 5, 10_000)
            prices: list[float] = []
            while len(prices) < 10_000:
                fields = await client.read_fields()
                assert fields is not None
                if fields[0] == "1":
                    prices.append(float(fields[4]))
        assert prices[:3] == [100.0, 100.01, 100.02]
        assert prices[-1] == 100.99
        await client.aclose()
