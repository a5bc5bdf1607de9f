"""The staff admin through a real server with real sessions, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path

from db.models import now
from tests.helpers.posts import add_post
from tests.helpers.servers import Server, make_settings, serve
from tests.helpers.staff import PASSWORD, add_staff, csrf_of, sign_in

COMMENT = {
    "uri": "/posts/hello",
    "author": "Ada",
    "email": "ada@example.org",
    "website": "https://ada.example",
    "text": "held *words* <b>bold</b>",
}


async def _held(server: Server, client, **overrides: str) -> int:  # type: ignore[no-untyped-def]
    created = await client.post("/api/comments", json={**COMMENT, **overrides})
    assert created.status_code == 201, created.text
    assert created.json()["comment"]["status"] == "pending"
    return int(created.json()["comment"]["id"])


async def test_login_sets_a_strict_session_cookie_and_logout_ends_it(server: Server) -> None:
    """Login sets an HttpOnly, SameSite=Lax cookie; after logout the same cookie is refused."""
    await add_staff(server, "mod")
    async with server.client() as client:
        response = await client.post("/admin/login", data={"name": "mod", "password": PASSWORD})
        assert response.status_code == 303
        cookie = response.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie and "path=/" in cookie
        assert "secure" not in cookie  # served over http in this test
        stolen = dict(client.cookies)
        csrf = await csrf_of(client)
        assert (await client.get("/api/moderation")).status_code == 200
        out = await client.post("/admin/logout", data={"csrf_token": csrf})
        assert out.status_code == 303
    async with server.client(cookies=stolen) as replay:
        assert (await replay.get("/api/moderation")).status_code == 401
        page = await replay.get("/admin/queue")
        assert page.status_code == 303 and page.headers["location"].startswith("/admin/login")


async def test_secure_cookie_when_public_url_is_https(database_url: str, tmp_path: Path) -> None:
    """Over https the session cookie is Secure and uses the __Host- prefix."""
    settings = make_settings(database_url, tmp_path, KIBITZ_PUBLIC_URL="https://c.example.com")
    async with serve(settings) as server:
        await add_staff(server, "mod")
        async with server.client() as client:
            response = await client.post("/admin/login", data={"name": "mod", "password": PASSWORD})
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("__Host-kibitz_session=") and "secure" in cookie.lower()


async def test_wrong_password_and_unknown_user_answer_alike(server: Server) -> None:
    """Both get 401 with the same message, and take about as long (a dummy hash is checked)."""
    await add_staff(server, "mod")
    async with server.client() as client:
        timings: dict[str, list[float]] = {"wrong": [], "unknown": []}
        bodies = {}
        for _ in range(3):
            for kind, name in (("wrong", "mod"), ("unknown", "nobody")):
                start = time.perf_counter()
                response = await client.post(
                    "/admin/login", data={"name": name, "password": "not it at all"}
                )
                timings[kind].append(time.perf_counter() - start)
                assert response.status_code == 401
                bodies[kind] = response.text.replace(name, "")
    assert bodies["wrong"] == bodies["unknown"]
    wrong, unknown = min(timings["wrong"]), min(timings["unknown"])
    assert unknown > wrong * 0.5 and wrong > unknown * 0.5, timings


async def test_login_is_rate_limited_per_account(server: Server) -> None:
    """The sixth attempt on one account within a minute is 429 with Retry-After, even with
    the right password."""
    await add_staff(server, "mod")
    async with server.client() as client:
        for _ in range(5):
            response = await client.post("/admin/login", data={"name": "mod", "password": "x"})
            assert response.status_code == 401
        limited = await client.post("/admin/login", data={"name": "mod", "password": PASSWORD})
        other = await client.post("/admin/login", data={"name": "other", "password": "x"})
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    assert "set-cookie" not in limited.headers
    assert other.status_code == 401  # another account is not locked by it


async def test_login_is_rate_limited_per_address(server: Server) -> None:
    """One address trying many accounts is stopped after 20 attempts a minute."""
    async with server.client() as client:
        statuses = [
            (
                await client.post("/admin/login", data={"name": f"user{i}", "password": "x"})
            ).status_code
            for i in range(21)
        ]
    assert statuses[:20] == [401] * 20 and statuses[20] == 429


async def test_session_expires(server: Server) -> None:
    """A session past KIBITZ_SESSION_HOURS is refused though the browser still sends it."""
    await add_staff(server, "mod")
    async with server.client() as client:
        await sign_in(client, "mod")
        async with server.state.db.transaction() as conn:
            await conn.execute("UPDATE staff_sessions SET expires = $1", now() - timedelta(1))
        assert (await client.get("/api/moderation")).status_code == 401
        assert (await client.get("/admin/queue")).status_code == 303


async def test_no_credentials_401_for_api_and_redirect_for_pages(server: Server) -> None:
    """The API answers 401; every admin page redirects to the login page."""
    async with server.client() as client:
        assert (await client.get("/api/moderation")).status_code == 401
        assert (await client.post("/api/comments/1/approve")).status_code == 401
        for path in (
            "/admin",
            "/admin/queue",
            "/admin/comments/spam",
            "/admin/audit",
            "/admin/staff",
        ):
            response = await client.get(path, follow_redirects=True)
            assert response.url.path == "/admin/login", path
        posted = await client.post("/admin/moderate", data={"action": "approve", "ids": "1"})
        assert posted.status_code == 303 and posted.headers["location"].startswith("/admin/login")


async def test_csrf_token_required_with_the_session(database_url: str, tmp_path: Path) -> None:
    """With the session cookie, API calls and forms without (or with a wrong) CSRF token are
    403 and change nothing; with it they work."""
    async with serve(make_settings(database_url, tmp_path, KIBITZ_MODERATION="all")) as server:
        await add_post(server)
        await add_staff(server, "mod")
        async with server.client() as client:
            comment_id = await _held(server, client)
            csrf = await sign_in(client, "mod")
            missing = await client.post(f"/api/comments/{comment_id}/approve")
            wrong = await client.post(
                f"/api/comments/{comment_id}/approve", headers={"X-CSRF-Token": "0" * 64}
            )
            form = await client.post(
                "/admin/moderate", data={"action": "approve", "ids": str(comment_id)}
            )
            logout = await client.post("/admin/logout")
            assert (await server.state.comments.get(comment_id)).status == "pending"
            api_post = await client.post("/api/comments", json={**COMMENT, "text": "as staff"})
            ok = await client.post(
                f"/api/comments/{comment_id}/approve", headers={"X-CSRF-Token": csrf}
            )
    assert [
        missing.status_code,
        wrong.status_code,
        form.status_code,
        logout.status_code,
        api_post.status_code,
    ] == [403] * 5
    assert ok.status_code == 200 and ok.json()["comment"]["status"] == "approved"


async def test_api_token_needs_no_csrf(database_url: str, tmp_path: Path) -> None:
    """A bearer API token is not a cookie, so it needs no CSRF token; a revoked one fails."""
    async with serve(make_settings(database_url, tmp_path, KIBITZ_MODERATION="all")) as server:
        await add_post(server)
        await add_staff(server, "boss", "admin")
        async with server.client() as client:
            comment_id = await _held(server, client)
            csrf = await sign_in(client, "boss")
            made = await client.post(
                "/admin/tokens", data={"csrf_token": csrf, "owner": "boss", "label": "script"}
            )
            token = made.text.split("data-new-token>")[1].split("<")[0]
            assert token.startswith("kbz_")
        async with server.client(headers={"Authorization": f"Bearer {token}"}) as bot:
            assert (await bot.post(f"/api/comments/{comment_id}/spam")).status_code == 200
        listed = await server.state.staff.tokens()
        assert listed[0].label == "script" and listed[0].revoked is None
        async with server.client() as client:
            csrf = await sign_in(client, "boss")
            page = await client.get("/admin/staff")
            assert token not in page.text  # only shown once
            revoked = await client.post(
                f"/admin/tokens/{listed[0].id}/revoke", data={"csrf_token": csrf}
            )
            assert revoked.status_code == 303
        async with server.client(headers={"Authorization": f"Bearer {token}"}) as bot:
            assert (await bot.get("/api/moderation")).status_code == 401


async def test_moderator_cannot_manage_staff(server: Server) -> None:
    """A moderator gets 403 on every staff and token page and action; an admin may."""
    await add_staff(server, "boss", "admin")
    await add_staff(server, "mod", "moderator")
    async with server.client() as client:
        csrf = await sign_in(client, "mod")
        assert (await client.get("/admin/staff")).status_code == 403
        create = await client.post(
            "/admin/staff",
            data={"csrf_token": csrf, "name": "evil", "password": "long enough", "role": "admin"},
        )
        token = await client.post("/admin/tokens", data={"csrf_token": csrf, "owner": "mod"})
        disable = await client.post("/admin/staff/1/disable", data={"csrf_token": csrf})
        queue = await client.get("/admin/queue")
    assert [create.status_code, token.status_code, disable.status_code] == [403, 403, 403]
    assert queue.status_code == 200 and 'href="/admin/staff"' not in queue.text
    assert await server.state.staff.by_name("evil") is None
    assert await server.state.staff.tokens() == []
    async with server.client() as client:
        csrf = await sign_in(client, "boss")
        created = await client.post(
            "/admin/staff",
            data={
                "csrf_token": csrf,
                "name": "newmod",
                "password": "long enough",
                "role": "moderator",
            },
        )
        assert created.status_code == 303
        found = await server.state.staff.by_name("newmod")
        assert found is not None and found[0].role == "moderator"
        disabled = await client.post(
            f"/admin/staff/{found[0].id}/disable", data={"csrf_token": csrf}
        )
        assert disabled.status_code == 303
    async with server.client() as client:
        refused = await client.post(
            "/admin/login", data={"name": "newmod", "password": "long enough"}
        )
        assert refused.status_code == 401


async def test_disabling_an_account_ends_its_sessions(server: Server) -> None:
    """A disabled moderator's open session stops working at once."""
    await add_staff(server, "boss", "admin")
    await add_staff(server, "mod")
    async with server.client() as mod, server.client() as boss:
        await sign_in(mod, "mod")
        csrf = await sign_in(boss, "boss")
        mod_id = (await server.state.staff.by_name("mod"))[0].id
        await boss.post(f"/admin/staff/{mod_id}/disable", data={"csrf_token": csrf})
        assert (await mod.get("/api/moderation")).status_code == 401


