"""Staff controls on the post page: pin and unpin a top-level comment with a plain form, through
a real server on both backends; readers never see them, whatever the caches hold."""

from __future__ import annotations

from dataclasses import dataclass
from xml.etree.ElementTree import Element

import httpx

from tests.helpers.posts import add_comment, add_post
from tests.helpers.servers import Server
from tests.helpers.staff import add_staff, sign_in
from tests.helpers.view import by_class, comment_tree, parse, text_of

URI = "/posts/hello"


@dataclass(frozen=True)
class PinForm:
    """One pin control as a browser sees it."""

    comment: int
    action: str
    method: str
    fields: dict[str, str]
    shown: list[tuple[str, str, str]]  # (value, visible text, accessible name) of visible buttons


def pin_forms(root: Element) -> list[PinForm]:
    found = []
    for li in by_class(root, "comment"):
        for form in li:
            if form.tag != "form" or form.get("data-pin-form") is None:
                continue
            found.append(
                PinForm(
                    int(li.get("data-id") or 0),
                    form.get("action") or "",
                    form.get("method") or "",
                    {i.get("name") or "": i.get("value") or "" for i in form.iter("input")},
                    [
                        (b.get("value") or "", text_of(b), b.get("aria-label") or "")
                        for b in form.iter("button")
                        if b.get("hidden") is None
                    ],
                )
            )
    return found


async def press(client: httpx.AsyncClient, form: PinForm) -> httpx.Response:
    """Submit the form with its one visible button, as a browser would."""
    (value, _, _), *_ = form.shown
    return await client.post(form.action, data={**form.fields, "action": value})


def top_level(root: Element) -> list[int]:
    """The top-level comments of the page, in its order."""
    return [i for i, depth, _ in comment_tree(root) if depth == 1]


def no_staff_controls(page: httpx.Response) -> None:
    assert page.status_code == 200
    assert "data-pin-form" not in page.text and "/admin/comments/" not in page.text
    assert "csrf_token" not in page.text and "csrf-token" not in page.text


async def test_staff_pin_and_unpin_from_the_post_page_without_javascript(server: Server) -> None:
    """Each approved top-level comment carries a Pin button for staff (their CSRF token, the
    admin's form handler); pressing it lands on the comment, pinned first; Unpin undoes it.
    Readers' pages, cached before and after, never carry the control."""
    await add_post(server)
    first = await add_comment(server, URI, "First")
    second = await add_comment(server, URI, "Second")
    reply = await add_comment(server, URI, "Replier", parent=first)
    gone = await add_comment(server, URI, "Gone")
    await add_comment(server, URI, "Under the gone one", parent=gone)
    await server.state.comments.change(gone, status="deleted")  # a placeholder now
    await add_staff(server, "mod")
    async with server.client() as reader, server.client() as staff:
        cold = await reader.get(URI)  # fills the reader's caches first
        csrf = await sign_in(staff, "mod")
        page = await staff.get(URI)
        warm = await reader.get(URI)
        newest = await reader.get(URI, params={"sort": "newest"})
        controls = {f.comment: f for f in pin_forms(parse(page.text))}
        pinned = await press(staff, controls[second])
        landed = await staff.get(pinned.headers["location"])
        after = await staff.get(landed.headers["location"])
        read_after = await reader.get(URI)
        api = (await reader.get("/api/comments", params={"uri": URI})).json()
        unpinned = await press(staff, {f.comment: f for f in pin_forms(parse(after.text))}[second])
        restored = await staff.get(URI)
        forged = await staff.post(controls[first].action, data={"action": "pin", "back": "comment"})
        stranger = await reader.post(
            controls[first].action, data={"csrf_token": csrf, "action": "pin", "back": "comment"}
        )
        last = (await reader.get("/api/comments", params={"uri": URI})).json()
        audit = await staff.get("/admin/audit")

    # Top-level approved comments only: no control on a reply or on a deleted placeholder.
    assert sorted(controls) == [first, second]
    for comment, control in controls.items():
        assert control.action == f"/admin/comments/{comment}/pin" and control.method == "post"
        assert control.fields == {"csrf_token": csrf, "back": "comment"}
    assert controls[second].shown == [("pin", "Pin", "Pin the comment by Second")]
    for anonymous in (cold, warm, newest, read_after):
        no_staff_controls(anonymous)
    assert reply not in controls and gone not in controls

    assert pinned.status_code == 303 and pinned.headers["location"] == f"/c/{second}"
    assert landed.status_code == 303 and landed.headers["location"] == f"{URI}#comment-{second}"
    assert top_level(parse(after.text))[0] == second
    assert {f.comment: f for f in pin_forms(parse(after.text))}[second].shown == [
        ("unpin", "Unpin", "Unpin the comment by Second")
    ]
    readers_view = parse(read_after.text)
    assert top_level(readers_view)[0] == second
    assert by_class(readers_view, "comment--pinned")[0].get("data-id") == str(second)
    assert [c["id"] for c in api["comments"] if c["pinned"]] == [second]

    assert unpinned.status_code == 303
    assert top_level(parse(restored.text)) == [first, second, gone]
    assert forged.status_code == 403
    assert stranger.status_code == 303 and stranger.headers["location"].startswith("/admin/login")
    assert not [c for c in last["comments"] if c["pinned"]]
    assert audit.text.count("<td>pin</td>") == 1 and audit.text.count("<td>unpin</td>") == 1
