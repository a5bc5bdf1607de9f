"""The widget's live side in a real browser: readers, edits, resume, 4000, reset, depth."""

from __future__ import annotations

from typing import Any

from db.comments import CommentStore, NewComment
from db.database import connect
from server.discussion.markup import render_comment
from server.discussion.uris import normalise_uri
from tests.helpers.browsers import (
    Setup,
    host_page,
    run_async,
    run_host,
    run_kibitz,
    shot,
    strict_csp,
    two_origins,
)
from tests.helpers.servers import free_port, start_process, stop_process
from tests.helpers.widget import THREAD, THREAD_DIV, open_host, post_through, wait_live, widget


def test_two_readers_one_posts_the_other_sees_it_live(browser: Any, site: Setup) -> None:
    """A comment posted in one reader's widget appears in place for the other, announced."""
    body = (
        f'<div data-kibitz-thread="{THREAD}" data-kibitz-title="Social media"></div>'
        f'<p>Comments: <span data-kibitz-count="{THREAD}"></span></p>'
    )
    url = site.host.add("/post", host_page(site.kibitz.url, body), csp=strict_csp(site.kibitz.url))
    ctx_a, alice, problems_a = open_host(browser, url)
    ctx_b, bob, problems_b = open_host(browser, url)
    try:
        wait_live(alice, 2)
        wait_live(bob, 2)
        assert alice.locator("[data-kibitz-count]").inner_text() == "0"
        post_through(alice, "Zoe", "Hello from *Alice's* tab")
        arrived = widget(bob).locator("li.comment--new", has_text="Hello from")
        arrived.wait_for(timeout=5000)
        assert "Zoe" in arrived.inner_text()
        widget(bob).locator("[aria-live=polite]", has_text="New comment by Zoe").wait_for(
            state="attached", timeout=3000
        )
        assert widget(bob).locator(".comments__title").inner_text() == "1 comment on “Social media”"
        assert bob.evaluate("document.activeElement === document.body")
        # The poster sees it once (its own response and the live event are one comment).
        assert widget(alice).locator("li.comment").count() == 1
        assert widget(alice).locator(".notice--published").count() == 1
        shot(alice, "widget-posted")
        shot(bob, "widget-live-arrival")
        assert problems_a == [] and problems_b == []
    finally:
        ctx_a.close()
        ctx_b.close()


def test_own_comment_can_be_edited_and_deleted_and_others_see_it(browser: Any, site: Setup) -> None:
    """Inside the edit window the author edits and deletes; the other reader follows live."""
    url = site.host.add("/post", host_page(site.kibitz.url, THREAD_DIV))
    ctx_a, alice, _ = open_host(browser, url)
    ctx_b, bob, _ = open_host(browser, url)
    try:
        wait_live(alice, 2)
        post_through(alice, "Alice", "Frist post")
        mine = widget(alice).locator("li.comment", has_text="Frist post")
        mine.wait_for()
        widget(bob).locator("li.comment", has_text="Frist post").wait_for()
        assert widget(bob).locator(".comment__edit-button").count() == 0
        # Bob is on the comment's Reply link; the edit arriving live must not take his focus.
        widget(bob).locator(".comment__reply").focus()
        alice.reload()  # the token survives in localStorage
        widget(alice).locator(".comment__edit-button").click()
        area = widget(alice).locator(".comment__edit textarea")
        assert area.input_value() == "Frist post"
        area.fill("First post")
        widget(alice).locator(".comment__edit button[type=submit]").click()
        widget(alice).locator(".comment__body", has_text="First post").wait_for()
        widget(bob).locator(".comment__body", has_text="First post").wait_for()
        assert widget(bob).locator(".comment__edited").count() == 1
        assert (
            bob.evaluate(
                "document.querySelector('[data-kibitz-thread]').shadowRoot.activeElement.className"
            )
            == "comment__reply"
        )
        shot(alice, "widget-edited")
        delete = widget(alice).locator(".comment__delete-button")
        delete.click()
        assert delete.inner_text() == "Really delete?"
        delete.click()
        widget(alice).locator("li.comment").first.wait_for(state="detached")
        widget(bob).locator("li.comment").first.wait_for(state="detached")
        assert widget(bob).locator(".comments__title").inner_text() == "0 comments"
    finally:
        ctx_a.close()
        ctx_b.close()


