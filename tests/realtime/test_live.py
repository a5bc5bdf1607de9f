"""The live channel in one process, through real sockets, on both transports and backends.

``asgi`` is the site's own ``/ws`` (Starlette on uvicorn); ``direct`` is the websockets
server on a live port of its own, in the same process and loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from db.models import now
from tests.helpers.live import post, reader, slow_reader, staff_token, until_readers, ws_base
from tests.helpers.posts import add_post
from tests.helpers.servers import Server, free_port, make_settings, serve

TRANSPORTS = ["asgi", "direct"]


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def live(database_url: str, tmp_path: Path) -> AsyncIterator[Server]:
    port = free_port()
    settings = make_settings(
        database_url, tmp_path, KIBITZ_LIVE_PORT=str(free_port()), KIBITZ_HTTP_PORT=str(port)
    )
    async with serve(settings, port=port) as running:
        yield running


async def test_two_readers_see_a_new_comment(live: Server, transport: str) -> None:
    """Both readers of a thread receive comment.created with the public shape, once."""
    uri = (await add_post(live, "hello")).uri
    base = ws_base(live, transport)
    async with reader(base, uri) as a, reader(base, uri) as b:
        assert a.hello == {"type": "hello", "uri": uri, "cursor": 0, "online": 1}
        assert b.hello["online"] == 2
        created = await post(live, uri, website="https://ada.example")
        for r in (a, b):
            event = await r.next()
            assert event["type"] == "comment.created" and event["seq"] == 1
            assert event["comment"] == {**created, "status": "approved"}
            assert set(event["comment"]) == {
                "id",
                "parent",
                "author",
                "website",
                "html",
                "created",
                "edited",
                "status",
                "staff",
                "up",
                "down",
                "pinned",
                "verified",
            }
            await r.silent(0.3)


async def test_a_reader_of_another_thread_sees_nothing(live: Server, transport: str) -> None:
    """Events stay on their thread's channel."""
    one, other = (await add_post(live, "one")).uri, (await add_post(live, "other")).uri
    base = ws_base(live, transport)
    async with reader(base, other) as bystander, reader(base, one) as reading:
        await post(live, one)
        assert (await reading.next())["type"] == "comment.created"
        await bystander.silent(0.5)


async def test_pending_reaches_no_reader_and_its_approval_reaches_all(
    database_url: str, tmp_path: Path, transport: str
) -> None:
    """A held comment sends nothing; approving it sends comment.approved to every reader."""
    settings = make_settings(
        database_url, tmp_path, KIBITZ_MODERATION="all", KIBITZ_LIVE_PORT=str(free_port())
    )
    async with serve(settings) as live:
        uri = (await add_post(live, "held")).uri
        token = await staff_token(live)
        base = ws_base(live, transport)
        async with reader(base, uri) as a, reader(base, uri) as b:
            held = await post(live, uri, text="secret words", email="who@example.org")
            assert held["status"] == "pending"
            await a.silent(0.5)
            await b.silent(0.1)
            async with live.client() as client:
                approved = await client.post(
                    f"/api/comments/{held['id']}/approve",
                    headers={"Authorization": f"Bearer {token}"},
                )
            assert approved.status_code == 200, approved.text
            for r in (a, b):
                event = await r.next()
                assert event["type"] == "comment.approved"
                assert event["comment"]["id"] == held["id"]
                assert "who@example.org" not in str(event)
        # Replay after the fact never shows what a held comment said before approval either.
        again = await post(live, uri, text="second secret", email="x@example.org")
        async with reader(base, uri, since=0) as late:
            replayed = await late.next()
            assert replayed["comment"]["id"] == held["id"]
            await late.silent(0.3)
            assert again["status"] == "pending"


async def test_deleted_comment_replays_as_placeholder_or_deletion(
    live: Server, transport: str
) -> None:
    """Replaying a since-deleted comment never shows its text; the deletion follows."""
    uri = (await add_post(live, "gone")).uri
    token = await staff_token(live)
    created = await post(live, uri, text="regrettable")
    async with live.client() as client:
        await client.post(
            f"/api/comments/{created['id']}/delete", headers={"Authorization": f"Bearer {token}"}
        )
    async with reader(ws_base(live, transport), uri, since=0) as r:
        first, second = await r.events(2)
    assert first["type"] == "comment.created" and first["comment"]["html"] == ""
    assert first["comment"]["status"] == "deleted" and first["comment"]["author"] == ""
    assert second == {"type": "comment.deleted", "seq": 2, "id": created["id"]}


