"""Imports of the shared corpus (real exports) checked against expected.json, both backends."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from server.portability.importers.report import ImportRefused
from tests.helpers.imports import corpus, expected, import_into, rows, table_counts

WORDPRESS = [
    "isso-wordpress",
    "wpimporter-theme-unit-test-data",
    "wpimporter-a11y-unit-test-data",
    "wpimporter-slashes",
    "remark42-wp-realmenweardress",
]
DISQUS = ["isso-disqus", "talkyard-e2e-disqus-export"]
SKIP_NAMES = {"orphan: unknown thread": "orphan_thread_unknown"}


def _policy(name: str) -> dict:
    return expected()[name]["analysis"]["proposed_policy"]


async def _check(url: str, report, want: dict) -> None:
    assert len(report.threads) == want["threads"]
    assert report.imported == want["imported"]
    assert {k: v for k, v in report.statuses.items() if v} == want["status"]
    assert report.replies == want["replies"]
    assert len(report.rerooted) == want.get("reparented_to_root", 0)
    skipped = {SKIP_NAMES.get(k, k): v for k, v in report.skipped.items()}
    assert skipped == {k: v for k, v in want.get("skipped", {}).items() if v}
    stored = await rows(url, "SELECT status, COUNT(*) AS n FROM comments GROUP BY status")
    assert {r["status"]: r["n"] for r in stored} == want["status"]
    replies = await rows(url, "SELECT COUNT(*) AS n FROM comments WHERE parent_id IS NOT NULL")
    assert replies[0]["n"] == want["replies"]


@pytest.mark.parametrize("name", WORDPRESS)
async def test_wordpress_corpus_matches_expected_counts(database_url: str, name: str) -> None:
    """Each WordPress fixture imports the threads, statuses, replies and skips expected.json
    names."""
    key = f"wordpress/{name}.xml"
    report = await import_into(database_url, "wordpress", corpus(key))
    await _check(database_url, report, _policy(key))


@pytest.mark.parametrize("name", DISQUS)
async def test_disqus_corpus_matches_expected_counts(database_url: str, name: str) -> None:
    """Each well-formed Disqus fixture imports what expected.json's proposed policy says."""
    key = f"disqus/{name}.xml"
    report = await import_into(database_url, "disqus", corpus(key))
    await _check(database_url, report, _policy(key))


@pytest.mark.parametrize(
    "name", ["remark42-disqus", "remark42-disqus-deleted-thread", "remark42-disqus-deleted-post"]
)
async def test_disqus_lenient_variants_match_expected(
    database_url: str, name: str, tmp_path: Path
) -> None:
    """The remark42 files are refused as they are; repaired as README describes, they import."""
    original = corpus(f"disqus/{name}.xml")
    with pytest.raises(ImportRefused, match="line 1, column 0"):
        await import_into(database_url, "disqus", original)
    assert (await table_counts(database_url))["comments"] == 0
    text = original.read_text(encoding="utf-8").lstrip("`")
    text = re.sub(r'<post dsq:id="x299986073">.*?</post>', "", text, flags=re.S)
    repaired = tmp_path / "lenient.xml"
    repaired.write_text(text, encoding="utf-8")
    report = await import_into(database_url, "disqus", repaired)
    want = expected()[f"disqus/{name}.xml"]["lenient_proposed"]
    assert len(report.threads) == want["threads"]
    assert report.imported == want["imported"]
    assert {k: v for k, v in report.statuses.items() if v} == want["status"]
    assert report.replies == want["replies"]


# Isso's databases are not in expected.json; these counts are the corpus README's.
ISSO = {
    "isso-from-isso-wordpress": (2, {"approved": 8}, 3),
    "isso-from-isso-disqus-emptyid": (2, {"approved": 4, "deleted": 1}, 2),
    "isso-from-theme-unit-test-data": (7, {"approved": 30, "pending": 3}, 10),
}


@pytest.mark.parametrize("name", sorted(ISSO))
async def test_isso_corpus_matches_readme_counts(database_url: str, name: str) -> None:
    """Isso databases import every thread, mode and reply the corpus README lists."""
    threads, statuses, replies = ISSO[name]
    report = await import_into(database_url, "isso", corpus(f"isso/{name}.db"))
    assert len(report.threads) == threads
    assert {k: v for k, v in report.statuses.items() if v} == statuses
    assert report.replies == replies


