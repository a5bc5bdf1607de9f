"""Every public XSS vector in ../shared/corpus/xss, sanitised and read back as a browser would.

The vectors are read at test time from the shared corpus, never copied into the project. Two
paths: every vector through ``render_comment`` (fast, precise failure messages), and every
vector posted through the real HTTP API, then the post page fetched and parsed with html5lib.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
from typing import Any

import html5lib
import pytest

from server.discussion.markup import render_comment, resanitise
from server.discussion.validation import clean_text, has_lone_surrogate
from tests.helpers.html import XHTML, parse_fragment, problems, shape
from tests.helpers.posts import add_post
from tests.helpers.servers import IN_CI, ROOT, Server

# ../shared beside the checkout (or beside the worktrees' folder, for a git worktree).
CORPUS = next(
    (
        p / "shared/corpus/xss/public-vectors.txt"
        for p in ROOT.parents
        if (p / "shared/corpus/xss/public-vectors.txt").exists()
    ),
    ROOT.parent / "shared/corpus/xss/public-vectors.txt",
)
_ESCAPE = re.compile(r"\\(n|r|\\|u\{([0-9A-Fa-f]{1,6})\})")


def decode(line: str) -> str:
    """Undo the corpus's line escapes (README): \\n, \\r, \\u{HEX}, and \\\\ before those."""

    def replace(match: re.Match[str]) -> str:
        code = match.group(1)
        if code == "n":
            return "\n"
        if code == "r":
            return "\r"
        if code == "\\":
            return "\\"
        return chr(int(match.group(2), 16))

    return _ESCAPE.sub(replace, line)


