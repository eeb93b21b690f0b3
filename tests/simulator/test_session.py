"""Per-client TWS behaviour without sockets: replies, ids, subscriptions, unknown ids."""

from __future__ import annotations

from ibapi.comm import make_field, make_initial_msg, make_msg

from ibkr_connector.simulator import SimulatorConfig
from ibkr_connector.simulator._session import ClientSession, Close, Send, SimulatorState

from .decoding import Call, decode

WALL = 1_700_000_000.0


def request(msg_id: int, *fields: object) -> bytes:
    data: bytes = make_msg(msg_id, False, "".join(make_field(f) for f in fields))
    return data


def mkt_data(req_id: int, snapshot: bool = False) -> bytes:
    return request(1, 11, req_id, 0, "SPY", "STK", "", "", "", "", "SMART", "", "USD", "", "",
                   0, "", int(snapshot), 0, "")


class Harness:
    """One session of a fresh simulated TWS; answers decoded by ibapi's Decoder."""

    def __init__(self, state: SimulatorState | None = None, **config: object) -> None:
        self.state = state or SimulatorState(SimulatorConfig(**config), 0.0, WALL)  # type: ignore[arg-type]
        self.session = ClientSession(self.state)
        self.closed: list[str] = []

    def raw(self, data: bytes, now: float = 0.0) -> bytes:
        """Everything the session writes in answer to ``data``."""
        self.session.receive_data(data)
        out = b""
        while (event := self.session.next_event()) is not None:
            for action in self.session.handle(event, now):
                if isinstance(action, Close):
                    self.closed.append(action.reason)
                else:
                    assert isinstance(action, Send)
                    out += action.data
        return out

    def feed(self, data: bytes, now: float = 0.0) -> list[Call]:
        return decode(self.raw(data, now), self.session.server_version)

    def connect(self, client_id: int = 1, versions: str = "v100..226") -> list[Call]:
        self.raw(b"API\0" + make_initial_msg(versions))
        return self.feed(request(71, 2, client_id, ""))


def test_start_api_answers_accounts_next_id_and_farm_notices() -> None:
    calls = Harness(accounts=("DU1", "DU2"), first_order_id=100).connect()
    assert calls == [
        ("managedAccounts", ("DU1,DU2",)),
        ("nextValidId", (100,)),
        ("error", (-1, 2104, "Market data farm connection is OK:usfarm", WALL * 1000)),
        ("error", (-1, 2106, "HMDS data farm connection is OK:ushmds", WALL * 1000)),
        ("error", (-1, 2158, "Sec-def data farm connection is OK:secdefnj", WALL * 1000)),
    ]


def test_handshake_reply_carries_version_and_simulated_time() -> None:
    reply = Harness(server_version=187).raw(b"API\0" + make_initial_msg("v100..226"))
    assert reply[4:] == b"187\x0020231114 22:13:20 UTC\x00"


def test_current_time_follows_trio_time_from_the_start_time() -> None:
    harness = Harness()
    harness.connect()
    assert harness.feed(request(49, 1), now=12.5) == [("currentTime", (int(WALL) + 12,))]
    assert harness.feed(request(105), now=12.5) == [
        ("currentTimeInMillis", (int(WALL * 1000) + 12_500,))]


def test_current_time_in_millis_is_unknown_below_197() -> None:
    harness = Harness(server_version=187)
    harness.connect()
    ((name, args),) = harness.feed(request(105))
    assert (name, args[:2]) == ("error", (-1, 320))


def test_req_ids_answers_the_next_order_id_after_placed_orders() -> None:
    harness = Harness(first_order_id=5)
    harness.connect()
    assert harness.feed(request(8, 1, 1)) == [("nextValidId", (5,))]
    harness.feed(request(3, 9, 0, "SPY"))
    assert harness.feed(request(8, 1, 1)) == [("nextValidId", (10,))]


def test_next_order_id_survives_a_reconnect_of_the_same_client_id() -> None:
    first = Harness()
    first.connect(client_id=4)
    first.feed(request(3, 41, 0, "SPY"))
    first.session.close()
    second = Harness(state=first.state)
    assert ("nextValidId", (42,)) in second.connect(client_id=4)


def test_unknown_message_id_is_answered_320_and_the_session_goes_on() -> None:
    harness = Harness()
    harness.connect()
    ((name, (req_id, code, text, _)),) = harness.feed(request(999, 1))
    assert (name, req_id, code) == ("error", -1, 320)
    assert "999" in text
    assert harness.feed(request(49, 1)) == [("currentTime", (int(WALL),))]
    assert harness.closed == []


def test_duplicate_client_id_gets_326_then_close() -> None:
    first = Harness()
    first.connect(client_id=9)
    second = Harness(state=first.state)
    ((name, (req_id, code, _, _)),) = second.connect(client_id=9)
    assert (name, req_id, code) == ("error", -1, 326)
    assert second.closed == ["client id in use"]
    assert first.state.sessions[9] is first.session


def test_market_data_subscriptions_are_live_until_cancelled() -> None:
    harness = Harness()
    harness.connect(client_id=2)
    assert harness.feed(mkt_data(11))[0] == ("tickReqParams", (11, 0.01))
    harness.feed(mkt_data(12))
    assert harness.state.live_subscriptions() == {11, 12}
    assert harness.feed(request(2, 2, 11)) == []
    assert harness.state.live_subscriptions(2) == {12}


def test_snapshot_is_answered_and_not_kept() -> None:
    harness = Harness()
    harness.connect()
    calls = harness.feed(mkt_data(11, snapshot=True))
    assert (calls[0], calls[-1]) == (("tickReqParams", (11, 0.01)), ("tickSnapshotEnd", (11,)))
    assert harness.state.live_subscriptions() == frozenset()


def test_duplicate_ticker_and_too_many_lines_are_refused() -> None:
    harness = Harness(max_market_data_lines=1)
    harness.connect()
    harness.feed(mkt_data(11))
    ((_, (req_id, code, _, _)),) = harness.feed(mkt_data(11))
    assert (req_id, code) == (11, 322)
    ((_, (req_id, code, _, _)),) = harness.feed(mkt_data(12))
    assert (req_id, code) == (12, 101)


def test_cancelling_an_unknown_ticker_is_error_300() -> None:
    harness = Harness()
    harness.connect()
    ((_, (req_id, code, text, _)),) = harness.feed(request(2, 2, 77))
    assert (req_id, code) == (77, 300)
    assert text.endswith("77")


def test_unreadable_request_fields_are_answered_320_with_the_request_id() -> None:
    harness = Harness()
    harness.connect()
    ((_, (req_id, code, _, _)),) = harness.feed(request(1, 11, 13, 0, "SPY"))
    assert (req_id, code) == (13, 320)
    assert harness.closed == []


def test_closing_a_session_frees_its_client_id_and_subscriptions() -> None:
    harness = Harness()
    harness.connect(client_id=3)
    harness.feed(mkt_data(11))
    harness.session.close()
    assert harness.state.sessions == {}
    assert harness.state.live_subscriptions() == frozenset()


def test_every_message_after_the_handshake_is_recorded() -> None:
    harness = Harness()
    harness.connect(client_id=6)
    harness.feed(request(49, 1), now=0.5)
    assert [(m.time, m.client_id, m.msg_id, m.fields, m.rejected_for_pacing)
            for m in harness.state.received] == [
        (0.0, 6, 71, ("2", "6", ""), False), (0.5, 6, 49, ("1",), False)]
