"""Thread keys: one normalisation used by the API, pages, widget and importers alike."""

from __future__ import annotations

from urllib.parse import quote, unquote, urlsplit

# Characters that stay literal in a path (RFC 3986 pchar plus "/"); everything else is
# percent-encoded, so "%7E" and "~" or "%c3%a9" and "é" name the same thread.
_SAFE = "/:@!$&'()*+,;=-._~"


def normalise_uri(value: str) -> str:
    """``https://blog.example/a/b/?x=1#c`` → ``/a/b``; ``/a/`` and ``/a`` are the same thread."""
    value = value.strip()
    parts = urlsplit(value)
    path = parts.path if (parts.scheme or parts.netloc) else value.split("#", 1)[0].split("?", 1)[0]
    path = quote(unquote(path, errors="surrogateescape"), safe=_SAFE, errors="surrogateescape")
    # "https://host//a" has the path "//a", which would read as a host when normalised again.
    path = "/" + path.lstrip("/")
    if len(path) > 1:
        path = path.rstrip("/") or "/"
    return path
