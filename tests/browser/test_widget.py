"""The embeddable widget on another origin, in a real browser: rendering, CSP, looks, form."""

from __future__ import annotations

import re
from typing import Any

from tests.helpers.browsers import Setup, host_page, run_host, shot, strict_csp
from tests.helpers.servers import free_port
from tests.helpers.widget import THREAD, THREAD_DIV, open_host, post_through, wait_live, widget


def test_thread_renders_threaded_under_a_strict_host_csp(browser: Any, site: Setup) -> None:
    """Comments, replies and the form render in a shadow root; the strict CSP reports nothing."""
    first = site.kibitz.add_comment(THREAD, "First!", author="Ada")
    site.kibitz.add_comment(THREAD, "A reply.", author="Brian", parent=first.id)
    site.kibitz.add_comment(
        THREAD, "Held back.", author="Mallory", status="pending", email="mallory@example.org"
    )
    url = site.host.add(
        "/post", host_page(site.kibitz.url, THREAD_DIV), csp=strict_csp(site.kibitz.url)
    )
    ctx, page, problems = open_host(browser, url)
    try:
        reply = widget(page).locator(f"#comment-{first.id} ol.comment-list--children li.comment")
        reply.wait_for()
        assert "A reply." in reply.inner_text()
        assert widget(page).locator(".comments__title").inner_text() == "2 comments"
        html = page.evaluate("document.querySelector('[data-kibitz-thread]').shadowRoot.innerHTML")
        assert "Mallory" not in html and "@example.org" not in html and "192.0.2" not in html
        # The stylesheet applied although the CSP forbids inline styles.
        radius = (
            widget(page)
            .locator(".comment__card")
            .first.evaluate("el => getComputedStyle(el).borderTopLeftRadius")
        )
        assert radius == "10px"
        shot(page, "widget-light")
        assert problems == []
    finally:
        ctx.close()


def test_counts_are_filled_with_one_request(browser: Any, site: Setup) -> None:
    """Every count span on a page is filled from a single /api/counts request."""
    site.kibitz.add_comment(THREAD, "One.")
    site.kibitz.add_comment(THREAD, "Two.")
    site.kibitz.add_comment("/other/", "Three.")
    body = (
        f'<span id="a" data-kibitz-count="{THREAD}"></span>'
        f'<span id="b" data-kibitz-count="/other/"></span>'
        f'<span id="c" data-kibitz-count="{THREAD}"></span>'
        '<span id="d" data-kibitz-count="/nothing-here/"></span>'
    )
    url = site.host.add("/index", host_page(site.kibitz.url, body), csp=strict_csp(site.kibitz.url))
    ctx = browser.new_context()
    page = ctx.new_page()
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url) if "/api/counts" in r.url else None)
    try:
        page.goto(url)
        page.locator("#d", has_text="0").wait_for()
        assert [page.locator(f"#{i}").inner_text() for i in "abcd"] == ["2", "1", "2", "0"]
        assert len(asked) == 1
        shot(page, "widget-counts")
    finally:
        ctx.close()


def test_a_site_that_is_not_allowed_gets_a_clear_message(browser: Any, site: Setup) -> None:
    """An origin missing from KIBITZ_ALLOWED_ORIGINS sees why, not a blank box."""
    site.kibitz.add_comment(THREAD, "Visible only to allowed sites.")
    with run_host(free_port()) as stranger:
        url = stranger.add("/post", host_page(site.kibitz.url, THREAD_DIV))
        ctx = browser.new_context()
        page = ctx.new_page()
        try:
            page.goto(url)
            message = widget(page).locator(".notice--error")
            message.wait_for()
            assert "is not allowed to embed" in message.inner_text()
            assert stranger.url in message.inner_text()
            assert widget(page).locator("li.comment").count() == 0
            assert widget(page).get_attribute("data-kibitz-state") == "refused"
            assert widget(page).evaluate("el => el.getBoundingClientRect().height") < 200
            shot(page, "widget-refused")
        finally:
            ctx.close()


