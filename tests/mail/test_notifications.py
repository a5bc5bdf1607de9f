"""E-mail notifications against a real SMTP server (aiosmtpd) and a real kibitz, both backends."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from db.mail import MailStore
from server.auth.credentials import hash_password
from server.discussion.moderation import Action
from server.discussion.validation import CommentInput
from tests.helpers.mail import (
    Mailbox,
    link_after,
    mail_settings,
    serve_with_mail,
    token_of,
    until,
)
from tests.helpers.posts import add_post
from tests.helpers.servers import Server, free_port, make_settings, serve

WRITER = "writer@example.org"


async def setup_site(server: Server) -> None:
    await add_post(server, "hello", "Hello", author="Admin", body_html="<p>x</p>")
    await server.state.staff.add("mod", "moderator", hash_password("pw"), email="mod@example.org")
    await server.state.staff.add("quiet", "moderator", hash_password("pw"))  # no e-mail


@contextlib.asynccontextmanager
async def site(
    database_url: str, tmp_path: Path, mailbox: Mailbox, *, smtp_up: bool = True, **overrides: str
) -> AsyncIterator[tuple[Server, httpx.AsyncClient]]:
    """:func:`serve_with_mail` with the post and the staff of :func:`setup_site`."""
    async with serve_with_mail(
        database_url, tmp_path, mailbox, smtp_up=smtp_up, **overrides
    ) as running:
        await setup_site(running[0])
        yield running


async def post(client: Any, **fields: Any) -> dict[str, Any]:
    body = {"uri": "/posts/hello", "author": "Writer", "email": WRITER, "text": "Hello", **fields}
    response = await client.post("/api/comments", json=body)
    assert response.status_code == 201, response.text
    return response.json()["comment"]  # type: ignore[no-any-return]


async def test_held_comment_mails_staff_a_one_time_approve_link(
    database_url: str, tmp_path: Path, mailbox: Mailbox
) -> None:
    """Staff get a mail per held comment; its link confirms by POST, works once, expires."""
    async with site(database_url, tmp_path, mailbox, KIBITZ_MODERATION="all") as (server, client):
        await server.state.staff.add(
            "second", "admin", hash_password("pw"), email="second@example.org"
        )
        held = await post(client, text="Please *hold* me")
        await until(lambda: len(mailbox.inbox.messages) >= 2)
        assert sorted(m["To"] for m in mailbox.inbox.messages) == [
            "mod@example.org",
            "second@example.org",
        ]  # every staff account with an address
        message = mailbox.inbox.to("mod@example.org")[0]
        assert message["From"] == "kibitz@comments.example.com"
        assert "moderation" in message["Subject"] and "Hello" in message["Subject"]
        assert "Please *hold* me" in message.get_content()
        approve, spam = link_after(message, "Approve:"), link_after(message, "Mark as spam:")
        assert token_of(approve) != token_of(spam)

        # A scanner's GET shows the confirmation page and changes nothing.
        for _ in range(2):
            page = await client.get(approve)
            assert page.status_code == 200
            assert 'method="post"' in page.text and token_of(approve) in page.text
            assert page.headers["cache-control"] == "no-store"
        assert (await server.state.comments.get(held["id"])).status == "pending"

        done = await client.post("/mail/moderate", data={"t": token_of(approve)})
        assert done.status_code == 200, done.text
        assert (await server.state.comments.get(held["id"])).status == "approved"
        thread = (await client.get("/api/comments", params={"uri": "/posts/hello"})).json()
        assert [c["id"] for c in thread["comments"]] == [held["id"]]

        # Used once: the same link and its sibling from the same mail are refused.
        again = await client.post("/mail/moderate", data={"t": token_of(approve)})
        sibling = await client.post("/mail/moderate", data={"t": token_of(spam)})
        reopened = await client.get(spam)
        assert again.status_code == sibling.status_code == reopened.status_code == 403
        assert (await server.state.comments.get(held["id"])).status == "approved"

        # Expired and forged links are refused and change nothing.
        other = await post(client, text="second held")
        staff_id = (await server.state.staff.by_name("mod"))[0].id
        links = server.state.mail.links
        expired = links.moderation_token(
            other["id"], staff_id, Action.APPROVE, links.new_nonce(), issued=time.time() - 8 * 86400
        )
        fresh = links.moderation_token(other["id"], staff_id, Action.SPAM, links.new_nonce())
        assert (await client.get("/mail/moderate", params={"t": expired})).status_code == 403
        assert (await client.post("/mail/moderate", data={"t": expired})).status_code == 403
        forged = fresh[:-3] + ("aaa" if not fresh.endswith("aaa") else "bbb")
        assert (await client.post("/mail/moderate", data={"t": forged})).status_code == 403
        assert (await server.state.comments.get(other["id"])).status == "pending"
        # The spam link works the same way.
        assert (await client.post("/mail/moderate", data={"t": fresh})).status_code == 200
        assert (await server.state.comments.get(other["id"])).status == "spam"

        await until(lambda: len(mailbox.inbox.messages) >= 4)
        assert {m["To"] for m in mailbox.inbox.messages} == {
            "mod@example.org",
            "second@example.org",
        }


async def test_reply_notifications_need_confirmation_and_stop_on_unsubscribe(
    database_url: str, tmp_path: Path, mailbox: Mailbox
) -> None:
    """Opt-in mails a confirmation; approved replies then mail the commenter; unsubscribe ends."""
    inbox = mailbox.inbox
    async with site(database_url, tmp_path, mailbox) as (server, client):
        store = MailStore(server.state.db)
        first = await post(
            client,
            author="Alice",
            email="alice@example.org",
            notify=True,
            text="Tell me about replies",
        )
        await until(lambda: len(inbox.to("alice@example.org")) == 1)
        confirmation = inbox.to("alice@example.org")[0]
        assert "Confirm" in confirmation["Subject"]
        confirm_url = link_after(confirmation, "press the button:")

        # Before confirming, a reply sends nothing to Alice.
        await post(
            client,
            author="Early",
            email="early@example.org",
            parent=first["id"],
            text="too early",
            notify=True,
        )
        await until(lambda: len(inbox.to("early@example.org")) == 1)  # later mail went out
        assert len(inbox.to("alice@example.org")) == 1

        page = await client.get(confirm_url)
        assert page.status_code == 200 and 'method="post"' in page.text
        assert not (await store.subscription_of(first["id"])).confirmed
        confirmed = await client.post("/mail/subscribe", data={"t": token_of(confirm_url)})
        assert confirmed.status_code == 200
        assert (await store.subscription_of(first["id"])).active

        # Held and spam replies never mail; approving one does; self-replies do not.
        discussion = server.state.discussion
        reply_input = CommentInput(
            author="Mallory",
            email="mallory@example.org",
            website=None,
            text="held reply words",
            parent=first["id"],
        )
        held = await discussion.submit("/posts/hello", reply_input, address=None, held="test: hold")
        spam = await discussion.submit("/posts/hello", reply_input, address=None, held="test: hold")
        staff = (await server.state.staff.by_name("mod"))[0]
        await discussion.moderate(spam.id, Action.SPAM, staff)
        await post(
            client,
            author="Alice",
            email="ALICE@example.org",
            parent=first["id"],
            text="answering myself",
        )
        await post(
            client,
            author="Bob",
            email="bob@example.org",
            parent=first["id"],
            text="Hi <b>Alice</b>\n\nsee https://example.net/x",
        )
        await until(lambda: len(inbox.to("alice@example.org")) == 2)
        notification = inbox.to("alice@example.org")[1]
        body = notification.get_content()
        assert "Bob" in notification["Subject"]
        assert "Hi Alice" in body and "see https://example.net/x\r\n" in body
        assert "bob@example.org" not in notification.as_string()
        assert "held reply words" not in body
        unsubscribe_url = link_after(notification, "To stop:")
        assert notification["List-Unsubscribe"].strip() == f"<{unsubscribe_url}>"
        assert notification["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

        await discussion.moderate(held.id, Action.APPROVE, staff)
        await until(lambda: len(inbox.to("alice@example.org")) == 3)
        assert "held reply words" in inbox.to("alice@example.org")[2].get_content()
        # Restoring an approved reply after a deletion does not mail twice.
        await discussion.moderate(held.id, Action.DELETE, staff)
        await discussion.moderate(held.id, Action.APPROVE, staff)

        # Unsubscribe: the page changes nothing, the one-click POST (RFC 8058) stops it.
        assert (await client.get(unsubscribe_url)).status_code == 200
        assert (await store.subscription_of(first["id"])).active
        stopped = await client.post(unsubscribe_url, data={"List-Unsubscribe": "One-Click"})
        assert stopped.status_code == 200
        assert not (await store.subscription_of(first["id"])).active
        await post(
            client,
            author="Bob",
            email="bob@example.org",
            parent=first["id"],
            text="after unsubscribing",
        )
        await post(client, author="Carol", email="carol@example.org", notify=True, text="c")
        await until(lambda: len(inbox.to("carol@example.org")) == 1)
        assert len(inbox.to("alice@example.org")) == 3
        to_alice = "".join(m.as_string() for m in inbox.to("alice@example.org"))
        for address in ("mallory@example.org", "bob@example.org", "early@example.org"):
            assert address not in to_alice


async def test_mail_waits_for_a_down_server_and_survives_a_restart(
    database_url: str, tmp_path: Path, mailbox: Mailbox
) -> None:
    """With SMTP down, mail stays queued (across a restart) and all goes out once it is up."""
    port = free_port()
    settings = mail_settings(database_url, tmp_path, mailbox, port, KIBITZ_MODERATION="all")
    async with serve(settings, port=port) as server, server.client() as client:
        server.state.mail.sender.backoff_base = 0.2
        await setup_site(server)
        for n in range(3):
            await post(client, text=f"held while down {n}")
        store = MailStore(server.state.db)

        async def attempts() -> int:
            async with server.state.db.read() as conn:
                return int(await conn.fetchval("SELECT SUM(attempts) FROM mail_queue"))

        deadline = time.monotonic() + 20
        while await attempts() < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert await attempts() >= 3, "the sender kept trying"
        status = await store.status()
        assert (status.waiting, status.sent) == (3, 0)
        health = (await client.get("/healthz")).json()
        assert health["status"] == "ok" and health["mail"]["waiting"] == 3

    await mailbox.start()
    async with serve(settings, port=port) as server:
        server.state.mail.sender.backoff_base = 0.2
        await until(lambda: len(mailbox.inbox.messages) == 3)
        texts = sorted(m.get_content() for m in mailbox.inbox.messages)
        assert all(f"held while down {n}" in texts[n] for n in range(3))
        await until_status(MailStore(server.state.db), waiting=0, sent=3)


async def until_status(store: MailStore, *, waiting: int, sent: int) -> None:
    deadline = time.monotonic() + 10
    while True:
        status = await store.status()
        if (status.waiting, status.sent) == (waiting, sent):
            return
        assert time.monotonic() < deadline, status
        await asyncio.sleep(0.05)


async def test_without_smtp_nothing_is_queued_and_no_checkbox(
    database_url: str, tmp_path: Path
) -> None:
    """No KIBITZ_SMTP_URL: no notify box, notify is accepted and ignored, nothing queued."""
    settings = make_settings(database_url, tmp_path, KIBITZ_MODERATION="all")
    async with serve(settings) as server, server.client() as client:
        await setup_site(server)
        page = await client.get("/posts/hello")
        config = (await client.get("/api/config")).json()
        await post(client, notify=True)
        async with server.state.db.read() as conn:
            queued = await conn.fetchval("SELECT COUNT(*) FROM mail_queue")
            subscribed = await conn.fetchval("SELECT COUNT(*) FROM reply_subscriptions")
    assert 'name="notify"' not in page.text and config["notify"] is False
    assert queued == 0 and subscribed == 0
    assert server.state.mail is None


async def test_form_checkbox_subscribes_and_is_kept_on_errors(
    database_url: str, tmp_path: Path, mailbox: Mailbox
) -> None:
    """The page's notify box subscribes through the form and stays ticked on a 422."""
    async with site(database_url, tmp_path, mailbox) as (_, client):
        page = await client.get("/posts/hello")
        assert 'name="notify"' in page.text
        assert (await client.get("/api/config")).json()["notify"] is True
        token = re.search(r'name="form_token" value="([^"]+)"', page.text).group(1)
        form = {
            "author": "Dora",
            "email": "dora@example.org",
            "text": "",
            "notify": "1",
            "form_token": token,
        }
        invalid = await client.post("/posts/hello/comments", data=form)
        assert invalid.status_code == 422
        assert re.search(r'name="notify"[^>]*checked', invalid.text)
        sent = await client.post("/posts/hello/comments", data={**form, "text": "hi"})
        assert sent.status_code == 303
        await until(lambda: len(mailbox.inbox.to("dora@example.org")) == 1)


