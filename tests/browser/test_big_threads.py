"""Big threads in a real browser: load more, the order control, votes, pins, closing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from db.models import now
from server.auth.credentials import hash_password
from server.discussion.uris import normalise_uri
from tests.helpers.browsers import Setup, host_page, run_host, run_kibitz, shot, two_origins
from tests.helpers.staff import PASSWORD
from tests.helpers.widget import THREAD, THREAD_DIV, open_host, widget


@pytest.fixture
def small_pages(tmp_path: Path) -> Iterator[Setup]:
    """kibitz with pages of three top-level comments, and an embedding site."""
    origins = two_origins(tmp_path, KIBITZ_PAGE_SIZE="3")
    with run_host(origins.host_port) as host, run_kibitz(origins.settings, origins.port) as kibitz:
        yield Setup(kibitz, host, origins.settings, origins.port)


def seed(site: Setup, uri: str, n: int) -> list[int]:
    start = now() - timedelta(hours=1)
    return [
        site.kibitz.add_comment(uri, f"Comment {i}", created=start + timedelta(minutes=i)).id
        for i in range(n)
    ]


def first_comment_is(page: Any, comment_id: int) -> None:
    """Wait until the first top-level comment of the post page is ``comment_id``. A locator,
    not wait_for_function: the page's CSP forbids eval, playwright's too."""
    expect(page.locator("#comments > ol > li.comment").first).to_have_id(f"comment-{comment_id}")


def test_post_page_loads_more_in_place_and_keeps_the_order(
    browser: Any, small_pages: Setup
) -> None:
    """Load more appends the next page; the order control reorders and is kept on reload."""
    site = small_pages
    site.kibitz.add_post("big", "Big")
    ids = seed(site, "/posts/big", 7)
    ctx = browser.new_context()
    page = ctx.new_page()
    try:
        page.goto(site.kibitz.url + "/posts/big")
        more = page.locator("button[data-load-more]")
        more.wait_for()
        assert page.locator("#comments > ol > li.comment").count() == 3
        more.focus()
        page.keyboard.press("Enter")
        page.locator(f"#comment-{ids[5]}").wait_for()
        assert page.locator("[data-announcer]").inner_text() == "3 more comments loaded"
        more.click()
        page.locator(f"#comment-{ids[6]}").wait_for()
        assert more.is_hidden()
        shown = page.eval_on_selector_all(
            "#comments > ol > li.comment", "els => els.map(e => Number(e.dataset.id))"
        )
        assert shown == ids
        page.select_option("#kibitz-sort", "newest")
        page.locator("[data-order-submit]").click()
        first_comment_is(page, ids[6])
        page.reload()
        first_comment_is(page, ids[6])
        assert page.locator("#kibitz-sort").input_value() == "newest"
        shot(page, "page-big-thread")
    finally:
        ctx.close()


def test_votes_toggle_and_reach_other_readers(browser: Any, small_pages: Setup) -> None:
    """A vote button is a toggle with its count; another reader sees the count change live."""
    site = small_pages
    site.kibitz.add_post("big", "Big")
    ids = seed(site, "/posts/big", 2)
    ctx = browser.new_context()
    other = browser.new_context()
    try:
        page, watcher = ctx.new_page(), other.new_page()
        for p in (page, watcher):
            p.goto(site.kibitz.url + "/posts/big")
            p.locator(".comments__presence:not([hidden])").wait_for()
        like = page.locator(f"#comment-{ids[1]} .comment__vote[data-vote='1']")
        like.wait_for()
        assert like.get_attribute("aria-pressed") == "false"
        like.click()
        page.locator(f"#comment-{ids[1]} .comment__vote[aria-pressed='true']").wait_for()
        assert "1 like" in like.inner_text()
        watcher.locator(
            f"#comment-{ids[1]} .comment__vote[data-vote='1']", has_text="1 like"
        ).wait_for(timeout=5000)
        like.click()  # withdraw
        page.locator(
            f"#comment-{ids[1]} .comment__vote[data-vote='1']", has_text="0 likes"
        ).wait_for()
    finally:
        ctx.close()
        other.close()


def test_widget_pages_pins_and_closing(browser: Any, small_pages: Setup) -> None:
    """The widget shows a page, loads more, marks pinned comments, and shows closing live."""
    site = small_pages
    ids = seed(site, THREAD, 5)
    site.kibitz.run(site.kibitz.server.state.threads.set_pinned(ids[4], True))
    html = host_page(site.kibitz.url, THREAD_DIV)  # with an icon: no favicon.ico 404 in the log
    url = site.host.add("/post", html.replace("<head>", '<head><link rel="icon" href="data:,">'))
    ctx, page, problems = open_host(browser, url)
    try:
        w = widget(page)
        w.locator(f"#comment-{ids[4]} .comment__badge--pinned").wait_for()
        order = page.evaluate(
            "[...document.querySelector('[data-kibitz-thread]').shadowRoot"
            ".querySelectorAll('.comment-list > li.comment')].map(e => Number(e.dataset.id))"
        )
        assert order[:1] == [ids[4]]
        w.locator("button[data-load-more]").click()
        w.locator(f"#comment-{ids[3]}").wait_for()
        assert w.locator(".comments__title").inner_text() == "5 comments"
        w.locator(".comments__presence:not([hidden])").wait_for()

        async def close() -> None:
            state = site.kibitz.server.state
            await state.threads.set_closed(await state.comments.thread(normalise_uri(THREAD)), True)

        site.kibitz.run(close())
        w.locator(".notice--closed:not([hidden])").wait_for()
        assert w.locator("form[data-comment-form]").is_hidden()
        shot(page, "widget-closed")
        assert problems == []
    finally:
        ctx.close()


def test_live_comments_wait_politely_until_their_place_is_loaded(
    browser: Any, small_pages: Setup
) -> None:
    """Oldest first with pages left: a new comment waits behind "1 new comment"; newest
    first: it appears at the top at once; a reply appears under its loaded parent."""
    site = small_pages
    site.kibitz.add_post("big", "Big")
    ids = seed(site, "/posts/big", 7)
    ctx = browser.new_context()
    try:
        page = ctx.new_page()
        page.goto(site.kibitz.url + "/posts/big")
        page.locator(".comments__presence:not([hidden])").wait_for()
        late = site.kibitz.add_comment("/posts/big", "Arrived while reading.")
        notice = page.locator("[data-new-notice] button", has_text="1 new comment")
        notice.wait_for()
        assert page.locator(f"#comment-{late.id}").count() == 0
        reply = site.kibitz.add_comment("/posts/big", "A live reply.", parent=ids[0])
        page.locator(f"#comment-{ids[0]} #comment-{reply.id}").wait_for()
        notice.click()
        page.locator(f"#comment-{late.id}").wait_for()
        assert page.locator("[data-new-notice]").is_hidden()
        page.select_option("#kibitz-sort", "newest")
        page.locator("[data-order-submit]").click()
        first_comment_is(page, late.id)
        newest = site.kibitz.add_comment("/posts/big", "Newest of all.")
        first_comment_is(page, newest.id)
    finally:
        ctx.close()


def test_staff_pin_from_the_post_page_and_see_pins_change_live(
    browser: Any, small_pages: Setup
) -> None:
    """A signed-in staff member pins a comment with its Pin button (a plain form post): the page
    comes back at the comment, first and pinned, offering Unpin. A pin another staff member
    makes meanwhile turns that comment's button into Unpin live. Readers get no buttons."""
    site = small_pages
    site.kibitz.add_post("big", "Big")
    ids = seed(site, "/posts/big", 3)
    state = site.kibitz.server.state
    site.kibitz.run(state.staff.add("maren", "moderator", hash_password(PASSWORD)))
    ctx, reader = browser.new_context(), browser.new_context()
    problems: list[str] = []
    try:
        page = ctx.new_page()
        page.on("pageerror", lambda exc: problems.append(str(exc)))
        page.goto(site.kibitz.url + "/admin/login")
        page.fill("#login-name", "maren")
        page.fill("#login-password", PASSWORD)
        with page.expect_navigation():
            page.click("button[type=submit]")
        page.goto(site.kibitz.url + "/posts/big")
        page.locator("#comments[data-live=ready]").wait_for()
        controls = page.locator("[data-pin-form] button:visible")
        assert controls.all_inner_texts() == ["Pin", "Pin", "Pin"]
        with page.expect_navigation():
            page.get_by_role("button", name="Pin the comment by Grace").nth(2).click()
        assert page.url.endswith(f"/posts/big#comment-{ids[2]}")
        first_comment_is(page, ids[2])
        pinned = page.locator(f"#comment-{ids[2]}")
        expect(pinned.locator(".comment__badge--pinned")).to_be_visible()
        expect(pinned.locator("> [data-pin-form] button:visible")).to_have_text(["Unpin"])
        page.locator(".comments__presence:not([hidden])").wait_for()
        site.kibitz.run(state.threads.set_pinned(ids[0], True))  # another staff member
        other = page.locator(f"#comment-{ids[0]}")
        expect(other.locator("> [data-pin-form] button:visible")).to_have_text(["Unpin"])
        expect(other.locator(".comment__badge--pinned")).to_be_visible()
        shot(page, "page-staff-pins")
        seen = reader.new_page()
        seen.goto(site.kibitz.url + "/posts/big")
        seen.locator(f"#comment-{ids[2]} .comment__badge--pinned").wait_for()
        assert seen.locator("[data-pin-form]").count() == 0
        assert problems == []
    finally:
        ctx.close()
        reader.close()
