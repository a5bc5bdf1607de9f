"""Private Redis and PostgreSQL servers that a fault test may kill, stop and restart, and a
private file system that it may fill or make read-only.

Each runs on a free port with its data in a directory of the test's own; the shared services
on 5432 and 6379 are never touched. PostgreSQL runs with ``fsync=on`` so that a kill -9
tests what a real crash would keep.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.helpers.servers import IN_CI


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not start on port {port}")


def _require_tool(name: str, package: str, label: str = "") -> str:
    """The program's path; without it CI fails and a local run skips."""
    found = shutil.which(name)
    if found is None:
        label = label or name
        if IN_CI:
            pytest.fail(f"{label} is missing: apt-get install -y {package}")
        pytest.skip(f"{label} is not installed")
    return found


class RedisServer:
    """redis-server on a free port; ``kill``, ``stop`` (SIGSTOP), ``cont``, ``start`` again."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.binary = _require_tool("redis-server", "redis-server")
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                *(self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""),
                *("--appendonly", "no", "--dir", str(self.directory)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import redis

        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise RuntimeError("private redis-server did not start") from None
                time.sleep(0.05)
        client.close()

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def close(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


def _pg_binary(name: str) -> str:
    for candidate in [
        f"/usr/local/bin/{name}",
        *sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True),
    ]:
        if os.path.exists(candidate):
            return candidate
    return _require_tool(name, "postgresql", f"PostgreSQL's {name}")


class PostgresServer:
    """A PostgreSQL cluster of its own (initdb, fsync on) that can be killed with -9."""

    def __init__(self, port: int | None = None) -> None:
        self.initdb, self.postgres = _pg_binary("initdb"), _pg_binary("postgres")
        # Not under pytest's tmp_path: as root the server runs as "postgres", which must be
        # able to reach its directory (pytest's is private to root).
        self.directory = Path(tempfile.mkdtemp(prefix="kibitz-faults-pg-"))
        self.directory.chmod(0o755)
        self.data = self.directory / "pgdata"
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.directory / "postgres.log"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/kibitz"

    def _as_postgres_user(self) -> dict[str, object]:
        """initdb refuses to run as root; run it (and the server) as the postgres user then."""
        if os.geteuid() != 0:
            return {}
        import pwd

        user = pwd.getpwnam("postgres")
        os.chown(self.directory, user.pw_uid, user.pw_gid)
        return {"user": user.pw_uid, "group": user.pw_gid}

    def init(self) -> None:
        subprocess.run(
            [self.initdb, "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            **self._as_postgres_user(),  # type: ignore[arg-type]
        )

    def start(self) -> None:
        log = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [
                *(self.postgres, "-D", str(self.data), "-p", str(self.port), "-h", "127.0.0.1"),
                *("-c", "fsync=on", "-c", "synchronous_commit=on", "-c", "max_connections=100"),
                *("-c", "unix_socket_directories="),
            ],
            stdout=log,
            stderr=log,
            start_new_session=True,  # its own process group: kill -9 reaches every backend
            **self._as_postgres_user(),  # type: ignore[arg-type]
        )
        log.close()
        _wait_port(self.port, 60, "PostgreSQL")
        deadline = time.monotonic() + 60
        while True:  # the port opens before recovery ends; wait until it takes a query
            done = self.psql("SELECT 1", check=False)
            if done.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL did not accept queries: {done.stderr!r}")
            time.sleep(0.1)

    def psql(self, sql: str, *, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        command = [_pg_binary("psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"]
        return subprocess.run(
            [*command, "-d", "postgres", "-Atc", sql], check=check, capture_output=True
        )

    def create_database(self) -> None:
        self.psql("CREATE DATABASE kibitz")

    def kill(self) -> None:
        """kill -9 of the postmaster and every backend (its whole process group)."""
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)
            self.proc = None

    def close(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
            self.proc = None
        shutil.rmtree(self.directory, ignore_errors=True)


class Volume:
    """A small ext4 file system of the test's own for a data directory: loop-mounted from an
    image file, so a test can fill it to the last block and make it refuse writes while
    kibitz has its database open there, then give the space and the writes back.

    Read-only is the immutable flag (``chattr +i``) on the directory and the database's
    files: a read-only remount is refused (EBUSY) while a file on it is open for writing,
    and ext4's own remount after an error lasts until it is unmounted. Like a file system
    gone read-only, the flag makes every write through an open file fail, root's too;
    SQLite sees the same SQLITE_IOERR_WRITE (and SQLITE_READONLY on a new connection).
    The ``-shm`` index stays writable: SQLite maps it into memory, and a write to a mapped
    page of an immutable file is answered with SIGBUS.

    Needs root (mount, loop devices) and e2fsprogs; CI fails without them, elsewhere the
    test is skipped.
    """

    def __init__(self, directory: Path, size_mb: int = 64) -> None:
        if os.geteuid() != 0:
            if IN_CI:
                pytest.fail("the storage faults need root (mount -o loop, chattr)")
            pytest.skip("the storage faults need root (mount -o loop, chattr)")
        self.mkfs = _require_tool("mkfs.ext4", "e2fsprogs")
        self.chattr = _require_tool("chattr", "e2fsprogs")
        self.image = directory / "volume.img"
        self.path = directory / "volume"
        self.size_mb = size_mb
        self.mounted = False
        self.frozen: list[Path] = []

    def mount(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.image, "wb") as image:
            image.truncate(self.size_mb * 1024 * 1024)
        # -m 0: no blocks kept for root, so "full" means full for everyone.
        subprocess.run([self.mkfs, "-q", "-F", "-m", "0", str(self.image)], check=True)
        done = subprocess.run(
            ["mount", "-o", "loop", str(self.image), str(self.path)], capture_output=True
        )
        if done.returncode != 0:
            why = f"cannot loop-mount a file system: {done.stderr.decode().strip()}"
            if IN_CI:
                pytest.fail(why)
            pytest.skip(why)
        self.mounted = True

    @property
    def fill_file(self) -> Path:
        return self.path / "filler"

    def fill(self) -> int:
        """Write zeros until the file system is full, to the last block; the bytes written."""
        written = 0
        block = bytes(1024 * 1024)
        fd = os.open(self.fill_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            for size in (len(block), 4096, 512):  # smaller pieces near the end
                with contextlib.suppress(OSError):  # ENOSPC
                    while True:
                        written += os.write(fd, block[:size])
            with contextlib.suppress(OSError):
                os.fsync(fd)
        finally:
            os.close(fd)
        return written

    def free(self) -> None:
        """Give the space back; syncs, since ext4 reuses freed blocks only after a commit."""
        self.fill_file.unlink(missing_ok=True)
        os.sync()

    def refuse_writes(self) -> None:
        """Make the directory and every file in it but SQLite's ``-shm`` immutable."""
        self.frozen = [
            *(p for p in self.path.iterdir() if p.is_file() and not p.name.endswith("-shm")),
            self.path,
        ]
        subprocess.run([self.chattr, "+i", *map(str, self.frozen)], check=True)

    def take_writes(self) -> None:
        if self.frozen:
            subprocess.run([self.chattr, "-i", *map(str, self.frozen)], check=True)
            self.frozen = []

    def close(self) -> None:
        self.take_writes()
        if self.mounted:
            self.fill_file.unlink(missing_ok=True)
            unmounted = subprocess.run(["umount", str(self.path)], capture_output=True)
            if unmounted.returncode != 0:  # still in use: detach now, free when let go
                subprocess.run(["umount", "-l", str(self.path)], capture_output=True)
            self.mounted = False
        self.image.unlink(missing_ok=True)
