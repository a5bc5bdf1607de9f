"""The outbound HTTP client for webhooks, and the rules that keep it from being a weapon.

A webhook URL is chosen by a staff member, but the request goes out from the server's
network, so it must not reach what only the server can reach. Every connection resolves the
host itself, refuses private, loopback, link-local and other non-global addresses, connects
to an address it checked, then checks the address the socket is actually connected to. The
name is never resolved a second time, so a DNS answer that changes between check and connect
(rebinding) changes nothing. ``KIBITZ_WEBHOOK_ALLOW_PRIVATE=true`` lifts the address rule, for
receivers on the same host or network (and the tests).

Redirects are not followed, proxies from the environment are ignored, every phase has a
timeout and the whole request a deadline, and at most :data:`MAX_BODY` bytes of the answer
are read: a receiver that is slow or answers with gigabytes costs one slot for seconds.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

MAX_BODY = 4096
DEADLINE = 15.0
TIMEOUT = httpx.Timeout(10.0, connect=5.0)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class RefusedAddress(httpcore.ConnectError):
    """The host resolves to (or connected to) an address webhooks may not reach."""


def allowed(address: IPAddress) -> bool:
    """Only globally routable addresses; an IPv4-mapped IPv6 address counts as its IPv4."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def _parse(host: str) -> IPAddress:
    return ipaddress.ip_address(host.split("%", 1)[0])


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend with the address rules applied at connect time."""

    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private
        self.inner = httpcore.AnyIOBackend()

    async def _addresses(self, host: str, port: int) -> list[str]:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
        return list(dict.fromkeys(str(info[4][0]) for info in infos))

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                addresses = await self._addresses(host, port)
        except (OSError, TimeoutError) as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        usable = [a for a in addresses if self.allow_private or allowed(_parse(a))]
        if not usable:
            raise RefusedAddress(
                f"{host} resolves to {', '.join(addresses)}: private, loopback or link-local "
                "addresses are refused (KIBITZ_WEBHOOK_ALLOW_PRIVATE)"
            )
        error: Exception | None = None
        for address in usable:
            try:
                stream = await self.inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except httpcore.ConnectError as exc:
                error = exc
                continue
            peer = stream.get_extra_info("server_addr")
            if not self.allow_private and (not peer or not allowed(_parse(str(peer[0])))):
                await stream.aclose()
                raise RefusedAddress(f"connected to {peer}, which webhooks may not reach")
            return stream
        assert error is not None
        raise error

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("webhooks do not use unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over :class:`GuardedBackend`.

    httpx has no public way to hand its connection pool a network backend, so the pool is
    built again here with the same arguments httpx uses, plus the backend.
    """

    def __init__(self, allow_private: bool) -> None:
        super().__init__(trust_env=False, retries=0)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=GuardedBackend(allow_private),
        )


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes  # at most MAX_BODY bytes of it
    location: str | None


class WebhookClient:
    """POSTs one signed message and reports what came back; never raises for the receiver's
    behaviour except as :class:`httpx.HTTPError` or :class:`TimeoutError`."""

    def __init__(self, allow_private: bool) -> None:
        self.http = httpx.AsyncClient(
            transport=GuardedTransport(allow_private),
            timeout=TIMEOUT,
            follow_redirects=False,
            trust_env=False,
            headers={"User-Agent": "kibitz-webhooks"},
        )

    async def post(self, url: str, headers: dict[str, str], body: bytes) -> Answer:
        async with asyncio.timeout(DEADLINE):
            async with self.http.stream("POST", url, headers=headers, content=body) as response:
                received = bytearray()
                # Raw bytes: a compressed answer is not inflated, so its size is what it costs.
                async for chunk in response.aiter_raw():
                    received += chunk
                    if len(received) >= MAX_BODY:
                        break
                return Answer(
                    response.status_code,
                    bytes(received[:MAX_BODY]),
                    response.headers.get("location"),
                )

    async def close(self) -> None:
        await self.http.aclose()
