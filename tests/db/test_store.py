"""The comment store on SQLite and PostgreSQL: visibility, events, counts, e-mail lookup."""

from __future__ import annotations

import asyncio
import random
from datetime import datetime, timedelta

import pytest

from db.comments import (
    FULL,
    PLACEHOLDER,
    CommentStore,
    InvalidParent,
    NewComment,
    UnknownThread,
    diff_events,
    record_events,
    visible_states,
)
from db.database import Database, in_list
from db.errors import Conflict
from db.models import Comment, now
from db.posts import PostStore
from db.screening import Question, screen


@pytest.fixture
def store(db: Database) -> CommentStore:
    return CommentStore(db)


def new(
    text: str = "hello",
    *,
    status: str = "approved",
    parent: int | None = None,
    email: str = "ada@example.org",
) -> NewComment:
    return NewComment(
        author="Ada",
        email=email,
        website=None,
        text=text,
        html=f"<p>{text}</p>",
        status=status,
        parent_id=parent,
        address="192.0.2.7",
    )


async def add(store: CommentStore, uri: str = "/t", **kwargs: object) -> Comment:
    comment, _ = await store.add(uri, new(**kwargs), create_thread=True)  # type: ignore[arg-type]
    return comment


async def events_of(store: CommentStore, uri: str = "/t") -> list[tuple[int, str, int]]:
    thread = await store.thread(uri)
    assert thread is not None
    return [(e.seq, e.type, e.comment_id) for e in await store.events_since(thread.id, 0)]


async def shown(store: CommentStore, uri: str = "/t") -> dict[int, str]:
    thread = await store.thread(uri)
    assert thread is not None
    _, comments = await store.visible_with_cursor(thread.id)
    return visible_states((c.id, c.parent_id, c.status) for c in comments)


# -- visible_states and diff_events, the pure parts --------------------------------------------


def test_visible_states_shows_approved_and_placeholders_only_above_approved() -> None:
    """Approved comments are full; a hidden comment is a placeholder only above an approved one."""
    rows = [
        (1, None, "deleted"),
        (2, 1, "approved"),
        (3, None, "spam"),
        (4, 3, "pending"),
        (5, None, "deleted"),
        (6, 5, "deleted"),
        (7, 6, "approved"),
        (8, None, "pending"),
    ]
    assert visible_states(rows) == {
        1: PLACEHOLDER,
        2: FULL,
        5: PLACEHOLDER,
        6: PLACEHOLDER,
        7: FULL,
    }


def test_diff_events_follows_the_contract_table() -> None:
    """Appearing is approved, vanishing deleted, full→placeholder updated, an edit updated."""
    before = {1: FULL, 2: FULL, 3: FULL, 4: PLACEHOLDER}
    after = {1: FULL, 3: PLACEHOLDER, 4: FULL, 5: FULL}
    assert diff_events(before, after, edited=[1]) == [
        ("comment.deleted", 2),
        ("comment.updated", 3),
        ("comment.approved", 4),
        ("comment.approved", 5),
        ("comment.updated", 1),
    ]
    assert diff_events({7: PLACEHOLDER}, {7: PLACEHOLDER}, edited=[7]) == []


# -- visibility and placeholders through the store ---------------------------------------------


async def test_only_approved_comments_are_visible(store: CommentStore) -> None:
    """Pending, spam and deleted comments without replies are not in the thread at all."""
    shown_one = await add(store, text="shown")
    for status in ("pending", "spam", "deleted"):
        await add(store, text=status, status=status)
    assert await shown(store) == {shown_one.id: FULL}


async def test_deleted_comment_with_approved_reply_is_a_placeholder(store: CommentStore) -> None:
    """Deleting a comment with an approved reply leaves a placeholder until its last reply goes."""
    parent = await add(store, text="parent")
    reply1 = await add(store, text="one", parent=parent.id)
    reply2 = await add(store, text="two", parent=parent.id)
    await store.change(parent.id, status="deleted")
    assert await shown(store) == {parent.id: PLACEHOLDER, reply1.id: FULL, reply2.id: FULL}
    await store.change(reply1.id, status="deleted")
    assert await shown(store) == {parent.id: PLACEHOLDER, reply2.id: FULL}
    _, _, events = await store.change(reply2.id, status="spam")
    assert await shown(store) == {}
    assert [(e.type, e.comment_id) for e in events] == [
        ("comment.deleted", parent.id),
        ("comment.deleted", reply2.id),
    ]


