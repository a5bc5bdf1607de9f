"""The webhook client's own cost: CPU per signed message, with the receiver in another process.

    .venv/bin/python bench/webhook_client.py [--messages 2000] [--in-flight 16]

Starts bench/webhook_receiver.py (one receiver, verifying every signature), then posts
``--messages`` signed messages through :class:`server.webhooks.client.WebhookClient` (as the
worker does: headers from :func:`server.webhooks.worker.signed_headers`, kept-alive
connections, ``--in-flight`` at once) and prints this process's CPU per message and the rate.
Nothing else runs in this process, so the CPU is the client's (and the signing's) alone.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import secrets
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import peer  # noqa: E402
from db.webhooks import Delivery  # noqa: E402
from server.webhooks.client import WebhookClient  # noqa: E402
from server.webhooks.worker import signed_headers  # noqa: E402

BODY = (
    '{"type":"comment.created","timestamp":"2026-12-06T18:00:00Z","data":{"comment":'
    '{"id":1,"parent":null,"author":"Reader","text":"<p>A comment of a usual size.</p>"},'
    '"uri":"/bench/p-1"}}'
)


async def post_all(url: str, secret: str, messages: int, in_flight: int) -> tuple[float, float]:
    """CPU seconds and wall seconds for ``messages`` posts, after a warm-up."""
    client = WebhookClient(allow_private=True)
    queue: asyncio.Queue[int] = asyncio.Queue()

    async def one(n: int) -> None:
        delivery = Delivery(
            n, 1, url, secret, f"msg_{n}", "comment.created", BODY, datetime.now(UTC), 0
        )
        body = delivery.body.encode()
        answer = await client.post(url, signed_headers(delivery, body, datetime.now(UTC)), body)
        if answer.status != 200:
            raise SystemExit(f"the receiver answered {answer.status}: {answer.body!r}")

    async def sender() -> None:
        while not queue.empty():
            await one(queue.get_nowait())

    try:
        for n in range(50):
            await one(-n - 1)
        for n in range(messages):
            queue.put_nowait(n)
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(in_flight)))
        return time.process_time() - cpu, time.perf_counter() - wall
    finally:
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--in-flight", type=int, default=16)
    args = parser.parse_args()
    port = peer.free_port()
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    log = Path(tempfile.mkdtemp(prefix="kibitz-webhook-client-")) / "receiver.log"
    receiver = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "webhook_receiver.py"), f"{port}:{secret}"],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        peer.wait_until_up(f"http://127.0.0.1:{port}/counts", receiver, log)
        cpu, wall = asyncio.run(
            post_all(f"http://127.0.0.1:{port}/hook", secret, args.messages, args.in_flight)
        )
    finally:
        receiver.terminate()
        receiver.wait(10)
    print(
        f"{args.messages} messages, {args.in_flight} in flight: "
        f"{cpu * 1000 / args.messages:.3f} ms of client CPU per message, "
        f"{args.messages / wall:.0f} messages/s"
    )


if __name__ == "__main__":
    main()