def _contrast(fg: str, bg: str) -> float:
    def luminance(colour: str) -> float:
        r, g, b = (int(x) for x in re.findall(r"\d+", colour)[:3])

        def channel(c: int) -> float:
            s = c / 255
            return s / 12.92 if s <= 0.03928 else ((s + 0.055) / 1.055) ** 2.4

        return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)

    hi, lo = sorted((luminance(fg), luminance(bg)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


PAIRS = """(() => {
  const root = document.querySelector('[data-kibitz-thread]').shadowRoot;
  const style = (sel) => getComputedStyle(root.querySelector(sel));
  const bg = style('.kibitz').backgroundColor, card = style('.comment__card').backgroundColor;
  return {
    text: [style('.kibitz').color, bg],
    comment: [style('.comment__body').color, card],
    muted: [style('.comment__when a').color, card],
    reply: [style('.comment__reply').color, card],
    hint: [style('.field__hint').color, bg],
    button: [style('button[type=submit]').color, style('button[type=submit]').backgroundColor],
  };
})()"""


def test_dark_theme_and_both_themes_pass_wcag_aa(browser: Any, site: Setup) -> None:
    """data-kibitz-theme=dark darkens the widget; every text colour pair reaches 4.5:1."""
    site.kibitz.add_comment(THREAD, "Readable in the dark?")
    for theme in ("light", "dark"):
        body = f'<div data-kibitz-thread="{THREAD}" data-kibitz-theme="{theme}"></div>'
        url = site.host.add(
            f"/{theme}", host_page(site.kibitz.url, body), csp=strict_csp(site.kibitz.url)
        )
        ctx, page, _ = open_host(browser, url)
        try:
            widget(page).locator("li.comment").wait_for()
            pairs = page.evaluate(PAIRS)
            background = pairs["text"][1]
            assert (background == "rgb(18, 20, 23)") == (theme == "dark"), background
            for name, (fg, bg) in pairs.items():
                assert _contrast(fg, bg) >= 4.5, (theme, name, fg, bg)
            shot(page, f"widget-{theme}")
        finally:
            ctx.close()
    # auto follows the reader's preference.
    url = site.host.add("/auto", host_page(site.kibitz.url, THREAD_DIV))
    ctx, page, _ = open_host(browser, url, color_scheme="dark")
    try:
        widget(page).locator("li.comment").wait_for()
        assert page.evaluate(PAIRS)["text"][1] == "rgb(18, 20, 23)"
    finally:
        ctx.close()


def test_keyboard_only_posting_with_visible_focus(browser: Any, site: Setup) -> None:
    """Tab reaches every field and the button, Enter posts, focus stays and is visible."""
    url = site.host.add(
        "/post", host_page(site.kibitz.url, THREAD_DIV), csp=strict_csp(site.kibitz.url)
    )
    ctx, page, problems = open_host(browser, url)
    active = "document.querySelector('[data-kibitz-thread]').shadowRoot.activeElement"
    try:
        wait_live(page)
        for _ in range(30):
            page.keyboard.press("Tab")
            if page.evaluate(f"{active} && {active}.id") == "kibitz-author":
                break
        else:
            raise AssertionError("Tab never reached the name field")
        page.keyboard.type("Kay Board")
        page.keyboard.press("Tab")
        assert page.evaluate(f"{active}.id") == "kibitz-email"
        page.keyboard.type("kay@example.org")
        page.keyboard.press("Tab")
        assert page.evaluate(f"{active}.id") == "kibitz-website"
        page.keyboard.press("Tab")
        assert page.evaluate(f"{active}.id") == "kibitz-text"
        page.keyboard.type("Typed without a mouse.")
        page.keyboard.press("Tab")
        assert page.evaluate(f"{active}.type") == "submit"
        outline = page.evaluate(
            f"(() => {{ const s = getComputedStyle({active}); "
            "return [s.outlineStyle, s.outlineWidth]; })()"
        )
        assert outline == ["solid", "3px"]
        shot(page, "widget-keyboard-focus")
        page.keyboard.press("Enter")
        mine = widget(page).locator("li.comment", has_text="Typed without a mouse.")
        mine.wait_for()
        assert page.evaluate(f"{active}.type") == "submit"
        shot(page, "widget-keyboard-posted")
        # Reply by keyboard: focus the Reply link, Enter moves to the text box for the reply.
        mine.locator(".comment__reply").focus()
        page.keyboard.press("Enter")
        assert page.evaluate(f"{active}.id") == "kibitz-text"
        assert widget(page).locator(".respond__title").inner_text() == "Reply to Kay Board"
        page.keyboard.type("Answering myself.")
        page.keyboard.press("Tab")
        page.keyboard.press("Enter")
        reply = mine.locator("ol.comment-list--children li.comment", has_text="Answering myself.")
        reply.wait_for()
        assert widget(page).locator(".respond__title").inner_text() == "Leave a comment"
        assert problems == []
    finally:
        ctx.close()


def test_field_errors_show_beside_fields_and_typed_text_survives_a_reload(
    browser: Any, site: Setup
) -> None:
    """A 422 marks each field with its message; the draft comes back after a reload."""
    url = site.host.add("/post", host_page(site.kibitz.url, THREAD_DIV))
    ctx, page, _ = open_host(browser, url)
    try:
        w = widget(page)
        w.locator("#kibitz-email").fill("not an address")
        w.locator("#kibitz-text").fill("Something worth keeping.")
        w.locator("button[type=submit]").click()
        w.locator("#kibitz-author-error").wait_for()
        assert w.locator("#kibitz-author").get_attribute("aria-invalid") == "true"
        described = w.locator("#kibitz-author").get_attribute("aria-describedby")
        assert "kibitz-author-error" in described
        email_error = w.locator("#kibitz-email-error").inner_text()
        assert email_error == "Please enter a valid e-mail address."
        assert w.locator("#kibitz-text").input_value() == "Something worth keeping."
        assert (
            page.evaluate(
                "document.querySelector('[data-kibitz-thread]').shadowRoot.activeElement.id"
            )
            == "kibitz-author"
        )
        shot(page, "widget-field-errors")
        page.reload()
        w.locator("#kibitz-text").wait_for()
        assert w.locator("#kibitz-text").input_value() == "Something worth keeping."
        assert w.locator("#kibitz-email").input_value() == "not an address"
    finally:
        ctx.close()


def test_german_words_from_the_shared_catalogue(browser: Any, site: Setup) -> None:
    """data-kibitz-lang=de (or the page's lang) switches every word to German, the API's too."""
    site.kibitz.add_comment(THREAD, "Servus.")
    url = site.host.add("/de", host_page(site.kibitz.url, THREAD_DIV, lang="de"))
    ctx, page, _ = open_host(browser, url)
    try:
        widget(page).locator("li.comment").wait_for()
        assert widget(page).locator(".comments__title").inner_text() == "1 Kommentar"
        assert widget(page).locator("button[type=submit]").inner_text() == "Kommentar abschicken"
        assert widget(page).locator(".comment__reply").inner_text() == "Antworten"
        # The server's own messages come in German too: the widget asks the API in its language.
        widget(page).locator("button[type=submit]").click()
        error = widget(page).locator("#kibitz-text-error")
        error.wait_for()
        assert error.inner_text() == "Bitte schreibe einen Kommentar."
        shot(page, "widget-german")
    finally:
        ctx.close()


def test_a_hundred_comment_thread_renders_fast(browser: Any, site: Setup) -> None:
    """Script loaded → 100 comments rendered, measured by the page's clock (bench/widget.py)."""
    ids: list[int] = []
    for i in range(100):
        parent = ids[i - 1] if i % 3 == 2 else None
        ids.append(
            site.kibitz.add_comment(
                THREAD,
                f"Comment {i} with https://example.org/{i}",
                author=f"Reader {i % 17}",
                parent=parent,
            ).id
        )
    url = site.host.add(
        "/big", host_page(site.kibitz.url, THREAD_DIV), csp=strict_csp(site.kibitz.url)
    )
    ctx, page, problems = open_host(browser, url)
    try:
        widget(page).locator("form[data-comment-form]").wait_for()
        # The first page: 50 top-level comments with their replies; the rest loads on request.
        assert widget(page).locator("li.comment").count() == 75
        assert widget(page).locator("button[data-load-more]").is_visible()
        timing = page.evaluate("""() => {
            const s = performance.getEntriesByType('resource')
                .find(e => e.name.includes('/embed.js'));
            const done = performance.getEntriesByName('kibitz:rendered')[0].startTime;
            return done - s.responseEnd; }""")
        print(f"\nwidget: embed.js loaded → 100 comments rendered in {timing:.0f} ms")
        assert timing < 3000
        shot(page, "widget-hundred-comments")
        assert [p for p in problems if "WebSocket" not in p] == []
    finally:
        ctx.close()


HOSTILE_CSS = """
li, p, button { color: rgb(255, 0, 0) !important; font-size: 40px !important; }
.comment__card { display: none !important; }
[data-kibitz-thread] { --kibitz-accent: rgb(120, 20, 90); --kibitz-accent-fg: rgb(255, 255, 255); }
"""


def test_styles_are_isolated_both_ways_and_themable_by_custom_properties(
    browser: Any, site: Setup
) -> None:
    """Host rules do not reach into the widget, its rules do not leak out; --kibitz-* do."""
    site.kibitz.add_comment(THREAD, "Styled by kibitz only.")
    body = (
        f'<style>{HOSTILE_CSS}</style><div class="comment__card" id="host-card">host</div>'
        + THREAD_DIV
    )
    url = site.host.add("/hostile", host_page(site.kibitz.url, body))
    ctx, page, _ = open_host(browser, url)
    try:
        card = widget(page).locator(".comment__card")
        card.wait_for()
        assert card.evaluate("el => getComputedStyle(el).display") == "block"
        text = widget(page).locator(".comment__body p")
        assert text.evaluate("el => getComputedStyle(el).color") != "rgb(255, 0, 0)"
        assert text.evaluate("el => getComputedStyle(el).fontSize") != "40px"
        host_card = page.locator("#host-card")
        assert host_card.evaluate("el => getComputedStyle(el).borderTopLeftRadius") == "0px"
        button = widget(page).locator("button[type=submit]")
        assert button.evaluate("el => getComputedStyle(el).backgroundColor") == "rgb(120, 20, 90)"
        shot(page, "widget-themed-on-hostile-page")
    finally:
        ctx.close()


def test_several_threads_on_one_page_mount_independently(browser: Any, site: Setup) -> None:
    """Two containers on one page each show their own thread and form."""
    site.kibitz.add_comment("/one/", "In thread one.")
    site.kibitz.add_comment("/two/", "In thread two.")
    body = (
        '<div id="one" data-kibitz-thread="/one/"></div>'
        '<div id="two" data-kibitz-thread="/two/" data-kibitz-theme="dark"></div>'
    )
    url = site.host.add("/both", host_page(site.kibitz.url, body), csp=strict_csp(site.kibitz.url))
    ctx, page, problems = open_host(browser, url)
    try:
        page.locator("#one li.comment").wait_for()
        page.locator("#two li.comment").wait_for()
        assert page.locator("#one .comment__body").all_inner_texts() == ["In thread one."]
        assert page.locator("#two .comment__body").all_inner_texts() == ["In thread two."]
        page.locator("#two #kibitz-author").fill("Second")
        page.locator("#two #kibitz-email").fill("second@example.org")
        page.locator("#two #kibitz-text").fill("Posted to two.")
        page.locator("#two button[type=submit]").click()
        page.locator("#two li.comment", has_text="Posted to two.").wait_for()
        assert page.locator("#one li.comment").count() == 1
        shot(page, "widget-two-threads")
        assert problems == []
    finally:
        ctx.close()


def test_imported_replies_dated_before_their_parent_still_nest(browser: Any, site: Setup) -> None:
    """Thread order comes from parent links first, dates second (imports get dates wrong)."""
    from datetime import UTC, datetime

    parent = site.kibitz.add_comment(
        THREAD, "Parent, dated later.", author="Pat", created=datetime(2011, 5, 1, tzinfo=UTC)
    )
    site.kibitz.add_comment(
        THREAD,
        "Reply, dated earlier.",
        author="Rey",
        parent=parent.id,
        created=datetime(2010, 5, 1, tzinfo=UTC),
    )
    site.kibitz.add_comment(
        THREAD, "Older top-level.", author="Old", created=datetime(2009, 5, 1, tzinfo=UTC)
    )
    url = site.host.add("/import", host_page(site.kibitz.url, THREAD_DIV))
    ctx, page, _ = open_host(browser, url)
    try:
        nested = widget(page).locator(f"#comment-{parent.id} > ol > li.comment")
        nested.wait_for()
        assert "Reply, dated earlier." in nested.inner_text()
        roots = widget(page).locator("ol[data-comment-list] > li.comment .comment__author")
        assert roots.all_inner_texts()[0] == "Old"
        assert widget(page).locator(".comment__number").all_inner_texts() == ["#1", "#2"]
    finally:
        ctx.close()


def test_refusals_and_lost_connections_keep_the_typed_text(browser: Any, tmp_path: Any) -> None:
    """A 429 and a failed network both say what happened and keep everything typed."""
    from tests.helpers.browsers import run_kibitz, two_origins

    origins = two_origins(tmp_path, KIBITZ_POST_RATE="1/minute")
    with run_host(origins.host_port) as host, run_kibitz(origins.settings, origins.port) as kibitz:
        url = host.add("/post", host_page(kibitz.url, THREAD_DIV))
        ctx, page, _ = open_host(browser, url)
        try:
            w = widget(page)
            w.locator("form[data-comment-form]").wait_for()
            post_through(page, "Eager", "First, accepted.")
            w.locator("li.comment", has_text="First, accepted.").wait_for()
            w.locator("#kibitz-text").fill("Second, too soon.")
            w.locator("button[type=submit]").click()
            w.locator(".notice--error", has_text="Too many comments").wait_for()
            assert w.locator("#kibitz-text").input_value() == "Second, too soon."
            ctx.set_offline(True)
            w.locator("button[type=submit]").click()
            w.locator(".notice--error", has_text="Check your connection").wait_for()
            assert w.locator("#kibitz-text").input_value() == "Second, too soon."
            assert w.locator("#kibitz-author").input_value() == "Eager"
            shot(page, "widget-offline")
        finally:
            ctx.close()


def test_an_unreachable_api_offers_to_try_again(browser: Any, site: Setup) -> None:
    """When the thread cannot be fetched the box says so, and "Try again" recovers."""
    site.kibitz.add_comment(THREAD, "Here after all.")
    url = site.host.add("/flaky", host_page(site.kibitz.url, THREAD_DIV))
    ctx = browser.new_context()
    page = ctx.new_page()
    page.route("**/api/comments?*", lambda route: route.abort())
    try:
        page.goto(url)
        retry = widget(page).locator(".notice--error button")
        retry.wait_for()
        assert widget(page).get_attribute("data-kibitz-state") == "failed"
        assert "could not be loaded" in widget(page).locator(".notice--error").inner_text()
        shot(page, "widget-failed")
        page.unroute("**/api/comments?*")
        retry.click()
        widget(page).locator("li.comment", has_text="Here after all.").wait_for()
        assert widget(page).get_attribute("data-kibitz-state") == "rendered"
    finally:
        ctx.close()


def test_without_constructable_stylesheets_a_link_to_kibitz_styles_it(
    browser: Any, site: Setup
) -> None:
    """Older browsers get a <link> to the versioned stylesheet, which the strict CSP allows."""
    site.kibitz.add_comment(THREAD, "Styled through a link.")
    url = site.host.add(
        "/old", host_page(site.kibitz.url, THREAD_DIV), csp=strict_csp(site.kibitz.url)
    )
    ctx = browser.new_context()
    page = ctx.new_page()
    page.add_init_script(
        "delete Document.prototype.adoptedStyleSheets;"
        "delete ShadowRoot.prototype.adoptedStyleSheets;"
    )
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    try:
        page.goto(url)
        card = widget(page).locator(".comment__card")
        card.wait_for()
        link = widget(page).locator("link[rel=stylesheet]")
        assert re.search(r"/widget/widget\.[0-9a-f]{12}\.css$", link.get_attribute("href") or "")
        radius = ""
        for _ in range(50):  # the linked sheet applies once it has loaded
            radius = card.evaluate("el => getComputedStyle(el).borderTopLeftRadius")
            if radius == "10px":
                break
            page.wait_for_timeout(100)
        assert radius == "10px"
        assert [p for p in problems if "WebSocket" not in p] == []
    finally:
        ctx.close()
