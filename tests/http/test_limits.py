"""The limits a public endpoint needs (docs/security.md, "Limits"): login throttling that
cannot lock the owner out, live connections per address, replay with since, the form
token, names on one line, and the HTTP port's header size and timeouts."""

from __future__ import annotations

import asyncio
import re
import time
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest
from itsdangerous import TimestampSigner
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.helpers.live import post, reader
from tests.helpers.posts import add_post
from tests.helpers.servers import free_port, make_settings, serve, start_process, stop_process
from tests.helpers.staff import PASSWORD, add_staff

ATTACKER, OWNER = "203.0.113.5", "198.51.100.7"


async def login(client: httpx.AsyncClient, address: str, password: str) -> int:
    response = await client.post(
        "/admin/login",
        data={"name": "owner", "password": password},
        headers={"X-Forwarded-For": address},
    )
    return response.status_code


async def test_wrong_passwords_from_one_address_cannot_lock_the_owner_out(
    database_url: str, tmp_path: Path
) -> None:
    """Five wrong passwords from one address throttle that address for that account (429,
    even with the right password), while the owner signs in from elsewhere at once; an IPv6
    attacker rotating addresses inside one /64 is one address."""
    settings = make_settings(database_url, tmp_path, KIBITZ_TRUSTED_PROXIES="127.0.0.1")
    async with serve(settings) as server, server.client() as client:
        await add_staff(server, "owner", role="admin")
        assert [await login(client, ATTACKER, "wrong") for _ in range(5)] == [401] * 5
        assert await login(client, ATTACKER, "wrong") == 429
        assert await login(client, ATTACKER, PASSWORD) == 429
        assert await login(client, OWNER, PASSWORD) == 303

        rotating = [await login(client, f"2001:db8::{n}", "wrong") for n in range(1, 7)]
        assert rotating == [401] * 5 + [429]
        assert await login(client, "2001:db8:1::1", PASSWORD) == 303  # another /64


async def test_a_name_with_a_line_break_is_refused(database_url: str, tmp_path: Path) -> None:
    """CR, LF and the Unicode line separators in `author` are a 422 naming the field (API
    and form alike), so a name can never forge lines in a mail."""
    async with serve(make_settings(database_url, tmp_path)) as server:
        uri = (await add_post(server, "hello")).uri
        async with server.client() as client:
            for name in ("Ada\r\nBcc: x@example.org", "Ada\nX", "Ada\u2028X", "Ada\x85X"):
                answer = await client.post(
                    "/api/comments",
                    json={"uri": uri, "author": name, "email": "a@example.org", "text": "hi"},
                )
                assert answer.status_code == 422
                assert "one line" in answer.json()["fields"]["author"]
            form = await client.post(
                "/posts/hello/comments",
                data={"author": "Ada\r\nX", "email": "a@example.org", "text": "hi"},
            )
            assert form.status_code == 422 and "one line" in form.text


async def test_the_form_token_is_bound_to_its_post_and_expires(
    database_url: str, tmp_path: Path
) -> None:
    """A form token of another post, or one from a page rendered over a day ago, holds the
    comment with that reason; the token of the post's own fresh page publishes it."""
    settings = make_settings(database_url, tmp_path, KIBITZ_DUPLICATE_WINDOW="0")
    async with serve(settings) as server, server.client() as client:
        await add_post(server, "one")
        await add_post(server, "two")
        page = await client.get("/posts/one")
        token_one = re.search(r'name="form_token" value="([^"]+)"', page.text).group(1)
        post_id = (await server.state.posts.by_slug("one")).id

        class DayOld(TimestampSigner):
            def get_timestamp(self) -> int:
                return int(time.time()) - 25 * 3600

        old = (
            DayOld(server.settings.secret_key, salt="kibitz.form")
            .sign(f"{post_id}|{time.time() - 25 * 3600:.3f}")
            .decode()
        )

        async def submit(slug: str, token: str, text: str) -> None:
            answer = await client.post(
                f"/posts/{slug}/comments",
                data={"author": "Ada", "email": "a@example.org", "text": text, "form_token": token},
            )
            assert answer.status_code == 303

        await submit("two", token_one, "wrong post")
        await submit("one", old, "stale page")
        await submit("one", token_one, "just right")
        held = await server.state.moderation.search("pending")
        reasons = {c.text: c.reason for c, _ in held}
        assert reasons == {
            "wrong post": "form token of another post",
            "stale page": "form sent from a page rendered more than a day ago",
        }