async def test_resume_after_a_drop_gets_what_was_missed_in_order(
    live: Server, transport: str
) -> None:
    """Reconnecting with since=last seq replays the missed events, then goes live."""
    uri = (await add_post(live, "resume")).uri
    base = ws_base(live, transport)
    await post(live, uri)
    async with reader(base, uri) as first:
        cursor = first.hello["cursor"]
    assert cursor == 1
    missed = [await post(live, uri, text=f"while away {i}") for i in range(3)]
    async with reader(base, uri, since=cursor) as back:
        assert back.hello["cursor"] == 4
        replay = await back.events(3)
        assert [e["seq"] for e in replay] == [2, 3, 4]
        assert [e["comment"]["id"] for e in replay] == [c["id"] for c in missed]
        later = await post(live, uri)
        assert (await back.next())["comment"]["id"] == later["id"]
        await back.silent(0.3)


async def test_no_loss_or_doubles_when_posting_while_reconnecting(
    live: Server, transport: str
) -> None:
    """Comments posted continuously across many reconnects arrive exactly once, in order."""
    uri = (await add_post(live, "busy")).uri
    base = ws_base(live, transport)
    total = 40
    seen: list[int] = []

    async def writer() -> None:
        for i in range(total):
            await post(live, uri, text=f"comment {i}")

    task = asyncio.create_task(writer())
    last = 0
    deadline = time.monotonic() + 60
    while last < total and time.monotonic() < deadline:
        async with reader(base, uri, since=last) as r:
            assert r.hello["cursor"] >= last
            for _ in range(3):  # read a few, then drop the connection mid-stream
                try:
                    event = await r.next(timeout=2)
                except TimeoutError:
                    break
                seen.append(event["seq"])
                last = event["seq"]
    await task
    assert seen == list(range(1, total + 1))


async def test_reset_for_too_old_or_too_new_since(live: Server, transport: str) -> None:
    """since beyond the cursor or before the oldest kept event gets {"type": "reset"}."""
    uri = (await add_post(live, "old")).uri
    base = ws_base(live, transport)
    for _ in range(3):
        await post(live, uri)
    async with reader(base, uri, since=99) as ahead:
        assert await ahead.next() == {"type": "reset"}
        later = await post(live, uri)
        event = await ahead.next()
        assert event["seq"] == 4 and event["comment"]["id"] == later["id"]
    await live.state.comments.prune_events(now() + timedelta(days=1))  # keeps only seq 4
    async with reader(base, uri, since=1) as behind:
        assert await behind.next() == {"type": "reset"}
        await behind.silent(0.3)
    async with reader(base, uri, since=3) as just_kept:
        assert (await just_kept.next())["seq"] == 4


async def test_a_slow_reader_is_cut_off_without_delaying_the_rest(
    live: Server, transport: str
) -> None:
    """A reader that stops reading is closed with 4000; the others get every event."""
    uri = (await add_post(live, "slow")).uri
    base = ws_base(live, transport)
    plugin = live.state.live
    plugin.queue_limit = 4  # frames, ASGI
    if transport == "direct":
        assert plugin.server is not None
        plugin.server.write_limit = 16 * 1024
    async with slow_reader(base, uri) as stalled, reader(base, uri) as brisk:
        await until_readers(live, uri, 2)  # the stalled reader is registered too
        big = "https://e.co/ " * 700  # every URL becomes a link: ~40 KB of html per event
        sent, cut = 0, False
        started = time.monotonic()
        while not cut and sent < 600:
            await post(live, uri, text=big + str(sent))
            sent += 1
            event = await brisk.next()
            assert event["seq"] == sent
            cut = len(plugin.hub.rooms[uri].subscribers) == 1
        assert cut, "the stalled reader was never cut off"
        assert time.monotonic() - started < 60
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(stalled.recv(), 30)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4000
        after = await post(live, uri)
        assert (await brisk.next())["comment"]["id"] == after["id"]


async def test_a_foreign_origin_is_refused(live: Server, transport: str) -> None:
    """Cross-site websocket hijacking: a page from elsewhere cannot open the channel."""
    uri = (await add_post(live, "origin")).uri
    base = ws_base(live, transport)
    with pytest.raises(InvalidStatus) as refused:
        async with reader(base, uri, origin="https://evil.example"):
            pass
    assert refused.value.response.status_code == 403
    async with reader(base, uri, origin=live.settings.public_origin) as ok:
        assert ok.hello["type"] == "hello"
    async with reader(base, uri, origin=live.url) as ok:  # the page the browser came from
        assert ok.hello["type"] == "hello"


