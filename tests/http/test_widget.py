"""The assembled browser code as served: compression, caching, versioned URLs, budget, CORS."""

from __future__ import annotations

import ast
import gzip
import json
import re
from pathlib import Path

from server.http.widget import ENTRIES, SOURCES, Bundle, assemble, imports, module_order
from server.i18n import catalogue
from tests.helpers.posts import add_post
from tests.helpers.servers import Server, make_settings, serve

BUDGET = 15 * 1024


async def test_embed_js_is_gzipped_cached_briefly_and_under_budget(server: Server) -> None:
    """/embed.js: gzip, ETag, a short cache; everything the widget loads ≤ 15 KB gzipped."""
    async with server.client() as client:
        response = await client.get("/embed.js", headers={"Accept-Encoding": "gzip"})
        assert response.status_code == 200
        assert response.headers["content-encoding"] == "gzip"
        assert response.headers["content-type"].startswith("text/javascript")
        assert response.headers["cache-control"] == "public, max-age=300"
        assert int(response.headers["content-length"]) <= BUDGET
        etag = response.headers["etag"]
        again = await client.get("/embed.js", headers={"If-None-Match": etag})
        assert again.status_code == 304
        plain = await client.get("/embed.js", headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in plain.headers
        assert plain.content == response.content  # httpx decoded the gzipped one


async def test_versioned_urls_are_immutable_and_the_page_loads_its_script(server: Server) -> None:
    """The post page names /widget/page.<hash>.js (deferred); hashed URLs cache for a year."""
    bundle: Bundle = server.state.bundle
    await add_post(server, "hello", "Hello", author="Ada", body_html="<p>Hi</p>")
    async with server.client() as client:
        page = (await client.get("/posts/hello")).text
        src = bundle.assets["page"].url
        assert f'<script src="{src}" defer></script>' in page
        response = await client.get(src)
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
        embed = await client.get(bundle.assets["embed"].url)
        assert embed.headers["cache-control"].endswith("immutable")
        stale = await client.get("/widget/embed.000000000000.js")
        assert stale.status_code == 200 and stale.headers["cache-control"] == "public, max-age=300"
        assert (await client.get("/widget/nothing.000000000000.js")).status_code == 404
        css = await client.get(bundle.assets["widget"].url)
        assert css.headers["content-type"].startswith("text/css")


def test_bundle_is_csp_safe_and_carries_the_german_catalogue() -> None:
    """No eval or Function in the bundle; no import/export left; German words inlined."""
    source = assemble("embed")
    minified = Bundle().assets["embed"].body.decode()
    for text in (source, minified):
        assert not re.search(r"\beval\s*\(|new Function\s*\(", text)
    assert not re.search(r"^\s*(import|export)\s", source, re.MULTILINE)
    own = json.loads((SOURCES / "de.json").read_text(encoding="utf-8"))
    server = catalogue("de")
    for msgid in ("Post comment", "Cancel reply", "Edit your comment"):
        german = server.get(msgid) or own[msgid]  # the server's catalogue wins where it has one
        assert json.dumps(german, ensure_ascii=False) in minified
    assert len(gzip.compress(minified.encode())) <= BUDGET


_EXPORTED = re.compile(r"^export\s+(?:async\s+)?(?:function|class|const|let)\s+(\w+)", re.M)


def test_every_module_imports_what_it_uses_so_the_bundle_order_is_derived() -> None:
    """Each module names, in its import lines, every other module's export it uses; the
    assembled order puts every module after the ones it imports and leaves none out."""
    modules = {p.name: p.read_text(encoding="utf-8") for p in SOURCES.glob("*.js")}
    exported = {name: set(_EXPORTED.findall(text)) for name, text in modules.items()}
    for name, text in modules.items():
        code = re.sub(r"^import\s.*?;\s*$|//.*", "", text, flags=re.M)
        imported = {
            n.strip()
            for group in re.findall(r"import\s*\{([^}]*)\}", text)
            for n in group.split(",")
        }
        for other, names in exported.items():
            for used in names - exported[name] - imported if other != name else ():
                assert not re.search(rf"(?<![\w.$\"-]){used}\b(?![\"-])", code), (name, used, other)
    for entry in ENTRIES:
        order = module_order(entry)
        assert order[-1] == f"{entry}.js" and len(order) == len(set(order))
        for position, name in enumerate(order):
            assert set(imports(name)) <= set(order[:position]), (entry, name)
    needed = {name for entry in ENTRIES for name in module_order(entry)}
    assert needed == set(modules)  # no module is left unused


def _n_messages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", None) == "N_"
        and isinstance(node.args[0], ast.Constant)
    }