async def test_live_connections_per_address_are_capped_on_both_ports(
    database_url: str, tmp_path: Path
) -> None:
    """With a cap of 3, an address holding three live connections (site /ws and live port
    together) has a fourth refused on either port; closing one frees a place."""
    port, live_port = free_port(), free_port()
    settings = make_settings(
        database_url,
        tmp_path,
        KIBITZ_PUBLIC_URL=f"http://127.0.0.1:{port}",
        KIBITZ_LIVE_PORT=str(live_port),
        KIBITZ_LIVE_PER_ADDRESS="3",
    )
    async with serve(settings, port=port) as server:
        uri = (await add_post(server, "hello")).uri
        site, live = server.url.replace("http://", "ws://"), f"ws://127.0.0.1:{live_port}"
        async with AsyncExitStack() as stack:
            for base in (site, live, site):
                await stack.enter_async_context(reader(base, uri, origin=server.url))
            for base, status in ((site, 403), (live, 429)):
                with pytest.raises(InvalidStatus) as refused:
                    async with connect(f"{base}/ws?uri={uri}", origin=server.url):  # type: ignore[arg-type]
                        pass
                assert refused.value.response.status_code == status
        # All closed: the places are free again.
        for _ in range(20):
            if not server.state.live.admission.open:
                break
            await asyncio.sleep(0.05)
        async with reader(live, uri, origin=server.url) as again:
            assert again.hello["type"] == "hello"


async def test_replay_with_since_is_capped(database_url: str, tmp_path: Path) -> None:
    """With KIBITZ_REPLAY_LIMIT=3: resuming 2 events behind replays them; 5 behind gets
    reset instead of the history."""
    settings = make_settings(database_url, tmp_path, KIBITZ_REPLAY_LIMIT="3")
    async with serve(settings) as server:
        uri = (await add_post(server, "hello")).uri
        for n in range(5):
            await post(server, uri, text=f"comment {n}")
        base = server.url.replace("http://", "ws://")
        async with reader(base, uri, since=3, origin=server.url) as near:
            assert near.hello["cursor"] == 5
            assert [e["seq"] for e in await near.events(2)] == [4, 5]
        async with reader(base, uri, since=0, origin=server.url) as far:
            assert (await far.next())["type"] == "reset"
            await far.silent(0.3)


async def _raw(port: int, data: bytes, *, wait: float = 15) -> tuple[bytes, float]:
    """Send ``data``, then read until the server closes; what came back and how long."""
    started = time.monotonic()
    reader_, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    try:
        await writer.drain()
        answer = await asyncio.wait_for(reader_.read(), wait)
    except ConnectionResetError:  # the server stopped reading what it refused
        answer = b"reset"
    writer.close()
    return answer, time.monotonic() - started


async def _trickle(port: int) -> tuple[bytes, float]:
    """A head sent a few bytes every second, never finished (slowloris)."""
    started = time.monotonic()
    reader_, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")
    answer = b""

    async def drip() -> None:
        for n in range(30):
            writer.write(b"X-%d: y\r\n" % n)
            await writer.drain()
            await asyncio.sleep(1)

    dripping = asyncio.create_task(drip())
    try:
        answer = await asyncio.wait_for(reader_.read(), 20)
    finally:
        dripping.cancel()
        await asyncio.gather(dripping, return_exceptions=True)
        writer.close()
    return answer, time.monotonic() - started


async def test_http_port_limits_header_size_and_time(tmp_path: Path) -> None:
    """`kibitz serve`: a head over 16 KiB is 431 at once; a head trickled slowly is 408 after
    the 10 s header timeout; a connection that sends nothing is closed then too; an idle
    kept-alive connection is closed after 5 s."""
    proc = start_process(
        {
            "KIBITZ_DATA_DIR": str(tmp_path),
            "KIBITZ_SECRET_KEY": "limits-test",
        },
        "--live-port",
        "0",
    )
    try:
        big = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n"
        endless = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 300_000  # never ends
        huge, unfinished, silent, slow, kept = await asyncio.gather(
            _raw(proc.port, big),
            _raw(proc.port, endless),
            _raw(proc.port, b""),
            _trickle(proc.port),
            _raw(proc.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"),
        )
        assert huge[0].startswith(b"HTTP/1.1 431") and huge[1] < 3
        assert unfinished[0].startswith((b"HTTP/1.1 431", b"reset")) and unfinished[1] < 3
        assert silent[0] == b"" and 9 <= silent[1] < 14
        assert slow[0].startswith(b"HTTP/1.1 408") and 9 <= slow[1] < 14
        assert kept[0].startswith(b"HTTP/1.1 200") and 4 <= kept[1] < 8
        async with httpx.AsyncClient() as client:  # ordinary requests are untouched
            assert (await client.get(proc.url + "/healthz")).status_code == 200
    finally:
        stop_process(proc)
