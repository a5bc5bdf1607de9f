"""axe-core (WCAG 2.1 AA and best practice) on kibitz's pages, light and dark, at a phone's width.

axe-core comes from the npm registry: ``make axe`` puts it in build/axe (or point
``KIBITZ_AXE_JS`` at an ``axe.min.js``). Pages checked: a paged post page with pinned and
voted comments (as readers and as staff, with the pin controls), a closed thread, the widget in
its shadow root, and the admin threads page.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from db.models import now
from server.auth.credentials import hash_password
from server.discussion.uris import normalise_uri
from tests.helpers.browsers import Setup, host_page
from tests.helpers.servers import IN_CI, ROOT
from tests.helpers.staff import PASSWORD
from tests.helpers.widget import THREAD, THREAD_DIV

AXE = Path(os.environ.get("KIBITZ_AXE_JS", ROOT / "build/axe/node_modules/axe-core/axe.min.js"))
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]
PHONE = {"width": 375, "height": 740}
RUN = """async (tags) => {
  const result = await axe.run(document, { runOnly: { type: "tag", values: tags } });
  return result.violations.map((v) => v.id + ": " + v.nodes.map((n) => n.target.join(" ")));
}"""


@pytest.fixture
def axe() -> Path:
    if not AXE.exists() and shutil.which("npm") and "KIBITZ_AXE_JS" not in os.environ:
        # What `make axe` does: fetch axe-core from the npm registry into build/axe.
        subprocess.run(
            [
                "npm",
                "install",
                "--prefix",
                str(ROOT / "build/axe"),
                "--no-audit",
                "--no-fund",
                "--silent",
                "axe-core@4",
            ],
            check=False,
            timeout=180,
        )
    if not AXE.exists():
        if IN_CI:
            pytest.fail("axe-core is missing: run `make axe`")
        pytest.skip("axe-core not installed (make axe)")
    return AXE


def violations(
    browser: Any, axe: Path, url: str, scheme: str, ready: str, login: str | None = None
) -> list[str]:
    ctx = browser.new_context(viewport=PHONE, color_scheme=scheme, bypass_csp=True)
    try:
        page = ctx.new_page()
        if login:
            page.goto(login)
            page.fill("#login-name", "maren")
            page.fill("#login-password", PASSWORD)
            with page.expect_navigation():
                page.click("button[type=submit]")
        page.goto(url)
        page.locator(ready).first.wait_for()
        page.add_script_tag(path=str(axe))
        return [f"{scheme} {url}: {v}" for v in page.evaluate(RUN, TAGS)]
    finally:
        ctx.close()


def seed(site: Setup, uri: str, n: int) -> list[int]:
    start = now() - timedelta(hours=2)
    ids = [
        site.kibitz.add_comment(
            uri, f"Comment {i} with some words.", created=start + timedelta(minutes=i)
        ).id
        for i in range(n)
    ]
    site.kibitz.add_comment(uri, "A reply.", parent=ids[0])
    return ids


def test_pages_widget_and_closed_thread_pass_axe(browser: Any, site: Setup, axe: Path) -> None:
    """No axe violation on a big post page (a reader's and staff's), a closed one, the widget
    and the admin threads."""
    post = site.kibitz.add_post("big", "A big thread")
    ids = seed(site, post.uri, 60)  # more than a page: the next link and load more show
    state = site.kibitz.server.state
    site.kibitz.run(state.threads.set_pinned(ids[5], True))
    closed = site.kibitz.add_post("closed", "A closed thread")
    seed(site, closed.uri, 2)

    async def close() -> None:
        await state.threads.set_closed(await state.comments.thread(closed.uri), True)

    site.kibitz.run(close())
    seed(site, normalise_uri(THREAD), 60)
    html = host_page(site.kibitz.url, THREAD_DIV)
    html = html.replace("<body>", "<body><main>").replace("<script async", "</main><script async")
    host = site.host.add("/post", html)
    site.kibitz.run(state.staff.add("maren", "moderator", hash_password(PASSWORD)))
    found: list[str] = []
    for scheme in ("light", "dark"):
        found += violations(browser, axe, site.kibitz.url + post.uri, scheme, "[data-load-more]")
        found += violations(browser, axe, site.kibitz.url + closed.uri, scheme, "[data-closed]")
        found += violations(browser, axe, host, scheme, "[data-kibitz-state=rendered]")
        for path, ready in ((post.uri, "[data-pin-form]"), ("/admin/threads", ".thread-row")):
            found += violations(
                browser,
                axe,
                site.kibitz.url + path,
                scheme,
                ready,
                login=site.kibitz.url + "/admin/login",
            )
    assert found == []
