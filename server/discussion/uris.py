"""Thread keys: one normalisation used by the API, pages, widget and importers alike."""

from __future__ import annotations

from server.discussion.values import thread_uri


def normalise_uri(value: str) -> str:
    """``https://blog.example/a/b/?x=1#c`` → ``/a/b``; ``/a/`` and ``/a`` are the same thread.

    Raises :class:`server.discussion.errors.InvalidInput` for a value that names no thread (see
    :func:`server.discussion.values.thread_uri`, the one boundary for thread keys).
    """
    return thread_uri(value)