async def test_admin_pages_are_never_framed_and_have_a_strict_csp(server: Server) -> None:
    """Every /admin response, error pages included, forbids framing and inline code."""
    await add_staff(server, "mod")
    async with server.client() as client:
        pages = [await client.get("/admin/login"), await client.get("/admin/nope")]
        await sign_in(client, "mod")
        pages += [await client.get("/admin/queue"), await client.get("/admin/staff")]
    for page in pages:
        csp = page.headers["content-security-policy"]
        assert page.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
        assert "unsafe-inline" not in csp and "style-src 'self'" in csp
        assert page.headers["cache-control"] == "no-store"
        assert "<script>" not in page.text and " style=" not in page.text
        for handler in ("onclick=", "onload=", "onsubmit="):
            assert handler not in page.text


async def test_queue_shows_everything_staff_need(database_url: str, tmp_path: Path) -> None:
    """Pending comments, oldest first, with thread, author, e-mail, website, address, text
    as typed and as rendered, and the reason held."""
    async with serve(make_settings(database_url, tmp_path, KIBITZ_MODERATION="all")) as server:
        await add_post(server)
        await add_staff(server, "mod")
        async with server.client() as client:
            first = await _held(server, client)
            second = await _held(server, client, author="Bea", text="second <i>one</i>")
            await sign_in(client, "mod")
            page = (await client.get("/admin/queue")).text
            api = (await client.get("/api/moderation")).json()
    assert page.index(f'id="mod-{first}"') < page.index(f'id="mod-{second}"')
    for piece in (
        "/posts/hello",
        "Ada",
        "ada@example.org",
        "https://ada.example/",
        "127.0.0.1",
        "held *words* &lt;b&gt;bold&lt;/b&gt;",
        "<b>bold</b>",
        "policy: every comment is held",
    ):
        assert piece in page, piece
    assert [c["id"] for c in api["comments"]] == [first, second]
    assert api["comments"][0]["email"] == "ada@example.org"
    assert api["comments"][0]["address"] == "127.0.0.1"


