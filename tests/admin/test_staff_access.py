"""Staff access ends at once: disabling an account, revoking a token or logging out closes
the member's open /ws/moderation connections, on this process and on every other one."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from db.database import connect as connect_db
from db.staff import StaffStore
from realtime.protocol import REVOKED
from server.auth.credentials import hash_password, new_api_token
from tests.helpers.posts import add_post
from tests.helpers.servers import ROOT, free_port, make_settings, serve, start_process, stop_process
from tests.helpers.staff import PASSWORD, add_staff, sign_in

COMMENT = {"uri": "/posts/hello", "author": "Ada", "email": "ada@example.org"}


@asynccontextmanager
async def moderation(
    base: str, origin: str, *, token: str | None = None, cookie: str | None = None
) -> AsyncIterator[ClientConnection]:
    headers = {"Authorization": f"Bearer {token}"} if token else {"Cookie": cookie or ""}
    async with connect(
        base + "/ws/moderation",
        origin=origin,  # type: ignore[arg-type]
        additional_headers=headers,
    ) as ws:
        yield ws


async def closed_with(ws: ClientConnection, timeout: float = 2.0) -> int | None:
    """Wait (at most ``timeout`` s) for the server to close; the close code it sent."""
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(ws.recv(), timeout)
    return closed.value.rcvd.code if closed.value.rcvd else None


async def token_for(server_state: object, name: str) -> tuple[str, int]:
    state = server_state
    found = await state.staff.by_name(name)  # type: ignore[attr-defined]
    token = new_api_token()
    token_id = await state.staff.add_token(found[0].id, token)  # type: ignore[attr-defined]
    return token, token_id


def cookie_of(client: httpx.AsyncClient) -> str:
    return "; ".join(f"{k}={v}" for k, v in client.cookies.items())


@pytest.mark.parametrize("transport", ["asgi", "direct"])
async def test_revoke_logout_and_disable_close_moderation_sockets(
    database_url: str, tmp_path: Path, transport: str
) -> None:
    """The admin's revoke button, a logout and the admin's disable button each close the
    member's moderation sockets (code 4003) within two seconds; other credentials stay."""
    port, live_port = free_port(), free_port()
    settings = make_settings(
        database_url,
        tmp_path,
        KIBITZ_MODERATION="all",
        KIBITZ_PUBLIC_URL=f"http://127.0.0.1:{port}",
        KIBITZ_LIVE_PORT=str(live_port),
    )
    async with serve(settings, port=port) as server:
        await add_post(server)
        await add_staff(server, "boss", role="admin")
        await add_staff(server, "mod")
        base = (
            f"ws://127.0.0.1:{live_port}"
            if transport == "direct"
            else server.url.replace("http://", "ws://")
        )
        async with server.client() as boss, server.client() as mod, server.client() as reader:
            boss_csrf = await sign_in(boss, "boss")
            mod_csrf = await sign_in(mod, "mod")
            token, token_id = await token_for(server.state, "mod")
            async with (
                moderation(base, server.url, token=token) as by_token,
                moderation(base, server.url, cookie=cookie_of(mod)) as by_session,
            ):
                revoked = await boss.post(
                    f"/admin/tokens/{token_id}/revoke", data={"csrf_token": boss_csrf}
                )
                assert revoked.status_code == 303
                assert await closed_with(by_token) == REVOKED
                # The session socket of the same member is untouched and still gets news.
                held = await reader.post("/api/comments", json={**COMMENT, "text": "still here"})
                message = json.loads(await asyncio.wait_for(by_session.recv(), 5))
                assert message["comment"]["id"] == held.json()["comment"]["id"]

                out = await mod.post("/admin/logout", data={"csrf_token": mod_csrf})
                assert out.status_code == 303
                assert await closed_with(by_session) == REVOKED

            await sign_in(mod, "mod")
            token, _ = await token_for(server.state, "mod")
            async with (
                moderation(base, server.url, token=token) as by_token,
                moderation(base, server.url, cookie=cookie_of(mod)) as by_session,
                moderation(base, server.url, cookie=cookie_of(boss)) as bosses,
            ):
                mod_id = (await server.state.staff.by_name("mod"))[0].id
                disabled = await boss.post(
                    f"/admin/staff/{mod_id}/disable", data={"csrf_token": boss_csrf}
                )
                assert disabled.status_code == 303
                assert await closed_with(by_token) == REVOKED
                assert await closed_with(by_session) == REVOKED
                held = await reader.post("/api/comments", json={**COMMENT, "text": "for boss"})
                message = json.loads(await asyncio.wait_for(bosses.recv(), 5))
                assert message["comment"]["id"] == held.json()["comment"]["id"]
            refused = await reader.get(
                "/api/moderation", headers={"Authorization": f"Bearer {token}"}
            )
            assert refused.status_code == 401