def test_resume_after_the_server_went_away_misses_nothing_and_doubles_nothing(
    browser: Any, tmp_path: Any
) -> None:
    """Comments committed while the reader was cut off arrive on reconnect, each once."""
    origins = two_origins(tmp_path)
    settings, port, host_port = origins.settings, origins.port, origins.host_port
    database = f"sqlite:///{origins.database}"

    async def write_while_down(texts: list[str]) -> None:
        db = await connect(database)
        try:
            for text in texts:
                await CommentStore(db).add(
                    normalise_uri(THREAD),
                    NewComment(
                        author="Offline",
                        email="o@example.org",
                        website=None,
                        text=text,
                        html=render_comment(text),
                        status="approved",
                    ),
                    create_thread=True,
                )
        finally:
            await db.close()

    with run_host(host_port) as host:
        url = host.add("/post", host_page(f"http://127.0.0.1:{port}", THREAD_DIV))
        ctx = browser.new_context()
        page = ctx.new_page()
        try:
            with run_kibitz(settings, port) as kibitz:
                kibitz.add_comment(THREAD, "Before the drop.")
                page.goto(url)
                wait_live(page)
            widget(page).locator(".comments__presence").wait_for(state="hidden")
            run_async(write_while_down(["Missed one.", "Missed two."]))
            with run_kibitz(settings, port) as kibitz:
                widget(page).locator("li.comment", has_text="Missed two.").wait_for(timeout=15000)
                wait_live(page)
                kibitz.add_comment(THREAD, "After the return.")
                widget(page).locator("li.comment", has_text="After the return.").wait_for()
                bodies = widget(page).locator(".comment__body").all_inner_texts()
                assert bodies == [
                    "Before the drop.",
                    "Missed one.",
                    "Missed two.",
                    "After the return.",
                ]
                shot(page, "widget-resumed")
        finally:
            ctx.close()


def test_a_reader_closed_with_4000_resumes_from_its_cursor(browser: Any, site: Setup) -> None:
    """Fallen behind (close 4000), the widget reconnects at once with since and misses nothing."""
    site.kibitz.add_comment(THREAD, "Seen live.")
    url = site.host.add("/post", host_page(site.kibitz.url, THREAD_DIV))
    ctx = browser.new_context()
    page = ctx.new_page()
    sockets: list[str] = []
    closes: list[Any] = []

    def opened(ws: Any) -> None:
        sockets.append(ws.url)
        ws.on("close", lambda closed: closes.append(closed))

    page.on("websocket", opened)
    try:
        page.goto(url)
        wait_live(page)

        async def stall() -> None:
            # The next event finds no room in any reader's queue (a bound below zero, as if
            # it were full, on either transport): the hub cuts them off with 4000.
            hub = site.kibitz.server.state.live.hub
            for subscriber in hub.rooms[normalise_uri(THREAD)].subscribers:
                subscriber.limit = -1

        site.kibitz.run(stall())
        missed = site.kibitz.add_comment(THREAD, "Sent while the reader was behind.")
        widget(page).locator(f"#comment-{missed.id}").wait_for(timeout=5000)
        assert len(sockets) == 2 and len(closes) == 1
        assert "since=1" in sockets[1]
        assert widget(page).locator(f"#comment-{missed.id}").count() == 1
        assert widget(page).locator("li.comment").count() == 2
    finally:
        ctx.close()


def test_reset_reloads_the_thread_when_the_cursor_is_unknown(browser: Any, tmp_path: Any) -> None:
    """A server that cannot resume from our cursor says reset; the widget reloads the thread."""
    origins = two_origins(tmp_path)
    settings, port, host_port = origins.settings, origins.port, origins.host_port
    with run_host(host_port) as host:
        url = host.add("/post", host_page(f"http://127.0.0.1:{port}", THREAD_DIV))
        ctx = browser.new_context()
        page = ctx.new_page()
        try:
            with run_kibitz(settings, port) as kibitz:
                for text in ("Old one.", "Old two.", "Old three."):
                    kibitz.add_comment(THREAD, text)
                page.goto(url)
                wait_live(page)
            # The database is replaced (say, restored from an older backup): cursor 3 is unknown.
            for path in tmp_path.glob("kibitz.db*"):
                path.unlink()
            with run_kibitz(settings, port) as kibitz:
                kibitz.add_comment(THREAD, "After the restore.")
                widget(page).locator("li.comment", has_text="After the restore.").wait_for(
                    timeout=15000
                )
                wait_live(page)
                assert widget(page).locator(".comment__body").all_inner_texts() == [
                    "After the restore."
                ]
        finally:
            ctx.close()


def test_real_kibitz_serve_with_the_live_channel_on_a_port_of_its_own(
    browser: Any, tmp_path: Any
) -> None:
    """`kibitz serve` (live port apart): a strict-CSP host naming both origins works live."""
    port, live_port, host_port = free_port(), free_port(), free_port()
    kibitz = f"http://127.0.0.1:{port}"
    env = {
        "KIBITZ_DATABASE_URL": f"sqlite:///{tmp_path / 'k.db'}",
        "KIBITZ_DATA_DIR": str(tmp_path),
        "KIBITZ_PUBLIC_URL": kibitz,
        "KIBITZ_ALLOWED_ORIGINS": f"http://127.0.0.1:{host_port}",
        "KIBITZ_MODERATION": "none",
        "KIBITZ_POST_RATE": "off",
        "KIBITZ_SECRET_KEY": "s" * 32,
    }
    process = start_process(env, "--live-port", str(live_port), port=port)
    try:
        with run_host(host_port) as host:
            csp = (
                f"default-src 'none'; script-src {kibitz}; style-src {kibitz}; "
                f"connect-src {kibitz} ws://127.0.0.1:{live_port}"
            )
            url = host.add("/post", host_page(kibitz, THREAD_DIV), csp=csp)
            ctx_a, alice, problems_a = open_host(browser, url)
            ctx_b, bob, problems_b = open_host(browser, url)
            try:
                wait_live(alice, 2)
                wait_live(bob, 2)
                post_through(alice, "Via Port", "Through the live port.")
                widget(bob).locator("li.comment--new", has_text="Through the live port.").wait_for(
                    timeout=5000
                )
                assert problems_a == [] and problems_b == []
            finally:
                ctx_a.close()
                ctx_b.close()
    finally:
        stop_process(process)


