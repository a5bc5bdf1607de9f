"""Replies by e-mail: real messages as mail clients write them (tests/fixtures/mail) become
replies through ``kibitz mail-in``, on SQLite and PostgreSQL; bad ones are refused."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.auth.credentials import hash_password
from server.mail.inbound import take
from server.mail.replies import ReplyRefused, ReplyTokens, reply_address
from tests.helpers.mail import Mailbox, serve_with_mail, until
from tests.helpers.servers import ROOT, Server, make_settings, serve

FIXTURES = ROOT / "tests" / "fixtures" / "mail"
BASE = "reply@comments.example.com"
ALICE = "alice@example.org"

# What each client's message says once quotes and signature are cut.
EXPECTED = {
    "thunderbird.eml": "Schöne Grüße zurück, das stimmt völlig!\nÜber die Größe reden wir später.",
    "gmail.eml": "Thanks Bob, good point about the naïve approach.",
    "outlook.eml": "Dafür bin ich dankbar, Grüße aus Köln.",
    "apple_mail.eml": "Yes, exactly \u2013 see you at the Café.",
    "html_only.eml": "Ganz meiner Meinung \u2013 fünf Sterne.\n\nBis bald",
    "bottom_post.eml": "I think the answer goes below the quote, Bob.",
}


@pytest.fixture
async def site(database_url: str, tmp_path: Path) -> AsyncIterator[Server]:
    settings = make_settings(database_url, tmp_path, KIBITZ_MAIL_REPLY_ADDRESS=BASE)
    async with serve(settings) as running:
        await running.state.posts.add(
            slug="hello", title="Hello", author="Admin", body_html="<p>x</p>"
        )
        yield running


async def conversation(server: Server) -> tuple[dict[str, Any], dict[str, Any]]:
    """Alice comments, Bob replies: the reply notification to Alice is about Bob's reply."""
    async with server.client() as client:
        alice = await client.post(
            "/api/comments",
            json={"uri": "/posts/hello", "author": "Alice", "email": ALICE, "text": "First"},
        )
        bob = await client.post(
            "/api/comments",
            json={
                "uri": "/posts/hello",
                "author": "Bob",
                "email": "bob@example.org",
                "text": "Hi Alice, what do you think?",
                "parent": alice.json()["comment"]["id"],
            },
        )
    return alice.json()["comment"], bob.json()["comment"]


async def held_comment_mailed(
    server: Server, client: httpx.AsyncClient, mailbox: Mailbox
) -> tuple[dict[str, Any], str]:
    """Carol's comment, held: its answer (with the edit token) and the Reply-To of the mail
    the moderator got about it."""
    await server.state.posts.add(slug="hello", title="Hello", author="A", body_html="<p>x</p>")
    await server.state.staff.add("mod", "moderator", hash_password("pw"), email="mod@example.org")
    held = await client.post(
        "/api/comments",
        json={"uri": "/posts/hello", "author": "Carol", "email": "c@example.org", "text": "Hm"},
    )
    await until(lambda: len(mailbox.inbox.to("mod@example.org")) == 1)
    reply_to = mailbox.inbox.to("mod@example.org")[0]["Reply-To"]
    assert reply_to.startswith("reply+") and reply_to.endswith("@comments.example.com")
    return held.json(), reply_to


def message(name: str, to: str) -> bytes:
    return (FIXTURES / name).read_bytes().replace(b"REPLY_ADDRESS", to.encode())


def address_for(server: Server, comment_id: int, recipient: str = ALICE, **kw: Any) -> str:
    tokens = ReplyTokens(server.settings.secret_key, server.settings.mail_reply_days)
    return reply_address(BASE, tokens.token("r", comment_id, recipient, **kw))


async def comments_of(server: Server) -> list[dict[str, Any]]:
    async with server.client() as client:
        read = await client.get("/api/comments", params={"uri": "/posts/hello"})
    return read.json()["comments"]  # type: ignore[no-any-return]


