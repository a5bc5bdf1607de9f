"""`kibitz export` and `kibitz import kibitz`: a complete, versioned, round-tripping document."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from server.portability.export import write_export
from tests.helpers import sso
from tests.helpers.imports import corpus, import_into, open_db, table_counts
from tests.helpers.posts import add_post, store_comment
from tests.helpers.servers import ROOT, drop_pg_database, make_settings, new_pg_database, serve
from tests.helpers.threads import URI, seed
from tests.helpers.view import by_class, parse, text_of


@pytest.fixture
async def second_url(database_url: str, tmp_path: Path) -> AsyncIterator[str]:
    """Another empty database on the same backend as ``database_url``."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'second.db'}"
        return
    url = await new_pg_database()
    try:
        yield url
    finally:
        await drop_pg_database(url)


async def export_text(url: str) -> str:
    db = await open_db(url)
    try:
        out = io.StringIO()
        await write_export(db, out)
        return out.getvalue()
    finally:
        await db.close()


async def _fill(url: str, tmp_path: Path) -> None:
    """Imports from three systems plus native comments of every status, edited and replied."""
    await import_into(url, "wordpress", corpus("wordpress/wpimporter-theme-unit-test-data.xml"))
    await import_into(url, "disqus", corpus("disqus/talkyard-e2e-disqus-export.xml"))
    await import_into(url, "isso", corpus("isso/isso-from-isso-disqus-emptyid.db"))
    settings = make_settings(url, tmp_path, KIBITZ_SSO_SECRET=sso.SECRET)
    async with serve(settings) as server, server.client() as client:
        base = {"uri": "/posts/template-comments", "author": "Nat", "email": "nat@example.org"}
        first = (await client.post("/api/comments", json={**base, "text": "native one"})).json()
        reply = (
            await client.post(
                "/api/comments",
                json={**base, "text": "native reply", "parent": first["comment"]["id"]},
            )
        ).json()
        await client.patch(
            f"/api/comments/{reply['comment']['id']}",
            json={"text": "edited"},
            headers={"Authorization": f"Bearer {reply['edit_token']}"},
        )
        gone = (await client.post("/api/comments", json={**base, "text": "to delete"})).json()
        await client.delete(
            f"/api/comments/{gone['comment']['id']}",
            headers={"Authorization": f"Bearer {gone['edit_token']}"},
        )
        await client.post(
            "/api/comments",
            json={**base, "uri": "/elsewhere/page", "text": "on another site"},
            headers={"Origin": server.settings.public_origin},
        )
        # Big threads: a pin, votes from two anonymous readers and an SSO user, a closed
        # thread and one staff reopened.
        top = first["comment"]["id"]
        for value, voter in ((1, "voter"), (-1, "voter"), (1, "sso")):
            who = (
                {"voter": (await client.post("/api/voters")).json()["voter"]}
                if voter == "voter"
                else {"sso": sso.token()}
            )
            voted = await client.post(f"/api/comments/{top}/vote", json={"value": value, **who})
            assert voted.status_code == 200, voted.text
        state = server.state
        await state.threads.set_pinned(top, True)
        for uri, closes in (
            ("/elsewhere/page", [True]),
            ("/posts/template-comments", [True, False]),
        ):
            thread = await state.comments.thread(uri)
            assert thread is not None, uri
            for closed in closes:
                await state.threads.set_closed(thread, closed)


