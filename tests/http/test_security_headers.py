"""Security headers on every kind of response: pages, forms, API JSON, errors, feeds, widget
assets, static files, mail pages, the admin, and the live port's refusals."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.helpers.posts import add_post
from tests.helpers.servers import Server, free_port, make_settings, serve


def policy(response: httpx.Response) -> dict[str, str]:
    """The Content-Security-Policy as {directive: value}; exactly one header is sent."""
    values = response.headers.get_list("content-security-policy")
    assert len(values) == 1, values
    parts = [p.strip().split(" ", 1) for p in values[0].split(";") if p.strip()]
    return {p[0]: (p[1] if len(p) > 1 else "") for p in parts}


def check_common(response: httpx.Response) -> None:
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"]
    assert "strict-transport-security" not in response.headers  # plain http here


def check_page(response: httpx.Response) -> None:
    """HTML: scripts and styles only from the site, framed by nobody else."""
    check_common(response)
    csp = policy(response)
    assert csp["script-src"] == "'self'" and csp["style-src"] == "'self'"
    assert csp["frame-ancestors"] in ("'self'", "'none'")
    assert response.headers["x-frame-options"] in ("SAMEORIGIN", "DENY")


def check_data(response: httpx.Response) -> None:
    """Not a page (JSON, Atom, scripts, styles): nothing may run or frame it."""
    check_common(response)
    csp = policy(response)
    assert csp["default-src"] == "'none'" and csp["frame-ancestors"] == "'none'"


@pytest.fixture
async def site(database_url: str, tmp_path: Path) -> Server:  # type: ignore[misc]
    port, live_port = free_port(), free_port()
    settings = make_settings(
        database_url,
        tmp_path,
        KIBITZ_PUBLIC_URL=f"http://127.0.0.1:{port}",
        KIBITZ_LIVE_PORT=str(live_port),
    )
    async with serve(settings, port=port) as server:
        await add_post(server)
        yield server


async def test_pages_forms_and_html_errors_carry_the_page_policy(site: Server) -> None:
    """Index, post page, a refused form post, a 404 page and the mail pages: page CSP that
    lets the live channel connect, nosniff, framing only by the site itself."""
    async with site.client() as client:
        for response in (
            await client.get("/"),
            await client.get("/posts/hello"),
            await client.post("/posts/hello/comments", data={"author": "", "text": ""}),
            await client.get("/no/such/page", headers={"Accept": "text/html"}),
            await client.get("/mail/moderate", params={"t": "forged"}),
        ):
            assert response.headers["content-type"].startswith("text/html"), response.url
            check_page(response)
        page = await client.get("/posts/hello")
        live = site.state.live_url.rsplit("/ws", 1)[0]
        assert live in policy(page)["connect-src"]
        mail = await client.get("/mail/moderate", params={"t": "forged"})
        assert mail.headers["referrer-policy"] == "no-referrer"  # its own, kept


async def test_api_feeds_widget_static_and_json_errors_carry_the_data_policy(
    site: Server,
) -> None:
    """API answers (success and error), feeds, embed.js, widget CSS and static files get
    nosniff and a policy that runs nothing; widget assets stay loadable cross-origin."""
    async with site.client() as client:
        embed = await client.get("/embed.js")
        responses = [
            await client.get("/api/comments", params={"uri": "/posts/hello"}),
            await client.get("/api/config"),
            await client.post("/api/comments", json={"uri": "/posts/hello"}),
            await client.patch("/api/comments/12345", json={"text": "x"}),
            await client.get("/feeds/comments.atom"),
            await client.get("/feeds/thread.atom", params={"uri": "/posts/hello"}),
            await client.get("/healthz"),
            embed,
            await client.get("/static/kibitz.css"),
            await client.options(
                "/api/comments",
                headers={
                    "Origin": "https://elsewhere.example",
                    "Access-Control-Request-Method": "POST",
                },
            ),
        ]
        for response in responses:
            assert not response.headers.get("content-type", "").startswith("text/html")
            check_data(response)
        assert embed.headers["cross-origin-resource-policy"] == "cross-origin"
        assert [r.status_code for r in responses[2:4]] == [422, 404]


async def test_admin_keeps_its_own_stricter_policy(site: Server) -> None:
    """/admin answers carry the admin's policy (never framed) and no second policy."""
    async with site.client() as client:
        login = await client.get("/admin/login")
    check_page(login)
    assert policy(login)["frame-ancestors"] == "'none'"
    assert login.headers["x-frame-options"] == "DENY"
    assert len(login.headers.get_list("x-content-type-options")) == 1


async def test_the_live_port_refusals_carry_headers_too(site: Server) -> None:
    """The live port's own HTTP answers (unknown path, refused upgrade) carry nosniff and
    the data policy."""
    live = site.state.live_url.replace("ws://", "http://").rsplit("/ws", 1)[0]
    async with httpx.AsyncClient() as client:
        missing = await client.get(live + "/elsewhere")
        refused = await client.get(live + "/ws/moderation")
    assert missing.status_code == 404 and refused.status_code in (400, 401, 403, 426)
    for response in (missing, refused):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "default-src 'none'" in response.headers["content-security-policy"]


async def test_hsts_under_https(database_url: str, tmp_path: Path) -> None:
    """With an https public URL every answer, page or JSON, carries Strict-Transport-Security."""
    settings = make_settings(
        database_url, tmp_path, KIBITZ_PUBLIC_URL="https://comments.example.com"
    )
    async with serve(settings) as server, server.client() as client:
        for path in ("/", "/api/config", "/feeds/comments.atom", "/embed.js", "/nope"):
            response = await client.get(path, headers={"Host": "comments.example.com"})
            assert response.headers["strict-transport-security"].startswith("max-age="), path