async def test_approve_from_the_queue_publishes_and_trusts(
    database_url: str, tmp_path: Path
) -> None:
    """Approving (a no-JS form post) shows the comment to readers, records the action in the
    audit log, and the commenter's next comment is published at once."""
    async with serve(
        make_settings(database_url, tmp_path, KIBITZ_MODERATION="first-time")
    ) as server:
        await add_post(server)
        await add_staff(server, "mod")
        async with server.client() as reader, server.client() as staff:
            comment_id = await _held(server, reader)
            before = await reader.get("/api/comments", params={"uri": "/posts/hello"})
            assert before.json()["comments"] == []
            csrf = await sign_in(staff, "mod")
            done = await staff.post(
                "/admin/moderate",
                data={"csrf_token": csrf, "action": "approve", "ids": str(comment_id)},
            )
            assert done.status_code == 303
            after = await reader.get("/api/comments", params={"uri": "/posts/hello"})
            assert [c["id"] for c in after.json()["comments"]] == [comment_id]
            page = await reader.get("/posts/hello")
            assert f'id="comment-{comment_id}"' in page.text
            again = await reader.post("/api/comments", json={**COMMENT, "text": "next one"})
            assert again.json()["comment"]["status"] == "approved"
            audit = await staff.get("/admin/audit")
    assert "mod" in audit.text and "approve" in audit.text and f"comment {comment_id}" in audit.text


