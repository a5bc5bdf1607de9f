"""The embedding site's page as the tests drive it: the widget's shadow root, its form."""

from __future__ import annotations

from typing import Any

THREAD = "/2010/07/social-media/"
THREAD_DIV = f'<div data-kibitz-thread="{THREAD}"></div>'


def open_host(browser: Any, url: str, **context: Any) -> tuple[Any, Any, list[str]]:
    """A page in a fresh context, collecting CSP violations and script errors."""
    ctx = browser.new_context(**context)
    page = ctx.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"pageerror: {exc}"))
    page.on(
        "console",
        lambda msg: problems.append(f"console: {msg.text}") if msg.type == "error" else None,
    )
    page.goto(url)
    return ctx, page, problems


def widget(page: Any) -> Any:
    return page.locator("[data-kibitz-thread]")


def post_through(page: Any, author: str, text: str, email: str = "reader@example.org") -> None:
    w = widget(page)
    w.locator("#kibitz-author").fill(author)
    w.locator("#kibitz-email").fill(email)
    w.locator("#kibitz-text").fill(text)
    w.locator("button[type=submit]").click()


def wait_live(page: Any, readers: int = 1) -> None:
    """The live channel said hello (presence shows) with this many readers."""
    expected = f"{readers} reading now"
    widget(page).locator(".comments__presence", has_text=expected).wait_for()