async def test_sender_survives_lost_database_connections(
    pg_url: str, tmp_path: Path, mailbox: Mailbox
) -> None:
    """PostgreSQL dropping every connection of the sender is logged and survived: mail goes out."""
    import asyncpg

    from tests.helpers.servers import PG_URL

    async with site(pg_url, tmp_path, mailbox, smtp_up=False, KIBITZ_MODERATION="all") as (
        server,
        client,
    ):
        sender = server.state.mail.sender
        sender.backoff_base, sender.poll = 0.1, 0.1
        await post(client, text="queued before the connections die")
        name = pg_url.rsplit("/", 1)[1]
        admin = await asyncpg.connect(PG_URL)
        try:
            deadline = time.monotonic() + 1.5
            killed = 0
            while time.monotonic() < deadline:  # every connection of kibitz's pool, repeatedly
                killed += len(
                    await admin.fetch(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = $1 AND pid <> pg_backend_pid()",
                        name,
                    )
                )
                await asyncio.sleep(0.05)
        finally:
            await admin.close()
        assert killed > 0
        await mailbox.start()
        await until(lambda: len(mailbox.inbox.messages) == 1)
        task = next(t for t in server.state.background if t.get_name() == "kibitz-mail-sender")
        assert not task.done()
        await post(client, text="queued after")
        await until(lambda: len(mailbox.inbox.messages) == 2)