def vectors() -> list[str]:
    if not CORPUS.exists():
        if IN_CI:
            pytest.fail(f"{CORPUS} is not there")
        pytest.skip(f"{CORPUS} is not there")
    lines = CORPUS.read_text(encoding="utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [decode(line) for line in lines]


def test_decoder_follows_the_readme() -> None:
    """Escapes decode as documented; a backslash before anything else stays literal."""
    assert decode(r"a\nb\rc\u{D800}d\u{2028}") == "a\nb\rc\ud800d\u2028"
    assert decode(r"\\n \x \\u{41} \u{41}") == "\\n \\x \\u{41} A"


def test_corpus_has_all_vectors() -> None:
    """The corpus holds its 605 vectors (a truncated file would make the tests below weak)."""
    assert len(vectors()) == 605


def test_every_vector_renders_inside_the_allowlist() -> None:
    """Rendered alone, every vector parses to allowed elements only, and is a fixed point."""
    failures: list[str] = []
    for number, vector in enumerate(vectors(), start=1):
        if has_lone_surrogate(vector):
            continue  # refused as 422 before sanitising; see the HTTP test
        html = render_comment(clean_text(vector))
        fragment = parse_fragment(html)
        found = problems(el for el in fragment.iter() if el is not fragment)
        if found:
            failures.append(f"line {number}: {found} in {html!r}")
        if resanitise(html) != html:
            failures.append(f"line {number}: not a fixed point: {html!r}")
    assert not failures, "\n".join(failures[:20])


def _outside_bodies(document: Any) -> set[tuple[str, tuple[str, ...]]]:
    """Every (tag, attribute names) on the page outside comment bodies."""
    signatures: set[tuple[str, tuple[str, ...]]] = set()

    def walk(element: Any) -> None:
        if not isinstance(element.tag, str):
            return
        signatures.add((element.tag, tuple(sorted(element.attrib))))
        if element.attrib.get("class") == "comment__body":
            return
        for child in element:
            walk(child)

    walk(document)
    return signatures


def _bodies(document: Any) -> dict[int, Any]:
    """Comment id → its body element, as the browser built them."""
    bodies: dict[int, Any] = {}
    for li in document.iter(f"{XHTML}li"):
        if li.attrib.get("id", "").startswith("comment-"):
            for child in li.iter(f"{XHTML}div"):
                if child.attrib.get("class") == "comment__body":
                    bodies[int(li.attrib["id"].removeprefix("comment-"))] = child
                    break
    return bodies


async def test_every_vector_posted_through_http_is_safe_on_the_page(server: Server) -> None:
    """All 605 vectors posted to the API, then the page parsed: nothing unsafe, nothing escapes.

    Each comment body holds only allowed elements and attributes (no foreign namespace, no
    on* or style, links only http/https/mailto); each body parses on the page exactly as its
    HTML parses alone (so nothing leaked into or out of its container); and the page outside
    the bodies has only the element shapes of a page with one harmless comment.
    """
    await add_post(server, "xss", "XSS", author="A", body_html="<p>x</p>")
    async with server.client() as client:
        harmless = await client.post(
            "/api/comments",
            json={
                "uri": "/posts/xss",
                "author": "Ada",
                "email": "ada@example.org",
                "text": "harmless <b>bold</b> https://example.com/\n\nsecond",
            },
        )
        assert harmless.status_code == 201
        baseline = _outside_bodies(html5lib.parse((await client.get("/posts/xss")).text))
        # A long thread of harmless comments adds the page's own controls (the order form,
        # the next and first-page links): they belong to the baseline too.
        await server.state.posts.add(slug="long", title="Long", author="A", body_html="<p>x</p>")
        for i in range(server.settings.page_size + 1):
            await client.post(
                "/api/comments",
                json={"uri": "/posts/long", "author": "Ada", "email": "a@b.cd", "text": f"#{i}"},
            )
        first = await client.get("/posts/long")
        later = re.search(r'<a href="([^"]+)" rel="next"', first.text)
        assert later, "the long thread has a second page"
        second = await client.get(html.unescape(later.group(1)))
        for text in (first.text, second.text):
            baseline |= _outside_bodies(html5lib.parse(text))

        gate = asyncio.Semaphore(8)

        async def post(vector: str) -> tuple[str, int]:
            body = json.dumps(
                {
                    "uri": "/posts/xss",
                    "author": "Mallory",
                    "email": "mallory@example.org",
                    "text": vector,
                }
            )
            async with gate:
                response = await client.post(
                    "/api/comments",
                    content=body.encode(),
                    headers={"content-type": "application/json"},
                )
            return vector, response.status_code

        results = await asyncio.gather(*(post(v) for v in vectors()))
        for vector, status in results:
            blank = not clean_text(vector).strip()
            expected = 422 if has_lone_surrogate(vector) or blank else 201
            assert status == expected, (vector, status)
        # The post page shows KIBITZ_PAGE_SIZE top-level comments a page: follow "next".
        documents = []
        url: str | None = "/posts/xss"
        while url:
            page = await client.get(url)
            documents.append(html5lib.parse(page.text))
            found = re.search(r'<a href="([^"]+)" rel="next"', page.text)
            url = html.unescape(found.group(1)) if found else None
        listed = (await client.get("/api/comments", params={"uri": "/posts/xss"})).json()

    accepted = sum(1 for _, status in results if status == 201)
    assert listed["count"] == accepted + 1
    bodies = {k: v for document in documents for k, v in _bodies(document).items()}
    assert sorted(bodies) == sorted(c["id"] for c in listed["comments"])
    failures: list[str] = []
    for comment in listed["comments"]:
        body = bodies[comment["id"]]
        found = problems(el for el in body.iter() if el is not body)
        if found:
            failures.append(f"{comment['id']}: {found}")
        if shape(body) != shape(parse_fragment(comment["html"])):
            failures.append(f"{comment['id']}: parses differently on the page: {comment['html']!r}")
        if resanitise(comment["html"]) != comment["html"]:
            failures.append(f"{comment['id']}: not a fixed point")
    assert not failures, "\n".join(failures[:20])
    for document in documents:
        assert _outside_bodies(document) <= baseline, _outside_bodies(document) - baseline