async def test_export_import_export_is_identical(
    database_url: str, second_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Export → import into an empty database → export gives the same document, twice over."""
    await _fill(database_url, tmp_path)
    whole = await export_text(database_url)
    monkeypatch.setattr("db.exports.PAGE", 3)  # threads of 20 comments now take many pages
    first = await export_text(database_url)
    assert first == whole
    doc = json.loads(first)
    assert doc["format"] == "kibitz-export" and doc["version"] == 1
    statuses = {c["status"] for t in doc["threads"] for c in t["comments"]}
    assert statuses == {"approved", "pending", "spam", "deleted"}
    assert any(c["edited"] for t in doc["threads"] for c in t["comments"])
    assert any(c["address"] for t in doc["threads"] for c in t["comments"])
    assert any(t["aliases"] for t in doc["threads"])
    assert {t["closed"] for t in doc["threads"]} == {True, False, None}
    assert all(t["closed_at"] for t in doc["threads"] if t["closed"] is not None)
    voted = [c for t in doc["threads"] for c in t["comments"] if c["votes"]]
    assert [(c["pinned"], c["up"], c["down"], sorted(c["votes"].values())) for c in voted] == [
        (True, 2, 1, [-1, 1, 1])
    ]
    assert {v.split(":")[0] for v in voted[0]["votes"]} == {"anon", "sso"}
    assert "sso:user-42" in voted[0]["votes"]
    path = tmp_path / "export.json"
    path.write_text(first, encoding="utf-8")

    report = await import_into(second_url, "kibitz", path)
    assert report.imported == sum(len(t["comments"]) for t in doc["threads"])
    assert await export_text(second_url) == first

    counts = await table_counts(second_url)
    again = await import_into(second_url, "kibitz", path)
    assert again.imported == 0 and again.posts_created == 0
    assert await table_counts(second_url) == counts
    assert await export_text(second_url) == first


def _shown(read: dict[str, Any]) -> list[tuple[str, bool, int, int]]:
    """What readers see of each comment's standing, in the API's order."""
    return [(c["html"], c["pinned"], c["up"], c["down"]) for c in read["comments"]]


def _standing(page: str) -> list[tuple[str, str, str, str]]:
    """The post page's comments: text, pinned flag, like and dislike counts, in page order."""
    return [
        (
            text_of(by_class(li, "comment__body")[0]),
            li.get("data-pinned") or "",
            by_class(li, "comment__votes")[0].get("data-up") or "",
            by_class(li, "comment__votes")[0].get("data-down") or "",
        )
        for li in by_class(parse(page), "comment")
    ]


async def test_pins_votes_and_closing_reach_readers_after_a_move(
    database_url: str, second_url: str, tmp_path: Path
) -> None:
    """A site moved by export and import shows the same pins, counts and closed threads, and a
    reader who voted before still has one vote per comment: voting again changes it."""
    old_site = make_settings(database_url, tmp_path / "old", KIBITZ_SSO_SECRET=sso.SECRET)
    async with serve(old_site) as server, server.client() as client:
        await add_post(server, "big", "Big")
        await add_post(server, "reopened", "Reopened")
        ids = await seed(server, 4)
        await seed(server, 1, uri="/posts/reopened")
        await store_comment(server, URI, "Rae", parent=ids[0], text="a reply")
        ada, bo = [(await client.post("/api/voters")).json()["voter"] for _ in range(2)]
        for comment, value, who in (
            (ids[0], 1, {"voter": ada}),
            (ids[0], 1, {"voter": bo}),
            (ids[0], -1, {"sso": sso.token()}),
            (ids[1], -1, {"voter": ada}),
            (ids[3], 1, {"voter": bo}),
        ):
            voted = await client.post(f"/api/comments/{comment}/vote", json={"value": value, **who})
            assert voted.status_code == 200, voted.text
        state = server.state
        await state.threads.set_pinned(ids[2], True)
        await state.threads.set_closed(await state.comments.thread(URI), True)
        reopened = await state.comments.thread("/posts/reopened")
        await state.threads.set_closed(reopened, True)
        await state.threads.set_closed(reopened, False)
        before = (await client.get("/api/comments", params={"uri": URI, "sort": "best"})).json()
        before_page = (await client.get(URI)).text
    exported = await export_text(database_url)
    path = tmp_path / "site.json"
    path.write_text(exported, encoding="utf-8")

    await import_into(second_url, "kibitz", path)
    new_site = make_settings(second_url, tmp_path / "new", KIBITZ_SSO_SECRET=sso.SECRET)
    async with serve(new_site) as server, server.client() as client:
        after = (await client.get("/api/comments", params={"uri": URI, "sort": "best"})).json()
        page = (await client.get(URI)).text
        other = (await client.get("/api/comments", params={"uri": "/posts/reopened"})).json()
        moved = {c["html"]: c["id"] for c in after["comments"]}
        first, second = moved["<p>top 0</p>"], moved["<p>top 1</p>"]

        async def vote(comment: int, value: int, **who: str) -> dict[str, int]:
            answer = await client.post(
                f"/api/comments/{comment}/vote", json={"value": value, **who}
            )
            assert answer.status_code == 200, answer.text
            return {k: answer.json()[k] for k in ("up", "down", "mine")}

        again = await vote(first, 1, voter=ada)  # the same like: still one
        turned = await vote(first, -1, voter=bo)  # a like turned into a dislike
        signed_in = await vote(first, -1, sso=sso.token())  # the same dislike
        withdrawn = await vote(second, 0, voter=ada)
        newcomer = await vote(first, 1, voter=(await client.post("/api/voters")).json()["voter"])
        form = await client.post(
            "/api/comments", json={"uri": URI, "author": "Late", "email": "l@x.org", "text": "x"}
        )
        voted = (await client.get("/api/comments", params={"uri": URI})).json()
        # Importing the same file again changes nothing; the readers' new votes stay.
        counts = await table_counts(second_url)
        await import_into(second_url, "kibitz", path)
        assert await table_counts(second_url) == counts
        assert (await client.get("/api/comments", params={"uri": URI})).json() == voted

    assert _shown(after) == _shown(before)
    assert after["closed"] is True and before["closed"] is True and other["closed"] is False
    assert _shown(after)[0] == ("<p>top 2</p>", True, 0, 0)  # pinned first, in every order
    assert ("<p>top 0</p>", False, 2, 1) in _shown(after)
    assert _standing(page) == _standing(before_page)
    assert ("top 2", "1", "0", "0") in _standing(page) and ("top 0", "0", "2", "1") in _standing(
        page
    )
    root = parse(page)
    assert by_class(root, "comment--pinned")[0].get("data-id") == str(moved["<p>top 2</p>"])
    assert by_class(root, "comment__badge--pinned")
    assert by_class(root, "comments")[0].get("data-count") == "5"
    assert [n for n in by_class(root, "notice--closed") if n.get("hidden") is None]
    assert not by_class(root, "comment-form") and form.status_code == 403
    assert again == {"up": 2, "down": 1, "mine": 1}
    assert turned == {"up": 1, "down": 2, "mine": -1}
    assert signed_in == {"up": 1, "down": 2, "mine": -1}
    assert withdrawn == {"up": 0, "down": 0, "mine": 0}
    assert newcomer == {"up": 2, "down": 2, "mine": 1}


async def test_kibitz_import_sanitises_the_file_again(database_url: str, tmp_path: Path) -> None:
    """An edited export cannot smuggle scripts or javascript: links to readers."""
    doc = {
        "format": "kibitz-export",
        "version": 1,
        "posts": [
            {
                "slug": "x",
                "title": "X",
                "author": "A",
                "published": "2020-01-01T00:00:00Z",
                "categories": [],
                "language": None,
                "source": None,
                "body_html": "<p>ok</p><script>alert(1)</script>",
            }
        ],
        "threads": [
            {
                "uri": "/posts/x",
                "title": "X",
                "created": "2020-01-01T00:00:00Z",
                "aliases": [],
                "comments": [
                    {
                        "key": "k1",
                        "parent": None,
                        "status": "approved",
                        "author": "M",
                        "email": "m@example.org",
                        "website": "javascript:alert(1)",
                        "address": None,
                        "staff": None,
                        "created": "2020-01-01T00:00:00Z",
                        "edited": None,
                        "reason": None,
                        "text": "hi",
                        "html": '<p onclick="x()">hi<script>bad()</script></p>',
                    }
                ],
            }
        ],
    }
    path = tmp_path / "evil.json"
    path.write_text(json.dumps(doc))
    await import_into(database_url, "kibitz", path)
    async with serve(make_settings(database_url, tmp_path)) as server, server.client() as client:
        read = await client.get("/api/comments", params={"uri": "/posts/x"})
        page = await client.get("/posts/x")
    comment = read.json()["comments"][0]
    assert comment["html"] == "<p>hi</p>" and comment["website"] is None
    assert "alert(1)" not in page.text and "bad()" not in page.text and "<p>ok</p>" in page.text


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server", *args],
        cwd=ROOT,
        text=True,
        capture_output=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
    )


