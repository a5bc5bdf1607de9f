"""Atom feeds through a real server, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import html5lib
import pytest

from tests.helpers.posts import add_comment, add_post
from tests.helpers.servers import Server, make_settings, serve

ATOM = "{http://www.w3.org/2005/Atom}"
PUBLIC = "https://comments.example.com"
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
SECRET_ADDRESS = "203.0.113.77"


@pytest.fixture
async def site(database_url: str, tmp_path: Path) -> AsyncIterator[Server]:
    settings = make_settings(database_url, tmp_path, KIBITZ_PUBLIC_URL=PUBLIC)
    async with serve(settings) as running:
        await add_post(
            running,
            "hello",
            "Hello & welcome",
            author="Admin",
            body_html="<p>x</p>",
            aliases=["/2010/07/hello"],
        )
        await add_post(running, "other", "Other", author="Admin", body_html="<p>y</p>")
        yield running


async def add(
    server: Server,
    uri: str,
    text: str,
    *,
    author: str = "Ada",
    email: str = "ada@example.org",
    **fields: Any,
) -> int:
    """A comment from the feed's point of view: its text, and the address no feed may show."""
    return await add_comment(
        server,
        uri,
        author,
        text=text,
        html=f"<p>{text}</p>",
        email=email,
        address=SECRET_ADDRESS,
        create_thread=True,
        **fields,
    )


def check_atom(body: bytes) -> ET.Element:
    """Parse a feed and assert what RFC 4287 requires of it and of every entry."""
    feed = ET.fromstring(body)
    assert feed.tag == f"{ATOM}feed"
    for name in ("id", "title", "updated"):
        assert len(feed.findall(f"{ATOM}{name}")) == 1, name
        assert feed.findtext(f"{ATOM}{name}").strip(), name
    assert RFC3339.match(feed.findtext(f"{ATOM}updated"))
    selves = [link for link in feed.findall(f"{ATOM}link") if link.get("rel") == "self"]
    assert len(selves) == 1 and selves[0].get("href", "").startswith(PUBLIC)
    feed_has_author = feed.find(f"{ATOM}author/{ATOM}name") is not None
    ids = set()
    for entry in feed.findall(f"{ATOM}entry"):
        for name in ("id", "title", "updated", "published"):
            assert len(entry.findall(f"{ATOM}{name}")) == 1, name
        assert entry.findtext(f"{ATOM}id").startswith("tag:comments.example.com,")
        ids.add(entry.findtext(f"{ATOM}id"))
        assert RFC3339.match(entry.findtext(f"{ATOM}updated"))
        assert RFC3339.match(entry.findtext(f"{ATOM}published"))
        assert entry.find(f"{ATOM}author/{ATOM}name") is not None or feed_has_author
        assert entry.find(f"{ATOM}author/{ATOM}email") is None
        content = entry.find(f"{ATOM}content")
        assert content is not None and content.get("type") == "html"
        links = entry.findall(f"{ATOM}link")
        assert links and all(link.get("href") for link in links)
    assert len(ids) == len(feed.findall(f"{ATOM}entry")), "entry ids are unique"
    return feed


def entries(feed: ET.Element) -> list[dict[str, str]]:
    return [
        {
            "id": e.findtext(f"{ATOM}id"),
            "author": e.findtext(f"{ATOM}author/{ATOM}name"),
            "html": e.findtext(f"{ATOM}content"),
            "title": e.findtext(f"{ATOM}title"),
            "link": e.find(f"{ATOM}link").get("href"),
        }
        for e in feed.findall(f"{ATOM}entry")
    ]


async def test_site_feed_is_valid_atom_of_approved_comments(site: Server) -> None:
    """The site feed is RFC 4287 Atom listing approved comments newest first, HTML escaped."""
    first = await add(site, "/posts/hello", "first <b>bold</b>")
    second = await add(site, "/posts/other", "second", author="Bob & Co")
    async with site.client() as client:
        response = await client.get("/feeds/comments.atom")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/atom+xml")
    feed = check_atom(response.content)
    found = entries(feed)
    assert [e["author"] for e in found] == ["Bob & Co", "Ada"]
    assert found[1]["html"] == "<p>first <b>bold</b></p>"
    assert found[1]["link"] == f"{PUBLIC}/posts/hello#comment-{first}"
    assert found[0]["link"] == f"{PUBLIC}/posts/other#comment-{second}"
    assert found[1]["title"] == "Ada on “Hello & welcome”"
    assert feed.findtext(f"{ATOM}id") == f"{PUBLIC}/feeds/comments.atom"