async def test_spam_with_approved_reply_is_a_placeholder(store: CommentStore) -> None:
    """A comment marked spam while it has an approved reply keeps its place, empty."""
    parent = await add(store, text="parent")
    reply = await add(store, text="reply", parent=parent.id)
    _, _, events = await store.change(parent.id, status="spam")
    assert [(e.type, e.comment_id) for e in events] == [("comment.updated", parent.id)]
    assert await shown(store) == {parent.id: PLACEHOLDER, reply.id: FULL}


async def test_pending_reply_does_not_keep_a_placeholder(store: CommentStore) -> None:
    """Only approved replies keep a deleted parent's place; a pending one does not."""
    parent = await add(store, text="parent")
    await add(store, text="held", status="pending", parent=parent.id)
    _, _, events = await store.change(parent.id, status="deleted")
    assert [(e.type, e.comment_id) for e in events] == [("comment.deleted", parent.id)]
    assert await shown(store) == {}


async def test_visible_with_cursor_matches_the_events(store: CommentStore) -> None:
    """The cursor read with the comments is the thread's last seq; an empty thread has 0."""
    await store.add("/empty", new(status="pending"), create_thread=True)
    empty = await store.thread("/empty")
    assert empty is not None
    assert await store.visible_with_cursor(empty.id) == (0, [])
    first = await add(store, text="a")
    second = await add(store, text="b")
    thread = await store.thread("/t")
    assert thread is not None
    cursor, comments = await store.visible_with_cursor(thread.id)
    assert cursor == 2 == thread.last_seq
    assert [c.id for c in comments] == [first.id, second.id]


# -- events ------------------------------------------------------------------------------------


async def test_events_for_each_kind_of_change(store: CommentStore) -> None:
    """created, approved, updated and deleted are written exactly as the contract's table says."""
    visible = await add(store, text="visible")
    held = await add(store, text="held", status="pending")
    await store.change(held.id, text="held, edited", html="<p>held, edited</p>", edited=now())
    await store.change(held.id, status="approved")
    await store.change(visible.id, text="edited", html="<p>edited</p>", edited=now())
    await store.change(visible.id, status="deleted")
    await store.change(visible.id, status="approved")
    spam = await add(store, text="spam", status="spam")
    await store.change(spam.id, status="deleted")  # hidden to hidden: nothing
    assert await events_of(store) == [
        (1, "comment.created", visible.id),
        (2, "comment.approved", held.id),
        (3, "comment.updated", visible.id),
        (4, "comment.deleted", visible.id),
        (5, "comment.approved", visible.id),
    ]


async def test_placeholder_appears_when_a_held_reply_is_approved(store: CommentStore) -> None:
    """Approving a held reply under a deleted parent brings the parent back as a placeholder."""
    parent = await add(store, text="parent")
    reply = await add(store, text="reply", status="pending", parent=parent.id)
    await store.change(parent.id, status="deleted")
    _, _, events = await store.change(reply.id, status="approved")
    assert [(e.type, e.comment_id) for e in events] == [
        ("comment.approved", parent.id),
        ("comment.approved", reply.id),
    ]
    assert await shown(store) == {parent.id: PLACEHOLDER, reply.id: FULL}


async def test_changes_in_a_random_tree_write_the_whole_threads_difference(
    store: CommentStore,
) -> None:
    """Each change's events equal the whole thread's difference, though only its chain is read."""
    rng = random.Random(16)
    ids: list[int] = []
    for _ in range(30):
        parent = rng.choice(ids) if ids and rng.random() < 0.8 else None
        ids.append((await add(store, text="c", parent=parent)).id)
    for _ in range(60):
        before = await shown(store)
        target = rng.choice(ids)
        status = rng.choice(["approved", "approved", "deleted", "spam", "pending"])
        _, _, events = await store.change(target, status=status)
        after = await shown(store)
        assert [(e.type, e.comment_id) for e in events] == diff_events(before, after)


