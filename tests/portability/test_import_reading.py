"""What readers see after an import, through the real API and pages, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.helpers.imports import corpus, import_into, rows, wxr, wxr_comment, wxr_item
from tests.helpers.servers import make_settings, serve


async def _private_values(url: str) -> tuple[list[str], list[str]]:
    """Texts of comments readers must not see, and every e-mail and address stored."""
    found = await rows(url, "SELECT text, status, email, address FROM comments")
    hidden = [r["text"] for r in found if r["status"] != "approved" and len(r["text"]) > 8]
    private = [v for r in found for v in (r["email"], r["address"]) if v]
    return hidden, private


async def test_imported_wordpress_thread_reads_like_a_native_one(
    database_url: str, tmp_path: Path
) -> None:
    """Approved imported comments show on the page, the API and the old address; nothing private."""
    await import_into(
        database_url,
        "wordpress",
        corpus("wordpress/wpimporter-theme-unit-test-data.xml"),
        retention_days=100_000,
    )
    hidden, private = await _private_values(database_url)
    assert len(hidden) == 3 and private  # pending texts, plus e-mails (and no addresses here)
    async with serve(make_settings(database_url, tmp_path)) as server, server.client() as client:
        api = await client.get("/api/comments", params={"uri": "/posts/template-comments"})
        old = await client.get(
            "/api/comments",
            params={"uri": "https://wpthemetestdata.wordpress.com/2012/01/03/template-comments/"},
        )
        page = await client.get("/posts/template-comments")
        index_pages = []
        for number in range(1, 50):  # the index shows 20 posts a page; the export has more
            listing = await client.get("/", params={"page": number})
            if listing.status_code != 200:
                break
            index_pages.append(listing.text)
        index = "".join(index_pages)
        counts = await client.get("/api/counts", params={"uri": "/2012/01/03/template-comments/"})
    body = api.json()
    approved = await rows(
        database_url,
        "SELECT COUNT(*) AS n FROM comments c JOIN posts p ON "
        "p.thread_id = c.thread_id WHERE p.slug = 'template-comments' "
        "AND c.status = 'approved'",
    )
    assert body["count"] == approved[0]["n"] > 10
    assert old.json()["comments"] == body["comments"]
    assert counts.json() == {"/2012/01/03/template-comments/": body["count"]}
    assert page.status_code == 200
    for c in body["comments"]:
        assert f'id="comment-{c["id"]}"' in page.text
    assert "Template: Comments" in index
    for shown in (api.text, old.text, page.text, index):
        for value in hidden + private:
            assert value not in shown


async def test_disqus_deleted_and_spam_never_reach_readers(
    database_url: str, tmp_path: Path
) -> None:
    """Talkyard's export shows 4 + 2 + 1 approved comments; spam and deleted stay hidden."""
    await import_into(
        database_url,
        "disqus",
        corpus("disqus/talkyard-e2e-disqus-export.xml"),
        retention_days=100_000,
    )
    hidden, private = await _private_values(database_url)
    assert hidden and private
    assert await rows(database_url, "SELECT 1 FROM comments WHERE address IS NOT NULL")
    async with serve(make_settings(database_url, tmp_path)) as server, server.client() as client:
        counts = await client.get(
            "/api/counts",
            params={
                "uri": [
                    "/four-replies.html",
                    "/2019/a-blog-post-one-reply.html",
                    "/page-created-later.html",
                    "node/2 With Spaces.",
                ]
            },
        )
        reads = [
            await client.get("/api/comments", params={"uri": u})
            for u in (
                "/four-replies.html",
                "/2019/a-blog-post-one-reply.html",
                "/page-created-later.html",
            )
        ]
    assert counts.json() == {
        "/four-replies.html": 4,
        "/2019/a-blog-post-one-reply.html": 2,
        "/page-created-later.html": 1,
        "node/2 With Spaces.": 2,
    }
    for read in reads:
        assert all(c["status"] == "approved" for c in read.json()["comments"])
        for value in hidden + private:
            assert value not in read.text


