"""``kibitz serve --workers``: every worker listens with a socket of its own, and the kernel
spreads connections over them (server/http/listener.py)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.helpers.servers import ROOT, Process, env_for, free_port, start_process, stop_process

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

LISTEN, ESTABLISHED = "0A", "01"  # states in /proc/net/tcp


def _tcp_sockets() -> list[tuple[int, int, str, int]]:
    """This machine's TCP sockets: local port, remote port, state and inode of each."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local = int(fields[1].rsplit(":", 1)[1], 16)
            remote = int(fields[2].rsplit(":", 1)[1], 16)
            found.append((local, remote, fields[3], int(fields[9])))
    return found


def _holders(pids: list[int]) -> dict[int, int]:
    """Which of ``pids`` holds each socket inode."""
    held: dict[int, int] = {}
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = fd.readlink().name
            except OSError:
                continue
            if target.startswith("socket:["):
                held[int(target[8:-1])] = pid
    return held


def _processes(process: Process) -> list[int]:
    """The supervisor and its children (the workers, and multiprocessing's helper)."""
    pid = process.proc.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *(int(child) for child in children)]


def _listeners(process: Process, count: int) -> dict[int, int]:
    """Listening socket inode → the process that holds it, once ``count`` are listening."""
    deadline = time.monotonic() + 30
    while True:
        held = _holders(_processes(process))
        listening = {
            inode: held[inode]
            for local, _, state, inode in _tcp_sockets()
            if local == process.port and state == LISTEN
        }
        if len(listening) >= count or time.monotonic() > deadline:
            return listening
        time.sleep(0.1)


def test_each_worker_listens_and_a_burst_of_connections_reaches_every_worker(
    pg_url: str, redis_url: str, tmp_path: Path
) -> None:
    """Two workers hold a listening socket each (the supervisor holds the port but never
    listens), and 16 keep-alive connections opened at once, as a reverse proxy's upstream
    pool or a load test opens them, are served by both workers, not all by whichever woke
    first."""
    env = env_for(pg_url, redis_url, tmp_path, f"kibitz-listen-{uuid.uuid4().hex[:8]}")
    process = start_process(env, "--workers", "2", "--live-port", str(free_port()))
    try:
        listening = _listeners(process, 2)
        assert len(listening) == 2, f"listening sockets on the port: {listening}"
        workers = set(listening.values())
        assert len(workers) == 2 and process.proc.pid not in workers

        connections = [socket.create_connection(("127.0.0.1", process.port)) for _ in range(16)]
        try:
            for conn in connections:
                conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            for conn in connections:  # every one answered: accepted and served
                assert conn.recv(65536).startswith(b"HTTP/1.1 200")
            ours = {conn.getsockname()[1] for conn in connections}
            served = [  # the server's side of our connections
                inode
                for local, remote, state, inode in _tcp_sockets()
                if local == process.port and remote in ours and state == ESTABLISHED
            ]
            held = _holders(_processes(process))
            per_worker = {pid: sum(held.get(inode) == pid for inode in served) for pid in workers}
            assert sum(per_worker.values()) == 16
            assert all(n > 0 for n in per_worker.values()), f"connections per worker: {per_worker}"
        finally:
            for conn in connections:
                conn.close()
    finally:
        stop_process(process)


@pytest.mark.parametrize("reuse_port", [False, True], ids=["plain", "SO_REUSEPORT"])
def test_workers_on_a_port_in_use_exit_at_once_and_say_so(
    pg_url: str, redis_url: str, tmp_path: Path, reuse_port: bool
) -> None:
    """Before any worker starts: exit status 2 and one line naming the address and what to do.
    A port another kibitz holds (its workers listen with SO_REUSEPORT, as the taker here
    does) is in use too: joining its sockets would take a share of its connections."""
    env = env_for(pg_url, redis_url, tmp_path, f"kibitz-inuse-{uuid.uuid4().hex[:8]}")
    with socket.create_server(("127.0.0.1", 0), reuse_port=reuse_port) as taken:
        port = taken.getsockname()[1]
        proc = subprocess.Popen(
            [sys.executable, "-m", "server", "serve", "--workers", "2", "--port", str(port)],
            cwd=ROOT,
            env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its workers too are stopped if it serves after all
        )
        try:
            stdout, stderr = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            pytest.fail(f"kibitz serve started on port {port}, which was in use")
    assert proc.returncode == 2, stderr
    assert f"cannot listen on 127.0.0.1:{port}" in stderr
    assert "--port" in stderr
    assert "Started parent process" not in stdout + stderr
