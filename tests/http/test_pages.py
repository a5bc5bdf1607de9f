"""The reader-facing pages and the no-JavaScript form, through a real server on both backends."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from db.models import Status
from server.discussion.actions import HELD_HONEYPOT, HELD_NO_FORM_TOKEN, HELD_TOO_FAST
from tests.helpers.posts import add_comment, add_post, fill_and_post
from tests.helpers.servers import Server, make_settings, serve
from tests.helpers.staff import add_staff, sign_in
from tests.helpers.stored import with_status
from tests.helpers.view import by_class, by_id, comment_tree, form_values, parse, text_of

PERSON = {"author": "Ada", "email": "ada@example.org", "text": "Hello there"}


async def test_index_lists_posts_newest_first_with_counts(server: Server) -> None:
    """The index shows every post newest first with author, date, categories and a count."""
    await add_post(
        server,
        "older",
        "Older post",
        published=datetime(2011, 5, 24, tzinfo=UTC),
        categories=["Kitchen", "Notes"],
        author="Maren",
    )
    await add_post(server, "newer", "Newer post", published=datetime(2012, 1, 2, tzinfo=UTC))
    await server.state.posts.add(
        slug="newest",
        title="Newest post",
        author="Admin",
        published=datetime(2013, 1, 2, tzinfo=UTC),
        body_html="<h2>Start</h2><p>One.</p><p>Two &amp; <b>three</b>.</p>",
    )
    await add_comment(server, "/posts/older", "A")
    await add_comment(server, "/posts/older", "B")
    await add_comment(server, "/posts/older", "Held", status="pending")
    await add_comment(server, "/posts/newer", "C")
    async with server.client() as client:
        page = await client.get("/")
    assert page.status_code == 200
    root = parse(page.text)
    summaries = by_class(root, "post-summary")
    assert [text_of(by_class(s, "post-summary__title")[0]) for s in summaries] == [
        "Newest post",
        "Newer post",
        "Older post",
    ]
    counts = [text_of(by_class(s, "post-summary__comments")[0]) for s in summaries]
    assert counts == ["0 comments", "1 comment", "2 comments"]
    older = text_of(by_class(summaries[2], "post-meta")[0])
    assert "By Maren" in older and "May 24, 2011" in older
    assert [text_of(c) for c in by_class(summaries[2], "category")] == ["Kitchen", "Notes"]
    assert text_of(by_class(summaries[0], "post-summary__excerpt")[0]) == "Start One. Two & three."
    assert "Comments are moderated" not in page.text  # this server publishes at once


async def test_post_page_numbers_and_nests_comments(server: Server) -> None:
    """Top-level comments are numbered 1, 2, 3; replies sit under their parents, oldest first."""
    await add_post(server)
    first = await add_comment(
        server, "/posts/hello", "First", created=datetime(2011, 5, 24, 9, tzinfo=UTC)
    )
    reply = await add_comment(server, "/posts/hello", "Reply", parent=first)
    second = await add_comment(server, "/posts/hello", "Second")
    nested = await add_comment(server, "/posts/hello", "Nested", parent=reply)
    await add_comment(server, "/posts/hello", "Held", status="pending", parent=first)
    third = await add_comment(server, "/posts/hello", "Third")
    async with server.client() as client:
        page = await client.get("/posts/hello")
    root = parse(page.text)
    assert comment_tree(root) == [
        (first, 1, "First"),
        (reply, 2, "Reply"),
        (nested, 3, "Nested"),
        (second, 1, "Second"),
        (third, 1, "Third"),
    ]
    numbers = {}
    for li in by_class(root, "comment"):
        own = by_class(li.find("article"), "comment__number")  # type: ignore[arg-type]
        if own:
            numbers[int(li.get("data-id") or 0)] = text_of(own[0])
    assert numbers == {first: "#1", second: "#2", third: "#3"}
    card = by_id(root, f"comment-{first}")
    assert card is not None
    permalink = by_class(card, "comment__permalink")[0]
    assert permalink.get("href") == f"#comment-{first}"
    assert text_of(permalink) == "May 24, 2011"
    assert "5 comments on “Hello”" in text_of(by_class(root, "comments__title")[0])
    assert "Held" not in page.text


async def test_depth_limit_attaches_deeper_replies_at_the_deepest_level(
    database_url: str, tmp_path: Path
) -> None:
    """With KIBITZ_MAX_DEPTH=2 a reply to a reply is shown at level 2, saying whom it answers."""
    async with serve(make_settings(database_url, tmp_path, KIBITZ_MAX_DEPTH="2")) as server:
        await add_post(server)
        top = await add_comment(server, "/posts/hello", "Top")
        level2 = await add_comment(server, "/posts/hello", "Level2", parent=top)
        level3 = await add_comment(server, "/posts/hello", "Level3", parent=level2)
        level4 = await add_comment(server, "/posts/hello", "Level4", parent=level3)
        async with server.client() as client:
            page = await client.get("/posts/hello")
    root = parse(page.text)
    assert comment_tree(root) == [
        (top, 1, "Top"),
        (level2, 2, "Level2"),
        (level3, 2, "Level3"),
        (level4, 2, "Level4"),
    ]
    answers = by_class(by_id(root, f"comment-{level3}"), "comment__answers")  # type: ignore[arg-type]
    assert text_of(answers[0]) == "in reply to Level2"
    assert answers[0].find("a").get("href") == f"#comment-{level2}"  # type: ignore[union-attr]
    assert not by_class(by_id(root, f"comment-{level2}"), "comment__answers")  # type: ignore[arg-type]


async def test_author_links_are_nofollow_unless_the_site_follows_them(
    database_url: str, tmp_path: Path
) -> None:
    """A commenter's website link is rel="nofollow ugc", or "ugc" with FOLLOW_AUTHOR_LINKS."""
    for follow, rel in (("false", "nofollow ugc"), ("true", "ugc")):
        settings = make_settings(database_url, tmp_path / follow, KIBITZ_FOLLOW_AUTHOR_LINKS=follow)
        async with serve(settings) as server:
            if follow == "false":
                await add_post(server)
                await add_comment(server, "/posts/hello", "Linked", website="https://ada.example/")
            async with server.client() as client:
                page = await client.get("/posts/hello")
        author = by_class(parse(page.text), "comment__author")[0]
        link = author.find("a")
        assert link is not None and link.get("href") == "https://ada.example/"
        assert link.get("rel") == rel