async def test_bulk_actions_and_lists_with_search_and_restore(
    database_url: str, tmp_path: Path
) -> None:
    """A selection is marked as spam at once; the spam list finds it by author, e-mail or
    text; restoring brings it back to readers; every action is in the audit log."""
    async with serve(make_settings(database_url, tmp_path, KIBITZ_MODERATION="all")) as server:
        await add_post(server)
        await add_staff(server, "mod")
        async with server.client() as client:
            a = await _held(
                server, client, author="Spammy", email="spam@bad.example", text="buy pills"
            )
            b = await _held(
                server, client, author="Other", email="o@bad.example", text="cheap 100% watches"
            )
            keep = await _held(server, client, author="Keeper", text="a real comment")
            csrf = await sign_in(client, "mod")
            bulk = await client.post(
                "/admin/moderate",
                content=(
                    f"csrf_token={csrf}&action=spam&ids={a}&ids={b}&back=/admin/queue"
                ).encode(),
                headers={"content-type": "application/x-www-form-urlencoded"},
            )
            assert bulk.status_code == 303
            queue = (await client.get("/admin/queue")).text
            assert f'id="mod-{keep}"' in queue and f'id="mod-{a}"' not in queue
            by_author = (await client.get("/admin/comments/spam", params={"q": "spammy"})).text
            by_email = (await client.get("/admin/comments/spam", params={"q": "o@bad"})).text
            by_text = (await client.get("/admin/comments/spam", params={"q": "100%"})).text
            wildcard = (await client.get("/admin/comments/spam", params={"q": "1_0"})).text
            assert f'id="mod-{a}"' in by_author and f'id="mod-{b}"' not in by_author
            assert f'id="mod-{b}"' in by_email and f'id="mod-{a}"' not in by_email
            assert f'id="mod-{b}"' in by_text and f'id="mod-{a}"' not in by_text
            assert "mod-item" not in wildcard.split("<template")[0]
            restored = await client.post(
                "/admin/moderate",
                data={
                    "csrf_token": csrf,
                    "action": "restore",
                    "ids": str(a),
                    "back": "/admin/comments/spam",
                },
            )
            assert restored.headers["location"].startswith("/admin/comments/spam")
            approved = (await client.get("/admin/comments/approved")).text
            assert f'id="mod-{a}"' in approved
            readers = await client.get("/api/comments", params={"uri": "/posts/hello"})
            audit = (await client.get("/admin/audit")).text
    assert [c["id"] for c in readers.json()["comments"]] == [a]
    assert audit.count("<td>spam</td>") == 2 and audit.count("<td>restore</td>") == 1


async def test_staff_reply_from_the_queue(database_url: str, tmp_path: Path) -> None:
    """Replying to a held comment approves it and publishes the reply as the staff member,
    with "staff": true."""
    async with serve(make_settings(database_url, tmp_path, KIBITZ_MODERATION="all")) as server:
        await add_post(server)
        await add_staff(server, "Editor", email="editor@blog.example")
        async with server.client() as client:
            comment_id = await _held(server, client)
            csrf = await sign_in(client, "Editor")
            replied = await client.post(
                f"/admin/comments/{comment_id}/reply",
                data={"csrf_token": csrf, "text": "Thanks, **Ada**!"},
            )
            assert replied.status_code == 303
            thread = (await client.get("/api/comments", params={"uri": "/posts/hello"})).json()
            page = await client.get("/posts/hello")
    first, reply = thread["comments"]
    assert first["id"] == comment_id and first["staff"] is False
    assert reply == {
        **reply,
        "parent": comment_id,
        "author": "Editor",
        "staff": True,
        "status": "approved",
    }
    assert "comment--staff" in page.text