async def test_feeds_never_show_hidden_comments_emails_or_addresses(site: Server) -> None:
    """Pending, spam and deleted comments, placeholders, e-mails and IPs never reach a feed."""
    root = await add(site, "/posts/hello", "root to be deleted", email="root@secret.example")
    await add(site, "/posts/hello", "visible reply", parent=root)
    await site.state.comments.change(root, status="deleted")
    await add(site, "/posts/hello", "held words", status="pending", email="held@secret.example")
    spam = await add(site, "/posts/hello", "spam words", email="spam@secret.example")
    await site.state.comments.change(spam, status="spam")
    gone = await add(site, "/posts/hello", "deleted words")
    await site.state.comments.change(gone, status="deleted")
    async with site.client() as client:
        bodies = [
            (await client.get(path)).content
            for path in ("/feeds/comments.atom", "/feeds/thread.atom?uri=/posts/hello")
        ]
    for body in bodies:
        feed = check_atom(body)
        assert [e["html"] for e in entries(feed)] == ["<p>visible reply</p>"]
        text = body.decode()
        for secret in (
            "root to be deleted",
            "held words",
            "spam words",
            "deleted words",
            "@secret.example",
            "ada@example.org",
            SECRET_ADDRESS,
            "@",
        ):
            assert secret not in text, secret


async def test_thread_feed_lists_one_thread_by_uri_or_alias(site: Server) -> None:
    """The thread feed has only its thread; aliases and full URLs find it; unknown is 404."""
    mine = await add(site, "/posts/hello", "on hello")
    await add(site, "/posts/other", "on other")
    async with site.client() as client:
        by_uri = await client.get("/feeds/thread.atom", params={"uri": "/posts/hello/"})
        by_alias = await client.get("/feeds/thread.atom", params={"uri": "/2010/07/hello/"})
        by_url = await client.get(
            "/feeds/thread.atom", params={"uri": "https://blog.example/posts/hello?x=1#top"}
        )
        unknown = await client.get("/feeds/thread.atom", params={"uri": "/nobody/here"})
        missing = await client.get("/feeds/thread.atom")
    feed = check_atom(by_uri.content)
    assert [e["html"] for e in entries(feed)] == ["<p>on hello</p>"]
    assert entries(feed)[0]["link"] == f"{PUBLIC}/posts/hello#comment-{mine}"
    assert feed.findtext(f"{ATOM}title") == "Comments on “Hello & welcome”"
    assert by_alias.content == by_uri.content == by_url.content
    assert unknown.status_code == 404
    assert missing.status_code == 400


async def test_entry_ids_are_stable_across_edits(site: Server) -> None:
    """Editing a comment changes its entry's updated time and content, never its id."""
    cid = await add(site, "/posts/hello", "before")
    async with site.client() as client:
        before = entries(check_atom((await client.get("/feeds/comments.atom")).content))
        await site.state.discussion.edit(cid, "after")
        response = await client.get("/feeds/comments.atom")
    feed = check_atom(response.content)
    after = entries(feed)
    assert after[0]["id"] == before[0]["id"]
    assert after[0]["html"] == "<p>after</p>"
    entry = feed.find(f"{ATOM}entry")
    assert entry.findtext(f"{ATOM}updated") > entry.findtext(f"{ATOM}published") or entry.findtext(
        f"{ATOM}updated"
    ) == entry.findtext(f"{ATOM}published")


