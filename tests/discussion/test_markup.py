"""The sanitisers: exactly the allowlist, safe links, a fixed point, nh3's gaps closed."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from server.discussion import actions
from server.discussion.markup import (
    COMMENT_ATTRIBUTES,
    COMMENT_TAGS,
    clean_article,
    render_comment,
    resanitise,
)
from tests.helpers.html import check_fragment
from tests.helpers.posts import add_post
from tests.helpers.servers import Server, make_settings, serve

REL = 'rel="nofollow ugc noopener"'


def test_comment_allowlist_is_exactly_the_contracts() -> None:
    """The allowlist in code is the contract's list, tag for tag and attribute for attribute."""
    assert COMMENT_TAGS == {
        "a",
        "abbr",
        "acronym",
        "b",
        "blockquote",
        "cite",
        "code",
        "del",
        "em",
        "i",
        "q",
        "strike",
        "strong",
    }
    assert {t: a for t, a in COMMENT_ATTRIBUTES.items() if a} == {
        "a": {"href", "title"},
        "abbr": {"title"},
        "acronym": {"title"},
        "blockquote": {"cite"},
        "del": {"datetime"},
        "q": {"cite"},
    }


@pytest.mark.parametrize(
    "tag, attrs",
    [
        ("a", ' href="https://example.com/" title="t"'),
        ("abbr", ' title="t"'),
        ("acronym", ' title="t"'),
        ("b", ""),
        ("blockquote", ' cite="https://example.com/"'),
        ("cite", ""),
        ("code", ""),
        ("del", ' datetime="2026-11-29"'),
        ("em", ""),
        ("i", ""),
        ("q", ' cite="https://example.com/"'),
        ("strike", ""),
        ("strong", ""),
    ],
)
def test_every_allowed_tag_survives_with_its_attributes(tag: str, attrs: str) -> None:
    """Each allowed tag keeps exactly its allowed attributes; links gain rel."""
    html = render_comment(f"<{tag}{attrs}>x</{tag}>")
    extra = f" {REL}" if tag == "a" else ""
    assert f"<{tag}{attrs}{extra}>x</{tag}>" in html


@pytest.mark.parametrize(
    "tag",
    [
        "script",
        "style",
        "iframe",
        "img",
        "svg",
        "math",
        "form",
        "input",
        "button",
        "object",
        "embed",
        "video",
        "audio",
        "link",
        "meta",
        "base",
        "textarea",
        "select",
        "table",
        "div",
        "span",
        "h1",
        "ul",
        "li",
        "pre",
        "u",
        "s",
        "font",
        "marquee",
        "template",
        "noscript",
        "details",
        "dialog",
        "p",
        "br",
        "sub",
        "sup",
        "ins",
    ],
)
def test_every_other_tag_is_removed(tag: str) -> None:
    """A tag outside the allowlist never survives (p and br only where kibitz puts them)."""
    html = render_comment(f"before <{tag} id=x>inside</{tag}> after")
    assert f"<{tag}" not in html.replace("<p>", "").replace("<br>", "")
    assert "before" in html and "after" in html


def test_no_generic_attributes_on_any_tag() -> None:
    """lang, title, dir, class, id, style and on* are dropped where the allowlist lacks them."""
    html = render_comment(
        '<b lang="en" title="t" dir="rtl" class="c" id="i" style="x:y" '
        'onclick="alert(1)" data-x="1">bold</b><em title="t">e</em>'
    )
    assert html == "<p><b>bold</b><em>e</em></p>"


@pytest.mark.parametrize(
    "href",
    [
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        " javascript:alert(1)",
        "java\tscript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox(1)",
        "//evil.example/",
        "/relative/path",
        "relative",
        "#fragment",
        "?q=1",
        "ftp://example.com/",
        "file:///etc/passwd",
        "&#106;avascript:alert(1)",
        "\\\\evil.example\\share",
    ],
)
def test_links_keep_only_http_https_and_mailto(href: str) -> None:
    """Any other scheme, and relative or protocol-relative URLs, lose their href."""
    html = render_comment(f'<a href="{href}">x</a>')
    assert "href" not in html
    assert f"<a {REL}>x</a>" in html


@pytest.mark.parametrize(
    "url", ["http://example.com/", "https://example.com/a?b=c#d", "mailto:ada@example.org"]
)
def test_allowed_schemes_survive_with_rel(url: str) -> None:
    """http, https and mailto links are kept, each with rel="nofollow ugc noopener"."""
    html = render_comment(f'<a href="{url}" rel="follow" target="_blank">x</a>')
    assert html == f'<p><a href="{url.replace("&", "&amp;")}" {REL}>x</a></p>'