async def test_reply_link_works_without_javascript(server: Server) -> None:
    """?replytocom=ID fills the form's parent, and the posted reply is nested under it."""
    await add_post(server)
    parent = await add_comment(server, "/posts/hello", "Grace")
    async with server.client() as client:
        page = await client.get("/posts/hello")
        reply_link = by_class(
            by_id(parse(page.text), f"comment-{parent}"),  # type: ignore[arg-type]
            "comment__reply",
        )[0].get("href")
        assert reply_link == f"/posts/hello?replytocom={parent}#respond"
        form_page = await client.get(f"/posts/hello?replytocom={parent}")
        root = parse(form_page.text)
        assert form_values(root)["parent"] == str(parent)
        assert text_of(by_class(root, "respond__title")[0]) == "Reply to Grace"
        for odd in ("²", "-1", "99999999999999999999999", "x"):
            page_with_odd = await client.get("/posts/hello", params={"replytocom": odd})
            assert page_with_odd.status_code == 200, odd
            assert form_values(parse(page_with_odd.text))["parent"] == ""
        posted = await fill_and_post(client, "hello", f"/posts/hello?replytocom={parent}", **PERSON)
        after = await client.get("/posts/hello")
    assert posted.status_code == 303
    new_id = int(posted.headers["location"].rsplit("-", 1)[1])
    assert comment_tree(parse(after.text)) == [(parent, 1, "Grace"), (new_id, 2, "Ada")]


async def test_reply_to_a_pending_comment_is_not_offered(server: Server) -> None:
    """?replytocom with a comment readers cannot see leaves the form a top-level comment."""
    await add_post(server)
    held = await add_comment(server, "/posts/hello", "Hidden", status="pending")
    async with server.client() as client:
        page = await client.get(f"/posts/hello?replytocom={held}")
    assert form_values(parse(page.text))["parent"] == ""
    assert "Hidden" not in page.text