def test_replies_beyond_max_depth_sit_beside_their_parent_live_too(
    browser: Any, tmp_path: Any
) -> None:
    """With KIBITZ_MAX_DEPTH=2, deeper replies attach at level 2 and say whom they answer."""
    origins = two_origins(tmp_path, KIBITZ_MAX_DEPTH="2")
    with run_host(origins.host_port) as host, run_kibitz(origins.settings, origins.port) as kibitz:
        top = kibitz.add_comment(THREAD, "Top.", author="Ann")
        second = kibitz.add_comment(THREAD, "Second level.", author="Ben", parent=top.id)
        third = kibitz.add_comment(THREAD, "Third, shown at two.", author="Cy", parent=second.id)
        url = host.add("/post", host_page(kibitz.url, THREAD_DIV))
        ctx, page, _ = open_host(browser, url)
        try:
            level_two = f"#comment-{top.id} > ol > li.comment"
            widget(page).locator(f"#comment-{third.id}").wait_for()
            wait_live(page)
            live = kibitz.add_comment(THREAD, "Fourth, live.", author="Di", parent=third.id)
            widget(page).locator(f"#comment-{live.id}").wait_for()
            ids = (
                widget(page)
                .locator(level_two)
                .evaluate_all("items => items.map(li => Number(li.dataset.id))")
            )
            assert ids == [second.id, third.id, live.id]
            answers = widget(page).locator(f"{level_two} .comment__answers").all_inner_texts()
            assert answers == ["in reply to Ben", "in reply to Cy"]
            numbers = widget(page).locator(".comment__number").all_inner_texts()
            assert numbers == ["#1"]
        finally:
            ctx.close()


def test_edit_and_delete_disappear_when_the_edit_window_closes(browser: Any, tmp_path: Any) -> None:
    """With KIBITZ_EDIT_WINDOW=5 the author's buttons go away after five seconds."""
    origins = two_origins(tmp_path, KIBITZ_EDIT_WINDOW="5")
    with run_host(origins.host_port) as host, run_kibitz(origins.settings, origins.port) as kibitz:
        url = host.add("/post", host_page(kibitz.url, THREAD_DIV))
        ctx, page, _ = open_host(browser, url)
        try:
            widget(page).locator("form[data-comment-form]").wait_for()
            post_through(page, "Quick", "Only briefly mine.")
            widget(page).locator(".comment__edit-button").wait_for()
            widget(page).locator(".comment__edit-button").wait_for(state="detached", timeout=10000)
            assert widget(page).locator(".comment__delete-button").count() == 0
        finally:
            ctx.close()


def test_approval_and_moderation_show_in_place_and_pending_never_shows(
    browser: Any, site: Setup
) -> None:
    """A held reply stays invisible; approved, it appears under its parent; spam removes it."""
    top = site.kibitz.add_comment(THREAD, "Top.", author="Ann")
    held = site.kibitz.add_comment(
        THREAD,
        "Held reply with a link.",
        author="Hal",
        parent=top.id,
        status="pending",
        email="hal@example.org",
    )
    url = site.host.add("/post", host_page(site.kibitz.url, THREAD_DIV))
    ctx, page, _ = open_host(browser, url)
    try:
        wait_live(page)
        assert widget(page).locator(f"#comment-{held.id}").count() == 0
        site.kibitz.set_status(held.id, "approved")
        arrived = widget(page).locator(f"#comment-{top.id} > ol > li#comment-{held.id}")
        arrived.wait_for(timeout=5000)
        assert "comment--new" in (arrived.get_attribute("class") or "")
        widget(page).locator("[aria-live=polite]", has_text="New comment by Hal").wait_for(
            state="attached"
        )
        shadow = widget(page).evaluate("el => el.shadowRoot.innerHTML")
        assert "hal@example.org" not in shadow and "192.0.2" not in shadow
        # Top deleted while it has a visible reply: a placeholder keeps the thread's shape.
        site.kibitz.set_status(top.id, "deleted")
        widget(page).locator(f"#comment-{top.id}.comment--deleted").wait_for(timeout=5000)
        assert "Ann" not in widget(page).locator(f"#comment-{top.id} > .comment__card").inner_text()
        # The reply marked as spam: it goes, and so does the placeholder that only it kept.
        site.kibitz.set_status(held.id, "spam")
        widget(page).locator("li.comment").first.wait_for(state="detached", timeout=5000)
        assert widget(page).locator(".comments__title").inner_text() == "0 comments"
    finally:
        ctx.close()
