"""Helpers for the import and export tests: the shared corpus, and running an import."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from db.database import Database, connect
from db.migrate import migrate
from server.portability.importers import disqus, isso, kibitz, wordpress
from server.portability.importers.report import Report
from server.portability.importers.writer import run_import


def shared_dir() -> Path:
    """``shared/`` beside the checkout (CI and /work/main), else ``KIBITZ_SHARED_DIR``."""
    beside = Path(__file__).resolve().parents[3] / "shared"
    if (beside / "corpus" / "imports").is_dir():
        return beside
    if os.environ.get("KIBITZ_SHARED_DIR"):
        return Path(os.environ["KIBITZ_SHARED_DIR"])
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(
            "the import corpus is missing: put shared/ beside the checkout or set KIBITZ_SHARED_DIR"
        )
    pytest.skip("import corpus not found (set KIBITZ_SHARED_DIR)")


def corpus(name: str) -> Path:
    return shared_dir() / "corpus" / "imports" / name


def expected() -> dict[str, Any]:
    return json.loads(corpus("expected.json").read_text())["fixtures"]


def source_for(fmt: str, path: Path | str, **options: Any) -> Any:
    report = Report(fmt, str(path))
    module = {"wordpress": wordpress, "disqus": disqus, "isso": isso, "kibitz": kibitz}[fmt]
    return module.Source(str(path), report, **options)


async def open_db(url: str) -> Database:
    db = await connect(url, readers=1)
    await migrate(db)
    return db


async def import_into(
    url: str,
    fmt: str,
    path: Path | str,
    *,
    retention_days: int = 30,
    batch_size: int = 500,
    **options: Any,
) -> Report:
    db = await open_db(url)
    try:
        return await run_import(
            db,
            source_for(fmt, path, **options),
            retention_days=retention_days,
            batch_size=batch_size,
        )
    finally:
        await db.close()


async def rows(url: str, sql: str, *args: Any) -> list[dict[str, Any]]:
    db = await open_db(url)
    try:
        async with db.read() as conn:
            return [dict(r) for r in await conn.fetch(sql, *args)]
    finally:
        await db.close()


async def table_counts(url: str) -> dict[str, int]:
    found = {}
    for table in ("posts", "threads", "thread_aliases", "comments", "events", "votes"):
        found[table] = (await rows(url, f"SELECT COUNT(*) AS n FROM {table}"))[0]["n"]
    return found


def wxr(items: str, ns: str = "http://wordpress.org/export/1.2/") -> str:
    """A small WXR document around ``items``."""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0" '
        f'xmlns:content="http://purl.org/rss/1.0/modules/content/" '
        f'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:wp="{ns}">\n<channel>\n'
        f"{items}\n</channel>\n</rss>\n"
    )


def wxr_item(
    post_id: int, slug: str, comments: str, link: str | None = None, status: str = "publish"
) -> str:
    return (
        f"<item><title>Post {post_id}</title>"
        f"<link>{link or f'https://blog.example/2010/07/{slug}/'}</link>"
        f"<dc:creator>Ann</dc:creator><content:encoded><![CDATA[Body of {slug}]]>"
        f"</content:encoded><wp:post_id>{post_id}</wp:post_id>"
        f"<wp:post_date_gmt>2010-07-01 10:00:00</wp:post_date_gmt>"
        f"<wp:post_name>{slug}</wp:post_name><wp:status>{status}</wp:status>"
        f"<wp:post_type>post</wp:post_type>{comments}</item>"
    )


def wxr_comment(
    cid: int,
    text: str,
    *,
    parent: int = 0,
    approved: str = "1",
    email: str = "c@example.org",
    ip: str = "192.0.2.7",
    date: str = "2014-01-14 17:32:12",
    kind: str = "",
    author: str = "Carla",
) -> str:
    return (
        f"<wp:comment><wp:comment_id>{cid}</wp:comment_id>"
        f"<wp:comment_author><![CDATA[{author}]]></wp:comment_author>"
        f"<wp:comment_author_email>{email}</wp:comment_author_email>"
        f"<wp:comment_author_url>https://carla.example/</wp:comment_author_url>"
        f"<wp:comment_author_IP>{ip}</wp:comment_author_IP>"
        f"<wp:comment_date>{date}</wp:comment_date>"
        f"<wp:comment_date_gmt>{date}</wp:comment_date_gmt>"
        f"<wp:comment_content><![CDATA[{text}]]></wp:comment_content>"
        f"<wp:comment_approved>{approved}</wp:comment_approved>"
        f"<wp:comment_type>{kind}</wp:comment_type>"
        f"<wp:comment_parent>{parent}</wp:comment_parent></wp:comment>"
    )