async def test_deleted_parent_shows_as_a_placeholder(database_url: str, tmp_path: Path) -> None:
    """isso-disqus: the deleted post 9 with an approved reply is an empty placeholder."""
    await import_into(database_url, "disqus", corpus("disqus/isso-disqus.xml"))
    async with serve(make_settings(database_url, tmp_path)) as server, server.client() as client:
        read = (await client.get("/api/comments", params={"uri": "http://example.org/"})).json()
    deleted = [c for c in read["comments"] if c["status"] == "deleted"]
    assert len(deleted) == 1 and deleted[0]["author"] == "" and deleted[0]["html"] == ""
    assert any(c["parent"] == deleted[0]["id"] for c in read["comments"])


async def test_import_after_a_cached_read_shows_the_new_comments(
    database_url: str, tmp_path: Path
) -> None:
    """A thread read (and cached) before an import shows the imported comments afterwards."""
    first = tmp_path / "v1.xml"
    newer = tmp_path / "v2.xml"
    first.write_text(wxr(wxr_item(7, "social-media", wxr_comment(1, "first words"))))
    newer.write_text(
        wxr(
            wxr_item(
                7,
                "social-media",
                wxr_comment(1, "first words")
                + wxr_comment(2, "second words", parent=1)
                + wxr_comment(3, "third words"),
            )
        )
    )
    async with serve(make_settings(database_url, tmp_path)) as server, server.client() as client:
        await import_into(database_url, "wordpress", first)
        before = (await client.get("/api/comments", params={"uri": "/posts/social-media"})).json()
        again = (await client.get("/api/comments", params={"uri": "/posts/social-media"})).json()
        assert again == before  # served from the thread cache the second time
        report = await import_into(database_url, "wordpress", newer)
        after = (await client.get("/api/comments", params={"uri": "/2010/07/social-media/"})).json()
        page = await client.get("/posts/social-media")
    assert [c["html"] for c in before["comments"]] == ["<p>first words</p>"]
    assert report.imported == 2 and report.existing == 1
    assert [c["html"] for c in after["comments"]] == [
        "<p>first words</p>",
        "<p>second words</p>",
        "<p>third words</p>",
    ]
    assert after["comments"][1]["parent"] == after["comments"][0]["id"]
    assert after["cursor"] == before["cursor"] + 2
    assert "third words" in page.text
    events = await rows(database_url, "SELECT type FROM events ORDER BY seq")
    assert [e["type"] for e in events] == ["comment.created"] * 3


async def test_imported_approvals_count_for_first_time_moderation(
    database_url: str, tmp_path: Path
) -> None:
    """A commenter approved on the old blog is published at once; a newcomer is held."""
    path = tmp_path / "known.xml"
    path.write_text(wxr(wxr_item(1, "hello", wxr_comment(1, "old", email="Known@Example.org"))))
    await import_into(database_url, "wordpress", path)
    settings = make_settings(database_url, tmp_path, KIBITZ_MODERATION="first-time")
    async with serve(settings) as server, server.client() as client:
        known = await client.post(
            "/api/comments",
            json={
                "uri": "/posts/hello",
                "author": "K",
                "email": "known@example.org",
                "text": "back",
            },
        )
        new = await client.post(
            "/api/comments",
            json={"uri": "/posts/hello", "author": "N", "email": "new@example.org", "text": "hi"},
        )
    assert known.json()["comment"]["status"] == "approved"
    assert new.json()["comment"]["status"] == "pending"


async def test_addresses_older_than_the_retention_are_not_stored(
    database_url: str, tmp_path: Path
) -> None:
    """KIBITZ_ADDRESS_RETENTION_DAYS counts from each imported comment's own date."""
    recent = (datetime.now(UTC) - timedelta(days=2)).strftime("%Y-%m-%d %H:%M:%S")
    path = tmp_path / "ips.xml"
    path.write_text(
        wxr(
            wxr_item(
                1,
                "ips",
                wxr_comment(1, "old", ip="192.0.2.1")
                + wxr_comment(2, "new", ip="192.0.2.2", date=recent),
            )
        )
    )
    report = await import_into(database_url, "wordpress", path, retention_days=30)
    stored = await rows(database_url, "SELECT text, address FROM comments ORDER BY text")
    assert stored == [{"text": "new", "address": "192.0.2.2"}, {"text": "old", "address": None}]
    assert report.addresses_dropped == 1
    again = await import_into(database_url, "wordpress", path, retention_days=30)
    assert again.addresses_dropped == 0  # nothing new was written