async def test_a_session_that_ends_in_the_database_closes_its_socket(
    database_url: str, tmp_path: Path
) -> None:
    """Without any notice (a session deleted by another tool, or expired), the socket's own
    one-second re-check closes it."""
    port = free_port()
    settings = make_settings(
        database_url,
        tmp_path,
        KIBITZ_MODERATION="all",
        KIBITZ_PUBLIC_URL=f"http://127.0.0.1:{port}",
    )
    async with serve(settings, port=port) as server, server.client() as mod:
        await add_staff(server, "mod")
        await sign_in(mod, "mod")
        async with moderation(
            server.url.replace("http://", "ws://"), server.url, cookie=cookie_of(mod)
        ) as ws:
            # Signed out from elsewhere: the row goes, with no broker notice.
            await server.state.sessions.store.close(mod.cookies[server.state.sessions.cookie])
            assert await closed_with(ws, timeout=3) == REVOKED


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server", *args],
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.postgres
@pytest.mark.redis
async def test_cli_disable_closes_sockets_on_every_process(
    pg_url: str, redis_url: str, tmp_path: Path
) -> None:
    """`kibitz user disable NAME` (exit 0) closes the member's moderation sockets on two
    other running `kibitz serve` processes within two seconds, on both ports; an unknown
    name exits 2."""
    env = {
        "KIBITZ_DATABASE_URL": pg_url,
        "KIBITZ_REDIS_URL": redis_url,
        "KIBITZ_REDIS_PREFIX": f"kibitz-staff-{uuid.uuid4().hex[:8]}",
        "KIBITZ_DATA_DIR": str(tmp_path),
        "KIBITZ_SECRET_KEY": "staff-access-test",
        "KIBITZ_MODERATION": "all",
        "KIBITZ_POST_RATE": "off",
        "KIBITZ_MIN_FILL_SECONDS": "0",
    }
    live_ports = [free_port(), free_port()]
    procs = [start_process(env, "--live-port", str(p)) for p in live_ports]
    try:
        db = await connect_db(pg_url)
        try:
            store = StaffStore(db)
            member = await store.add("mod", "moderator", hash_password(PASSWORD))
            token = new_api_token()
            await store.add_token(member.id, token)
        finally:
            await db.close()
        bases = [
            procs[0].url.replace("http://", "ws://"),
            f"ws://127.0.0.1:{live_ports[1]}",
        ]
        async with (
            moderation(bases[0], procs[0].url, token=token) as first,
            moderation(bases[1], procs[1].url, token=token) as second,
        ):
            result = await asyncio.to_thread(_cli, env, "user", "disable", "mod")
            assert result.returncode == 0, result.stderr
            codes = await asyncio.gather(closed_with(first), closed_with(second))
            assert codes == [REVOKED, REVOKED]
        async with httpx.AsyncClient() as client:
            for proc in procs:
                answer = await client.get(
                    proc.url + "/api/moderation", headers={"Authorization": f"Bearer {token}"}
                )
                assert answer.status_code == 401
        unknown = await asyncio.to_thread(_cli, env, "user", "disable", "nobody")
        assert unknown.returncode == 2
        assert len(unknown.stderr.strip().splitlines()) == 1
        again = await asyncio.to_thread(_cli, env, "user", "disable", "mod")
        assert again.returncode == 2
    finally:
        for proc in procs:
            stop_process(proc)
