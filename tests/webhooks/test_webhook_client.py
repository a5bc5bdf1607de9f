"""The webhook client on its own, against real sockets: kept-alive connections, and the
address rule on every new connection (the DNS-rebinding check)."""

from __future__ import annotations

import pytest

from server.webhooks.client import IPAddress, SendError, WebhookClient
from tests.helpers.webhooks import ClosingReceiver

HEADERS = {"content-type": "application/json"}


async def test_a_closed_kept_alive_connection_is_opened_again_at_once() -> None:
    """The receiver closes the kept-alive connection as the second message arrives on it:
    the client sends that message again on a new connection, within the same call, so the
    worker never sees a failure (and never waits out a backoff)."""
    receiver = ClosingReceiver()
    client = WebhookClient(allow_private=True)
    try:
        async with receiver.running():
            answers = [await client.post(receiver.url, HEADERS, b'{"n":%d}' % n) for n in (1, 2)]
    finally:
        await client.close()
    assert [a.status for a in answers] == [200, 200]
    assert receiver.answered == [b'{"n":1}', b'{"n":2}']
    assert receiver.dropped == 1 and receiver.connections == 2


async def test_a_new_connection_is_checked_again_after_a_kept_alive_one_closes() -> None:
    """DNS rebinding: a name that resolved to an allowed address for the first connection
    and resolves to a forbidden one later is refused on the next new connection; nothing
    is cached from the first. The rule stands in for the name's changing answer (the
    machine's resolver cannot be made to rebind): allowed at first, then not. The first
    message goes through; the receiver closes that connection as the second arrives; the
    new connection for the second is refused before it is made."""
    receiver = ClosingReceiver()
    verdict = {"allowed": True}

    def rule(address: IPAddress) -> bool:
        return verdict["allowed"]

    client = WebhookClient(allow_private=False, rule=rule)
    url = f"http://localhost:{receiver.port}/hook"
    try:
        async with receiver.running():
            first = await client.post(url, HEADERS, b'{"n":1}')
            verdict["allowed"] = False
            with pytest.raises(SendError) as refused:
                await client.post(url, HEADERS, b'{"n":2}')
    finally:
        await client.close()
    assert first.status == 200
    assert "refused" in str(refused.value), refused.value
    assert receiver.answered == [b'{"n":1}'] and receiver.connections == 1


async def test_an_address_written_as_the_host_is_refused_at_connect_time() -> None:
    """A host given as a loopback address never reaches the resolver; the socket factory
    refuses it before connecting (the URL check refuses it earlier still, but the client
    does not rely on that)."""
    receiver = ClosingReceiver()
    client = WebhookClient(allow_private=False)
    try:
        async with receiver.running():
            with pytest.raises(SendError) as refused:
                await client.post(receiver.url, HEADERS, b"{}")
    finally:
        await client.close()
    assert "refused" in str(refused.value), refused.value
    assert receiver.connections == 0