async def test_replies_before_parents_cycles_and_missing_parents(
    database_url: str, tmp_path: Path
) -> None:
    """Children listed first find their parent; cycles, self-replies and orphans go top-level."""
    path = tmp_path / "order.xml"
    comments = (
        wxr_comment(5, "grandchild", parent=4)
        + wxr_comment(4, "child", parent=3)
        + wxr_comment(3, "root")
        + wxr_comment(6, "loop a", parent=7)
        + wxr_comment(7, "loop b", parent=6)
        + wxr_comment(8, "self", parent=8)
        + wxr_comment(9, "orphan", parent=404)
        + wxr_comment(10, "ping", kind="pingback")
        + wxr_comment(11, "to ping", parent=10)
    )
    path.write_text(wxr(wxr_item(1, "order", comments)))
    report = await import_into(database_url, "wordpress", path)
    found = {
        r["text"]: r
        for r in await rows(
            database_url,
            "SELECT c.id, c.text, p.text AS parent FROM comments c "
            "LEFT JOIN comments p ON p.id = c.parent_id",
        )
    }
    assert found["grandchild"]["parent"] == "child"
    assert found["child"]["parent"] == "root"
    assert {found["loop a"]["parent"], found["loop b"]["parent"]} in (
        {None, "loop a"},
        {None, "loop b"},
    )
    assert found["self"]["parent"] is None and found["orphan"]["parent"] is None
    assert found["to ping"]["parent"] is None and "ping" not in found
    rerooted = dict(report.rerooted)
    assert rerooted["wordpress:1:11"] == "parent skipped: pingback"
    assert rerooted["wordpress:1:9"] == "parent not imported"
    assert report.skipped == {"pingback": 1}


async def test_pingbacks_flag_imports_them(database_url: str, tmp_path: Path) -> None:
    """With the pingbacks option a pingback is a comment, and its reply stays a reply."""
    report = await import_into(
        database_url,
        "wordpress",
        corpus("wordpress/remark42-wp-realmenweardress.xml"),
        pingbacks=True,
    )
    assert report.imported == 4 and report.replies == 1 and not report.rerooted


async def test_wordpress_statuses_map_to_kibitz_statuses(database_url: str, tmp_path: Path) -> None:
    """1 approved, 0 pending, spam spam, trash and post-trashed deleted, other pending."""
    path = tmp_path / "statuses.xml"
    path.write_text(
        wxr(
            wxr_item(
                1,
                "s",
                "".join(
                    wxr_comment(i, f"status {flag}", approved=flag)
                    for i, flag in enumerate(
                        ["1", "0", "spam", "trash", "post-trashed", "weird"], 1
                    )
                ),
            )
        )
    )
    await import_into(database_url, "wordpress", path)
    found = {
        r["text"]: r["status"]
        for r in await rows(database_url, "SELECT text, status FROM comments")
    }
    assert found == {
        "status 1": "approved",
        "status 0": "pending",
        "status spam": "spam",
        "status trash": "deleted",
        "status post-trashed": "deleted",
        "status weird": "pending",
    }