async def test_staff_reply_on_the_post_page(database_url: str, tmp_path: Path) -> None:
    """A signed-in staff member posting the page's form (with its CSRF token) is published at
    once as themselves, even under moderation 'all'; without the token it is 403."""
    async with serve(make_settings(database_url, tmp_path, KIBITZ_MODERATION="all")) as server:
        await add_post(server)
        await add_staff(server, "Editor")
        async with server.client() as client:
            await sign_in(client, "Editor")
            page = await client.get("/posts/hello")
            csrf = page.text.split('name="csrf_token" value="')[1].split('"')[0]
            form = {
                "author": "whatever",
                "email": "x@example.org",
                "text": "From the author",
                "form_token": page.text.split('name="form_token" value="')[1].split('"')[0],
            }
            refused = await client.post("/posts/hello/comments", data=form)
            posted = await client.post("/posts/hello/comments", data={**form, "csrf_token": csrf})
            thread = (await client.get("/api/comments", params={"uri": "/posts/hello"})).json()
    assert refused.status_code == 403
    assert posted.status_code == 303 and "#comment-" in posted.headers["location"]
    assert [(c["author"], c["staff"]) for c in thread["comments"]] == [("Editor", True)]


async def test_login_redirect_stays_inside_the_admin(server: Server) -> None:
    """``next`` may only lead into /admin: another site or a header injection is ignored."""
    await add_staff(server, "mod")
    for target, expected in (
        ("/admin/audit", "/admin/audit"),
        ("//evil.example", "/admin/queue"),
        ("https://evil.example/", "/admin/queue"),
        ("/admin/\r\nSet-Cookie: x=1", "/admin/queue"),
    ):
        async with server.client() as client:
            response = await client.post(
                "/admin/login", data={"name": "mod", "password": PASSWORD, "next": target}
            )
        assert response.headers["location"] == expected


async def test_login_from_another_origin_is_refused(server: Server) -> None:
    """A login form posted from another site cannot sign a browser in (login CSRF)."""
    await add_staff(server, "mod")
    async with server.client() as client:
        response = await client.post(
            "/admin/login",
            data={"name": "mod", "password": PASSWORD},
            headers={"Origin": "https://evil.example"},
        )
    assert response.status_code == 403 and "set-cookie" not in response.headers


async def test_admin_routes_leak_nothing_to_readers(database_url: str, tmp_path: Path) -> None:
    """Without a session no admin route, list or API shows a held comment, e-mail or address."""
    async with serve(make_settings(database_url, tmp_path, KIBITZ_MODERATION="all")) as server:
        await add_post(server)
        async with server.client() as client:
            await _held(server, client, text="top secret pending text")
            seen = []
            for path in (
                "/admin",
                "/admin/queue",
                "/admin/comments/approved",
                "/admin/comments/spam",
                "/admin/comments/deleted",
                "/admin/audit",
                "/admin/staff",
                "/admin/login",
                "/api/moderation",
                "/api/moderation?status=spam",
                "/api/comments?uri=/posts/hello",
                "/posts/hello",
                "/",
            ):
                response = await client.get(path, follow_redirects=True)
                seen.append(response.text)
        text = "\n".join(seen)
    for secret in ("top secret pending text", "ada@example.org", "127.0.0.1</"):
        assert secret not in text


async def test_sessions_hold_across_concurrent_requests(server: Server) -> None:
    """Many requests with one session at once all succeed (the session is looked up per
    request, not shared state)."""
    await add_staff(server, "mod")
    async with server.client() as client:
        await sign_in(client, "mod")
        results = await asyncio.gather(*(client.get("/api/moderation") for _ in range(20)))
    assert {r.status_code for r in results} == {200}


