"""Each worker listens on the shared port with a socket of its own, so the kernel spreads
connections over the workers.

With ``--workers``, uvicorn binds one socket in its supervisor and hands that same socket to
every worker. A worker whose event loop wakes for a new connection accepts every connection
waiting, so a burst of keep-alive connections (a reverse proxy's upstream pool, a load test's
16) can all land on one worker while the others idle for as long as those connections live.
Measured with wrk's 16 connections on two workers: of six runs, one put all 16 on one
worker, which then served no more than one worker alone, and another put 15 there
(docs/performance.md, "What changed").

With ``SO_REUSEPORT`` every worker listens on a socket of its own, bound to the same address,
and the kernel hashes each new connection to one of them. uvicorn's supervisor is kept as it
is (signals, health checks, a worker restarted when it dies): it is handed a
:class:`SharedPort`, a socket bound with ``SO_REUSEPORT`` that never listens. It holds the
port, so a port in use is reported before any worker starts, and no connection is ever
queued on it. Pickled into a worker (multiprocessing's spawn pickles what the supervisor
hands over), it becomes that worker's own socket, bound to the same address; the worker's
event loop listens on it. The live channel's port does the same (``realtime/endpoint.py``).

What it costs: a worker's queue of connections not yet accepted is its own, so connections
waiting in it when that worker stops are reset instead of going to another worker.
"""

from __future__ import annotations

import socket
from typing import Any


class SharedPort(socket.socket):
    """The supervisor's hold on the port: bound with ``SO_REUSEPORT``, never listening.

    multiprocessing pickles a socket by handing its descriptor to the child, which would
    share one queue again; this class pickles as the address instead, and unpickles as a
    new socket bound to it (:func:`worker_socket`).
    """

    def __reduce__(self) -> tuple[Any, ...]:
        host, port = self.getsockname()[:2]
        return (worker_socket, (self.family, host, port))


def _bound(sock: socket.socket, host: str, port: int) -> None:
    # SO_REUSEADDR as uvicorn sets it (a restart need not wait for TIME_WAIT to pass);
    # SO_REUSEPORT so that every worker's socket may bind the same address.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))


def reserve(host: str, port: int) -> SharedPort:
    """The supervisor's :class:`SharedPort` on ``host:port`` (port 0: one chosen now, which
    every worker then binds). Raises ``OSError`` if the address is in use.

    In use means by anything: the address is first bound without ``SO_REUSEPORT``, which
    fails where any socket listens, one with ``SO_REUSEPORT`` included. Without that probe a
    second ``kibitz serve`` started on the same port by the same user would join the first
    one's sockets and take a share of its connections, silently.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
        port = probe.getsockname()[1]
    sock = SharedPort(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        _bound(sock, host, port)
    except OSError:
        sock.close()
        raise
    return sock


def worker_socket(family: int, host: str, port: int) -> socket.socket:
    """A worker's own socket on the shared address, bound but not yet listening: uvicorn's
    event loop listens on it once the application has started."""
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    _bound(sock, host, port)
    return sock