async def test_seq_is_strictly_increasing_per_thread(store: CommentStore, db: Database) -> None:
    """Each thread counts its own seq from 1 with no gaps; last_seq is the newest."""
    for i in range(3):
        await add(store, "/a", text=f"a{i}")
        await add(store, "/b", text=f"b{i}")
    a = await store.thread("/a")
    assert a is not None
    async with db.transaction() as conn:
        batch = await record_events(conn, a, [("comment.updated", 1), ("comment.updated", 2)])
        assert await record_events(conn, a, []) == []
    assert [e.seq for e in batch] == [4, 5]
    assert [seq for seq, _, _ in await events_of(store, "/a")] == [1, 2, 3, 4, 5]
    assert [seq for seq, _, _ in await events_of(store, "/b")] == [1, 2, 3]
    assert (await store.cursor("/a"))[1] == 5
    assert (await store.cursor("/nowhere")) == (None, 0)


async def test_events_roll_back_with_their_change(store: CommentStore, db: Database) -> None:
    """A transaction that fails leaves neither its events nor its counter bump behind."""
    await add(store, text="first")
    thread = await store.thread("/t")
    assert thread is not None
    with pytest.raises(RuntimeError):
        async with db.transaction() as conn:
            await record_events(conn, thread, [("comment.updated", 1)])
            raise RuntimeError("boom")
    assert (await store.cursor("/t"))[1] == 1
    assert len(await events_of(store)) == 1
    await add(store, text="second")  # the writer is usable again
    assert [seq for seq, _, _ in await events_of(store)] == [1, 2]


async def test_prune_keeps_each_threads_newest_event(store: CommentStore, db: Database) -> None:
    """Pruning drops old events but keeps every thread's newest, so cursors stay valid."""
    for _ in range(3):
        await add(store, "/a")
    await add(store, "/b")
    async with db.transaction() as conn:
        await conn.execute("UPDATE events SET created = $1", now() - timedelta(days=30))
    await add(store, "/c")  # recent: kept whatever its seq
    pruned = await store.prune_events(now() - timedelta(days=7))
    assert pruned == 2
    assert [s for s, _, _ in await events_of(store, "/a")] == [3]
    assert [s for s, _, _ in await events_of(store, "/b")] == [1]
    assert [s for s, _, _ in await events_of(store, "/c")] == [1]
    a = await store.thread("/a")
    assert a is not None and await store.oldest_seq(a.id) == 3


# -- threads, counts, e-mail -------------------------------------------------------------------


def test_in_lists_of_any_length_share_a_few_statements() -> None:
    """Lengths 1 to 512 give ten placeholder lists, each numbered from ``first``, and the
    padded values are the same set (the last value repeated)."""
    shapes = set()
    for length in range(1, 513):
        values = list(range(100, 100 + length))
        marks, padded = in_list(values, first=2)
        shapes.add(marks)
        assert marks.split(", ")[0] == "$2" and len(marks.split(", ")) == len(padded)
        assert padded[:length] == values and set(padded) == set(values)
    assert len(shapes) == 10
    assert in_list([]) == ("", [])


async def test_padded_in_lists_find_exactly_the_asked_comments(store: CommentStore) -> None:
    """Every length of an id list (padded under the hood) answers those comments, no more."""
    ids = [(await add(store)).id for _ in range(9)]
    for length in range(1, 10):
        wanted = random.sample(ids, length)
        assert sorted(await store.by_ids(wanted)) == sorted(wanted)


async def test_counts_resolve_aliases_and_unknown_uris(store: CommentStore, db: Database) -> None:
    """Counts are approved comments per uri; an alias counts its thread; unknown uris are 0."""
    await PostStore(db).add(
        slug="old", title="Old", author="A", body_html="", aliases=["/2010/07/old/"]
    )
    await add(store, "/posts/old")
    await add(store, "/posts/old")
    await add(store, "/posts/old", status="pending")
    await add(store, "/other", status="spam")
    counts = await store.counts(["/posts/old", "/2010/07/old/", "/other", "/nothing"])
    assert counts == {"/posts/old": 2, "/2010/07/old/": 2, "/other": 0, "/nothing": 0}
    assert all(type(n) is int for n in counts.values())
    assert await store.counts([]) == {}


async def test_alias_finds_the_same_thread(store: CommentStore, db: Database) -> None:
    """A comment posted to an alias path lands in the post's thread, not a new one."""
    post = await PostStore(db).add(
        slug="p", title="P", author="A", body_html="", aliases=["/old/p"]
    )
    comment = await add(store, "/old/p")
    assert comment.thread_id == post.thread_id