async def test_held_commenter_gets_the_confirmation_only_once_approved(
    database_url: str, tmp_path: Path, mailbox: Mailbox
) -> None:
    """Ticking notify on a held comment mails nothing to the commenter until staff approve it."""
    async with site(database_url, tmp_path, mailbox, KIBITZ_MODERATION="all") as (server, client):
        held = await post(client, author="Hal", email="hal@example.org", notify=True)
        spam = await post(client, author="Sam", email="victim@example.org", notify=True)
        await until(lambda: len(mailbox.inbox.to("mod@example.org")) == 2)
        staff = (await server.state.staff.by_name("mod"))[0]
        await server.state.discussion.moderate(spam["id"], Action.SPAM, staff)
        await server.state.discussion.moderate(held["id"], Action.APPROVE, staff)
        await until(lambda: len(mailbox.inbox.to("hal@example.org")) == 1)
        assert "Confirm" in mailbox.inbox.to("hal@example.org")[0]["Subject"]
        # The confirmation link expires like every link in a mail.
        links = server.state.mail.links
        store = MailStore(server.state.db)
        subscription = await store.subscription_of(held["id"])
        expired = links.confirm_token(subscription.id, issued=time.time() - 8 * 86400)
        refused = await client.post("/mail/subscribe", data={"t": expired})
        assert refused.status_code == 403
        assert not (await store.subscription_of(held["id"])).confirmed
    assert mailbox.inbox.to("victim@example.org") == []