async def test_unknown_post_is_a_real_404_page(server: Server) -> None:
    """An unknown slug answers 404 with an HTML page that leads back to the posts."""
    async with server.client() as client:
        page = await client.get("/posts/no-such-post")
        posted = await client.post("/posts/no-such-post/comments", data=PERSON)
    assert page.status_code == 404 and posted.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    root = parse(page.text)
    assert text_of(root.find(".//h1")) == "Page not found"  # type: ignore[arg-type]
    assert any(a.get("href") == "/" for a in root.iter("a"))


async def test_form_shows_fields_hint_and_allowed_tags(server: Server) -> None:
    """The form has Name, E-mail ("will not be published"), Website, Comment and the tag list."""
    await add_post(server)
    async with server.client() as client:
        page = await client.get("/posts/hello")
    root = parse(page.text)
    labels = {label.get("for"): text_of(label) for label in root.iter("label")}
    assert labels["kibitz-author"] == "Name (required)"
    assert labels["kibitz-email"] == "E-mail (required)"
    assert labels["kibitz-website"] == "Website"
    assert labels["kibitz-text"] == "Comment (required)"
    assert text_of(by_id(root, "kibitz-email-hint")) == "will not be published"  # type: ignore[arg-type]
    tags = text_of(by_id(root, "kibitz-tags"))  # type: ignore[arg-type]
    for tag in ('<a href="" title="">', '<blockquote cite="">', "<code>", "<strong>"):
        assert tag in tags
    form = by_class(root, "comment-form")[0]
    assert form.get("method") == "post" and form.get("action") == "/posts/hello/comments"
    assert set(form_values(root)) >= {"author", "email", "website", "text", "parent"}


async def test_published_comment_redirects_to_its_anchor_and_sets_edit_cookie(
    server: Server,
) -> None:
    """A published comment answers 303 to #comment-{id} and the edit cookie edits it via the API."""
    await add_post(server)
    async with server.client() as client:
        posted = await fill_and_post(client, "hello", **PERSON, website="ada.example.org")
        assert posted.status_code == 303
        location = posted.headers["location"]
        assert location.startswith("/posts/hello#comment-")
        comment_id = int(location.rsplit("-", 1)[1])
        cookie = next(c for c in client.cookies.jar if c.name == f"kibitz_edit_{comment_id}")
        assert cookie.path == "/posts/hello"
        page = await client.get(location)
        edited = await client.patch(
            f"/api/comments/{comment_id}",
            json={"text": "Changed"},
            headers={"Authorization": f"Bearer {cookie.value}"},
        )
    root = parse(page.text)
    card = by_id(root, f"comment-{comment_id}")
    assert card is not None and "Hello there" in text_of(card)
    link = by_class(card, "comment__author")[0].find("a")
    assert link is not None and link.get("href") == "https://ada.example.org/"
    assert edited.status_code == 200, edited.text
    assert edited.json()["comment"]["html"] == "<p>Changed</p>"


async def test_held_comment_comes_back_with_the_moderation_notice(
    database_url: str, tmp_path: Path
) -> None:
    """Under moderation 'all' the form answers 303 to the post with the awaits-moderation notice."""
    async with serve(make_settings(database_url, tmp_path, KIBITZ_MODERATION="all")) as server:
        await add_post(server)
        async with server.client(follow_redirects=True) as client:
            posted = await fill_and_post(client, "hello", **{**PERSON, "text": "Secret words"})
    assert posted.history[0].status_code == 303
    assert posted.history[0].headers["location"] == "/posts/hello?notice=held#respond"
    root = parse(posted.text)
    notice = by_class(root, "notice--held")
    assert notice and "awaits moderation" in text_of(notice[0])
    assert "Secret words" not in posted.text
    assert "ada@example.org" not in posted.text


