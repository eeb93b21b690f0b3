"""Server messages are read back by the unmodified ibapi Decoder at each version gate."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ibkr_connector.simulator import _messages as msg

from .decoding import decode

VERSIONS = [176, 187, 200]


@pytest.mark.parametrize("version", VERSIONS)
def test_error_round_trips_with_time_from_194(version: int) -> None:
    data = msg.error(version, 17, 354, "Requested market data is not subscribed.",
                     time_ms=1_700_000_000_123)
    expected_time = 1_700_000_000_123 if version >= 194 else 0
    assert decode(data, version) == [
        ("error", (17, 354, "Requested market data is not subscribed.", expected_time))]


@pytest.mark.parametrize("version", VERSIONS)
def test_error_text_survives_backslashes_and_non_ascii(version: int) -> None:
    text = r"C:\path naïve – ok"
    assert decode(msg.error(version, -1, 2110, text, time_ms=1), version)[0][1][2] == text


@pytest.mark.parametrize("version", VERSIONS)
def test_next_valid_id_managed_accounts_and_current_time(version: int) -> None:
    assert decode(msg.next_valid_id(1001), version) == [("nextValidId", (1001,))]
    assert decode(msg.managed_accounts(["DU1", "DU2"]), version) == [
        ("managedAccounts", ("DU1,DU2",))]
    assert decode(msg.current_time(1_700_000_000), version) == [
        ("currentTime", (1_700_000_000,))]


def test_current_time_in_millis_at_197_and_later() -> None:
    assert decode(msg.current_time_in_millis(1_700_000_000_123), 200) == [
        ("currentTimeInMillis", (1_700_000_000_123,))]


@pytest.mark.parametrize("version", VERSIONS)
def test_tick_price_of_a_bid_reports_price_and_size(version: int) -> None:
    calls = decode(msg.tick_price(5, 1, 101.25, size=300), version)
    assert calls == [("tickPrice", (5, 1, 101.25)), ("tickSize", (5, 0, Decimal(300)))]


@pytest.mark.parametrize("version", VERSIONS)
def test_tick_size_req_params_and_snapshot_end(version: int) -> None:
    assert decode(msg.tick_size(5, 8, 1200), version) == [("tickSize", (5, 8, Decimal(1200)))]
    assert decode(msg.tick_req_params(5, 0.01, "9c0001", 3), version) == [
        ("tickReqParams", (5, 0.01))]
    assert decode(msg.tick_snapshot_end(5), version) == [("tickSnapshotEnd", (5,))]


@pytest.mark.parametrize("code", [code for code, _ in msg.FARM_NOTICES])
def test_farm_notices_are_ids_minus_one(code: int) -> None:
    text = dict(msg.FARM_NOTICES)[code]
    assert decode(msg.error(200, -1, code, text, time_ms=5), 200) == [
        ("error", (-1, code, text, 5))]