async def test_the_api_answers_in_the_language_the_widget_asks_for(server: Server) -> None:
    """Field messages and refusals come in German for Accept-Language: de, English otherwise."""
    await add_post(server, "hello")
    server_de = catalogue("de")
    empty = {"uri": "/posts/hello", "author": "", "email": "", "text": ""}
    async with server.client() as client:
        german = await client.post("/api/comments", json=empty, headers={"Accept-Language": "de"})
        english = await client.post("/api/comments", json=empty)
        regional = await client.post(
            "/api/comments", json=empty, headers={"Accept-Language": "de-AT,en;q=0.5"}
        )
        asked_en = await client.post("/api/comments", json=empty, headers={"Accept-Language": "en"})
        missing = await client.get("/api/comments/999999", headers={"Accept-Language": "de"})
    assert german.status_code == english.status_code == 422
    assert german.json()["fields"]["text"] == server_de["Please write a comment."]
    assert german.json()["error"] == server_de[english.json()["error"]]
    assert regional.json() == german.json()
    assert english.json()["fields"]["text"] == "Please write a comment."
    assert asked_en.json() == english.json()
    assert missing.status_code in (404, 405) and missing.json()["error"] in server_de.values()


def test_every_message_the_api_refuses_with_has_german() -> None:
    """The API can answer every field message and domain refusal in German."""
    server_de = catalogue("de")
    root = SOURCES.parents[1] / "server"
    for path in (
        root / "discussion" / "validation.py",
        root / "discussion" / "errors.py",
        root / "auth" / "sso.py",
    ):
        for message in _n_messages(path):
            assert message in server_de, message
    assert server_de["Leave a comment"] in assemble("embed")


async def test_cors_answers_allowed_origins_only(database_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Preflight and responses carry CORS for KIBITZ_ALLOWED_ORIGINS; others get none."""
    settings = make_settings(
        database_url, tmp_path, KIBITZ_ALLOWED_ORIGINS="https://blog.example.com"
    )
    async with serve(settings) as running, running.client() as client:
        allowed, other = "https://blog.example.com", "https://evil.example.net"
        preflight = await client.options(
            "/api/comments",
            headers={
                "Origin": allowed,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
        )
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == allowed
        assert "POST" in preflight.headers["access-control-allow-methods"]
        assert "access-control-allow-credentials" not in preflight.headers
        refused = await client.options(
            "/api/comments", headers={"Origin": other, "Access-Control-Request-Method": "POST"}
        )
        assert refused.status_code == 403
        assert "access-control-allow-origin" not in refused.headers
        read = await client.get("/api/comments?uri=/a/", headers={"Origin": allowed})
        assert read.headers["access-control-allow-origin"] == allowed
        assert "Origin" in read.headers["vary"]
        foreign = await client.get("/api/comments?uri=/a/", headers={"Origin": other})
        assert "access-control-allow-origin" not in foreign.headers
        # /api/config answers anyone, and tells the widget whether it may embed.
        config = await client.get("/api/config", headers={"Origin": other})
        assert config.headers["access-control-allow-origin"] == "*"
        assert config.json()["origin_allowed"] is False
        config = await client.get("/api/config", headers={"Origin": allowed})
        assert config.json()["origin_allowed"] is True
        # Errors carry CORS too, so the widget can show the field messages.
        invalid = await client.post(
            "/api/comments", json={"uri": "/a/"}, headers={"Origin": allowed}
        )
        assert invalid.status_code == 422
        assert invalid.headers["access-control-allow-origin"] == allowed
