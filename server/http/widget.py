"""The browser code: ``web/widget``'s source modules assembled into one script per entry.

No Node toolchain. The modules are plain ES modules (so a browser can also load them one by
one while someone works on them); each declares what it needs with its ``import … from
"./x.js";`` lines, so an entry's module list and their order follow from those lines (a
topological sort), never from a list kept by hand. Assembling drops the ``import`` lines and
``export`` keywords, puts the modules in that order inside one function scope, inlines the
stylesheet and the German catalogue, minifies with rjsmin/rcssmin and gzips once, at start-up.

The German words are declared, not searched for: ``web/widget/de.json`` holds the words the
widget says itself, taking their German from the server's catalogue where it has one. The
server's own messages (field errors and refusals from the API) are not carried: the widget
asks the API in its language (``Accept-Language``) and shows what comes back, so the bundle
holds no second copy of the server's catalogue.

URLs: ``/embed.js`` is the contract's address and is cached briefly (a new release reaches
every host page within minutes); the same bytes under ``/widget/embed.<hash>.js``, and the
post page's ``/widget/page.<hash>.js``, are cached for a year as immutable.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rcssmin
import rjsmin
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from db.models import Status
from server.errors import NotFound
from server.http import gzipped
from server.i18n import catalogue
from server.state import state_of

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ROOT / "web" / "widget"
ENTRIES = ("embed", "page")
# The statuses the widget compares comments with, from their one definition.
STATUSES_JSON = json.dumps({s.name: s.value for s in Status}, separators=(",", ":"))
SHORT_CACHE = "public, max-age=300"
IMMUTABLE = "public, max-age=31536000, immutable"

_IMPORT = re.compile(r"^import\s.*?;\s*$", re.MULTILINE)
_EXPORT = re.compile(r"^export\s+(?=(?:async\s+)?function|class|const|let)", re.MULTILINE)
_IMPORT_FROM = re.compile(r'^import\s.*?\sfrom\s+"\./([\w.-]+\.js)";\s*$', re.MULTILINE)


@dataclass(frozen=True)
class Asset:
    """One file as served: its minified bytes, their gzip, and a content hash for the URL."""

    name: str
    suffix: str
    body: bytes
    gzipped: bytes
    media_type: str

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.body).hexdigest()[:12]

    @property
    def url(self) -> str:
        return f"/widget/{self.name}.{self.digest}.{self.suffix}"


def _source(name: str) -> str:
    return (SOURCES / name).read_text(encoding="utf-8")


def _module(name: str) -> str:
    return _EXPORT.sub("", _IMPORT.sub("", _source(name)))


def imports(name: str) -> list[str]:
    """The modules ``name`` declares it needs: its ``import … from "./x.js";`` lines."""
    return _IMPORT_FROM.findall(_source(name))


def module_order(entry: str) -> list[str]:
    """Every module ``entry`` needs, each after the modules it imports, the entry last.

    Depth-first in the order the import lines are written, so the order is stable; an import
    cycle is refused (the assembled scope could not satisfy it).
    """
    order: list[str] = []
    visiting: list[str] = []

    def visit(name: str) -> None:
        if name in order:
            return
        if name in visiting:
            raise ValueError("web/widget import cycle: " + " → ".join([*visiting, name]))
        visiting.append(name)
        for needed in imports(name):
            visit(needed)
        visiting.pop()
        order.append(name)

    visit(f"{entry}.js")
    return order


def widget_catalogues() -> dict[str, dict[str, Any]]:
    """German for the widget's own words, the server's catalogue winning where both have one.

    ``web/widget/de.json`` holds the words the widget says; everything the templates also say
    comes from ``web/locale`` so a page and the widget never word one thing differently.
    """
    own: dict[str, Any] = json.loads((SOURCES / "de.json").read_text(encoding="utf-8"))
    server = catalogue("de")
    return {"de": {key: server.get(key, value) for key, value in own.items()}}


def assemble(entry: str) -> str:
    """The readable (unminified) script for one entry: its modules and its own file."""
    body = "\n".join(_module(name) for name in module_order(entry))
    css = rcssmin.cssmin((SOURCES / "widget.css").read_text(encoding="utf-8"))
    catalogues = json.dumps(widget_catalogues(), ensure_ascii=False, separators=(",", ":"))
    body = body.replace("/*kibitz:catalogues*/{}", catalogues, 1)
    body = body.replace("/*kibitz:statuses*/{}", STATUSES_JSON, 1)
    body = body.replace('/*kibitz:css*/""', json.dumps(css, ensure_ascii=False), 1)
    body = body.replace('/*kibitz:css-url*/""', json.dumps(_css_asset().url), 1)
    return f'(() => {{\n"use strict";\n{body}\n}})();\n'


def _css_asset() -> Asset:
    css = rcssmin.cssmin((SOURCES / "widget.css").read_text(encoding="utf-8")).encode()
    return _asset("widget", "css", css, "text/css; charset=utf-8")


def _asset(name: str, suffix: str, body: bytes, media_type: str) -> Asset:
    return Asset(name, suffix, body, gzip.compress(body, compresslevel=9, mtime=0), media_type)


class Bundle:
    """Every browser asset, built once per process (in lifespan) and kept in memory."""

    def __init__(self) -> None:
        self.assets: dict[str, Asset] = {}
        for entry in ENTRIES:
            script = rjsmin.jsmin(assemble(entry)).encode()
            self.assets[entry] = _asset(entry, "js", script, "text/javascript; charset=utf-8")
        self.assets["widget"] = _css_asset()

    @property
    def embed_gzipped_size(self) -> int:
        """All the widget loads from kibitz besides API data: embed.js (CSS is inside)."""
        return len(self.assets["embed"].gzipped)


def _serve(request: Request, asset: Asset, cache: str) -> Response:
    etag = f'"{asset.digest}"'
    headers = {
        "ETag": etag,
        "Cache-Control": cache,
        "Vary": "Accept-Encoding",
        "X-Content-Type-Options": "nosniff",
        # Host pages on other origins load this; say so explicitly.
        "Cross-Origin-Resource-Policy": "cross-origin",
    }
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    if gzipped.takes_gzip(request.headers.get("accept-encoding", "").encode("latin-1")):
        headers["Content-Encoding"] = "gzip"
        return Response(asset.gzipped, media_type=asset.media_type, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


def _bundle(request: Request) -> Bundle:
    return state_of(request).bundle


async def embed(request: Request) -> Response:
    return _serve(request, _bundle(request).assets["embed"], SHORT_CACHE)


async def versioned(request: Request) -> Response:
    """``/widget/{name}.{hash}.{suffix}``: immutable when the hash is current.

    An old hash (a page cached across a release) still gets the current file, briefly cached,
    rather than a 404 that would leave a reader without comments.
    """
    name, digest, suffix = (request.path_params[k] for k in ("name", "digest", "suffix"))
    asset = _bundle(request).assets.get(name)
    if asset is None or asset.suffix != suffix:
        raise NotFound()
    return _serve(request, asset, IMMUTABLE if digest == asset.digest else SHORT_CACHE)


routes = [
    Route("/embed.js", embed, methods=["GET", "HEAD"]),
    Route("/widget/{name:str}.{digest:str}.{suffix:str}", versioned, methods=["GET", "HEAD"]),
]