DISQUS = """<?xml version="1.0" encoding="utf-8"?>
<disqus xmlns="http://disqus.com" xmlns:dsq="http://disqus.com/disqus-internals">
  <post dsq:id="3"><message><![CDATA[<p>reply first</p><p>second paragraph</p>]]></message>
    <createdAt>2015-05-05T10:00:00.123Z</createdAt>
    <author><name>Rea</name><email>rea@example.org</email></author>
    <thread dsq:id="1"/><parent dsq:id="2"/></post>
  <thread dsq:id="1"><id>old-identifier</id>
    <link>https://old-domain.example/2015/05/hello/?utm=x#top</link><title>Hello</title>
    <createdAt>2015-05-01T00:00:00Z</createdAt><isDeleted>false</isDeleted></thread>
  <thread dsq:id="9"><link>https://old-domain.example/gone/</link><isDeleted>true</isDeleted>
  </thread>
  <thread dsq:id="8"><id>no-link</id></thread>
  <post><id>wp_id=77</id><message>parent</message><createdAt>2015-05-04T10:00:00Z</createdAt>
    <author><name>Par</name><email>par@example.org</email></author><thread dsq:id="1"/></post>
  <post dsq:id="2"><message>the parent</message><createdAt>2015-05-04T10:00:00Z</createdAt>
    <author><name>Par</name><email>par@example.org</email></author><thread dsq:id="1"/></post>
  <post dsq:id="4"><message>in a deleted thread</message>
    <createdAt>2015-05-04T10:00:00Z</createdAt><thread dsq:id="9"/></post>
  <post dsq:id="5"><message>nowhere</message><createdAt>2015-05-04T10:00:00Z</createdAt>
    <thread dsq:id="8"/></post>
</disqus>
"""


async def test_disqus_threads_replies_and_flags(database_url: str, tmp_path: Path) -> None:
    """Links lose origin and query, ids become aliases, replies may precede parents, and
    missing flags, fractional dates, <id>-only posts and deleted threads are handled."""
    path = tmp_path / "disqus.xml"
    path.write_text(DISQUS)
    report = await import_into(database_url, "disqus", path)
    found = {
        r["source"]: r
        for r in await rows(
            database_url,
            "SELECT c.source, c.status, c.text, c.created, t.uri, p.source AS parent "
            "FROM comments c JOIN threads t ON t.id = c.thread_id "
            "LEFT JOIN comments p ON p.id = c.parent_id",
        )
    }
    assert set(found) == {"disqus:2", "disqus:3", "disqus:wp_id=77", "disqus:4"}
    assert found["disqus:3"]["parent"] == "disqus:2"
    assert found["disqus:3"]["text"] == "reply first\n\nsecond paragraph"
    assert found["disqus:3"]["uri"] == "/2015/05/hello"
    assert found["disqus:4"]["status"] == "deleted"
    assert {found[s]["status"] for s in ("disqus:2", "disqus:3", "disqus:wp_id=77")} == {"approved"}
    assert report.skipped == {"orphan: thread without link": 1}
    async with serve(make_settings(database_url, tmp_path)) as server, server.client() as client:
        by_alias = (await client.get("/api/comments", params={"uri": "old-identifier"})).json()
    assert by_alias["uri"] == "/2015/05/hello" and by_alias["count"] == 3
    html = {c["html"] for c in by_alias["comments"]}
    assert "<p>reply first</p><p>second paragraph</p>" in html
    assert by_alias["comments"][-1]["created"] == "2015-05-05T10:00:00Z"


async def test_reply_to_a_hidden_stored_comment_reveals_its_placeholder(
    database_url: str, tmp_path: Path
) -> None:
    """A newer export's approved reply under a trashed comment shows it as a placeholder,
    with an event for each, so live readers and caches see the same thing."""
    first = tmp_path / "v1.xml"
    newer = tmp_path / "v2.xml"
    trashed = wxr_comment(1, "trashed words", approved="trash")
    first.write_text(wxr(wxr_item(3, "p", trashed)))
    newer.write_text(wxr(wxr_item(3, "p", trashed + wxr_comment(2, "answer", parent=1))))
    await import_into(database_url, "wordpress", first)
    assert await rows(database_url, "SELECT type FROM events") == []
    await import_into(database_url, "wordpress", newer)
    async with serve(make_settings(database_url, tmp_path)) as server, server.client() as client:
        read = (await client.get("/api/comments", params={"uri": "/posts/p"})).json()
    assert [(c["status"], c["html"]) for c in read["comments"]] == [
        ("deleted", ""),
        ("approved", "<p>answer</p>"),
    ]
    events = await rows(database_url, "SELECT type, comment_id FROM events ORDER BY seq")
    assert [(e["type"], e["comment_id"]) for e in events] == [
        ("comment.approved", read["comments"][0]["id"]),
        ("comment.created", read["comments"][1]["id"]),
    ]
    assert read["cursor"] == 2
    assert "trashed words" not in str(read)
