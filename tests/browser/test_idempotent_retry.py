"""A comment sent again after its answer was lost is stored once (widget and post page).

The browser's first POST reaches kibitz, which stores the comment, but the connection is
reset before the answer arrives (playwright's route forwards the request to the real server,
then aborts the browser's side). The reader sees "could not be sent", sends the same comment
again, and the Idempotency-Key the form sent the first time gets the first answer back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.helpers.browsers import Setup, host_page
from tests.helpers.widget import THREAD, THREAD_DIV, open_host, post_through, widget


@dataclass
class CutFirstAnswer:
    """Routes POST /api/comments: the first one reaches kibitz, its answer never comes back."""

    keys: list[str | None] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)

    def __call__(self, route: Any) -> None:
        request = route.request
        if request.method != "POST":
            route.continue_()
            return
        self.keys.append(request.headers.get("idempotency-key"))
        if len(self.keys) == 1:
            answer = route.fetch()  # kibitz gets it and answers; the browser does not hear it
            self.statuses.append(answer.status)
            route.abort("connectionreset")
            return
        route.continue_()


def stored(base: str, uri: str, text: str) -> int:
    """How many comments of the thread carry ``text``, as the API shows them to anyone."""
    thread = httpx.get(base + "/api/comments", params={"uri": uri}).json()
    return sum(1 for c in thread["comments"] if c["html"] == f"<p>{text}</p>")


def test_the_widget_resends_with_the_same_key_and_the_comment_is_stored_once(
    browser: Any, site: Setup
) -> None:
    """Answer lost, sent again: one comment, shown once; the next comment gets a new key."""
    url = site.host.add("/post", host_page(site.kibitz.url, THREAD_DIV))
    ctx, page, problems = open_host(browser, url)
    cut = CutFirstAnswer()
    try:
        w = widget(page)
        w.locator("form[data-comment-form]").wait_for()
        page.route(site.kibitz.url + "/api/comments", cut)
        post_through(page, "Tunnel", "Sent through a tunnel.")
        w.locator(".notice--error", has_text="Check your connection").wait_for()
        assert cut.statuses == [201]  # it was stored, but the reader could not know
        assert w.locator("#kibitz-text").input_value() == "Sent through a tunnel."
        w.locator("button[type=submit]").click()
        w.locator(".notice--published").wait_for()
        w.locator("li.comment", has_text="Sent through a tunnel.").wait_for()
        assert len(cut.keys) == 2 and cut.keys[0] and cut.keys[0] == cut.keys[1]
        assert stored(site.kibitz.url, THREAD, "Sent through a tunnel.") == 1
        assert w.locator("li.comment", has_text="Sent through a tunnel.").count() == 1
        # A new comment is a new submission: a new key.
        w.locator("#kibitz-text").fill("And another one.")
        w.locator("button[type=submit]").click()
        w.locator("li.comment", has_text="And another one.").wait_for()
        assert len(cut.keys) == 3 and cut.keys[2] and cut.keys[2] != cut.keys[0]
        assert stored(site.kibitz.url, THREAD, "And another one.") == 1
        # The reset is logged as a failed load; no script error came of it.
        assert [p for p in problems if p.startswith("pageerror")] == []
    finally:
        ctx.close()


def test_the_post_page_resends_after_a_reload_with_the_same_key(browser: Any, site: Setup) -> None:
    """kibitz's own page: answer lost, page reloaded, sent again: the comment is stored once."""
    post = site.kibitz.add_post("tunnel", "Through a tunnel")
    ctx = browser.new_context()
    page = ctx.new_page()
    cut = CutFirstAnswer()
    try:
        page.goto(site.kibitz.url + "/posts/tunnel")
        page.locator("[data-kibitz-page][data-live=ready]").wait_for()
        page.route(site.kibitz.url + "/api/comments", cut)
        page.fill("#kibitz-author", "Tunnel")
        page.fill("#kibitz-email", "tunnel@example.org")
        page.fill("#kibitz-text", "Lost on the way back.")
        page.click("button[type=submit]")
        page.locator(".notice--error", has_text="Check your connection").wait_for()
        assert cut.statuses == [201]
        page.reload()  # the draft, and the key of the unanswered submission, come back
        page.locator("[data-kibitz-page][data-live=ready]").wait_for()
        assert page.locator("#kibitz-text").input_value() == "Lost on the way back."
        # The comment the first POST stored is on the page now, once.
        assert page.locator("li.comment", has_text="Lost on the way back.").count() == 1
        page.click("button[type=submit]")
        page.locator(".notice--published").wait_for()
        assert len(cut.keys) == 2 and cut.keys[0] and cut.keys[0] == cut.keys[1]
        assert stored(site.kibitz.url, post.uri, "Lost on the way back.") == 1
        assert page.locator("li.comment", has_text="Lost on the way back.").count() == 1
    finally:
        ctx.close()