async def test_each_mail_client_reply_becomes_a_reply(site: Server) -> None:
    """Thunderbird, Gmail, Outlook, Apple Mail (text and HTML-only), a reply below the
    quote: each becomes a visible reply to Bob under Alice's site name, quotes cut."""
    _, bob = await conversation(site)
    for name, expected in EXPECTED.items():
        comment = await take(site.state, message(name, address_for(site, bob["id"])))
        assert comment.text == expected, name
        assert comment.parent_id == bob["id"] and comment.status == "approved", name
        assert comment.author == "Alice" and comment.email == ALICE, name
    shown = [c for c in await comments_of(site) if c["parent"] == bob["id"]]
    assert len(shown) == len(EXPECTED)
    assert all("kibitz wrote" not in c["html"] and "Hi Alice" not in c["html"] for c in shown)


async def test_refused_messages_store_nothing(site: Server) -> None:
    """No token, a forged or expired one, another sender, only a quote, no From, garbage:
    each refused with a reason, and no comment is stored."""
    _, bob = await conversation(site)
    good = address_for(site, bob["id"])
    local, _, domain = good.partition("@")
    forged = local[:-3] + ("aaa" if not local.endswith("aaa") else "bbb") + "@" + domain
    other = address_for(site, bob["id"] + 100)
    expired = address_for(site, bob["id"], issued=time.time() - 15 * 86400)
    cases = {
        "no token": message("gmail.eml", BASE),
        "forged": message("gmail.eml", forged),
        "a comment that does not exist": message("gmail.eml", other),
        "expired": message("gmail.eml", expired),
        "wrong sender": message("gmail.eml", good).replace(
            b"<alice@example.org>", b"<mallory@example.org>"
        ),
        "only a quote": message("only_quote.eml", good),
        "out of office": message("outlook.eml", good).replace(
            b"MIME-Version: 1.0", b"Auto-Submitted: auto-replied\r\nMIME-Version: 1.0"
        ),
        "no From": b"To: " + good.encode() + b"\r\nSubject: x\r\n\r\nHello\r\n",
        "garbage": b"\x00\xff\xfe not a message at all",
    }
    before = len(await comments_of(site))
    for case, raw in cases.items():
        with pytest.raises(ReplyRefused) as refused:
            await take(site.state, raw)
        assert str(refused.value) and "\n" not in str(refused.value), case
    assert len(await comments_of(site)) == before


async def mail_in(server: Server, raw: bytes, tmp_path: Path) -> subprocess.CompletedProcess[bytes]:
    """Run ``kibitz mail-in`` in a thread, so this test's server keeps serving meanwhile."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "KIBITZ_DATABASE_URL": server.settings.database_url,
        "KIBITZ_DATA_DIR": str(tmp_path),
        "KIBITZ_SECRET_KEY": server.settings.secret_key,
        "KIBITZ_MODERATION": "none",
        "KIBITZ_POST_RATE": "off",
        "KIBITZ_MAIL_REPLY_ADDRESS": BASE,
    }
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "server", "mail-in"],
        input=raw,
        capture_output=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )


async def test_kibitz_mail_in_exit_codes(site: Server, tmp_path: Path) -> None:
    """As an MTA pipes it: exit 0 when taken (the reply shows on the page), 2 with one line
    on stderr when refused."""
    _, bob = await conversation(site)
    taken = await mail_in(site, message("outlook.eml", address_for(site, bob["id"])), tmp_path)
    assert taken.returncode == 0, taken.stderr.decode()
    assert any(
        c["html"] == "<p>Dafür bin ich dankbar, Grüße aus Köln.</p>"
        for c in await comments_of(site)
    )
    refused = await mail_in(site, message("outlook.eml", BASE), tmp_path)
    assert refused.returncode == 2
    lines = refused.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "refused" in lines[0]


async def test_staff_answer_to_held_mail_approves_and_replies(
    database_url: str, tmp_path: Path, mailbox: Mailbox
) -> None:
    """The held-comment mail carries a reply address; the moderator's answer approves the
    held comment and publishes the answer beneath it; a reader's address is not accepted."""
    async with serve_with_mail(
        database_url, tmp_path, mailbox, KIBITZ_MODERATION="all", KIBITZ_MAIL_REPLY_ADDRESS=BASE
    ) as (server, client):
        held, reply_to = await held_comment_mailed(server, client, mailbox)
        held_id = held["comment"]["id"]
        answer = message("gmail.eml", reply_to).replace(
            b"=?UTF-8?Q?Alice_M=C3=BCller?= <alice@example.org>", b"Mod <mod@example.org>"
        )
        forged = answer.replace(b"<mod@example.org>", b"<c@example.org>")
        with pytest.raises(ReplyRefused):
            await take(server.state, forged)
        comment = await take(server.state, answer)
        assert comment.staff_id is not None and comment.parent_id == held_id
        shown = await comments_of(server)
    assert [c["id"] for c in shown] == [held_id, comment.id]
    assert shown[1]["staff"] is True
    assert shown[1]["html"] == "<p>Thanks Bob, good point about the naïve approach.</p>"