async def test_disabled_staff_get_no_held_mail_and_their_links_stop_working(
    database_url: str, tmp_path: Path, mailbox: Mailbox
) -> None:
    """Once an account is disabled its approve link from an earlier mail is refused, and the
    next held comment mails only the active staff."""
    async with site(database_url, tmp_path, mailbox, KIBITZ_MODERATION="all") as (server, client):
        gone = await server.state.staff.add(
            "gone", "moderator", hash_password("pw"), email="gone@example.org"
        )
        held = await post(client, text="first held")
        await until(lambda: len(mailbox.inbox.to("gone@example.org")) == 1)
        approve = link_after(mailbox.inbox.to("gone@example.org")[0], "Approve:")
        assert (await server.state.staff.disable(gone.id)) is not None
        assert (
            await client.post("/mail/moderate", data={"t": token_of(approve)})
        ).status_code == 403
        assert (await server.state.comments.get(held["id"])).status == "pending"
        await post(client, text="second held")
        await until(lambda: len(mailbox.inbox.to("mod@example.org")) == 2)
        await asyncio.sleep(0.5)
        assert len(mailbox.inbox.to("gone@example.org")) == 1


async def test_a_mail_link_approves_only_the_version_the_mail_showed(
    database_url: str, tmp_path: Path, mailbox: Mailbox
) -> None:
    """A held comment edited after its mail went out: the mail's approve link answers 409
    (confirmation page and button alike) and the comment stays held."""
    async with site(database_url, tmp_path, mailbox, KIBITZ_MODERATION="all") as (server, client):
        answer = await client.post(
            "/api/comments",
            json={"uri": "/posts/hello", "author": "W", "email": WRITER, "text": "mild"},
        )
        held, edit_token = answer.json()["comment"], answer.json()["edit_token"]
        await until(lambda: len(mailbox.inbox.to("mod@example.org")) == 1)
        approve = link_after(mailbox.inbox.to("mod@example.org")[0], "Approve:")
        edited = await client.patch(
            f"/api/comments/{held['id']}",
            json={"text": "wild"},
            headers={"Authorization": f"Bearer {edit_token}"},
        )
        assert edited.status_code == 200
        assert (await client.get(approve)).status_code == 409
        assert (
            await client.post("/mail/moderate", data={"t": token_of(approve)})
        ).status_code == 409
        assert (await server.state.comments.get(held["id"])).status == "pending"


