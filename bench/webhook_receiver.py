"""Webhook receivers for bench/webhooks.py, in a process of their own.

    .venv/bin/python bench/webhook_receiver.py PORT:SECRET [PORT:SECRET ...]

One uvicorn server listens on every PORT; each port is one receiver with its own secret, as
three sites would be. A POST to ``/hook`` is verified with the ``standardwebhooks`` library a
site owner would use (``400`` when the signature does not verify) and recorded: the port, the
``webhook-id``, the comment's id and thread, and the wall-clock time the whole body was in
hand. ``GET /records`` answers every record so far (on any port); ``GET /counts`` how many
distinct messages (``webhook-id``) each port took. A bare ASGI app, no framework: the
receivers share the 2 cores with the server and wrk, so they should cost as little as a
receiver can.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import uvicorn
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class Receivers:
    """The state of every receiver: its verifier and what it took."""

    def __init__(self, secrets: dict[int, str]) -> None:
        self.verifiers = {port: Webhook(secret) for port, secret in secrets.items()}
        # port, webhook-id, comment id, thread uri, wall-clock seconds; or a refusal
        self.records: list[tuple[int, str, int, str, float]] = []
        self.refused: list[tuple[int, str]] = []
        self.seen: dict[int, set[str]] = {port: set() for port in secrets}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        port = scope["server"][1]
        if scope["method"] == "GET":
            if scope["path"] == "/records":
                body = {"records": self.records, "refused": self.refused}
            else:
                body = {"counts": {str(p): len(ids) for p, ids in self.seen.items()}}
            await _answer(send, 200, json.dumps(body).encode())
            return
        chunks = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        at = time.time()
        payload = b"".join(chunks)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            event = self.verifiers[port].verify(payload, headers)
        except (WebhookVerificationError, KeyError) as exc:
            self.refused.append((port, f"{type(exc).__name__}: {exc}"))
            await _answer(send, 400, b"bad signature")
            return
        data = event["data"]
        self.records.append(
            (port, headers["webhook-id"], int(data["comment"]["id"]), data["uri"], at)
        )
        self.seen[port].add(headers["webhook-id"])
        await _answer(send, 200, b"ok")


async def _answer(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(body)),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def main(args: list[str]) -> None:
    secrets = {int(port): secret for port, secret in (a.split(":", 1) for a in args)}
    sockets = []
    for port in secrets:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sockets.append(sock)
    config = uvicorn.Config(
        Receivers(secrets),
        log_level="warning",
        access_log=False,
        lifespan="off",
        loop="uvloop",
        http="httptools",
    )
    uvicorn.Server(config).run(sockets=sockets)


if __name__ == "__main__":
    main(sys.argv[1:])