async def test_reply_notification_carries_a_reply_address_that_works(
    database_url: str, tmp_path: Path, mailbox: Mailbox
) -> None:
    """A reply notification's Reply-To is a plus-address whose answer, from the subscriber,
    becomes a reply to the comment the mail was about."""
    async with serve_with_mail(database_url, tmp_path, mailbox, KIBITZ_MAIL_REPLY_ADDRESS=BASE) as (
        server,
        _,
    ):
        await server.state.posts.add(slug="hello", title="Hello", author="A", body_html="<p>x</p>")
        alice, _ = await conversation(server)  # Bob's reply comes before the subscription
        store = server.state.mail.store
        subscription = await store.subscribe(alice["id"], ALICE)
        await store.confirm(subscription.id)
        async with server.client() as client:
            carol = await client.post(
                "/api/comments",
                json={
                    "uri": "/posts/hello",
                    "author": "Carol",
                    "email": "carol@example.org",
                    "text": "Another reply",
                    "parent": alice["id"],
                },
            )
        carol_id = carol.json()["comment"]["id"]
        await until(lambda: len(mailbox.inbox.to(ALICE)) == 1)
        reply_to = mailbox.inbox.to(ALICE)[0]["Reply-To"]
        assert reply_to.startswith("reply+") and reply_to.endswith("@comments.example.com")
        comment = await take(server.state, message("thunderbird.eml", reply_to))
        assert comment.parent_id == carol_id and comment.author == "Alice"
        assert comment.status == "approved"


ADMIN_WITH_EMAIL = ("--role", "admin", "--email", "maren@example.org", "--password-stdin")


async def test_user_add_records_the_staff_email_for_held_mail(tmp_path: Path) -> None:
    """`kibitz user add NAME --email E --password-stdin` stores E, the address held-comment
    mail goes to and a staff answer must come from."""
    from db.database import connect
    from db.staff import StaffStore

    url = f"sqlite:///{tmp_path / 'k.db'}"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KIBITZ_DATA_DIR": str(tmp_path)}
    made = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "server", "user", "add", "maren", *ADMIN_WITH_EMAIL],
        input=b"a long password\n",
        capture_output=True,
        env={**env, "KIBITZ_DATABASE_URL": url},
        cwd=ROOT,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    db = await connect(url)
    try:
        members = await StaffStore(db).active()
    finally:
        await db.close()
    assert [(m.name, m.role, m.email) for m in members] == [("maren", "admin", "maren@example.org")]


async def test_staff_answer_approves_only_the_version_the_mail_showed(
    database_url: str, tmp_path: Path, mailbox: Mailbox
) -> None:
    """A held comment edited after its mail went out is not approved by an answer to that
    mail: refused with a reason, the comment stays held and no answer is posted."""
    async with serve_with_mail(
        database_url, tmp_path, mailbox, KIBITZ_MODERATION="all", KIBITZ_MAIL_REPLY_ADDRESS=BASE
    ) as (server, client):
        held, reply_to = await held_comment_mailed(server, client, mailbox)
        held_id = held["comment"]["id"]
        edited = await client.patch(
            f"/api/comments/{held_id}",
            headers={"Authorization": f"Bearer {held['edit_token']}"},
            json={"text": "something else entirely"},
        )
        assert edited.status_code == 200, edited.text
        answer = message("gmail.eml", reply_to).replace(
            b"=?UTF-8?Q?Alice_M=C3=BCller?= <alice@example.org>", b"Mod <mod@example.org>"
        )
        with pytest.raises(ReplyRefused, match="edited"):
            await take(server.state, answer)
        assert await comments_of(server) == []
        stored = await server.state.comments.get(held_id)
    assert stored is not None and stored.status == "pending"