async def test_held_mail_still_queued_for_a_member_is_dropped_when_disabled(
    database_url: str, tmp_path: Path, mailbox: Mailbox
) -> None:
    """Mail queued for a member while SMTP is down is not sent once the member is disabled;
    the other staff member's mail still goes out when SMTP is back."""
    async with site(database_url, tmp_path, mailbox, smtp_up=False, KIBITZ_MODERATION="all") as (
        server,
        client,
    ):
        sender = server.state.mail.sender
        sender.backoff_base = 30.0  # after its first failure the sender rests until woken
        gone = await server.state.staff.add(
            "gone", "moderator", hash_password("pw"), email="gone@example.org"
        )
        await post(client, text="held while down")

        async def attempts() -> int:
            async with server.state.db.read() as conn:
                return int(await conn.fetchval("SELECT SUM(attempts) FROM mail_queue") or 0)

        deadline = time.monotonic() + 20
        while await attempts() < 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await until_status(MailStore(server.state.db), waiting=2, sent=0)
        await server.state.staff.disable(gone.id)
        await until_status(MailStore(server.state.db), waiting=1, sent=0)
        await mailbox.start()
        sender.wake()
        await until(lambda: len(mailbox.inbox.to("mod@example.org")) == 1)
        await asyncio.sleep(0.3)
        assert mailbox.inbox.to("gone@example.org") == []
