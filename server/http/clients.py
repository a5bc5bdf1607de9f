"""Who is asking: the client's address, believing X-Forwarded-For only from trusted proxies."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from starlette.requests import HTTPConnection


def _normalise(address: str) -> str:
    try:
        ip = ipaddress.ip_address(address.strip().strip("[]"))
    except ValueError:
        return address.strip()
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        return str(ip.ipv4_mapped)
    return str(ip)


def _trusted(address: str, proxies: Sequence[str]) -> bool:
    for proxy in proxies:
        try:
            if ipaddress.ip_address(address) in ipaddress.ip_network(proxy, strict=False):
                return True
        except ValueError:
            if address == proxy:
                return True
    return False


def client_address(conn: HTTPConnection, trusted_proxies: Sequence[str]) -> str | None:
    """The first address, walking X-Forwarded-For from the right, that is not a trusted proxy."""
    peer = _normalise(conn.client.host) if conn.client else None
    if peer is None or not trusted_proxies or not _trusted(peer, trusted_proxies):
        return peer
    forwarded = [
        _normalise(a) for a in conn.headers.get("x-forwarded-for", "").split(",") if a.strip()
    ]
    for address in reversed(forwarded):
        if not _trusted(address, trusted_proxies):
            return address
    return forwarded[0] if forwarded else peer


def address_key(address: str | None) -> str:
    """What limits count by: an IPv4 address, or the /64 an IPv6 address is in (one host
    usually holds a whole /64, so single addresses would be free to rotate)."""
    if not address:
        return "unknown"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)