async def test_cli_import_export_round_trip(
    database_url: str, second_url: str, tmp_path: Path
) -> None:
    """The commands: import prints a summary and progress lines, export writes file or stdout."""
    env = {"KIBITZ_DATABASE_URL": database_url, "KIBITZ_DATA_DIR": str(tmp_path / "d")}
    imported = await asyncio.to_thread(
        _cli, env, "import", "wordpress", str(corpus("wordpress/isso-wordpress.xml"))
    )
    assert imported.returncode == 0, imported.stderr
    assert "comments: 8 new (approved 8, pending 0, spam 0, deleted 0)" in imported.stdout
    assert "replies: 3" in imported.stdout
    assert "import: done, 8 comments written" in imported.stderr
    stdout = await asyncio.to_thread(_cli, env, "export")
    target = tmp_path / "site.json"
    to_file = await asyncio.to_thread(_cli, env, "export", str(target))
    assert stdout.returncode == 0 and to_file.returncode == 0
    assert json.loads(stdout.stdout)["version"] == 1
    assert target.read_text() == stdout.stdout
    assert "exported 3 posts" in to_file.stderr
    env2 = {**env, "KIBITZ_DATABASE_URL": second_url}
    back = await asyncio.to_thread(_cli, env2, "import", "kibitz", str(target))
    assert back.returncode == 0, back.stderr
    assert (await asyncio.to_thread(_cli, env2, "export")).stdout == stdout.stdout
    broken = tmp_path / "broken.json"
    broken.write_text('{"format": "kibitz-export", "version": 99, "posts": [], "threads": []}')
    refused = await asyncio.to_thread(_cli, env2, "import", "kibitz", str(broken))
    assert refused.returncode == 2 and "version 99 is not supported" in refused.stderr


def test_every_exported_field_is_documented() -> None:
    """docs/export.md names every key an export contains."""
    doc = (ROOT / "docs" / "export.md").read_text()
    sample = json.loads(asyncio.run(_sample_export()))
    keys = set(sample) | set(sample["posts"][0]) | set(sample["threads"][0])
    keys |= set(sample["threads"][0]["comments"][0])
    for key in sorted(keys):
        assert f"`{key}`" in doc, key


async def _sample_export() -> str:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/k.db"
        await import_into(url, "wordpress", corpus("wordpress/isso-wordpress.xml"))
        return await export_text(url)