async def test_invalid_form_keeps_every_value_and_marks_every_field(server: Server) -> None:
    """422 re-renders the page with a message beside each wrong field and all typed values kept."""
    await add_post(server)
    typed = {
        "author": "   ",
        "email": 'not-an-address "quoted" <b>',
        "website": "javascript:alert(1)",
        "text": "\nFirst line with <script>alert('x')</script> & ümlauts\n\n  indented",
    }
    async with server.client() as client:
        answer = await fill_and_post(client, "hello", **typed)
    assert answer.status_code == 422
    root = parse(answer.text)
    values = form_values(root)
    for name, value in typed.items():
        assert values[name] == value, name
    for name in ("author", "email", "website"):
        error = by_id(root, f"kibitz-{name}-error")
        assert error is not None and text_of(error), name
        field = by_id(root, f"kibitz-{name}")
        assert field is not None and field.get("aria-invalid") == "true"
        assert f"kibitz-{name}-error" in (field.get("aria-describedby") or "")
    assert by_id(root, "kibitz-text-error") is None  # the text was fine
    assert text_of(by_id(root, "kibitz-author-error")) == "Please enter your name."  # type: ignore[arg-type]
    assert by_class(root, "notice--error")
    # What the reader typed never becomes a script: the only scripts are kibitz's own files.
    scripts = [e for e in root.iter() if e.tag == "script"]
    assert all(
        (e.get("src") or "").startswith("/widget/") and not (e.text or "").strip() for e in scripts
    ), [e.get("src") for e in scripts]


async def test_links_on_the_422_page_lead_back_to_the_post(server: Server) -> None:
    """The 422 page lives at the form's URL: its reply links and that URL still reach the post."""
    await add_post(server)
    parent = await add_comment(server, "/posts/hello", "Grace")
    async with server.client() as client:
        answer = await fill_and_post(client, "hello", **{**PERSON, "author": ""})
        href = by_class(parse(answer.text), "comment__reply")[0].get("href") or ""
        followed = await client.get(str(answer.url.join(href)))
        reopened = await client.get("/posts/hello/comments")
    assert answer.status_code == 422
    assert followed.status_code == 200
    assert form_values(parse(followed.text))["parent"] == str(parent)
    assert reopened.status_code == 303
    assert reopened.headers["location"] == "/posts/hello#comments"


async def test_empty_text_and_unknown_parent_are_reported(server: Server) -> None:
    """An empty comment, a missing parent and another thread's parent come back as 422."""
    await add_post(server)
    await add_post(server, "other", "Other")
    elsewhere = await add_comment(server, "/posts/other", "Elsewhere")
    async with server.client() as client:
        empty = await fill_and_post(client, "hello", **{**PERSON, "text": "  "})
        orphan = await fill_and_post(client, "hello", **{**PERSON, "parent": "999999"})
        foreign = await fill_and_post(client, "hello", **{**PERSON, "parent": str(elsewhere)})
    assert foreign.status_code == 422
    assert by_id(parse(foreign.text), "kibitz-parent-error") is not None
    assert empty.status_code == 422
    assert text_of(by_id(parse(empty.text), "kibitz-text-error")) == "Please write a comment."  # type: ignore[arg-type]
    assert orphan.status_code == 422
    root = parse(orphan.text)
    assert by_id(root, "kibitz-parent-error") is not None
    assert form_values(root)["text"] == "Hello there"


async def test_form_path_refuses_huge_bodies_and_other_types(server: Server) -> None:
    """The form answers 413 past 64 KiB and 415 for a body that is not urlencoded."""
    await add_post(server)
    async with server.client() as client:
        huge = await client.post("/posts/hello/comments", data={**PERSON, "text": "x" * 70_000})
        json_body = await client.post("/posts/hello/comments", json=PERSON)
    assert huge.status_code == 413
    assert huge.headers["content-type"].startswith("text/html")
    assert json_body.status_code == 415
    assert "application/x-www-form-urlencoded" in json_body.text


