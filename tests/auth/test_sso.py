"""Single sign-on from the embedding site: verified comments, refused tokens, SSO only."""

from __future__ import annotations

import io
import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from db.comments import CommentStore
from db.models import now
from db.screening import Question, screen
from server.discussion.shapes import staff_comment
from server.errors import ConfigError
from server.portability.export import write_export
from server.settings import load
from tests.helpers.imports import import_into, open_db
from tests.helpers.servers import make_settings, serve
from tests.helpers.sso import POST, SECRET, tampered, token, unsigned


async def site(server: Any) -> None:
    await server.state.posts.add(slug="p", title="P", author="A", body_html="<p>b</p>")


async def test_signed_in_comment_is_verified_and_named_by_the_token(
    database_url: str, tmp_path: Path
) -> None:
    """Author and e-mail come from the token (the body's are ignored), C says verified, and
    first-time moderation knows the reader by sub, whatever e-mail they use later."""
    settings = make_settings(
        database_url, tmp_path, KIBITZ_SSO_SECRET=SECRET, KIBITZ_MODERATION="first-time"
    )
    async with serve(settings) as server, server.client() as client:
        await site(server)
        first = await client.post(
            "/api/comments",
            json={**POST, "sso": token(), "author": "Mallory", "email": "mallory@evil.example"},
        )
        assert first.status_code == 201, first.text
        comment = first.json()["comment"]
        assert comment["author"] == "Ada Reader"
        assert comment["verified"] is True
        assert comment["status"] == "pending"  # a first-time commenter, known by sub
        queue = (await server.state.moderation.search("pending", limit=10))[0][0]
        assert staff_comment(queue)["sub"] == "user-42"  # staff may ban by it
        stored = await server.state.comments.get(comment["id"])
        assert stored.email == "ada@site.example"
        assert stored.sso_sub == "user-42"

        await server.state.comments.change(comment["id"], status="approved")
        again = await client.post(
            "/api/comments", json={**POST, "sso": token(email="ada.new@site.example")}
        )
        assert again.json()["comment"]["status"] == "approved"
        other = await client.post("/api/comments", json={**POST, "sso": token(sub="user-43")})
        assert other.json()["comment"]["status"] == "pending"

        plain = await client.post(
            "/api/comments", json={**POST, "author": "Bob", "email": "bob@example.org"}
        )
        assert plain.json()["comment"]["verified"] is False

        listed = await client.get("/api/comments", params={"uri": "/posts/p"})
        by_id = {c["id"]: c for c in listed.json()["comments"]}
        assert by_id[comment["id"]]["verified"] is True
        assert "ada@site.example" not in listed.text
        assert "user-42" not in listed.text
        page = (await client.get("/posts/p")).text
        assert page.count("comment__badge--verified") == 2  # Ada's two approved comments
        assert "ada@site.example" not in page and "user-42" not in page


BAD_TOKENS = {
    "expired": (lambda: token(exp=int(time.time()) - 3600), "expired"),
    "tampered": (tampered, "signature"),
    "wrong secret": (lambda: token(secret=SECRET[::-1]), "signature"),
    "unsigned": (unsigned, "HS256"),
    "HS512": (lambda: token(algorithm="HS512"), "HS256"),
    "no exp": (lambda: token(exp=None), "exp"),
    "no sub": (lambda: token(sub=None), "claim"),
    "malformed": (lambda: "not.a.jwt", "malformed"),
    "one part": (lambda: "garbage", "malformed"),
    "oversized": (lambda: token(name="A" * 5000), "too large"),
    "not text": (lambda: 12345, "malformed"),
    "empty name": (lambda: token(name="  "), "claims"),
    "future iat": (lambda: token(iat=int(time.time()) + 3600), "claims"),
    "bad email claim": (lambda: token(email="not an address"), "claims"),
    "long name claim": (lambda: token(name="N" * 101), "claims"),
}


