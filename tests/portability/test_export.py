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

import pytest

from server.portability.export import write_export
from tests.helpers.imports import corpus, import_into, open_db, table_counts
from tests.helpers.servers import ROOT, drop_pg_database, make_settings, new_pg_database, serve


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
    async with serve(make_settings(url, tmp_path)) as server, server.client() as client:
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