async def test_invisible_spam_checks_hold_but_never_drop(database_url: str, tmp_path: Path) -> None:
    """Honeypot, missing form token and a too-fast form are kept as pending with the reason."""
    settings = make_settings(database_url, tmp_path, KIBITZ_MIN_FILL_SECONDS="3")
    async with serve(settings) as server:
        await add_post(server)
        async with server.client() as client:
            fast = await fill_and_post(client, "hello", **{**PERSON, "text": "too fast"})
            trap = await fill_and_post(
                client, "hello", **{**PERSON, "text": "honey", "subject": "buy now"}
            )
            no_token = await client.post(
                "/posts/hello/comments", data={**PERSON, "text": "no token"}
            )
            page = await client.get("/posts/hello")
        held = {c.text: c.reason for c in await with_status(server.state.db, Status.PENDING)}
    for answer in (fast, trap, no_token):
        assert answer.status_code == 303
        assert answer.headers["location"] == "/posts/hello?notice=held#respond"
    assert held == {
        "too fast": HELD_TOO_FAST,
        "honey": HELD_HONEYPOT,
        "no token": HELD_NO_FORM_TOKEN,
    }
    assert "too fast" not in page.text and "honey" not in page.text


async def test_form_fill_time_lets_a_patient_person_through(
    database_url: str, tmp_path: Path
) -> None:
    """A form submitted after the minimum fill time is published normally."""
    import asyncio

    settings = make_settings(database_url, tmp_path, KIBITZ_MIN_FILL_SECONDS="0.5")
    async with serve(settings) as server:
        await add_post(server)
        async with server.client() as client:
            values = form_values(parse((await client.get("/posts/hello")).text))
            await asyncio.sleep(0.6)  # the fill time under test (the form token has no clock)
            posted = await client.post("/posts/hello/comments", data={**values, **PERSON})
    assert posted.status_code == 303
    assert "#comment-" in posted.headers["location"]


async def test_rate_limited_form_keeps_the_text(database_url: str, tmp_path: Path) -> None:
    """Past the post rate the form answers 429 with Retry-After and the reader's text kept."""
    settings = make_settings(database_url, tmp_path, KIBITZ_POST_RATE="1/minute")
    async with serve(settings) as server:
        await add_post(server)
        async with server.client() as client:
            first = await fill_and_post(client, "hello", **PERSON)
            second = await fill_and_post(client, "hello", **{**PERSON, "text": "Once more"})
    assert first.status_code == 303
    assert second.status_code == 429
    assert int(second.headers["retry-after"]) >= 1
    root = parse(second.text)
    assert form_values(root)["text"] == "Once more"
    assert by_class(root, "notice--error")


async def test_pages_never_show_private_fields_or_hidden_comments(server: Server) -> None:
    """E-mail, IP address and pending/spam/deleted comments never reach the index or the post."""
    await add_post(server)
    shown = await add_comment(
        server,
        "/posts/hello",
        "Visible",
        email="visible@example.org",
        address="203.0.113.7",
        text="visible words",
    )
    for status in ("pending", "spam", "deleted"):
        await add_comment(
            server,
            "/posts/hello",
            f"{status}-author",
            status=status,
            email=f"{status}@example.org",
            text=f"{status} words",
            address="198.51.100.9",
        )
    deleted_parent = await add_comment(
        server, "/posts/hello", "Gone", text="gone words", email="gone@example.org"
    )
    await add_comment(server, "/posts/hello", "Child", parent=deleted_parent)
    await server.state.comments.change(deleted_parent, status="deleted")
    async with server.client() as client:
        pages = [await client.get("/posts/hello"), await client.get("/")]
    for page in pages:
        for secret in (
            "visible@example.org",
            "203.0.113.7",
            "198.51.100.9",
            "gone@example.org",
            "pending words",
            "spam words",
            "deleted words",
            "gone words",
            "pending-author",
            "spam-author",
            "deleted-author",
            "Gone",
        ):
            assert secret not in page.text, secret
    root = parse(pages[0].text)
    assert by_id(root, f"comment-{shown}") is not None
    placeholder = by_id(root, f"comment-{deleted_parent}")
    assert placeholder is not None and "comment--deleted" in (placeholder.get("class") or "")
    assert "2 comments" in text_of(by_class(parse(pages[1].text), "post-summary__comments")[0])


