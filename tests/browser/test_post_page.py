"""kibitz's own post page in a real browser: plain without JavaScript, live with it."""

from __future__ import annotations

from typing import Any

from tests.helpers.browsers import Setup, shot


def test_without_javascript_the_form_posts_and_the_thread_shows(browser: Any, site: Setup) -> None:
    """JavaScript off: the server-rendered page and the plain form post do everything."""
    site.kibitz.add_post("plain", "Plain and simple")
    ctx = browser.new_context(java_script_enabled=False)
    page = ctx.new_page()
    try:
        page.goto(site.kibitz.url + "/posts/plain")
        page.fill("#kibitz-email", "nojs@example.org")
        page.fill("#kibitz-text", "Works without scripts.")
        page.click("button[type=submit]")
        assert page.locator("#kibitz-author-error").count() == 1  # 422, all kept
        assert page.locator("#kibitz-text").input_value().strip() == "Works without scripts."
        page.fill("#kibitz-author", "No Script")
        with page.expect_navigation():
            page.click("button[type=submit]")
        assert "#comment-" in page.url
        assert page.locator("li.comment", has_text="Works without scripts.").count() == 1
        assert page.locator(".comment__edit-button").count() == 0
        shot(page, "page-no-javascript")
        # The form path left the edit token in a cookie: with JavaScript, Edit is offered.
        scripted = browser.new_context()
        scripted.add_cookies(ctx.cookies())
        again = scripted.new_page()
        again.goto(site.kibitz.url + "/posts/plain")
        mine = again.locator("#" + page.url.split("#")[1])
        mine.locator(".comment__edit-button").click()
        again.locator(".comment__edit textarea").fill("Edited with scripts.")
        again.locator(".comment__edit button[type=submit]").click()
        mine.locator(".comment__body", has_text="Edited with scripts.").wait_for()
        scripted.close()
    finally:
        ctx.close()


def test_a_comment_posted_in_one_tab_appears_in_the_other(browser: Any, site: Setup) -> None:
    """JavaScript on: fetch posts without a page load; the other tab inserts it live."""
    post = site.kibitz.add_post("live", "Live post")
    first = site.kibitz.add_comment(post.uri, "Already here.", author="Early Bird")
    ctx_a, ctx_b = browser.new_context(), browser.new_context()
    a, b = ctx_a.new_page(), ctx_b.new_page()
    problems: list[str] = []
    for page in (a, b):
        page.on("pageerror", lambda exc: problems.append(str(exc)))
    try:
        for page in (a, b):
            page.goto(site.kibitz.url + "/posts/live")
        for page in (a, b):
            page.locator("[data-presence]", has_text="2 reading now").wait_for(timeout=5000)
        a.evaluate("window.stillThisPage = true")
        # Reply to the existing comment from tab A.
        a.locator(f"#comment-{first.id} .comment__reply").click()
        assert a.locator(".respond__title").inner_text() == "Reply to Early Bird"
        assert a.evaluate("document.activeElement.id") == "kibitz-text"
        a.fill("#kibitz-author", "Tab A")
        a.fill("#kibitz-email", "a@example.org")
        a.fill("#kibitz-text", "Replying live.")
        a.click("button[type=submit]")
        reply = b.locator(f"#comment-{first.id} > ol.comment-list--children > li.comment--new")
        reply.wait_for(timeout=5000)
        assert "Replying live." in reply.inner_text()
        b.locator("[data-announcer]", has_text="New comment by Tab A").wait_for(state="attached")
        assert b.locator(".comments__title").inner_text() == "2 comments on “Live post”"
        assert a.evaluate("window.stillThisPage") is True
        assert a.locator(f"#comment-{first.id} li.comment", has_text="Replying live.").count() == 1
        assert a.locator("#kibitz-text").input_value() == ""
        assert a.locator(".comment__edit-button").count() == 1
        shot(a, "page-posted-with-fetch")
        shot(b, "page-live-arrival")
        assert problems == []
    finally:
        ctx_a.close()
        ctx_b.close()


