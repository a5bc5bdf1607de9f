"""The widget signed in by the host site (single sign-on), in a real browser."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.browsers import Setup, host_page, run_host, run_kibitz, strict_csp, two_origins
from tests.helpers.sso import SECRET, tampered, token
from tests.helpers.widget import THREAD, open_host, widget


@pytest.fixture
def sso_site(tmp_path: Path) -> Iterator[Setup]:
    """kibitz with KIBITZ_SSO_SECRET, and an allowed embedding site on another origin."""
    origins = two_origins(tmp_path, KIBITZ_SSO_SECRET=SECRET)
    with run_host(origins.host_port) as host, run_kibitz(origins.settings, origins.port) as kibitz:
        yield Setup(kibitz, host, origins.settings, origins.port)


def embed(site: Setup, sso: str) -> str:
    div = f'<div data-kibitz-thread="{THREAD}" data-kibitz-sso="{sso}"></div>'
    return site.host.add("/post", host_page(site.kibitz.url, div), csp=strict_csp(site.kibitz.url))


def listen_for_rejection(page: Any) -> None:
    page.evaluate(
        "window.rejected = [];"
        "document.querySelector('[data-kibitz-thread]').addEventListener('kibitz:sso-rejected',"
        " (e) => window.rejected.push(e.detail.message))"
    )


def send(page: Any, text: str) -> None:
    w = widget(page)
    w.locator("#kibitz-text").fill(text)
    w.locator("button[type=submit]").click()


def test_signed_in_reader_comments_as_themselves(browser: Any, sso_site: Setup) -> None:
    """The form shows the signed-in name instead of name and e-mail, the comment is theirs and
    verified, and a renewed token (kibitz.signIn) takes effect without a reload."""
    ctx, page, problems = open_host(browser, embed(sso_site, token()))
    try:
        w = widget(page)
        w.locator(".comment-form__signed-in", has_text="Signed in as Ada Reader").wait_for()
        assert not w.locator("#kibitz-author").is_visible()
        assert not w.locator("#kibitz-email").is_visible()
        send(page, "Written while signed in.")
        w.locator(".comment__author", has_text="Ada Reader").wait_for()
        assert w.locator(".comment__badge--verified").text_content() == "verified"
        comments = sso_site.kibitz.run(sso_site.kibitz.server.state.moderation.search("approved"))
        assert [(c.author, c.email, c.verified) for c, _ in comments] == [
            ("Ada Reader", "ada@site.example", True)
        ]
        page.evaluate("token => kibitz.signIn(token)", token(name="Ada Renewed"))
        w.locator(".comment-form__signed-in", has_text="Signed in as Ada Renewed").wait_for()
        assert page.evaluate("document.querySelector('[data-kibitz-thread]').dataset.kibitzSso")
        assert problems == []
    finally:
        ctx.close()


def test_expired_token_is_refused_and_renewing_it_works(browser: Any, sso_site: Setup) -> None:
    """An expired token gets the server's message, the host hears `kibitz:sso-rejected`, and
    after it sets a fresh token on the element the same text posts without a reload."""
    import time

    ctx, page, _ = open_host(browser, embed(sso_site, token(exp=int(time.time()) - 3600)))
    try:
        w = widget(page)
        w.locator(".comment-form__signed-in").wait_for()
        listen_for_rejection(page)
        send(page, "Posted with an old token.")
        w.locator(".notice--error", has_text="Your sign-in has expired").wait_for()
        assert page.evaluate("window.rejected") == [
            "Your sign-in has expired. Reload the page or sign in again."
        ]
        assert w.locator("#kibitz-text").input_value() == "Posted with an old token."
        page.evaluate(
            "token => {"
            " document.querySelector('[data-kibitz-thread]').dataset.kibitzSso = token; }",
            token(),
        )
        w.locator("button[type=submit]").click()
        w.locator(".comment__author", has_text="Ada Reader").wait_for()
    finally:
        ctx.close()


def test_tampered_token_is_refused(browser: Any, sso_site: Setup) -> None:
    """A token whose claims were changed after signing is refused and stores nothing."""
    ctx, page, _ = open_host(browser, embed(sso_site, tampered()))
    try:
        w = widget(page)
        w.locator(".comment-form__signed-in", has_text="Signed in as Admin").wait_for()
        send(page, "Pretending to be someone else.")
        w.locator(".notice--error", has_text="signature is not valid").wait_for()
        state = sso_site.kibitz.server.state
        for status in ("approved", "pending", "spam"):
            assert sso_site.kibitz.run(state.moderation.search(status)) == []
    finally:
        ctx.close()


def test_sso_only_widget_links_to_the_sign_in_page(browser: Any, tmp_path: Path) -> None:
    """With KIBITZ_SSO_ONLY and no token, the widget offers the site's sign-in link, no form."""
    origins = two_origins(
        tmp_path,
        KIBITZ_SSO_SECRET=SECRET,
        KIBITZ_SSO_ONLY="true",
        KIBITZ_SSO_LOGIN_URL="https://site.example/login",
    )
    with run_host(origins.host_port) as host, run_kibitz(origins.settings, origins.port) as kibitz:
        div = f'<div data-kibitz-thread="{THREAD}"></div>'
        url = host.add("/post", host_page(kibitz.url, div), csp=strict_csp(kibitz.url))
        ctx, page, _ = open_host(browser, url)
        try:
            w = widget(page)
            link = w.locator(".respond__sso a")
            link.wait_for()
            assert link.get_attribute("href") == "https://site.example/login"
            assert w.locator("form[data-comment-form]").count() == 0
            page.evaluate("token => kibitz.signIn(token)", token())
            w.locator(".comment-form__signed-in", has_text="Signed in as Ada Reader").wait_for()
        finally:
            ctx.close()


def test_signed_in_reader_votes_as_themselves(browser: Any, sso_site: Setup) -> None:
    """A reader the host site signed in votes with the token: the vote is theirs (``sso:``
    and their user id), not an anonymous voter id's, so it follows them to any browser."""
    ctx, page, problems = open_host(browser, embed(sso_site, token()))
    try:
        w = widget(page)
        send(page, "Something worth a like.")
        like = w.locator(".comment__vote[data-vote='1']")
        like.wait_for()
        like.click()
        w.locator(
            ".comment__vote[data-vote='1'][aria-pressed='true']", has_text="1 like"
        ).wait_for()
        db = sso_site.kibitz.server.state.db

        async def voters() -> list[str]:
            async with db.read() as conn:
                return [r["voter"] for r in await conn.fetch("SELECT voter FROM votes")]

        assert sso_site.kibitz.run(voters()) == ["sso:user-42"]
        assert problems == []
    finally:
        ctx.close()
