"""Browsers for tests: where Debian's chromium is, how it is launched (one set of arguments for
the sync and the async API), kibitz in a thread of its own for playwright's sync API, the
embedding site on another origin, and screenshots in test-artifacts/."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from db.models import Comment, Post
from tests.helpers.posts import add_post, store_comment
from tests.helpers.servers import IN_CI, ROOT, Server, free_port, make_settings, serve

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def require_chromium() -> None:
    """Skip without chromium; in CI a missing chromium fails the run instead."""
    if not CHROMIUM.exists():
        if IN_CI:
            pytest.fail("chromium is missing: apt-get install -y chromium")
        pytest.skip("chromium is not installed")


@contextlib.contextmanager
def sync_browser() -> Iterator[Any]:
    """Chromium through playwright's sync API (it owns this thread's event loop meanwhile)."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@contextlib.asynccontextmanager
async def async_browser() -> AsyncIterator[Any]:
    """Chromium through playwright's async API, on the running event loop."""
    require_chromium()
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


def run_async(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine to completion on a thread of its own (playwright owns this thread's loop)."""
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = asyncio.run(coro)
        except BaseException as exc:  # handed to the caller
            result["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(60)
    if "error" in result:
        raise result["error"]
    return result.get("value")


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@dataclass
class Kibitz:
    """A kibitz server running in its own thread and event loop."""

    server: Server
    loop: asyncio.AbstractEventLoop

    @property
    def url(self) -> str:
        return self.server.url

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run a coroutine on the server's loop (store calls) and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def add_post(self, slug: str, title: str = "A post", body: str = "<p>Hello.</p>") -> Post:
        return self.run(add_post(self.server, slug, title, author="Ada", body_html=body))

    def add_comment(
        self,
        uri: str,
        text: str,
        *,
        author: str = "Grace",
        parent: int | None = None,
        status: str = "approved",
        email: str = "grace@example.org",
        created: Any = None,
    ) -> Comment:
        return self.run(  # type: ignore[no-any-return]
            store_comment(
                self.server,
                uri,
                author,
                text=text,
                parent=parent,
                status=status,
                email=email,
                created=created,
                address="192.0.2.7",
                create_thread=True,
                announce=True,
            )
        )

    def set_status(self, comment_id: int, status: str) -> Comment:
        """Approve, delete or mark as spam as moderation does: commit, then tell listeners."""

        async def change() -> Comment:
            _, new, events = await self.server.state.comments.change(comment_id, status=status)
            for listener in self.server.state.discussion.listeners.events:
                await listener(events)
            return new  # type: ignore[no-any-return]

        return self.run(change())


@contextlib.contextmanager
def run_kibitz(settings: Any, port: int) -> Iterator[Kibitz]:
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, Any] = {}

    async def main() -> None:
        holder["stop"] = asyncio.Event()
        try:
            async with serve(settings, port) as server:
                holder["server"] = server
                ready.set()
                await holder["stop"].wait()
        finally:
            ready.set()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    ready.wait(30)
    if "server" not in holder:
        thread.join(5)
        raise RuntimeError("kibitz did not start")
    try:
        yield Kibitz(holder["server"], loop)
    finally:
        loop.call_soon_threadsafe(holder["stop"].set)
        thread.join(30)
        loop.close()


@dataclass
class HostSite:
    """The embedding site: path → (html, Content-Security-Policy or None)."""

    url: str
    pages: dict[str, tuple[str, str | None]] = field(default_factory=dict)

    def add(self, path: str, html: str, csp: str | None = None) -> str:
        self.pages[path] = (html, csp)
        return self.url + path


@contextlib.contextmanager
def run_host(port: int) -> Iterator[HostSite]:
    site = HostSite(f"http://127.0.0.1:{port}")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            html, csp = site.pages.get(self.path.split("?")[0], ("not found", None))
            body = html.encode()
            self.send_response(200 if self.path.split("?")[0] in site.pages else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            if csp:
                self.send_header("Content-Security-Policy", csp)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield site
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


@dataclass
class Setup:
    kibitz: Kibitz
    host: HostSite
    settings: Any
    port: int


@dataclass
class TwoOrigins:
    """Settings for kibitz on a free port that allows an embedding site on another."""

    settings: Any
    port: int
    host_port: int
    database: Path

    @property
    def kibitz_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def two_origins(tmp_path: Path, **env: str) -> TwoOrigins:
    port, host_port = free_port(), free_port()
    database = tmp_path / "kibitz.db"
    settings = make_settings(
        f"sqlite:///{database}",
        tmp_path,
        KIBITZ_PUBLIC_URL=f"http://127.0.0.1:{port}",
        KIBITZ_ALLOWED_ORIGINS=f"http://127.0.0.1:{host_port}",
        **env,
    )
    return TwoOrigins(settings, port, host_port, database)


def strict_csp(kibitz_url: str) -> str:
    """What the contract promises works: only kibitz's origins, nothing inline, no eval."""
    origin = kibitz_url
    ws = origin.replace("http://", "ws://")
    return (
        f"default-src 'none'; script-src {origin}; style-src {origin}; "
        f"connect-src {origin} {ws}; img-src {origin}"
    )


def host_page(kibitz_url: str, body: str, *, lang: str = "en") -> str:
    return (
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
        f"<title>A host page</title></head><body><h1>My blog</h1>{body}"
        f'<script async src="{kibitz_url}/embed.js"></script></body></html>'
    )