@pytest.mark.parametrize("kind", BAD_TOKENS)
async def test_bad_tokens_are_refused_with_a_clear_401(
    kind: str, database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Expired, tampered, unsigned, exp-less, malformed, oversized or wrongly signed tokens are
    401 naming the problem; nothing is stored and the token never appears in the log."""
    caplog.set_level(logging.DEBUG)
    make, words = BAD_TOKENS[kind]
    bad = make()
    settings = make_settings(database_url, tmp_path, KIBITZ_SSO_SECRET=SECRET)
    async with serve(settings) as server, server.client() as client:
        await site(server)
        response = await client.post("/api/comments", json={**POST, "sso": bad})
        assert response.status_code == 401, response.text
        assert words.lower() in response.json()["error"].lower()
        listed = await client.get("/api/comments", params={"uri": "/posts/p"})
        assert listed.json()["comments"] == []
    if isinstance(bad, str):
        assert bad not in caplog.text


async def test_clocks_may_disagree_a_little_and_valid_tokens_are_never_logged(
    database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A token that expired seconds ago is taken (small leeway, for skewed clocks), one that
    expired a minute ago is not; an accepted token appears in no log line."""
    caplog.set_level(logging.DEBUG)
    settings = make_settings(database_url, tmp_path, KIBITZ_SSO_SECRET=SECRET)
    just = token(exp=int(time.time()) - 10)
    async with serve(settings) as server, server.client() as client:
        await site(server)
        taken = await client.post("/api/comments", json={**POST, "sso": just})
        assert taken.status_code == 201, taken.text
        late = await client.post(
            "/api/comments", json={**POST, "sso": token(exp=int(time.time()) - 60)}
        )
        assert late.status_code == 401
    assert just not in caplog.text
    assert just.split(".")[2] not in caplog.text


async def test_a_token_without_sso_configured_is_refused(database_url: str, tmp_path: Path) -> None:
    """A site without KIBITZ_SSO_SECRET does not quietly take a token's claims."""
    async with serve(make_settings(database_url, tmp_path)) as server, server.client() as client:
        await site(server)
        response = await client.post("/api/comments", json={**POST, "sso": token()})
        assert response.status_code == 401
        assert "not enabled" in response.json()["error"]


async def test_sso_only_refuses_anonymous_comments(database_url: str, tmp_path: Path) -> None:
    """With KIBITZ_SSO_ONLY a comment without a valid token is 401 (API and form), the config
    tells the widget where to sign in, and the post page links there instead of a form."""
    settings = make_settings(
        database_url,
        tmp_path,
        KIBITZ_SSO_SECRET=SECRET,
        KIBITZ_SSO_ONLY="true",
        KIBITZ_SSO_LOGIN_URL="https://site.example/login",
    )
    async with serve(settings) as server, server.client() as client:
        await site(server)
        anonymous = await client.post(
            "/api/comments", json={**POST, "author": "Bob", "email": "bob@example.org"}
        )
        assert anonymous.status_code == 401
        assert "signed in" in anonymous.json()["error"]
        signed = await client.post("/api/comments", json={**POST, "sso": token()})
        assert signed.status_code == 201
        config = (await client.get("/api/config")).json()
        assert config["sso"] is True
        assert config["sso_only"] is True
        assert config["sso_login_url"] == "https://site.example/login"
        page = await client.get("/posts/p")
        assert 'href="https://site.example/login"' in page.text
        assert "data-comment-form" not in page.text
        form = await client.post(
            "/posts/p/comments",
            data={"author": "Bob", "email": "bob@example.org", "text": "plain"},
        )
        assert form.status_code == 401


def test_weak_or_inconsistent_sso_settings_are_refused_at_start(tmp_path: Path) -> None:
    """A short secret, SSO_ONLY without a secret or a non-http login URL stop the start."""
    base = {"KIBITZ_DATA_DIR": str(tmp_path), "KIBITZ_SECRET_KEY": "x"}
    for env in (
        {"KIBITZ_SSO_SECRET": "short"},
        {"KIBITZ_SSO_ONLY": "true"},
        {"KIBITZ_SSO_SECRET": SECRET, "KIBITZ_SSO_LOGIN_URL": "javascript:alert(1)"},
    ):
        with pytest.raises(ConfigError):
            load({**base, **env})


async def test_export_and_import_keep_the_signed_in_user(database_url: str, tmp_path: Path) -> None:
    """`kibitz export` writes a signed-in reader's sub, and importing the file keeps it: their
    comments stay verified and moderation still knows them."""
    settings = make_settings(database_url, tmp_path, KIBITZ_SSO_SECRET=SECRET)
    async with serve(settings) as server, server.client() as client:
        await site(server)
        posted = await client.post("/api/comments", json={**POST, "sso": token()})
        assert posted.status_code == 201
        out = io.StringIO()
        await write_export(server.state.db, out)
    exported = json.loads(out.getvalue())
    [comment] = exported["threads"][0]["comments"]
    assert comment["sub"] == "user-42"
    path = tmp_path / "export.json"
    path.write_text(out.getvalue(), encoding="utf-8")
    target = f"sqlite:///{tmp_path / 'imported.db'}"
    await import_into(target, "kibitz", path)
    db = await open_db(target)
    try:
        store = CommentStore(db)
        asked = Question("/posts/p", "", None, None, known_sub="user-42")
        assert (await screen(db, asked, now())).known
        thread = await store.thread("/posts/p")
        assert thread is not None
        _, [again] = await store.visible_with_cursor(thread.id)
        assert again.verified and again.author == "Ada Reader"
    finally:
        await db.close()