async def test_unknown_thread_is_not_created_without_permission(store: CommentStore) -> None:
    """Without create_thread a comment for an unknown uri raises UnknownThread."""
    with pytest.raises(UnknownThread):
        await store.add("/nope", new(), create_thread=False)
    assert await store.thread("/nope") is None


async def test_reply_needs_an_approved_parent_of_the_same_thread(store: CommentStore) -> None:
    """A reply to a pending comment, or to one in another thread, is refused."""
    held = await add(store, text="held", status="pending")
    elsewhere = await add(store, "/elsewhere")
    for parent in (held.id, elsewhere.id, 999_999):
        with pytest.raises(InvalidParent):
            await add(store, parent=parent)


async def test_has_approved_email_is_case_insensitive(store: CommentStore) -> None:
    """An approved comment with the address in any case counts; pending or spam ones do not."""
    await add(store, email="Ada.Lovelace@Example.ORG")
    await add(store, email="held@example.org", status="pending")
    await add(store, email="spam@example.org", status="spam")
    for email, known in (
        ("ada.lovelace@example.org", True),
        ("ADA.LOVELACE@EXAMPLE.ORG", True),
        ("held@example.org", False),
        ("spam@example.org", False),
        ("ada@example.org", False),
    ):
        asked = Question("/t", "", None, None, known_email=email)
        assert (await screen(store.db, asked, now())).known is known, email


async def test_duplicate_slug_is_a_conflict(db: Database) -> None:
    """Both backends turn a uniqueness violation into the one Conflict error."""
    posts = PostStore(db)
    await posts.add(slug="same", title="A", author="A", body_html="")
    with pytest.raises(Conflict):
        await posts.add(slug="same", title="B", author="B", body_html="")
    with pytest.raises(Conflict):
        async with db.transaction() as conn:
            await conn.execute(
                "INSERT INTO threads (uri, created) VALUES ($1, $2)", "/posts/same", now()
            )


async def test_concurrent_first_comments_create_one_thread(store: CommentStore) -> None:
    """Many first comments racing on a new uri end up in one thread with seqs 1..n."""
    results = await asyncio.gather(
        *(store.add("/race", new(text=str(i)), create_thread=True) for i in range(12))
    )
    assert len({c.thread_id for c, _ in results}) == 1
    assert sorted(e.seq for _, events in results for e in events) == list(range(1, 13))


async def test_reads_see_only_committed_writes(store: CommentStore, db: Database) -> None:
    """While a write transaction is open, readers see the thread as it was before it."""
    first = await add(store, text="first")
    async with db.transaction() as conn:
        await conn.execute("UPDATE comments SET status = 'deleted' WHERE id = $1", first.id)
        assert await shown(store) == {first.id: FULL}
    assert await shown(store) == {}


async def test_add_many_writes_one_event_per_approved_comment(store: CommentStore) -> None:
    """A bulk insert is one transaction whose approved comments get created events in order."""
    ids = await store.add_many("/bulk", [new("a"), new("b", status="pending"), new("c")])
    assert await events_of(store, "/bulk") == [
        (1, "comment.created", ids[0]),
        (2, "comment.created", ids[2]),
    ]
    assert set(await shown(store, "/bulk")) == {ids[0], ids[2]}


async def test_a_failed_commit_leaves_the_database_usable(db: Database) -> None:
    """A constraint that fails only at COMMIT is a Conflict, and the next write still works."""
    async with db.transaction() as conn:
        await conn.execute("CREATE TABLE probe_parent (id INTEGER PRIMARY KEY)")
        await conn.execute(
            "CREATE TABLE probe_child (parent_id INTEGER REFERENCES probe_parent "
            "(id) DEFERRABLE INITIALLY DEFERRED)"
        )
    with pytest.raises(Conflict):
        async with db.transaction() as conn:
            await conn.execute("INSERT INTO probe_child (parent_id) VALUES (42)")
    async with db.transaction() as conn:
        await conn.execute("INSERT INTO probe_parent (id) VALUES (42)")
        await conn.execute("INSERT INTO probe_child (parent_id) VALUES (42)")
    async with db.read() as conn:
        assert await conn.fetchval("SELECT COUNT(*) FROM probe_child") == 1