async def test_malformed_wordpress_is_refused_with_its_line(database_url: str) -> None:
    """remark42's markdown file (undeclared wp: prefix) is refused at line 7 and imports nothing."""
    with pytest.raises(ImportRefused, match=r"unbound prefix: line 7, column 2"):
        await import_into(
            database_url, "wordpress", corpus("wordpress/remark42-wp-markdown-malformed.xml")
        )
    assert (await table_counts(database_url))["comments"] == 0
    assert (await table_counts(database_url))["threads"] == 0


async def test_reply_chains_keep_their_full_depth(database_url: str) -> None:
    """theme-unit-test-data's 10-comment chain keeps every level (depth 9 below the root)."""
    await import_into(
        database_url, "wordpress", corpus("wordpress/wpimporter-theme-unit-test-data.xml")
    )
    parent = {
        r["id"]: r["parent_id"]
        for r in await rows(database_url, "SELECT id, parent_id FROM comments")
    }

    def depth(cid: int) -> int:
        d = 0
        while parent[cid] is not None:
            cid, d = parent[cid], d + 1
        return d

    want = expected()["wordpress/wpimporter-theme-unit-test-data.xml"]["analysis"]["max_depth"]
    assert max(depth(c) for c in parent) == want


async def test_https_namespace_and_fields_are_read(database_url: str) -> None:
    """The https WXR namespace imports; posts keep title, author, categories, date and alias."""
    await import_into(
        database_url, "wordpress", corpus("wordpress/wpimporter-theme-unit-test-data.xml")
    )
    post = (
        await rows(
            database_url,
            "SELECT p.title, p.author, p.categories, p.published, p.body_html, t.uri "
            "FROM posts p JOIN threads t ON t.id = p.thread_id "
            "WHERE p.slug = 'template-comments'",
        )
    )[0]
    assert post["title"] == "Template: Comments"
    assert post["author"] == "themedemos"
    assert post["uri"] == "/posts/template-comments"
    alias = await rows(
        database_url,
        "SELECT uri FROM thread_aliases a JOIN posts p "
        "ON p.thread_id = a.thread_id WHERE p.slug = 'template-comments'",
    )
    assert [a["uri"] for a in alias] == ["/2012/01/03/template-comments"]
    assert "<script" not in post["body_html"]


async def test_slashes_and_unicode_survive(database_url: str) -> None:
    """A backslash-and-Unicode comment comes through byte for byte."""
    await import_into(database_url, "wordpress", corpus("wordpress/wpimporter-slashes.xml"))
    found = await rows(database_url, "SELECT text, html FROM comments")
    assert found[0]["text"] == "\\o/ ¯\\_(ツ)_/¯"
    assert "\\o/ ¯\\_(ツ)_/¯" in found[0]["html"]


@pytest.mark.parametrize(
    ("fmt", "name", "count"),
    [
        ("wordpress", "wordpress/wpimporter-theme-unit-test-data.xml", 29),
        ("disqus", "disqus/talkyard-e2e-disqus-export.xml", 9),
        ("isso", "isso/isso-from-theme-unit-test-data.db", 33),
    ],
)
async def test_second_import_of_the_same_file_changes_nothing(
    database_url: str, fmt: str, name: str, count: int
) -> None:
    """Importing a file twice adds no row and no event: source ids make it a no-op."""
    await import_into(database_url, fmt, corpus(name))
    before = await table_counts(database_url)
    seqs = await rows(database_url, "SELECT id, last_seq FROM threads ORDER BY id")
    again = await import_into(database_url, fmt, corpus(name))
    assert again.imported == 0 and again.existing == count and again.posts_created == 0
    assert await table_counts(database_url) == before
    assert await rows(database_url, "SELECT id, last_seq FROM threads ORDER BY id") == seqs


@pytest.mark.parametrize(
    "link",
    [
        "https://blog.example//greek/%ce%b5-2/",
        "/a//b/",
        "//x/y",
        "https://blog.example/2010/07/social-media/?p=1#c",
    ],
)
def test_normalised_permalinks_are_a_fixed_point(link: str) -> None:
    """An alias normalised once stays itself, so an export re-imports to the same paths."""
    from server.discussion.uris import normalise_uri

    once = normalise_uri(link)
    assert normalise_uri(once) == once and once.startswith("/") and not once.startswith("//")
