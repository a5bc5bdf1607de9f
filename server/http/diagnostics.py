"""``GET /api/diagnostics``: what an operator watches for leaks, for staff only.

A slow leak (tasks left behind by a reader that went away, sockets never closed, memory that
only grows) shows long before it hurts, if someone can see it from outside. The process's
own figures are here: asyncio tasks (which ``/proc`` cannot tell), threads, open file
descriptors, resident memory, and the live channel's rooms and readers. They are facts about
this one process (``host`` and ``pid`` say which: behind nginx each request reaches one
replica, and ``--workers`` runs several processes in each), and they are not for readers:
they say how busy the site is, so anonymous callers get ``401``.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from server.auth.identity import require_staff
from server.http.models import Diagnostics
from server.http.openapi import STAFF_ONLY, STAFF_REFUSALS, Operation, documented
from server.state import state_of

STARTED = time.monotonic()  # when this process imported the app: close enough to its start
PROC = Path("/proc/self")


def _proc_status() -> dict[str, str]:
    """``/proc/self/status`` as name → value; empty where there is no ``/proc`` (not Linux)."""
    try:
        text = (PROC / "status").read_text()
    except OSError:
        return {}
    return {
        name: value.strip()
        for name, _, value in (line.partition(":") for line in text.splitlines())
    }


def _open_fds() -> int | None:
    try:
        return len(os.listdir(PROC / "fd"))
    except OSError:
        return None


def process_figures() -> dict[str, str | int | float | None]:
    """Tasks, threads, descriptors and memory of this process, as it is right now."""
    status = _proc_status()
    rss = status.get("VmRSS", "").split()
    threads = status.get("Threads")
    return {
        "host": socket.gethostname(),  # in a container: its id, which tells replicas apart
        "pid": os.getpid(),
        "uptime_seconds": round(time.monotonic() - STARTED, 1),
        "tasks": len(asyncio.all_tasks()),
        # The OS's count (uvicorn's, the database driver's and asyncio's worker threads too);
        # Python's own count where there is no /proc.
        "threads": int(threads) if threads else threading.active_count(),
        "open_fds": _open_fds(),
        "rss_kib": int(rss[0]) if rss else None,
    }


@documented(
    Operation(
        summary="This process's tasks, threads, open files, memory and live readers",
        description=STAFF_ONLY,
        staff=True,
        tags=("meta",),
        responses={200: Diagnostics, **STAFF_REFUSALS},
    )
)
async def diagnostics(request: Request) -> JSONResponse:
    await require_staff(request)
    state = state_of(request)
    counts = state.live.hub.local_counts()
    return JSONResponse(
        {
            **process_figures(),
            "live_rooms": len(counts),
            "live_readers": sum(counts.values()),
            "answers_kept": len(state.replays),
            "answers_given_again": state.replays.given,
            "answers_checked": state.replays.checked,
            "answers_gzipped": state.replays.gzipped,
        }
    )


routes = [Route("/api/diagnostics", diagnostics, methods=["GET"])]