async def test_staff_actions_through_the_api_are_audited(database_url: str, tmp_path: Path) -> None:
    """Posting, editing and deleting with an API token each leave an audit entry naming the
    staff member; a commenter's own edit leaves none."""
    async with serve(make_settings(database_url, tmp_path)) as server:
        await add_post(server)
        await add_staff(server, "bot")
        token = "kbz_" + "t" * 43
        await server.state.staff.add_token((await server.state.staff.by_name("bot"))[0].id, token)
        async with server.client() as reader:
            mine = await reader.post("/api/comments", json={**COMMENT, "text": "reader's"})
            await reader.patch(
                f"/api/comments/{mine.json()['comment']['id']}",
                json={"text": "fixed"},
                headers={"Authorization": f"Bearer {mine.json()['edit_token']}"},
            )
        async with server.client(headers={"Authorization": f"Bearer {token}"}) as bot:
            posted = await bot.post(
                "/api/comments",
                json={
                    "uri": "/posts/hello",
                    "author": "x",
                    "email": "x@y.zz",
                    "text": "from the bot",
                },
            )
            comment_id = posted.json()["comment"]["id"]
            await bot.patch(f"/api/comments/{comment_id}", json={"text": "edited by bot"})
            await bot.delete(f"/api/comments/{comment_id}")
        entries = await server.state.audit.newest()
    assert [(e.staff_name, e.action, e.target) for e in reversed(entries)] == [
        ("bot", "post", f"comment {comment_id}"),
        ("bot", "edit", f"comment {comment_id}"),
        ("bot", "delete", f"comment {comment_id}"),
    ]


async def test_admin_pages_are_well_formed_and_speak_german(
    database_url: str, tmp_path: Path
) -> None:
    """Every admin page kind parses without an HTML error, and KIBITZ_LANGUAGE=de translates it."""
    import html5lib

    async with serve(
        make_settings(database_url, tmp_path, KIBITZ_MODERATION="all", KIBITZ_LANGUAGE="de")
    ) as server:
        await add_post(server)
        await add_staff(server, "boss", "admin")
        async with server.client() as client:
            await _held(server, client)
            login = await client.get("/admin/login")
            await sign_in(client, "boss")
            pages = [login] + [
                await client.get(path)
                for path in (
                    "/admin/queue",
                    "/admin/comments/approved",
                    "/admin/comments/spam",
                    "/admin/audit",
                    "/admin/staff",
                )
            ]
    for page in pages:
        assert page.status_code == 200, page.url
        parser = html5lib.HTMLParser(namespaceHTMLElements=False)
        parser.parse(page.text)
        assert parser.errors == [], (page.url, parser.errors)
    assert "Anmelden" in pages[0].text and "Moderations-Warteschlange" in pages[1].text
    assert "Zurückgehalten, weil" in pages[1].text


async def test_odd_ids_and_pages_are_refused_cleanly_and_buttons_carry_api_names(
    database_url: str, tmp_path: Path
) -> None:
    """Non-numbers as ids or pages never become a 500; each list offers its actions with the
    JSON API's name beside them (restore is an approval), which admin.js uses as is."""
    async with serve(make_settings(database_url, tmp_path, KIBITZ_MODERATION="all")) as server:
        await add_post(server)
        await add_staff(server, "mod")
        async with server.client() as client:
            held = await _held(server, client)
            csrf = await sign_in(client, "mod")
            odd = await client.post(
                "/admin/moderate",
                data={"csrf_token": csrf, "action": "delete", "ids": ["²", "9" * 30, "-1"]},
            )
            assert odd.status_code == 400
            assert (await client.get("/admin/queue", params={"page": "²"})).status_code == 200
            assert (await client.get("/admin/comments/nonsense")).status_code == 404
            queue = (await client.get("/admin/queue")).text
            assert 'data-mod-list data-status="pending" data-queue' in queue
            assert 'value="approve" data-action="approve" data-key="a"' in queue
            done = await client.post(
                "/admin/moderate", data={"csrf_token": csrf, "action": "delete", "ids": str(held)}
            )
            assert done.status_code == 303
            deleted = (await client.get("/admin/comments/deleted")).text
    item = deleted.split(f'id="mod-{held}"')[1].split("</li>")[0]
    assert 'value="restore" data-action="approve" data-key="a"' in item
    assert 'value="delete"' not in item and "data-queue" not in deleted
