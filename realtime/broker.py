"""Brokers carry events between the processes that serve one site.

``MemoryBroker`` is the embedded default: one process, so publishing is handing the event to
the local hub. ``RedisBroker`` uses Redis pub/sub (``redis.asyncio``) whenever
``KIBITZ_REDIS_URL`` is set:

* one subscription connection per process for everything; a thread's channel is subscribed
  when its first local reader arrives and unsubscribed when the last one leaves; moderation
  events have a channel of their own and never travel on a thread's;
* the connection is supervised: on any error it is dropped and re-made with jittered
  exponential backoff; once every channel is subscribed again, the hub reads what its readers
  missed from the database (:meth:`Hub.resync`), so a Redis restart loses nothing;
* an event that cannot be published (Redis down, hung, or this process not yet back) is kept
  (up to :data:`UNSENT_MAX`) and published once this process is subscribed again, so the
  processes that came back first hear of it; the hub's periodic check against the database
  covers whatever this misses (a process killed between commit and publish);
* every command has a timeout (:data:`COMMAND_TIMEOUT`): a hung Redis (SIGSTOP, a stalled
  network) fails commands quickly instead of stalling whoever waits for them, and a publish
  that times out drops the subscription connection so that it is re-made;
* presence is a hash per thread (process id → its readers) plus a sorted set of live
  processes with their last heartbeat; counts of a process that stopped beating are ignored.

Publishing never decides whether a comment is accepted: the events are committed before the
broker hears of them, and the database is the log.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections import deque
from typing import Protocol

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from realtime import protocol

log = logging.getLogger("kibitz.live.broker")

HEARTBEAT = 10.0  # seconds between a process's presence heartbeats
STALE_AFTER = 35.0  # a process silent this long no longer counts readers
BACKOFF_FIRST, BACKOFF_MAX = 0.2, 10.0
CONFIRM_TIMEOUT = 3.0
COMMAND_TIMEOUT = 1.0  # seconds any one Redis command may take before it counts as failed
UNSENT_MAX = 10_000  # events kept for republishing; beyond that the database check delivers


class Receiver(Protocol):
    """What a broker delivers to: this process's hub (:class:`realtime.hub.Hub`)."""

    def receive(self, uri: str, seq: int, payload: bytes) -> None: ...

    def receive_moderation(self, payload: bytes) -> None: ...

    def receive_presence(self, uri: str) -> None: ...

    def receive_votes(self, uri: str, comment_ids: list[int]) -> None: ...

    def resync(self) -> None: ...

    def recheck_presence(self) -> None: ...

    def local_counts(self) -> dict[str, int]: ...


class Broker(Protocol):
    """What the hub needs of a broker."""

    async def start(self, hub: Receiver) -> None: ...

    async def stop(self) -> None: ...

    async def publish(self, uri: str, seq: int, payload: bytes) -> None:
        """Deliver an event to every process that has readers of ``uri``; may raise."""

    async def publish_moderation(self, payload: bytes) -> None: ...

    async def publish_votes(self, uri: str, comment_ids: list[int]) -> None:
        """Tell every process with readers of ``uri`` that these comments' votes changed."""

    async def follow(self, uri: str) -> None:
        """Receive ``uri``'s events from now on; never raises (a reconnect catches up)."""

    async def unfollow(self, uri: str) -> None: ...

    async def presence(self, uri: str, local: int, *, write: bool) -> int:
        """Record this process's readers of ``uri`` (when ``write``); return the others'."""

    @property
    def connected(self) -> bool: ...


class MemoryBroker:
    """One process: the hub is the whole world."""

    def __init__(self) -> None:
        self.hub: Receiver | None = None

    async def start(self, hub: Receiver) -> None:
        self.hub = hub

    async def stop(self) -> None:
        self.hub = None

    async def publish(self, uri: str, seq: int, payload: bytes) -> None:
        if self.hub is not None:
            self.hub.receive(uri, seq, payload)

    async def publish_moderation(self, payload: bytes) -> None:
        if self.hub is not None:
            self.hub.receive_moderation(payload)

    async def publish_votes(self, uri: str, comment_ids: list[int]) -> None:
        if self.hub is not None:
            self.hub.receive_votes(uri, comment_ids)

    async def follow(self, uri: str) -> None:
        return None

    async def unfollow(self, uri: str) -> None:
        return None

    async def presence(self, uri: str, local: int, *, write: bool) -> int:
        return 0

    @property
    def connected(self) -> bool:
        return True


async def publish_once(url: str, prefix: str, payload: bytes) -> None:
    """Publish one message on the moderation channel from outside a server (the CLI), so
    every running process hears of a staff change at once; their timed re-checks are the
    backstop when Redis cannot be reached."""
    client = aioredis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    try:
        await client.publish(RedisBroker.channel_of(prefix, "moderation"), payload)
    finally:
        await client.aclose()