def test_field_errors_from_the_api_show_beside_the_fields(browser: Any, site: Setup) -> None:
    """With JavaScript, a 422 marks the fields in place and keeps what was typed."""
    site.kibitz.add_post("errors", "Errors")
    ctx = browser.new_context()
    page = ctx.new_page()
    try:
        page.goto(site.kibitz.url + "/posts/errors")
        page.wait_for_function("document.querySelector('[data-kibitz-page]').dataset.live")
        page.evaluate("window.stillThisPage = true")
        page.fill("#kibitz-text", "Keep me.")
        page.click("button[type=submit]")
        page.locator("#kibitz-author-error").wait_for()
        assert page.locator("#kibitz-email-error").count() == 1
        assert page.evaluate("window.stillThisPage") is True
        assert page.locator("#kibitz-text").input_value() == "Keep me."
        shot(page, "page-field-errors")
    finally:
        ctx.close()


def test_the_post_page_script_works_under_a_strict_csp(browser: Any, site: Setup) -> None:
    """Under the page's own Content-Security-Policy (`script-src 'self'`, no inline anything,
    framing by the site only), the page still goes live and shows new comments."""
    site.kibitz.add_post("strict", "Strict")
    ctx = browser.new_context()
    page = ctx.new_page()
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    try:
        response = page.goto(site.kibitz.url + "/posts/strict")
        assert response is not None
        csp = response.headers["content-security-policy"]
        assert "script-src 'self';" in csp and "style-src 'self';" in csp
        assert "unsafe-inline" not in csp and "frame-ancestors 'self'" in csp
        try:
            page.locator("[data-presence]", has_text="1 reading now").wait_for(timeout=5000)
        except Exception:
            raise AssertionError(problems) from None
        site.kibitz.add_comment("/posts/strict", "Arrived under CSP.")
        page.locator("li.comment--new", has_text="Arrived under CSP.").wait_for(timeout=5000)
        assert problems == []
    finally:
        ctx.close()


SHAPE = """root => [...root.querySelectorAll('li.comment')].map(li => [Number(li.dataset.id),
  li.className, [...li.querySelector(':scope > .comment__card').querySelectorAll('*')]
    .map(e => e.tagName.toLowerCase() + [...e.classList].sort().map(c => '.' + c).join(''))])"""


def test_the_widget_renders_the_markup_the_page_renders(browser: Any, site: Setup) -> None:
    """Same thread, same elements and classes, comment by comment: the two cannot drift."""

    from tests.helpers.widget import widget

    post = site.kibitz.add_post("shape", "Shape")
    top = site.kibitz.add_comment(
        post.uri, "Top with <em>markup</em> and https://example.org", author="Ann"
    )
    site.kibitz.add_comment(post.uri, "A reply.\n\nTwo paragraphs.", author="Ben", parent=top.id)
    site.kibitz.add_comment(post.uri, "Second top.", author="Cy")
    ctx = browser.new_context(java_script_enabled=False)
    page = ctx.new_page()
    try:
        page.goto(site.kibitz.url + "/posts/shape")
        assert page.locator("li.comment .avatar").count() > 0
        server = page.locator("[data-comment-list]").evaluate(SHAPE)
    finally:
        ctx.close()
    html = (
        '<!doctype html><html lang="en"><body><div data-kibitz-thread="/posts/shape"></div>'
        f'<script async src="{site.kibitz.url}/embed.js"></script></body></html>'
    )
    url = site.host.add("/shape", html)
    ctx = browser.new_context()
    page = ctx.new_page()
    try:
        page.goto(url)
        widget(page).locator("li.comment").first.wait_for()
        rendered = widget(page).locator("[data-comment-list]").evaluate(SHAPE)
    finally:
        ctx.close()
    assert rendered == server
