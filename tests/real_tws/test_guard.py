"""The real-TWS suite's switch and live-account guard, proven without a TWS."""

from __future__ import annotations

import pytest

from real_tws.guard import (
    SKIP_REASON,
    LiveAccountRefused,
    Target,
    paper_account,
    parse_target,
    refuse_live,
)


def target(port: int = 7497, allow_live: bool = False) -> Target:
    return Target("127.0.0.1", port, 917, allow_live, 600.0)


def test_without_the_variable_there_is_no_target_and_the_reason_says_how_to_set_it() -> None:
    assert parse_target({}) is None
    assert parse_target({"IBKR_REAL_TWS": "  "}) is None
    assert "IBKR_REAL_TWS=host:port" in SKIP_REASON


@pytest.mark.parametrize(("text", "host", "port"), [
    ("127.0.0.1:7497", "127.0.0.1", 7497),
    ("tws.lan:4002", "tws.lan", 4002),
    ("[::1]:7497", "::1", 7497),
    (":4002", "127.0.0.1", 4002),
])
def test_the_target_is_parsed_from_host_and_port(text: str, host: str, port: int) -> None:
    parsed = parse_target({"IBKR_REAL_TWS": text, "IBKR_REAL_CLIENT_ID": "12",
                           "IBKR_REAL_TWS_RESTART_TIMEOUT": "90"})
    assert parsed == Target(host, port, 12, False, 90.0)


@pytest.mark.parametrize("text", ["7497", "localhost", "host:port", "h:0", "h:70000"])
def test_a_malformed_target_is_an_error_not_a_skip(text: str) -> None:
    with pytest.raises(ValueError, match="IBKR_REAL_TWS must be host:port"):
        parse_target({"IBKR_REAL_TWS": text})


@pytest.mark.parametrize("port", [7496, 4001])
def test_a_live_port_is_refused(port: int) -> None:
    with pytest.raises(LiveAccountRefused, match=f"port {port}.*IBKR_REAL_TWS_ALLOW_LIVE=yes"):
        refuse_live(target(port), ["DU1234567"])


@pytest.mark.parametrize("accounts", [["U1234567"], ["DU1234567", "U7654321"], []])
def test_a_live_or_unknown_account_is_refused(accounts: list[str]) -> None:
    with pytest.raises(LiveAccountRefused) as caught:
        refuse_live(target(), accounts)
    assert "1234567" not in str(caught.value) and "7654321" not in str(caught.value)


@pytest.mark.parametrize(("port", "accounts"), [
    (7497, ["DU1234567"]), (4002, ["DF1234567", "DU7654321"]), (7497, ["du1234567"]),
])
def test_a_paper_account_on_a_paper_port_is_allowed(port: int, accounts: list[str]) -> None:
    refuse_live(target(port), accounts)
    assert paper_account(target(port), accounts) == accounts[0]


def test_the_explicit_variable_allows_live() -> None:
    parsed = parse_target({"IBKR_REAL_TWS": "127.0.0.1:7496",
                           "IBKR_REAL_TWS_ALLOW_LIVE": "yes"})
    assert parsed is not None and parsed.allow_live
    refuse_live(parsed, ["U1234567"])
    assert parse_target({"IBKR_REAL_TWS": "h:7496",
                         "IBKR_REAL_TWS_ALLOW_LIVE": "true"}).allow_live is False  # type: ignore[union-attr]
