"""Helpers for tests that need staff: accounts, a signed-in client, the page's CSRF token."""

from __future__ import annotations

import re

import httpx

from server.auth.credentials import hash_password
from tests.helpers.servers import Server

PASSWORD = "correct horse battery"
_CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


async def add_staff(
    server: Server, name: str, role: str = "moderator", email: str | None = None
) -> None:
    await server.state.staff.add(name, role, hash_password(PASSWORD), email=email)


async def sign_in(client: httpx.AsyncClient, name: str, password: str = PASSWORD) -> str:
    """Sign in through the login form; return the CSRF token the admin page carries."""
    response = await client.post(
        "/admin/login", data={"name": name, "password": password, "next": "/admin/queue"}
    )
    assert response.status_code == 303, response.text
    return await csrf_of(client)


async def csrf_of(client: httpx.AsyncClient, path: str = "/admin/queue") -> str:
    page = await client.get(path)
    assert page.status_code == 200, page.text
    found = _CSRF.search(page.text)
    assert found, "the admin page carries no csrf-token meta"
    return found.group(1)