async def test_every_page_is_well_formed_html(server: Server) -> None:
    """Index, post, reply form, 422, held notice and 404 parse without a single HTML error."""
    import html5lib

    await add_post(server)
    parent = await add_comment(server, "/posts/hello", "Grace", website="https://grace.example/")
    await add_comment(server, "/posts/hello", "Reply", parent=parent)
    async with server.client() as client:
        pages = [
            await client.get("/"),
            await client.get("/posts/hello"),
            await client.get(f"/posts/hello?replytocom={parent}"),
            await client.get("/posts/hello?notice=held"),
            await fill_and_post(client, "hello", author="", email="x", text="t"),
            await client.get("/posts/missing"),
        ]
    for page in pages:
        parser = html5lib.HTMLParser(namespaceHTMLElements=False)
        parser.parse(page.text)
        assert parser.errors == [], (page.url, parser.errors)


async def test_index_pages_through_older_posts(server: Server) -> None:
    """Past twenty posts the index links to older pages and back; a page past the end is 404."""
    from server.http.pages import POSTS_PER_PAGE

    for n in range(POSTS_PER_PAGE + 3):
        await add_post(
            server, f"post-{n}", f"Post {n}", published=datetime(2020, 1, 1 + n, tzinfo=UTC)
        )
    async with server.client() as client:
        first = parse((await client.get("/")).text)
        older_href = by_class(first, "pager__older")[0].get("href") or ""
        second_page = await client.get(older_href)
        beyond = await client.get("/?page=3")
        nonsense = await client.get("/?page=x")
        superscript = await client.get("/?page=²")
    second = parse(second_page.text)
    titles = [
        text_of(by_class(summary, "post-summary__title")[0])
        for summary in by_class(second, "post-summary")
    ]
    assert len(by_class(first, "post-summary")) == POSTS_PER_PAGE
    assert older_href == "/?page=2"
    assert titles == ["Post 2", "Post 1", "Post 0"]
    assert not by_class(second, "pager__older")
    assert by_class(second, "pager__newer")[0].get("href") == "/"
    assert beyond.status_code == 404 and nonsense.status_code == 404
    assert superscript.status_code == 404


async def test_cached_comment_list_follows_every_change_and_tokens_stay_per_request(
    server: Server,
) -> None:
    """Each page shows the thread as it is now, with a fresh form token and the reader's CSRF."""
    await add_post(server)
    first = await add_comment(server, "/posts/hello", "First")
    async with server.client() as anonymous, server.client() as staff:
        await add_staff(server, "mod")
        await sign_in(staff, "mod")
        before = parse((await anonymous.get("/posts/hello")).text)
        await asyncio.sleep(0.01)  # form tokens carry the time to the millisecond
        again = await anonymous.get("/posts/hello")
        assert [a for _, _, a in comment_tree(parse(again.text))] == ["First"]
        assert form_values(parse(again.text))["form_token"] != form_values(before)["form_token"]
        assert "csrf_token" not in form_values(parse(again.text))
        assert "slot" not in form_values(parse(again.text))["form_token"]
        reply = await add_comment(server, "/posts/hello", "Reply", parent=first)
        await server.state.comments.change(first, status="deleted")
        staff_page = await staff.get("/posts/hello")
        anonymous_page = await anonymous.get("/posts/hello")
    for page in (staff_page, anonymous_page):
        root = parse(page.text)
        assert [(i, depth) for i, depth, _ in comment_tree(root)] == [(first, 1), (reply, 2)]
        assert [li.get("data-id") for li in by_class(root, "comment--deleted")] == [str(first)]
        assert "1 comment on “Hello”" in text_of(by_class(root, "comments__title")[0])
        assert "First" not in page.text
    assert form_values(parse(staff_page.text))["csrf_token"]
    assert "csrf_token" not in form_values(parse(anonymous_page.text))


def test_the_form_signer_signs_as_itsdangerous_does() -> None:
    """Tokens signed with the key set up once are itsdangerous' own: a process of an
    earlier release (a rolling restart) accepts them, and they accept its tokens."""
    from itsdangerous import TimestampSigner

    from server.http.pages import FormSigner

    ours, theirs = FormSigner("k" * 40), TimestampSigner("k" * 40, salt="kibitz.form")
    for value in ("12|1765000000.123|nonce", "7|1.000|é"):
        assert ours.get_signature(value) == theirs.get_signature(value)
        assert theirs.unsign(ours.sign(value)) == value.encode()
        assert ours.unsign(theirs.sign(value)) == value.encode()
    assert FormSigner("other" * 8).get_signature("x") != ours.get_signature("x")