class RedisBroker:
    @staticmethod
    def channel_of(prefix: str, name: str) -> str:
        return f"{prefix}:live:{name}"

    def __init__(self, url: str, prefix: str) -> None:
        self.url = url
        self.prefix = f"{prefix}:live"
        self.process_id = uuid.uuid4().hex[:16]
        self.hub: Receiver | None = None
        # Commands fail fast while Redis is down; the supervisor, not redis-py, retries.
        self.redis = aioredis.from_url(
            url,
            socket_connect_timeout=COMMAND_TIMEOUT,
            socket_timeout=COMMAND_TIMEOUT,
            retry=Retry(NoBackoff(), 0),
        )
        self.channels: set[str] = set()  # thread channels this process wants
        self._pubsub: PubSub | None = None
        self._connected = False
        self._waiting: dict[bytes, list[asyncio.Future[None]]] = {}
        self._subscribe_lock = asyncio.Lock()
        self._supervisor: asyncio.Task[None] | None = None
        self.last_error: str | None = "not connected yet"
        self.unsent: deque[tuple[str, bytes]] = deque(maxlen=UNSENT_MAX)
        self._broken = asyncio.Event()  # set when a command timed out: re-make the session

    # -- names -----------------------------------------------------------------------------

    def thread_channel(self, uri: str) -> str:
        return f"{self.prefix}:thread:{uri}"

    @property
    def moderation_channel(self) -> str:
        return f"{self.prefix}:moderation"  # = channel_of(prefix, "moderation")

    def _online_key(self, uri: str) -> str:
        return f"{self.prefix}:online:{uri}"

    @property
    def _processes_key(self) -> str:
        return f"{self.prefix}:processes"

    @property
    def connected(self) -> bool:
        return self._connected

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self, hub: Receiver) -> None:
        self.hub = hub
        self._supervisor = asyncio.get_running_loop().create_task(self._supervise())

    async def stop(self) -> None:
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.gather(self._supervisor, return_exceptions=True)
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for uri in self.hub.local_counts() if self.hub else {}:
                    pipe.hdel(self._online_key(uri), self.process_id)
                pipe.zrem(self._processes_key, self.process_id)
                await pipe.execute()
        except Exception as exc:
            log.debug("could not withdraw presence: %s", exc)
        await self.redis.aclose()

    async def _supervise(self) -> None:
        """Keep one subscription connection alive, forever, backing off with jitter."""
        failures = 0
        while True:
            started = time.monotonic()
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                if self._connected or failures == 0:
                    log.warning("Redis connection lost (%s); reconnecting", self.last_error)
            finally:
                self._connected = False
                self._fail_waiters()
            if time.monotonic() - started > 30:
                failures = 0
            failures += 1
            delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** min(failures - 1, 10))
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))

    async def _session(self) -> None:
        pubsub = self.redis.pubsub()
        self._pubsub = pubsub
        self._broken.clear()
        try:
            wanted = [self.moderation_channel, *sorted(self.channels)]
            confirmed = self._expect(wanted)
            await pubsub.subscribe(*wanted)
            listener = asyncio.get_running_loop().create_task(self._listen(pubsub))
            try:
                await asyncio.wait_for(asyncio.gather(*confirmed), CONFIRM_TIMEOUT * 3)
                self._connected, self.last_error = True, None
                log.info("Redis connected; %d thread channel(s) subscribed", len(wanted) - 1)
                await self._heartbeat()
                assert self.hub is not None
                self.hub.resync()
                await self._republish()
                broken = asyncio.get_running_loop().create_task(self._broken.wait())
                try:
                    while not listener.done() and not broken.done():
                        await asyncio.wait(
                            {listener, broken},
                            timeout=HEARTBEAT,
                            return_when=asyncio.FIRST_COMPLETED,
                        )
                        if not listener.done() and not broken.done():
                            await self._heartbeat()
                            self.hub.recheck_presence()
                finally:
                    broken.cancel()
                if self._broken.is_set():
                    raise ConnectionError("a Redis command timed out")
                listener.result()
            finally:
                listener.cancel()
                await asyncio.gather(listener, return_exceptions=True)
        finally:
            self._pubsub = None
            try:
                await pubsub.aclose()
            except Exception:
                pass

    async def _listen(self, pubsub: PubSub) -> None:
        assert self.hub is not None
        moderation = self.moderation_channel.encode()
        thread_prefix = self.thread_channel("").encode()
        own_notice = protocol.presence_notice(self.process_id)
        async for message in pubsub.listen():
            kind, channel = message["type"], message["channel"]
            if kind == "subscribe":
                for waiter in self._waiting.pop(channel, []):
                    if not waiter.done():
                        waiter.set_result(None)
            elif kind == "message":
                data = message["data"]
                if channel == moderation:
                    self.hub.receive_moderation(data)
                    continue
                uri = channel[len(thread_prefix) :].decode()
                voted = protocol.unpack_votes(data)
                if voted is not None:
                    self.hub.receive_votes(uri, voted)
                    continue
                unpacked = protocol.unpack(data)
                if unpacked is None:
                    if data != own_notice:
                        self.hub.receive_presence(uri)
                else:
                    self.hub.receive(uri, *unpacked)
        raise ConnectionError("subscription ended")

    def _expect(self, channels: list[str]) -> list[asyncio.Future[None]]:
        loop = asyncio.get_running_loop()
        futures = []
        for channel in channels:
            future: asyncio.Future[None] = loop.create_future()
            self._waiting.setdefault(channel.encode(), []).append(future)
            futures.append(future)
        return futures

    def _fail_waiters(self) -> None:
        for waiters in self._waiting.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(ConnectionError("Redis connection lost"))
                    waiter.exception()  # retrieved: nobody may be waiting any more
        self._waiting.clear()

    async def _heartbeat(self) -> None:
        """Say this process is alive and rewrite its counts (a restarted Redis forgot them)."""
        assert self.hub is not None
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zadd(self._processes_key, {self.process_id: time.time()})
            pipe.zremrangebyscore(self._processes_key, "-inf", time.time() - 3600)
            for uri, count in self.hub.local_counts().items():
                key = self._online_key(uri)
                pipe.hset(key, self.process_id, count)
                pipe.expire(key, 3600)
            await pipe.execute()

    # -- the broker interface --------------------------------------------------------------

    async def publish(self, uri: str, seq: int, payload: bytes) -> None:
        channel, data = self.thread_channel(uri), protocol.pack_event(seq, payload)
        if not self._connected:
            self.unsent.append((channel, data))
            raise ConnectionError(self.last_error or "Redis is not connected")
        try:
            async with asyncio.timeout(COMMAND_TIMEOUT):  # no task per event, unlike wait_for
                await self.redis.publish(channel, data)
        except Exception as exc:
            self.unsent.append((channel, data))
            if isinstance(exc, TimeoutError | ConnectionError | OSError):
                self._broken.set()
            raise

    async def _republish(self) -> None:
        """Publish what could not be published while this process was off Redis, in order.

        Readers drop what they already have (each event carries its ``seq``), so an event
        that did reach Redis before its publish failed does no harm when it comes again.
        """
        sent = 0
        while self.unsent:
            batch = [self.unsent.popleft() for _ in range(min(500, len(self.unsent)))]
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for channel, data in batch:
                        pipe.publish(channel, data)
                    await asyncio.wait_for(pipe.execute(), COMMAND_TIMEOUT * 5)
            except BaseException:
                self.unsent.extendleft(reversed(batch))
                raise
            sent += len(batch)
        if sent:
            log.info("republished %d event(s) held while Redis was unreachable", sent)

    async def publish_moderation(self, payload: bytes) -> None:
        if not self._connected:
            raise ConnectionError(self.last_error or "Redis is not connected")
        await asyncio.wait_for(
            self.redis.publish(self.moderation_channel, payload), COMMAND_TIMEOUT
        )

    async def publish_votes(self, uri: str, comment_ids: list[int]) -> None:
        if not self._connected:
            raise ConnectionError(self.last_error or "Redis is not connected")
        await asyncio.wait_for(
            self.redis.publish(self.thread_channel(uri), protocol.votes_notice(comment_ids)),
            COMMAND_TIMEOUT,
        )

    async def follow(self, uri: str) -> None:
        channel = self.thread_channel(uri)
        self.channels.add(channel)
        pubsub = self._pubsub
        if pubsub is None or not self._connected:
            return  # the next session subscribes it and the hub catches up
        try:
            async with self._subscribe_lock:
                (confirmed,) = self._expect([channel])
                await pubsub.subscribe(channel)
            await asyncio.wait_for(confirmed, CONFIRM_TIMEOUT)
        except Exception as exc:
            log.warning("subscribing to %s failed: %s", channel, exc)

    async def unfollow(self, uri: str) -> None:
        channel = self.thread_channel(uri)
        self.channels.discard(channel)
        pubsub = self._pubsub
        if pubsub is not None and self._connected:
            async with self._subscribe_lock:
                await pubsub.unsubscribe(channel)

    async def presence(self, uri: str, local: int, *, write: bool) -> int:
        key = self._online_key(uri)
        now = time.time()
        async with self.redis.pipeline(transaction=False) as pipe:
            if write:
                if local:
                    pipe.hset(key, self.process_id, local)
                    pipe.expire(key, 3600)
                else:
                    pipe.hdel(key, self.process_id)
                pipe.publish(self.thread_channel(uri), protocol.presence_notice(self.process_id))
            pipe.hgetall(key)
            pipe.zrangebyscore(self._processes_key, now - STALE_AFTER, "+inf")
            results = await asyncio.wait_for(pipe.execute(), COMMAND_TIMEOUT)
        counts, alive = results[-2], set(results[-1])
        me = self.process_id.encode()
        return sum(int(n) for p, n in counts.items() if p != me and p in alive)

    async def health(self) -> str:
        return "ok" if self._connected else f"unavailable ({self.last_error})"