async def test_moderation_channel_is_staff_only_and_live(
    database_url: str, tmp_path: Path, transport: str
) -> None:
    """Staff get comment.pending (with e-mail and reason) and comment.moderated; others 401/403."""
    settings = make_settings(
        database_url, tmp_path, KIBITZ_MODERATION="all", KIBITZ_LIVE_PORT=str(free_port())
    )
    async with serve(settings) as live:
        uri = (await add_post(live, "queue")).uri
        token = await staff_token(live)
        base = ws_base(live, transport)
        with pytest.raises(InvalidStatus) as refused:
            async with connect(base + "/ws/moderation"):
                pass
        assert refused.value.response.status_code in (401, 403)
        auth = {"Authorization": f"Bearer {token}"}
        async with (
            connect(base + "/ws/moderation", additional_headers=auth) as staff,
            reader(base, uri) as public,
        ):
            held = await post(live, uri, email="held@example.org")
            pending = json.loads(await asyncio.wait_for(staff.recv(), 5))
            assert pending["type"] == "comment.pending"
            assert pending["comment"]["id"] == held["id"]
            assert pending["comment"]["email"] == "held@example.org"
            assert pending["comment"]["reason"]
            async with live.client() as client:
                await client.post(f"/api/comments/{held['id']}/spam", headers=auth)
            moderated = json.loads(await asyncio.wait_for(staff.recv(), 5))
            assert moderated == {
                "type": "comment.moderated",
                "id": held["id"],
                "status": "spam",
                "by": "mod",
            }
            await public.silent(0.3)


async def test_presence_counts_readers_and_is_sent_on_change(live: Server, transport: str) -> None:
    """Readers learn how many are reading now, as others come and go."""
    uri = (await add_post(live, "crowd")).uri
    base = ws_base(live, transport)
    async with reader(base, uri) as first:
        assert first.hello["online"] == 1
        async with reader(base, uri) as second:
            assert second.hello["online"] == 2
            await first.presence_reaches(2)
        await first.presence_reaches(1)


async def test_config_tells_clients_where_the_live_channel_is(live: Server) -> None:
    """/api/config names the live port when the channel is served apart."""
    async with live.client() as client:
        config = (await client.get("/api/config")).json()
    assert config["live_url"] == f"ws://127.0.0.1:{live.settings.live_port}/ws"


async def test_bad_requests_are_refused(live: Server, transport: str) -> None:
    """No uri: refused before the upgrade; an unknown path on the live port: 404."""
    base = ws_base(live, transport)
    from websockets.asyncio.client import connect

    with pytest.raises(InvalidStatus):
        async with connect(base + "/ws"):
            pass
    if transport == "direct":
        with pytest.raises(InvalidStatus) as missing:
            async with connect(base + "/elsewhere"):
                pass
        assert missing.value.response.status_code == 404


async def test_an_edit_reaches_readers_as_comment_updated(live: Server, transport: str) -> None:
    """A commenter's edit through the API is sent as comment.updated with the new html."""
    uri = (await add_post(live, "edit")).uri
    async with live.client() as client:
        created = await client.post(
            "/api/comments",
            json={"uri": uri, "author": "Ada", "email": "ada@example.org", "text": "first words"},
        )
        body = created.json()
        async with reader(ws_base(live, transport), uri, since=1) as r:
            edited = await client.patch(
                f"/api/comments/{body['comment']['id']}",
                json={"text": "better words"},
                headers={"Authorization": f"Bearer {body['edit_token']}"},
            )
            assert edited.status_code == 200, edited.text
            event = await r.next()
    assert event["type"] == "comment.updated" and event["seq"] == 2
    assert "better words" in event["comment"]["html"] and event["comment"]["edited"]


async def test_presence_is_sent_at_most_once_a_second(live: Server, transport: str) -> None:
    """Ten readers arriving at once cause a presence message or two, not ten."""
    uri = (await add_post(live, "rush")).uri
    base = ws_base(live, transport)
    async with reader(base, uri) as watcher:
        # Read (and set aside) whatever the watcher's own arrival caused: whether that is a
        # presence message or only the hello's count depends on timing, not on the rule.
        await watcher.silent(1.1)
        async with contextlib.AsyncExitStack() as stack:
            before = len(watcher.presence)
            started = time.monotonic()
            for _ in range(10):
                await stack.enter_async_context(reader(base, uri))
            await watcher.presence_reaches(11, timeout=5)
            # One message per started second at most (a loaded machine connects slowly).
            allowed = int(time.monotonic() - started) + 1
            sent = watcher.presence[before:]
            assert len(sent) <= allowed < 10, watcher.presence


async def test_a_since_that_is_not_a_number_gets_a_reset(live: Server, transport: str) -> None:
    """A garbled since is treated as unknown: reset, then live events."""
    uri = (await add_post(live, "garbled")).uri
    url = f"{ws_base(live, transport)}/ws?uri={uri}&since=abc"
    async with connect(url) as ws:
        assert json.loads(await ws.recv())["type"] == "hello"
        assert json.loads(await ws.recv()) == {"type": "reset"}
