"""Which TWS hosts the runtime may open a socket to: loopback, and what the operator listed.

The TWS API is plain text on a TCP socket: no encryption, no authentication beyond TWS's
own trusted-IP list. A runtime pointed at another machine sends orders and account ids in
clear across the network, so that has to be a decision, not a typo: a non-loopback
``host`` is refused unless ``allow_remote_hosts`` names it (docs/security.md; the usual
answer is an SSH tunnel that keeps ``host`` on loopback).

Entries are IP addresses, CIDR networks (``10.0.0.0/24``, ``fd00::/8``) or host names.
A host name is matched by name only (case-insensitive), never resolved here: what a name
resolves to can change under the runtime's feet, and the check must not wait on DNS.
``localhost`` and every loopback address (127.0.0.0/8, ``::1``, their IPv4-mapped forms)
are always allowed.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final

from ._settings import Invalid, Kind
from .protocol.client import ConnectFailed

__all__ = ["HOSTS", "HostNotAllowed", "check_host", "host_allowed",
           "is_loopback"]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_HOST_NAME: Final = re.compile(
    r"^(?=.{1,253}\.?$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}"
    r"[a-z0-9])?)*\.?$")


class HostNotAllowed(ConnectFailed):
    """``host`` is not loopback and ``allow_remote_hosts`` does not list it. Raised before
    any socket is opened; retrying cannot help, so the connection is no longer wanted."""


def _entry(text: str) -> str:
    """One entry in its canonical form (an address, a network ``a.b.c.0/n``, a name in
    lower case)."""
    word = text.strip().lower()
    try:
        return str(ipaddress.ip_address(word))
    except ValueError:
        pass
    try:
        return str(ipaddress.ip_network(word, strict=False))
    except ValueError:
        pass
    if "/" in word or ":" in word or not _HOST_NAME.match(word) or word.replace(".", "").isdigit():
        raise Invalid(f"must list host names, IP addresses or CIDR networks, got {text!r}")
    return word.rstrip(".")


def _to_hosts(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        items: list[object] = [part for part in value.split(",") if part.strip()]
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        raise Invalid(f"must be a list of hosts or a comma-separated string, got {value!r}")
    entries = []
    for item in items:
        if not isinstance(item, str):
            raise Invalid(f"must list host names, IP addresses or CIDR networks, got {item!r}")
        entries.append(_entry(item))
    return tuple(dict.fromkeys(entries))


def _parse_hosts(text: str) -> object:
    return text


#: A list of hosts: ``"10.0.0.5, 192.168.1.0/24, tws.lan"`` in a variable, a TOML array or
#: such a string in the file, a list or tuple in code; stored as a tuple of canonical entries.
HOSTS: Final = Kind("a list of hosts", _to_hosts, _parse_hosts,
                    refuses=(5, True, ["10.0.0.5", 7], "10.0.0.0/33", "not a host!"),
                    refuses_text=("10.0.0.0/33", "tws.lan, -bad-", "999.1.2.3/8"))


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(host.strip().strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (127.0.0.0/8, ``::1``, ``::ffff:127.x``)."""
    if host.strip().lower().rstrip(".") == "localhost":
        return True
    address = _address(host)
    return address is not None and address.is_loopback


def host_allowed(host: str, allowed: tuple[str, ...]) -> bool:
    """Whether the runtime may connect to ``host`` given the ``allow_remote_hosts`` entries."""
    if is_loopback(host):
        return True
    address = _address(host)
    name = host.strip().lower().rstrip(".")
    for entry in allowed:
        try:
            network: Network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            if address is None and entry == name:
                return True
            continue
        if address is not None and address.version == network.version and address in network:
            return True
    return False


def check_host(host: str, allowed: tuple[str, ...]) -> None:
    """Raise `HostNotAllowed` (naming the setting) unless ``host`` may be connected to."""
    if not host_allowed(host, allowed):
        raise HostNotAllowed(
            f"refusing to connect to {host!r}: it is not loopback and allow_remote_hosts "
            f"(IBKR_ALLOW_REMOTE_HOSTS) does not list it; the TWS API is unencrypted, so "
            f"reach a remote TWS through an SSH tunnel on 127.0.0.1 (docs/security.md) or "
            f"list the host there")
