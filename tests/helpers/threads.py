"""Big threads for tests: many stored comments on one post in one transaction."""

from __future__ import annotations

from datetime import timedelta

from db.comments import NewComment
from db.models import now
from tests.helpers.servers import Server

URI = "/posts/big"


async def seed(
    server: Server, n: int, uri: str = URI, status: str = "approved", prefix: str = "top"
) -> list[int]:
    """``n`` top-level comments a minute apart, oldest first (one transaction)."""
    start = now() - timedelta(days=1)
    batch = [
        NewComment(
            author=f"A{i}",
            email="a@example.org",
            website=None,
            text=f"{prefix} {i}",
            html=f"<p>{prefix} {i}</p>",
            status=status,
            created=start + timedelta(minutes=i),
        )
        for i in range(n)
    ]
    return await server.state.comments.add_many(uri, batch)