async def test_conditional_requests_get_304_until_the_feed_changes(site: Server) -> None:
    """ETag and Last-Modified answer 304; a new or removed comment makes the feed fresh."""
    cid = await add(site, "/posts/hello", "one")
    path = "/feeds/thread.atom?uri=/posts/hello"
    async with site.client() as client:
        first = await client.get(path)
        etag, modified = first.headers["etag"], first.headers["last-modified"]
        same_tag = await client.get(path, headers={"If-None-Match": etag})
        same_date = await client.get(path, headers={"If-Modified-Since": modified})
        old_date = await client.get(
            path, headers={"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}
        )
        await add(site, "/posts/hello", "two")
        after_new = await client.get(path, headers={"If-None-Match": etag})
        await site.state.comments.change(cid, status="deleted")
        after_delete = await client.get(path, headers={"If-None-Match": after_new.headers["etag"]})
        site_first = await client.get("/feeds/comments.atom")
        site_again = await client.get(
            "/feeds/comments.atom", headers={"If-None-Match": site_first.headers["etag"]}
        )
    assert first.status_code == 200
    assert same_tag.status_code == 304 and same_tag.content == b""
    assert same_tag.headers["etag"] == etag
    assert same_date.status_code == 304
    assert old_date.status_code == 200
    assert after_new.status_code == 200 and after_new.headers["etag"] != etag
    assert after_delete.status_code == 200
    assert [e["html"] for e in entries(check_atom(after_delete.content))] == ["<p>two</p>"]
    assert site_again.status_code == 304
    parsed = datetime.strptime(after_delete.headers["last-modified"], "%a, %d %b %Y %H:%M:%S GMT")
    assert parsed >= datetime.strptime(modified, "%a, %d %b %Y %H:%M:%S GMT")


async def test_empty_site_feed_is_still_valid(site: Server) -> None:
    """A site without comments serves a valid feed with no entries."""
    async with site.client() as client:
        response = await client.get("/feeds/comments.atom")
    assert response.status_code == 200
    assert check_atom(response.content).findall(f"{ATOM}entry") == []


async def test_pages_link_their_feeds(site: Server) -> None:
    """The index links the site feed and a post page its thread's feed, and both answer."""
    await add(site, "/posts/hello", "hello")

    def alternates(page: str) -> list[str]:
        tree = html5lib.parse(page, namespaceHTMLElements=False)
        return [
            link.get("href")
            for link in tree.iter("link")
            if link.get("rel") == "alternate" and link.get("type") == "application/atom+xml"
        ]

    async with site.client() as client:
        index = alternates((await client.get("/")).text)
        post = alternates((await client.get("/posts/hello")).text)
        assert "/feeds/comments.atom" in index
        thread_links = [href for href in post if "thread.atom" in href]
        assert thread_links
        for href in (*index, *post):
            response = await client.get(href)
            assert response.status_code == 200, href
            check_atom(response.content)
        thread = await client.get(thread_links[0])
    assert [e["html"] for e in entries(check_atom(thread.content))] == ["<p>hello</p>"]


async def test_control_characters_from_imports_do_not_break_the_feed(site: Server) -> None:
    """A control character in an (imported) name or text is dropped, so the XML still parses."""
    await add(site, "/posts/hello", "bell\x07 and form\x0cfeed", author="Ada\x0bLovelace")
    async with site.client() as client:
        response = await client.get("/feeds/comments.atom")
    found = entries(check_atom(response.content))
    assert found[0]["author"] == "AdaLovelace"
    assert found[0]["html"] == "<p>bell and formfeed</p>"


async def test_embedded_thread_links_to_the_embedding_site(
    database_url: str, tmp_path: Path
) -> None:
    """With one allowed origin, a widget thread's entries link to that site's page anchors."""
    settings = make_settings(
        database_url,
        tmp_path,
        KIBITZ_PUBLIC_URL=PUBLIC,
        KIBITZ_ALLOWED_ORIGINS="https://blog.example",
    )
    async with serve(settings) as server:
        cid = await add(server, "/2010/07/social-media", "embedded")
        async with server.client() as client:
            response = await client.get(
                "/feeds/thread.atom", params={"uri": "https://blog.example/2010/07/social-media/"}
            )
    feed = check_atom(response.content)
    assert entries(feed)[0]["link"] == f"https://blog.example/2010/07/social-media#comment-{cid}"
    alternate = [
        link.get("href") for link in feed.findall(f"{ATOM}link") if link.get("rel") == "alternate"
    ]
    assert alternate == ["https://blog.example/2010/07/social-media"]
    assert feed.findtext(f"{ATOM}title") == "Comments on “/2010/07/social-media”"
