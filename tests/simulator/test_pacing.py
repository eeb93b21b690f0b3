"""TWS's 50 messages/s rule: error 100 with the request's id, optional disconnect, +PACEAPI."""

from __future__ import annotations

import trio
import trio.testing
from ibapi.comm import make_field, make_initial_msg, make_msg

from ibkr_connector.simulator import Handshake, SimulatorConfig, open_simulator
from ibkr_connector.simulator._pacing import SlidingWindow, max_in_window
from ibkr_connector.simulator._session import ClientSession, Close, Send, SimulatorState

from .decoding import decode
from .ibclient import ClientFactory
from .rawclient import RawClient


def test_window_admits_the_limit_and_refuses_the_next() -> None:
    window = SlidingWindow(50)
    assert all(window.admit(0.0) for _ in range(50))
    assert not window.admit(0.999)


def test_window_slides_messages_older_than_a_second_out() -> None:
    window = SlidingWindow(2)
    assert window.admit(0.0) and window.admit(0.5)
    assert not window.admit(0.9)
    assert window.admit(1.5)  # 0.0 and 0.5 have left; 0.9 (refused, but counted) remains
    assert not window.admit(1.6)


def test_refused_messages_count_against_the_window() -> None:
    window = SlidingWindow(1)
    assert window.admit(0.0)
    assert not window.admit(0.6)
    assert not window.admit(1.2)  # 0.6 is still inside the window ending at 1.2


def test_schedule_delays_paced_messages_to_the_first_free_slot() -> None:
    window = SlidingWindow(2)
    assert [window.schedule(0.0) for _ in range(5)] == [0.0, 0.0, 1.0, 1.0, 2.0]
    assert window.schedule(0.1) == 2.0  # never before an earlier message


def test_max_in_window_uses_half_open_windows() -> None:
    assert max_in_window([]) == 0
    assert max_in_window([0.0, 0.5, 1.0, 1.2]) == 3
    assert max_in_window([0.0, 1.0, 2.0]) == 1
    assert max_in_window([0.0, 0.25, 0.5], window=0.3) == 2


def _request(msg_id: int, *fields: object) -> bytes:
    data: bytes = make_msg(msg_id, False, "".join(make_field(f) for f in fields))
    return data


def test_session_refuses_the_51st_message_in_a_second_with_its_request_id() -> None:
    state = SimulatorState(SimulatorConfig(), 0.0, 0.0)
    session = ClientSession(state)
    session.receive_data(b"API\0" + make_initial_msg("v100..226") + _request(71, 2, 1, "")
                         + b"".join(_request(2, 2, i) for i in range(1, 51)))
    answers = b""
    while (event := session.next_event()) is not None:
        for action in session.handle(event, 0.5):
            assert isinstance(action, Send)
            if not isinstance(event, Handshake):
                answers += action.data
    refused = [m for m in state.received if m.rejected_for_pacing]
    assert [m.fields for m in refused] == [("2", "50")]  # START_API was message 1
    errors = [args for name, args in decode(answers, 200) if name == "error" and args[1] == 100]
    assert [(req_id, code) for req_id, code, _, _ in errors] == [(50, 100)]
    assert "max=50" in errors[0][2]


def test_session_closes_after_a_violation_when_configured() -> None:
    state = SimulatorState(SimulatorConfig(max_messages_per_second=1,
                                           disconnect_on_pacing_violation=True), 0.0, 0.0)
    session = ClientSession(state)
    session.receive_data(b"API\0" + make_initial_msg("v100..226") + _request(71, 2, 1, "")
                         + _request(49, 1))
    actions = []
    while (event := session.next_event()) is not None:
        actions += session.handle(event, 0.0)
    assert actions[-1] == Close("pacing violation")


async def test_eclient_burst_gets_error_100_for_exactly_the_refused_requests(
        ib_client: ClientFactory) -> None:
    async with open_simulator() as sim:
        client = ib_client()
        await client.connect(sim.port, 1)
        await client.wait_for("nextValidId")

        def burst() -> None:
            for req_id in range(1, 56):
                client.client.cancelMktData(req_id)

        await client.call(burst)
        answered: dict[int, int] = {}
        while len(answered) < 55:
            req_id, code, _, _ = await client.wait_for("error", lambda a: a[1] in (100, 300))
            answered[req_id] = code
    refused = {int(m.fields[1]) for m in sim.received if m.rejected_for_pacing}
    assert refused, "the burst should have exceeded 50 messages/s"
    assert {r for r, code in answered.items() if code == 100} == refused
    assert all(code == 300 for r, code in answered.items() if r not in refused)
    window_ends = [m.time for m in sim.received if m.rejected_for_pacing]
    assert all(sum(1 for m in sim.received if t - 1.0 < m.time <= t) > 50 for t in window_ends)
    assert sim.max_messages_in_window(1.0, client_id=1) > 50


async def test_violation_can_close_the_connection() -> None:
    config = SimulatorConfig(max_messages_per_second=5, disconnect_on_pacing_violation=True)
    async with open_simulator(config) as sim:
        client = await RawClient.connected(sim.port, 1)
        for _ in range(5):
            await client.send(49, 1)
        frames = await client.read_all_until_closed()
        assert [f[2] for f in frames if f[0] == "4" and f[2] == "100"] == ["100"]
        assert sum(1 for f in frames if f[0] == "49") == 4
        assert sim.connected_client_ids() == frozenset()


async def test_paceapi_clients_are_slowed_down_not_refused(
        autojump_clock: trio.testing.MockClock) -> None:
    async with open_simulator(SimulatorConfig(max_messages_per_second=10)) as sim:
        client = await RawClient.open(sim.port)
        await client.handshake("v100..226 +PACEAPI")
        await client.start_api(1)
        start = trio.current_time()
        for _ in range(15):
            await client.send(49, 1)
        times = [int((await client.read_until(49))[2]) for _ in range(15)]
        assert trio.current_time() - start >= 1.0
        assert times[-1] - times[0] >= 1
        assert not any(m.rejected_for_pacing for m in sim.received)
        await client.aclose()
