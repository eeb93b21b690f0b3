"""The opt-in switch of the real-TWS suite, and the guard that keeps it off live accounts.

The suite runs only when ``IBKR_REAL_TWS=host:port`` names a TWS or IB Gateway; every test
is skipped with that reason otherwise. Before any order is placed the guard checks both
the port (7496 and 4001 are the live defaults of TWS and IB Gateway) and every account TWS
reports (paper accounts start ``DU`` or ``DF``): either one looking live refuses the test,
unless ``IBKR_REAL_TWS_ALLOW_LIVE=yes``. The checks are plain functions of their inputs so
the unit tests (tests/real_tws/test_guard.py) can prove them without a TWS.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import attrs

#: The variables the suite reads (none is a setting; config.NOT_SETTINGS lists them).
TARGET = "IBKR_REAL_TWS"
CLIENT_ID = "IBKR_REAL_CLIENT_ID"
ALLOW_LIVE = "IBKR_REAL_TWS_ALLOW_LIVE"
RESTART_TIMEOUT = "IBKR_REAL_TWS_RESTART_TIMEOUT"

SKIP_REASON = f"set {TARGET}=host:port (a paper TWS or IB Gateway) to run against a real TWS"
LIVE_PORTS = frozenset({7496, 4001})
PAPER_PREFIXES = ("DU", "DF")
DEFAULT_CLIENT_ID = 917
DEFAULT_RESTART_TIMEOUT = 600.0


class LiveAccountRefused(Exception):
    """The suite would trade on what looks like a live account or a live port."""


@attrs.frozen
class Target:
    host: str
    port: int
    client_id: int
    allow_live: bool
    restart_timeout: float


def parse_target(environ: Mapping[str, str]) -> Target | None:
    """The TWS named by ``IBKR_REAL_TWS`` (``host:port``, ``[::1]:7497``, or ``:7497`` for
    loopback), or None when the variable is unset or empty. A malformed value is a
    ValueError: a typo must not silently skip the suite the user meant to run."""
    text = environ.get(TARGET, "").strip()
    if not text:
        return None
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"{TARGET} must be host:port, e.g. 127.0.0.1:7497, got {text!r}")
    host = host.strip("[]") or "127.0.0.1"
    client_id = environ.get(CLIENT_ID, "").strip() or str(DEFAULT_CLIENT_ID)
    if not client_id.isdigit():
        raise ValueError(f"{CLIENT_ID} must be a non-negative integer, got {client_id!r}")
    timeout = environ.get(RESTART_TIMEOUT, "").strip() or str(DEFAULT_RESTART_TIMEOUT)
    try:
        restart_timeout = float(timeout)
    except ValueError:
        raise ValueError(f"{RESTART_TIMEOUT} must be seconds, got {timeout!r}") from None
    return Target(host, int(port_text), int(client_id),
                  environ.get(ALLOW_LIVE, "").strip().lower() == "yes", restart_timeout)


def is_paper_account(account: str) -> bool:
    return account.strip().upper().startswith(PAPER_PREFIXES)


def refuse_live(target: Target, accounts: Iterable[str]) -> None:
    """Raise `LiveAccountRefused` unless the port is not a live default and every account
    is a paper one, or the user said ``IBKR_REAL_TWS_ALLOW_LIVE=yes``. The message never
    quotes an account id whole."""
    if target.allow_live:
        return
    if target.port in LIVE_PORTS:
        raise LiveAccountRefused(
            f"port {target.port} is a live-trading default (TWS 7496, IB Gateway 4001); use "
            f"a paper session (7497 / 4002) or set {ALLOW_LIVE}=yes")
    accounts = list(accounts)
    if not accounts:
        raise LiveAccountRefused("TWS reported no account: cannot tell paper from live")
    live = [a for a in accounts if not is_paper_account(a)]
    if live:
        shown = ", ".join(a[:2] + "..." for a in live)
        raise LiveAccountRefused(
            f"account(s) {shown} are not paper accounts (DU.../DF...); refusing to place "
            f"orders unless {ALLOW_LIVE}=yes")


def paper_account(target: Target, accounts: Iterable[str]) -> str:
    """The account the order tests use: the first paper one (after `refuse_live`)."""
    accounts = list(accounts)
    refuse_live(target, accounts)
    paper = [a for a in accounts if is_paper_account(a)]
    return (paper or accounts)[0]
