"""How fast staff access ends: from a token revoke to the close of its moderation socket.

Two ways, ten times each, on SQLite in one process: through the admin's revoke button (the
broker notice makes the socket re-check at once), and by revoking in the database alone (the
socket's own one-second re-check finds it). docs/security.md has the figures.

    .venv/bin/python bench/revocation.py
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from server.auth.credentials import new_api_token
from tests.helpers.servers import Server, free_port, make_settings, serve
from tests.helpers.staff import add_staff, sign_in


async def _closed(ws: ClientConnection) -> float:
    try:
        while True:
            await ws.recv()
    except ConnectionClosed:
        return time.monotonic()


async def _socket(server: Server, token: str) -> ClientConnection:
    return await connect(
        server.url.replace("http", "ws") + "/ws/moderation",
        origin=server.url,  # type: ignore[arg-type]
        additional_headers={"Authorization": f"Bearer {token}"},
    )


def _summary(times: list[float]) -> str:
    ordered = sorted(times)
    return f"median {ordered[len(ordered) // 2] * 1000:.0f} ms, max {ordered[-1] * 1000:.0f} ms"


async def main(rounds: int = 10) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="kibitz-revocation-"))
    port = free_port()
    settings = make_settings(
        f"sqlite:///{tmp}/k.db", tmp, KIBITZ_PUBLIC_URL=f"http://127.0.0.1:{port}"
    )
    async with serve(settings, port=port) as server, server.client() as boss:
        await add_staff(server, "boss", role="admin")
        await add_staff(server, "mod")
        csrf = await sign_in(boss, "boss")
        member = (await server.state.staff.by_name("mod"))[0]
        notice: list[float] = []
        timer: list[float] = []
        for _ in range(rounds):
            for by_button, times in ((True, notice), (False, timer)):
                token = new_api_token()
                token_id = await server.state.staff.add_token(member.id, token)
                ws = await _socket(server, token)
                waiting = asyncio.create_task(_closed(ws))
                await asyncio.sleep(0.3)
                started = time.monotonic()
                if by_button:
                    await boss.post(f"/admin/tokens/{token_id}/revoke", data={"csrf_token": csrf})
                else:
                    await server.state.staff.revoke_token(token_id)
                times.append(await waiting - started)
    print(f"admin revoke button (broker notice): {_summary(notice)}")
    print(f"revoked in the database only (timed re-check): {_summary(timer)}")


if __name__ == "__main__":
    asyncio.run(main())
