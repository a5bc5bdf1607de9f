"""The admin in a real browser (Debian's chromium): login, keyboard moderation, bulk actions,
all under the admin's strict Content-Security-Policy."""

from __future__ import annotations

from pathlib import Path

from tests.helpers.posts import add_post
from tests.helpers.servers import make_settings, serve
from tests.helpers.staff import PASSWORD, add_staff

COMMENT = {"uri": "/posts/hello", "author": "Ada", "email": "ada@example.org"}


async def test_keyboard_and_bulk_moderation_in_the_browser(browser_async, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Sign in, press j then a to approve the first held comment, select two with x and mark
    them as spam in bulk: rows go without a reload, the database agrees, and the page runs
    without a single CSP violation."""
    settings = make_settings(f"sqlite:///{tmp_path / 'k.db'}", tmp_path, KIBITZ_MODERATION="all")
    async with serve(settings) as server:
        await add_post(server)
        await add_staff(server, "mod")
        async with server.client() as client:
            ids = []
            for i in range(4):
                created = await client.post(
                    "/api/comments", json={**COMMENT, "text": f"held number {i}"}
                )
                ids.append(created.json()["comment"]["id"])
        page = await browser_async.new_page()
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        await page.goto(server.url + "/admin/queue")
        assert page.url.startswith(server.url + "/admin/login")
        await page.fill("#login-name", "mod")
        await page.fill("#login-password", PASSWORD)
        await page.click("button[type=submit]")
        await page.wait_for_url(server.url + "/admin/queue")
        assert await page.locator(".mod-item").count() == 4

        await page.keyboard.press("j")
        await page.keyboard.press("a")
        await page.wait_for_selector(f"#mod-{ids[0]}", state="detached")
        # The next comment became current: select it and the one after, then bulk spam.
        await page.keyboard.press("x")
        await page.keyboard.press("j")
        await page.keyboard.press("x")
        await page.select_option("#bulk-action", "spam")
        await page.click("#bulk button[type=submit]")
        await page.wait_for_selector(f"#mod-{ids[2]}", state="detached")
        await page.wait_for_selector(f"#mod-{ids[1]}", state="detached")
        assert await page.locator(".mod-item").count() == 1
        assert await page.text_content("[data-pending-count]") == "1"
        statuses = [(await server.state.comments.get(i)).status for i in ids]
        assert statuses == ["approved", "spam", "spam", "pending"]
        # Restore one from the spam list with the keyboard (a = restore there).
        await page.goto(server.url + "/admin/comments/spam")
        await page.keyboard.press("j")
        await page.keyboard.press("a")
        # Locators, not wait_for_function: the admin's CSP forbids eval, also playwright's.
        await page.locator(".mod-item").nth(1).wait_for(state="detached")
        restored = [(await server.state.comments.get(i)).status for i in ids[1:3]]
        assert sorted(restored) == ["approved", "spam"]
    # A websocket that cannot connect (no live channel on this branch) is not a CSP problem.
    assert not [p for p in problems if "Content Security Policy" in p or "Refused" in p], problems