@pytest.mark.parametrize(
    "cite",
    [
        "javascript:alert(1)",
        "//evil.example/x",
        "/local",
        "data:text/html,x",
        " JAVASCRIPT:alert(1)",
    ],
)
def test_cite_is_checked_like_href(cite: str) -> None:
    """q and blockquote lose a cite that is not an absolute http(s)/mailto URL."""
    assert "cite=" not in render_comment(f'<q cite="{cite}">q</q>')
    assert "cite=" not in render_comment(f'<blockquote cite="{cite}">b</blockquote>')


def test_plain_urls_become_links() -> None:
    """URLs in text become links with rel; trailing punctuation stays outside; links nest never."""
    html = render_comment(
        "See https://example.com/a_(b), or http://x.example/p. "
        'Or <a href="https://y.example/">https://y.example/</a>'
    )
    assert f'<a href="https://example.com/a_(b)" {REL}>https://example.com/a_(b)</a>,' in html
    assert f'<a href="http://x.example/p" {REL}>http://x.example/p</a>.' in html
    assert html.count("<a ") == 3
    assert '<a href="https://y.example/" rel="nofollow ugc noopener">https://y.example/</a>' in html


def test_linkified_url_cannot_break_out_of_its_attribute() -> None:
    """A plain URL with quotes or angle brackets is cut there; its text is escaped."""
    html = render_comment('https://x.example/"onmouseover="alert(1) and https://y.example/<b>')
    assert html.startswith(f'<p><a href="https://x.example/" {REL}>https://x.example/</a>"')
    check_fragment(html)  # the rest is text: no attribute but href and rel on any link


def test_blank_lines_make_paragraphs_and_single_newlines_br() -> None:
    """Blank lines (any number, with spaces) separate p; one newline is br; CRLF counts too."""
    assert render_comment("one\n\ntwo\nthree\r\n \r\nfour\n\n\n") == (
        "<p>one</p><p>two<br>three</p><p>four</p>"
    )


def test_paragraph_break_inside_a_tag_stays_well_formed() -> None:
    """A tag left open across a blank line is closed and reopened, never left dangling."""
    html = render_comment("<b>bold\n\nstill bold</b> after")
    assert html == "<p><b>bold</b></p><p><b>still bold</b> after</p>"


def test_block_quote_does_not_leave_empty_paragraphs() -> None:
    """A blockquote between paragraphs renders without empty p elements around it."""
    html = render_comment("before\n\n<blockquote>quoted</blockquote>\n\nafter")
    assert "<p></p>" not in html
    assert "<blockquote>quoted</blockquote>" in html


def test_text_is_escaped_not_interpreted() -> None:
    """Angle brackets and ampersands that form no allowed tag are shown as text."""
    assert render_comment("if a < b && c > d") == "<p>if a &lt; b &amp;&amp; c &gt; d</p>"


@pytest.mark.parametrize(
    "text",
    [
        "<b>bold\n\nstill</b>",
        "https://example.com/?a=1&b=2",
        "<q cite='https://e.example'>q\nq</q>",
        "<a href=https://e.example>https://inner.example</a>",
        "a\n\n\nb\nc",
        "<blockquote>x\n\ny</blockquote>",
        "<b><i>mis</b>nested</i>",
        "&lt;script&gt; &amp;amp;",
        "<code>\n\n</code>",
        "x<br>y<p>z</p>",
        "<del datetime='x'>d</del>\u2028line",
    ],
)
def test_sanitising_the_output_again_changes_nothing(text: str) -> None:
    """The rendered HTML is a fixed point of the sanitiser."""
    html = render_comment(text)
    assert resanitise(html) == html


def test_deeply_nested_input_at_the_cap_is_fast_and_safe() -> None:
    """10,000 characters of nesting sanitise quickly to balanced, allowed HTML."""
    for text in ("<b>" * 3333, "<q><i>" * 1666, "<blockquote>" * 833, "<a href=http://x.y>" * 500):
        started = time.perf_counter()
        html = render_comment(text[:10_000])
        assert time.perf_counter() - started < 2
        check_fragment(html)
        assert resanitise(html) == html


