"""The embeddable widget on another origin, in a real browser."""

from __future__ import annotations

import re
from typing import Any

from tests.browser.conftest import Setup, host_page, shot, strict_csp

THREAD = "/2010/07/social-media/"


def open_host(browser: Any, url: str, **context: Any) -> tuple[Any, Any, list[str]]:
    """A page in a fresh context, collecting CSP violations and script errors."""
    ctx = browser.new_context(**context)
    page = ctx.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"pageerror: {exc}"))
    page.on("console", lambda msg: problems.append(f"console: {msg.text}")
            if msg.type == "error" else None)
    page.goto(url)
    return ctx, page, problems


def widget(page: Any) -> Any:
    return page.locator("[data-kibitz-thread]")


def test_thread_renders_threaded_under_a_strict_host_csp(browser: Any, site: Setup) -> None:
    """Comments, replies and the form render in a shadow root; the strict CSP reports nothing."""
    first = site.kibitz.add_comment(THREAD, "First!", author="Ada")
    site.kibitz.add_comment(THREAD, "A reply.", author="Brian", parent=first.id)
    site.kibitz.add_comment(THREAD, "Held back.", author="Mallory", status="pending",
                            email="mallory@example.org")
    url = site.host.add("/post", host_page(site.kibitz.url, f'<div data-kibitz-thread="{THREAD}"></div>'),
                        csp=strict_csp(site.kibitz.url))
    ctx, page, problems = open_host(browser, url)
    try:
        reply = widget(page).locator(f"#comment-{first.id} ol.comment-list--children li.comment")
        reply.wait_for()
        assert "A reply." in reply.inner_text()
        assert widget(page).locator(".comments__title").inner_text() == "2 comments"
        html = page.evaluate("document.querySelector('[data-kibitz-thread]').shadowRoot.innerHTML")
        assert "Mallory" not in html and "@example.org" not in html and "192.0.2" not in html
        # The stylesheet applied although the CSP forbids inline styles.
        radius = widget(page).locator(".comment__card").first.evaluate(
            "el => getComputedStyle(el).borderTopLeftRadius")
        assert radius == "10px"
        # The host's styles do not reach in, the widget's do not leak out.
        assert page.locator("h1").evaluate("el => getComputedStyle(el).fontFamily") != ""
        shot(page, "widget-light")
        assert problems == []
    finally:
        ctx.close()
