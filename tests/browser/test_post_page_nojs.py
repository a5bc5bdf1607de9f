"""The post page in a real browser (Debian's chromium) with JavaScript turned off."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.posts import add_post
from tests.helpers.servers import Server, make_settings, serve


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Server]:
    """The browser path does not depend on the backend; the other tests cover both."""
    settings = make_settings(
        f"sqlite:///{tmp_path / 'kibitz.db'}", tmp_path, KIBITZ_MIN_FILL_SECONDS="0.3"
    )
    async with serve(settings) as running:
        await add_post(running)
        yield running


async def _send_form(page: Any, author: str, text: str) -> str:
    """Fill in the page's form as a person would and send it; the new comment's id."""
    await page.fill("#kibitz-author", author)
    await page.fill("#kibitz-email", f"{author.lower()}@example.org")
    await page.fill("#kibitz-text", text)
    await page.wait_for_timeout(400)  # a person takes longer than the minimum fill time
    await page.click("button[type=submit]")
    assert "#comment-" in page.url, page.url  # published, not held or refused
    return str(page.url.rsplit("-", 1)[1])


async def test_comment_and_reply_without_javascript(browser_async: object, site: Server) -> None:
    """With JavaScript off a reader posts a comment, then a reply through the Reply link."""
    context = await browser_async.new_context(java_script_enabled=False)  # type: ignore[attr-defined]
    page = await context.new_page()
    await page.goto(site.url + "/posts/hello")
    comment_id = await _send_form(page, "Ada", "First!\n\nWith a second paragraph.")
    card = page.locator(f"#comment-{comment_id}")
    assert await card.locator(".comment__body p").count() == 2
    assert await card.locator(".comment__author").inner_text() == "Ada"

    await card.locator(".comment__reply").click()
    assert await page.locator(".respond__title").inner_text() == "Reply to Ada"
    reply_id = await _send_form(page, "Grace", "A reply.")
    nested = page.locator(f"#comment-{comment_id} .comment-list--children #comment-{reply_id}")
    assert await nested.count() == 1
    await context.close()


async def test_the_page_given_again_gzipped_reads_and_posts(
    browser_async: object, site: Server
) -> None:
    """Chromium inflates the kept page, compressed around its form token
    (server/http/gzipped.py), and the token in it posts."""
    context = await browser_async.new_context(java_script_enabled=False)  # type: ignore[attr-defined]
    page = await context.new_page()
    encodings = []
    for _ in range(4):  # the path is learnt, then kept, then given again
        answer = await page.goto(site.url + "/posts/hello")
        assert answer is not None and answer.status == 200
        encodings.append(await answer.header_value("content-encoding"))
    assert encodings[-1] == "gzip", encodings
    assert await page.locator(".post__title").inner_text() == "Hello"
    comment_id = await _send_form(page, "Ada", "Posted from a gzipped page.")
    card = page.locator(f"#comment-{comment_id}")
    assert await card.locator(".comment__body").inner_text() == "Posted from a gzipped page."
    await context.close()


async def test_invalid_form_in_the_browser_keeps_what_was_typed(
    browser_async: object, site: Server
) -> None:
    """A browser without JavaScript gets the 422 page with the message and its text kept."""
    context = await browser_async.new_context(java_script_enabled=False)  # type: ignore[attr-defined]
    page = await context.new_page()
    await page.goto(site.url + "/posts/hello")
    await page.fill("#kibitz-email", "ada@example.org")
    await page.fill("#kibitz-text", "Keep me, please.")
    await page.click("button[type=submit]")
    assert await page.locator("#kibitz-author-error").inner_text() == "Please enter your name."
    assert await page.input_value("#kibitz-text") == "Keep me, please."
    assert await page.input_value("#kibitz-email") == "ada@example.org"
    await context.close()


async def test_dark_scheme_restyles_the_page(browser_async: object, site: Server) -> None:
    """The page follows the reader's colour scheme: dark background and light text in dark."""
    colours = {}
    for scheme in ("light", "dark"):
        context = await browser_async.new_context(color_scheme=scheme)  # type: ignore[attr-defined]
        page = await context.new_page()
        await page.goto(site.url + "/posts/hello")
        colours[scheme] = await page.evaluate(
            "() => [getComputedStyle(document.body).backgroundColor,"
            " getComputedStyle(document.body).color]"
        )
        await context.close()
    assert colours["light"] != colours["dark"]
    light_bg, dark_bg = (
        sum(map(int, c[0][4:-1].split(","))) for c in (colours["light"], colours["dark"])
    )
    assert light_bg > 600 > dark_bg