def test_article_keeps_structure_and_drops_active_content() -> None:
    """Post bodies keep headings, lists, images, tables, links; lose scripts, styles, on*."""
    body = clean_article(
        '<h2 onclick="x()">Title</h2><p style="color:red">text <a href="/other">rel</a> '
        '<a href="https://e.example/" onmouseover="x()">abs</a></p>'
        '<ul><li>one</li></ul><ol start="3"><li>two</li></ol>'
        '<img src="/pic.png" alt="pic" onerror="x()"><img src="javascript:alert(1)">'
        '<table><thead><tr><th scope="col">h</th></tr></thead><tbody><tr><td>c</td></tr></tbody>'
        '</table><script>alert(1)</script><style>p{}</style><iframe src="https://e"></iframe>'
        '<a href="javascript:alert(1)">js</a><a href="//evil.example/">proto</a>'
        "<svg><script>alert(1)</script></svg><form><input></form>"
    )
    for kept in (
        "<h2>Title</h2>",
        '<a href="/other" rel="noopener">rel</a>',
        '<a href="https://e.example/" rel="noopener">abs</a>',
        "<ul><li>one</li></ul>",
        '<ol start="3">',
        '<img src="/pic.png" alt="pic">',
        '<th scope="col">h</th>',
        "<td>c</td>",
    ):
        assert kept in body
    lowered = body.lower()
    for gone in (
        "<script",
        "<style",
        "style=",
        "onclick",
        "onerror",
        "onmouseover",
        "javascript:",
        "//evil",
        "<iframe",
        "<svg",
        "<form",
        "<input",
        "alert",
    ):
        assert gone not in lowered


async def test_lone_surrogates_are_422_through_the_api(server: Server) -> None:
    """JSON with a lone surrogate in any text field is refused as 422, not a 500 from nh3."""
    await add_post(server, "s", "S", author="A", body_html="")
    async with server.client() as client:
        for field in ("text", "author"):
            body = {"uri": "/posts/s", "author": "a", "email": "a@b.example", "text": "t"}
            raw = (
                str(body)
                .replace("'", '"')
                .replace(f'"{field}": "{body[field]}"', f'"{field}": "x\\udc00y"')
            )
            response = await client.post(
                "/api/comments", content=raw.encode(), headers={"content-type": "application/json"}
            )
            assert response.status_code == 422, response.text
            assert field in response.json()["fields"]


async def test_text_over_the_cap_is_refused(server: Server) -> None:
    """Text over 10,000 characters is 422 before the sanitiser ever sees it."""
    await add_post(server, "s", "S", author="A", body_html="")
    async with server.client() as client:
        response = await client.post(
            "/api/comments",
            json={"uri": "/posts/s", "author": "a", "email": "a@b.example", "text": "<b>" * 3334},
        )
    assert response.status_code == 422
    assert "text" in response.json()["fields"]


async def test_sanitising_runs_off_the_event_loop(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A posted comment is rendered in a worker thread, so nesting cannot stall other requests."""
    threads: list[threading.Thread] = []

    def observed(text: str) -> str:
        threads.append(threading.current_thread())
        return render_comment(text)

    monkeypatch.setattr(actions, "render_comment", observed)
    async with serve(make_settings(database_url, tmp_path)) as server:
        await add_post(server, "s", "S", author="A", body_html="")
        async with server.client() as client:
            response = await client.post(
                "/api/comments",
                json={
                    "uri": "/posts/s",
                    "author": "a",
                    "email": "a@b.example",
                    "text": ("<b><i>" * 2000)[:10_000],
                },
            )
    assert response.status_code == 201
    assert threads and all(t is not threading.main_thread() for t in threads)
    check_fragment(response.json()["comment"]["html"])


@pytest.mark.parametrize(
    "bad",
    [
        '<img src="x" onerror="alert(1)">',
        "<svg></svg>",
        "<math><mi>x</mi></math>",
        '<a href="javascript:x" rel="nofollow ugc noopener">x</a>',
        '<b style="color:red">x</b>',
        '<a href="java\tscript:x" rel="nofollow ugc noopener">x</a>',
        '<q cite="//evil.example">q</q>',
        '<a href="https://e.example/">no rel</a>',
        '<b onclick="x()">b</b>',
        "<p><div>x</div></p>",
    ],
)
def test_the_browser_check_catches_unsafe_html(bad: str) -> None:
    """The html5lib check used on the corpus does fail on unsafe HTML (it is no empty test)."""
    with pytest.raises(AssertionError):
        check_fragment(bad)