async def test_thread_lookup_sees_each_commit_at_once(store: CommentStore) -> None:
    """The fast thread lookup (inline on SQLite) never answers from an older snapshot."""
    for expected in range(1, 6):
        await add(store, text=str(expected))
        thread = await store.thread("/t")
        assert thread is not None and thread.last_seq == expected


async def test_comments_arriving_together_each_get_their_own_outcome(store: CommentStore) -> None:
    """Concurrent comments on one thread (group-committed) each get their own comment or error."""
    parent = await add(store, text="parent")
    held = await add(store, text="held", status="pending")
    requests = [
        new(f"c{i}", parent=(held.id if i % 5 == 0 else parent.id if i % 2 else None))
        for i in range(30)
    ]
    outcomes = await asyncio.gather(
        *(store.add("/t", r, create_thread=False) for r in requests), return_exceptions=True
    )
    for request, outcome in zip(requests, outcomes, strict=True):
        if request.parent_id == held.id:
            assert isinstance(outcome, InvalidParent)
            continue
        assert not isinstance(outcome, BaseException)
        comment, [event] = outcome
        assert comment.text == request.text and event.comment_id == comment.id
    seqs = [seq for seq, _, _ in await events_of(store)]
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) == 1 + 24


async def test_a_refused_comment_does_not_fail_the_others_in_its_batch(store: CommentStore) -> None:
    """A comment the database refuses (a duplicate import source) fails alone."""
    await store.add(
        "/t",
        NewComment(
            author="A",
            email="a@example.org",
            website=None,
            text="x",
            html="x",
            status="approved",
            source="import:1",
        ),
        create_thread=True,
    )
    batch = [
        NewComment(
            author="A",
            email="a@example.org",
            website=None,
            text=f"t{i}",
            html=f"t{i}",
            status="approved",
            source=f"import:{i}",
        )
        for i in range(1, 6)
    ]
    outcomes = await asyncio.gather(
        *(store.add("/t", n, create_thread=False) for n in batch), return_exceptions=True
    )
    assert isinstance(outcomes[0], Conflict)
    assert all(not isinstance(o, BaseException) for o in outcomes[1:])
    assert [seq for seq, _, _ in await events_of(store)] == [1, 2, 3, 4, 5]


async def test_duplicate_probe_matches_trimmed_text_and_follows_edits(
    store: CommentStore, db: Database
) -> None:
    """The duplicate check finds the same trimmed text on the thread, as edited, and no other."""
    comment = await add(store, text="same words")
    since = now() - timedelta(minutes=10)

    async def duplicate(uri: str, text: str, since: datetime) -> bool:
        return (await screen(db, Question(uri, text, since, None), now())).duplicate

    assert await duplicate("/t", "  same words\n", since)
    assert not await duplicate("/other", "same words", since)
    assert not await duplicate("/t", "same words", now() + timedelta(minutes=1))
    await store.change(comment.id, text="new words", html="<p>new words</p>", edited=now())
    assert not await duplicate("/t", "same words", since)
    assert await duplicate("/t", "new words", since)


async def test_comments_for_many_threads_arriving_together_keep_each_threads_order(
    store: CommentStore,
) -> None:
    """Concurrent comments spread over threads land in their own threads with gapless seqs."""
    await add(store, "/known", text="first")
    uris = ["/known", "/new-a", "/new-b", "/unknown"]
    requests = [(uris[i % 4], new(f"c{i}")) for i in range(40)]
    outcomes = await asyncio.gather(
        *(store.add(uri, r, create_thread=uri != "/unknown") for uri, r in requests),
        return_exceptions=True,
    )
    for (uri, request), outcome in zip(requests, outcomes, strict=True):
        if uri == "/unknown":
            assert isinstance(outcome, UnknownThread)
            continue
        assert not isinstance(outcome, BaseException)
        comment, [event] = outcome
        assert comment.text == request.text and event.comment_id == comment.id
        assert event.uri == uri
    for uri, expected in (("/known", 11), ("/new-a", 10), ("/new-b", 10)):
        seqs = [seq for seq, _, _ in await events_of(store, uri)]
        assert seqs == list(range(1, expected + 1))
    assert await store.thread("/unknown") is None
