"""The outbound HTTP client for webhooks, and the rules that keep it from being a weapon.

A webhook URL is chosen by a staff member, but the request goes out from the server's
network, so it must not reach what only the server can reach. Every new connection resolves
the host itself (:class:`GuardedResolver`, no DNS cache), refuses private, loopback,
link-local and other non-global addresses, and the socket is made for the one address it
will connect to only after that address passed the same check (:func:`guarded_socket`, which
also covers a host given as an address). The name is never resolved a second time for a
connection, so a DNS answer that changes between check and connect (rebinding) changes
nothing. ``KIBITZ_WEBHOOK_ALLOW_PRIVATE=true`` lifts the address rule, for receivers on the
same host or network (and the tests).

Connections are kept alive and reused per endpoint (aiohttp's pool): a message costs one
request, not a resolve, a TCP handshake and a check. A message sent on a kept-alive
connection that the receiver closed just then is sent once more at once on another
connection (a new one is checked like any other), so the receiver's idle timeout costs
neither the message nor a backoff.

Redirects are not followed, proxies from the environment are ignored, answers are not
inflated, every phase has a timeout and the whole request a deadline, and at most
:data:`MAX_BODY` bytes of the answer are read: a receiver that is slow or answers with
gigabytes costs one slot for seconds.

This was httpx; its pool and anyio layers cost about 1.4 ms of CPU per request (2.6 ms with
16 in flight), more than the comment that caused the message (docs/performance.md).
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
from aiohappyeyeballs import AddrInfoType
from aiohttp.abc import AbstractResolver, ResolveResult

MAX_BODY = 4096
DEADLINE = 15.0
TIMEOUT = aiohttp.ClientTimeout(total=DEADLINE, connect=5.0, sock_read=10.0)
# Below the 5 s idle timeout of common servers (uvicorn, nginx's default is longer), so a
# connection is mostly dropped by us before the receiver drops it under us.
KEEPALIVE = 4.0

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
AddressRule = Callable[[IPAddress], bool]

# What a request raises for the receiver's behaviour or the network's.
SendError = (aiohttp.ClientError, OSError)


class RefusedAddress(OSError):
    """The host resolves to (or would connect to) an address webhooks may not reach."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.EACCES, message)


def allowed(address: IPAddress) -> bool:
    """Only globally routable addresses; an IPv4-mapped IPv6 address counts as its IPv4."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def anything(address: IPAddress) -> bool:
    """The rule under ``KIBITZ_WEBHOOK_ALLOW_PRIVATE=true``."""
    return True


def _parse(host: str) -> IPAddress:
    return ipaddress.ip_address(host.split("%", 1)[0])


class GuardedResolver(AbstractResolver):
    """Resolves with the system's resolver and keeps only the addresses the rule allows."""

    def __init__(self, rule: AddressRule) -> None:
        self.rule = rule

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP, family=family
        )
        found: list[ResolveResult] = []
        refused: list[str] = []
        for family_, _, proto, _, sockaddr in infos:
            address = str(sockaddr[0])
            if not self.rule(_parse(address)):
                refused.append(address)
                continue
            found.append(
                {
                    "hostname": host,
                    "host": address,
                    "port": int(sockaddr[1]),
                    "family": family_,
                    "proto": proto,
                    "flags": socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
                }
            )
        if not found:
            raise RefusedAddress(
                f"{host} resolves to {', '.join(dict.fromkeys(refused)) or 'nothing'}: "
                "private, loopback or link-local addresses are refused "
                "(KIBITZ_WEBHOOK_ALLOW_PRIVATE)"
            )
        return found

    async def close(self) -> None:
        return None


def guarded_socket(rule: AddressRule) -> aiohttp.SocketFactoryType:
    """aiohttp's socket factory: the last check, on the very address the socket connects to
    (a host written as an address never reaches the resolver)."""

    def make(addr_info: AddrInfoType) -> socket.socket:
        family, type_, proto, _, sockaddr = addr_info
        if not rule(_parse(str(sockaddr[0]))):
            raise RefusedAddress(
                f"{sockaddr[0]} is a private, loopback or link-local address: refused "
                "(KIBITZ_WEBHOOK_ALLOW_PRIVATE)"
            )
        return socket.socket(family=family, type=type_, proto=proto)

    return make


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes  # at most MAX_BODY bytes of it
    location: str | None


class WebhookClient:
    """POSTs one signed message and reports what came back; never raises for the receiver's
    behaviour except as one of :data:`SendError` or :class:`TimeoutError`.

    ``rule`` decides which addresses may be connected to; :func:`allowed` unless
    ``allow_private``. The session is made on first use, inside the running loop."""

    def __init__(self, allow_private: bool, rule: AddressRule | None = None) -> None:
        self.rule = rule or (anything if allow_private else allowed)
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                resolver=GuardedResolver(self.rule),
                socket_factory=guarded_socket(self.rule),
                use_dns_cache=False,  # every new connection resolves and checks again
                keepalive_timeout=KEEPALIVE,
                limit=100,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=TIMEOUT,
                trust_env=False,
                auto_decompress=False,  # raw bytes: a compressed answer costs its size
                headers={"User-Agent": "kibitz-webhooks"},
                skip_auto_headers=("Accept-Encoding",),
            )
        return self._session

    async def post(self, url: str, headers: dict[str, str], body: bytes) -> Answer:
        async with asyncio.timeout(DEADLINE):
            try:
                return await self._post(url, headers, body)
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
                if isinstance(exc, aiohttp.ClientConnectorError):
                    raise  # not a kept-alive connection: nothing to try again on
                # Most likely a kept-alive connection the receiver closed as we sent: once
                # more, on another connection (the closed one has left the pool; a new one
                # is checked like any). The receiver may get the message twice, which
                # at-least-once allows and the webhook-id lets it tell.
                return await self._post(url, headers, body)

    async def _post(self, url: str, headers: dict[str, str], body: bytes) -> Answer:
        session = self._open()
        async with session.post(url, headers=headers, data=body, allow_redirects=False) as r:
            received = bytearray()
            while len(received) < MAX_BODY:
                chunk = await r.content.read(MAX_BODY - len(received))
                if not chunk:
                    break
                received += chunk
            return Answer(r.status, bytes(received), r.headers.get("location"))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
