"""The hub: in one process, each thread's local readers and what they have been sent.

Delivery rules, in the words of websockets' broadcast guide: a slow reader is disconnected,
never waited for. Fan-out is a plain loop that hands the same pre-encoded frame to every
reader's bounded queue (:meth:`Subscriber.push`); a reader whose queue is full is closed with
4000 and resumes from its cursor. Nothing in the loop awaits.

Ordering and completeness rest on the database, not on the broker. Every room (one thread's
readers in this process) knows the last ``seq`` it delivered; an event that arrives out of
order or after a gap makes the room read the missing events from the ``events`` table. A
reader that resumes with ``since`` is registered *before* the replay is read, so an event
committed during the replay is either in the replay or held and sent after it, and the
per-reader ``seq`` drops whatever arrives twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterable
from typing import TYPE_CHECKING

from db.comments import CommentStore
from db.models import Event
from realtime import protocol
from realtime.protocol import Frame

if TYPE_CHECKING:
    from realtime.broker import Broker

log = logging.getLogger("kibitz.live")

REPLAY_BATCH = 500
REPLAY_LIMIT = 1000  # default most events replayed to a resuming reader (KIBITZ_REPLAY_LIMIT)
PRESENCE_INTERVAL = 1.0  # at most one presence message per thread per second
VOTES_INTERVAL = 1.0  # at most one votes message per thread per second
MAX_HELD = 10_000  # live events held for one reader while its replay is read
# The periodic check (docs/live.md, "Bound after a fault"): every CHECK_INTERVAL seconds one
# query reads every open room's thread ``last_seq``; a room still behind CHECK_GRACE seconds
# later (longer than an event takes through the broker) reads the rest from the database.
CHECK_INTERVAL = 2.0
CHECK_GRACE = 0.5


class Subscriber:
    """One open connection as the hub sees it; a transport implements the I/O.

    ``push`` must never block: it queues the frame and says ``False`` when the connection's
    queue is full. ``send`` may wait (it is used only before the reader goes live).
    Slots, here and in the transports: thousands stay open, each without a ``__dict__``.
    """

    __slots__ = ("held", "live", "room", "seq", "staff_id")

    def __init__(self) -> None:
        self.seq = 0
        self.live = False
        self.held: list[Frame] = []
        self.room: Room | None = None
        self.staff_id: int | None = None  # whose credentials opened a moderation connection

    def push(self, frame: Frame) -> bool:
        raise NotImplementedError

    async def send(self, frame: Frame) -> None:
        raise NotImplementedError

    def cut_off(self) -> None:
        """Close with :data:`protocol.RESUME`; the transport does it without blocking."""
        raise NotImplementedError

    def recheck(self) -> None:
        """Re-check this moderation connection's credentials now (it closes if they died)."""


class Room:
    """One thread's readers in this process."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.subscribers: set[Subscriber] = set()
        self.seq: int | None = None  # last seq delivered; None until the room is open
        self.thread_id: int | None = None
        self.early: list[Frame] = []  # events that arrived while the room was opening
        self.ready = asyncio.Event()
        self.catch_up: asyncio.Task[None] | None = None
        self.catch_up_again = False
        # presence
        self.remote_online = 0  # readers of this thread in other processes, last we heard
        self.sent_online: int | None = None
        self.sent_at = -PRESENCE_INTERVAL
        self.local_changed = False
        self.presence_timer: asyncio.TimerHandle | None = None
        # votes: comments whose counts changed since the last votes message
        self.voted: set[int] = set()
        self.votes_sent_at = -VOTES_INTERVAL
        self.votes_timer: asyncio.TimerHandle | None = None
        self.votes_sending = False

    @property
    def online(self) -> int:
        return self.remote_online + len(self.subscribers)


class Hub:
    def __init__(
        self, comments: CommentStore, broker: Broker, replay_limit: int = REPLAY_LIMIT
    ) -> None:
        self.comments = comments
        self.broker = broker
        self.replay_limit = replay_limit
        self.rooms: dict[str, Room] = {}
        self.staff: set[Subscriber] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._watcher: asyncio.Task[None] | None = None
        self.interval = CHECK_INTERVAL
        self.checks = 0  # how many periodic checks found a room behind (for tests, logs)

    def start(self) -> None:
        """Start the periodic check that finds any committed event a room has not delivered."""
        self._watcher = asyncio.get_running_loop().create_task(self._watch())

    def _spawn(self, coro: Coroutine[object, object, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
        for room in self.rooms.values():
            if room.presence_timer:
                room.presence_timer.cancel()
            if room.votes_timer:
                room.votes_timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- shaping events ------------------------------------------------------------------

    async def frames_for(self, events: Iterable[Event]) -> list[Frame]:
        """Shape stored events as readers see them: a new comment as its transaction
        committed it (its event carries it), any other in its current state.

        At most one read of the events' comments, whatever the thread's size. An approved
        comment is shown in full; any other is either a placeholder or gone, and the event
        shape sends both as a placeholder (a later ``comment.deleted`` event removes one that
        has gone), so the thread's other rows never need reading here.
        """
        events = list(events)
        if not events:
            return []
        # A new comment's event carries the comment as its transaction committed it.
        comments = {e.comment_id: e.comment for e in events if e.comment is not None}
        missing = [e.comment_id for e in events if e.comment_id not in comments]
        if missing:
            comments.update(await self.comments.by_ids(missing))
        return [Frame(protocol.comment_event(e, comments.get(e.comment_id)), e.seq) for e in events]

    # -- readers ---------------------------------------------------------------------------

    async def subscribe(self, sub: Subscriber, uri: str, since: int | None) -> None:
        """Say hello, replay what ``since`` missed, then go live: gapless and without doubles."""
        thread = await self.comments.thread(uri)
        key = thread.uri if thread else uri
        sub.live, sub.held = False, []
        room = await self._join(key, sub)
        thread, cursor = await self.comments.cursor(key)  # read after registering
        await sub.send(Frame(protocol.hello(key, cursor, room.online)))
        start = cursor
        if since is not None and since != cursor:
            # Further behind than replay_limit events: a reset (reload the thread) costs the
            # server one read instead of sending the whole history to every such reader.
            if (
                thread is not None
                and 0 <= since < cursor
                and cursor - since <= self.replay_limit
                and await self._kept(thread.id, since)
            ):
                start = since
            else:
                await sub.send(Frame(protocol.RESET))
        sub.seq = start
        if thread is not None and start < cursor:
            while True:
                events = await self.comments.events_since(thread.id, sub.seq, REPLAY_BATCH)
                for frame in await self.frames_for(events):
                    if frame.seq is not None and frame.seq > sub.seq:
                        sub.seq = frame.seq
                        await sub.send(frame)
                if len(events) < REPLAY_BATCH:
                    break
        # No await from here on: held frames go out in order, then the reader is live.
        held, sub.held = sub.held, []
        for frame in held:
            if frame.seq is not None and frame.seq > sub.seq:
                sub.seq = frame.seq
                if not sub.push(frame):
                    self._cut_off(sub)
                    return
        sub.live = True

    async def _kept(self, thread_id: int, since: int) -> bool:
        oldest = await self.comments.oldest_seq(thread_id)
        return oldest is not None and oldest <= since + 1

    async def _join(self, uri: str, sub: Subscriber) -> Room:
        room = self.rooms.get(uri)
        if room is None:
            room = self.rooms[uri] = Room(uri)
            self._spawn(self._open(room))
        room.subscribers.add(sub)
        sub.room = room
        self._presence_changed(room, local=True)
        await room.ready.wait()
        if room.seq is None:
            raise RuntimeError(f"the live channel for {uri} could not be opened")
        return room

    async def _open(self, room: Room) -> None:
        """Follow the thread's broker channel first, then read where the thread stands."""
        try:
            await self.broker.follow(room.uri)
            try:
                room.remote_online = await self.broker.presence(room.uri, 0, write=False)
            except Exception as exc:
                log.debug("presence for %s unavailable: %s", room.uri, exc)
            thread = await self.comments.thread(room.uri)
            room.thread_id = thread.id if thread else None
            room.seq = thread.last_seq if thread else 0
            early, room.early = room.early, []
            for frame in early:
                self._offer(room, frame)
        except Exception:
            log.exception("opening the live room for %s failed", room.uri)
            if self.rooms.get(room.uri) is room:  # the next reader tries afresh
                del self.rooms[room.uri]
        finally:
            room.ready.set()

    async def unsubscribe(self, sub: Subscriber) -> None:
        room, sub.room = sub.room, None
        self.staff.discard(sub)
        if room is None:
            return
        room.subscribers.discard(sub)
        if room.subscribers:
            self._presence_changed(room, local=True)
            return
        if self.rooms.get(room.uri) is room:
            del self.rooms[room.uri]
            if room.presence_timer:
                room.presence_timer.cancel()
            if room.votes_timer:
                room.votes_timer.cancel()
            if room.catch_up:
                room.catch_up.cancel()
            try:
                await self.broker.unfollow(room.uri)
                await self.broker.presence(room.uri, 0, write=True)
            except Exception as exc:  # the broker may be down; its restart forgets us anyway
                log.debug("unfollow %s: %s", room.uri, exc)

    def _cut_off(self, sub: Subscriber) -> None:
        room = sub.room
        if room is not None:
            room.subscribers.discard(sub)
        self.staff.discard(sub)
        sub.cut_off()

    # -- events from the broker ----------------------------------------------------------

    def receive(self, uri: str, seq: int, payload: bytes) -> None:
        room = self.rooms.get(uri)
        if room is not None:
            self._offer(room, Frame(payload, seq))

    def _offer(self, room: Room, frame: Frame) -> None:
        assert frame.seq is not None
        if room.seq is None:
            room.early.append(frame)
        elif frame.seq <= room.seq:
            return
        elif frame.seq == room.seq + 1:
            room.seq = frame.seq
            self._fan_out(room, frame)
        else:  # a gap: an earlier event is late or was lost; the database has it
            self.catch_up(room)

    def _fan_out(self, room: Room, frame: Frame) -> None:
        seq = frame.seq
        assert seq is not None
        overflowed: list[Subscriber] = []
        for sub in room.subscribers:
            if seq <= sub.seq:
                continue
            if not sub.live:
                sub.held.append(frame)
                if len(sub.held) > MAX_HELD:
                    overflowed.append(sub)
                continue
            sub.seq = seq
            if not sub.push(frame):
                overflowed.append(sub)
        for sub in overflowed:
            log.info("reader of %s fell behind; closed so that it resumes", room.uri)
            self._cut_off(sub)

    def catch_up(self, room: Room) -> None:
        if room.catch_up is not None and not room.catch_up.done():
            room.catch_up_again = True
            return
        room.catch_up = asyncio.get_running_loop().create_task(self._catch_up(room))
        self._tasks.add(room.catch_up)
        room.catch_up.add_done_callback(self._tasks.discard)

    async def _catch_up(self, room: Room) -> None:
        """Deliver every stored event after the room's seq, in order, from the database."""
        await room.ready.wait()
        while True:
            room.catch_up_again = False
            try:
                if room.thread_id is None:
                    thread = await self.comments.thread(room.uri)
                    room.thread_id = thread.id if thread else None
                while room.thread_id is not None and room.seq is not None:
                    events = await self.comments.events_since(
                        room.thread_id, room.seq, REPLAY_BATCH
                    )
                    for frame in await self.frames_for(events):
                        self._offer(room, frame)
                    if len(events) < REPLAY_BATCH:
                        break
            except Exception:
                log.exception("catching up %s from the database failed; retrying", room.uri)
                await asyncio.sleep(1)
                room.catch_up_again = True
            if not room.catch_up_again or self.rooms.get(room.uri) is not room:
                return

    async def _watch(self) -> None:
        failing = False
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.check_rooms()
            except Exception as exc:  # the database is down: the next round tries again
                if not failing:
                    log.warning("checking open rooms against the database failed: %s", exc)
                failing = True
            else:
                failing = False

    async def check_rooms(self) -> int:
        """Catch up every open room that is behind its thread's ``last_seq``; say how many.

        This is what makes delivery independent of the broker: an event whose publish was
        lost (Redis down or restarting, a process killed between commit and publish, another
        process reconnecting later than this one) is committed, so it shows here. A room found
        behind gets :data:`CHECK_GRACE` to receive the event the ordinary way first, so busy
        threads whose events are merely in flight cost no extra reads.
        """
        rooms = [r for r in self.rooms.values() if r.seq is not None]
        if not rooms:
            return 0
        ids = [r.thread_id for r in rooms if r.thread_id is not None]
        unknown = [r.uri for r in rooms if r.thread_id is None]
        stands, created = await self.comments.last_seqs(ids, unknown)
        behind: list[tuple[Room, int]] = []
        for room in rooms:
            if room.thread_id is None and room.uri in created:
                room.thread_id = created[room.uri].id
            last = stands.get(room.thread_id) if room.thread_id is not None else None
            if last is None and room.uri in created:
                last = created[room.uri].last_seq
            if last is not None and room.seq is not None and last > room.seq:
                behind.append((room, last))
        if not behind:
            return 0
        await asyncio.sleep(CHECK_GRACE)
        late = 0
        for room, last in behind:
            if self.rooms.get(room.uri) is room and room.seq is not None and room.seq < last:
                late += 1
                self.catch_up(room)
        if late:
            self.checks += late
            log.info("%d live room(s) were behind the database; caught up", late)
        return late

    def resync(self) -> None:
        """The broker (re)connected: every room reads what it may have missed."""
        for room in list(self.rooms.values()):
            if room.seq is not None:
                self.catch_up(room)
            self._presence_changed(room, local=True)

    # -- moderation ------------------------------------------------------------------------

    def add_staff(self, sub: Subscriber) -> None:
        sub.live = True
        self.staff.add(sub)

    def receive_moderation(self, payload: bytes) -> None:
        staff_id = protocol.unpack_staff_recheck(payload)
        if staff_id is not None:
            for sub in self.staff:
                if sub.staff_id == staff_id:
                    sub.recheck()
            return
        frame = Frame(payload)
        for sub in [s for s in self.staff if not s.push(frame)]:
            self._cut_off(sub)

    # -- presence --------------------------------------------------------------------------

    def receive_presence(self, uri: str) -> None:
        room = self.rooms.get(uri)
        if room is not None:
            self._presence_changed(room, local=False)

    def recheck_presence(self) -> None:
        """Counts of processes that died expire in the broker; look again now and then."""
        for room in self.rooms.values():
            self._presence_changed(room, local=False)

    def local_counts(self) -> dict[str, int]:
        return {uri: len(room.subscribers) for uri, room in self.rooms.items()}

    def _presence_changed(self, room: Room, *, local: bool) -> None:
        room.local_changed = room.local_changed or local
        if room.presence_timer is not None:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, room.sent_at + PRESENCE_INTERVAL - loop.time())
        room.presence_timer = loop.call_later(delay, self._spawn_presence, room)

    def _spawn_presence(self, room: Room) -> None:
        room.presence_timer = None  # a change from now on schedules the next message
        self._spawn(self._send_presence(room))

    async def _send_presence(self, room: Room) -> None:
        room.sent_at = asyncio.get_running_loop().time()
        local, room.local_changed = room.local_changed, False
        try:
            room.remote_online = await self.broker.presence(
                room.uri, len(room.subscribers), write=local
            )
        except Exception as exc:
            log.debug("presence for %s unavailable: %s", room.uri, exc)
        if self.rooms.get(room.uri) is not room or room.online == room.sent_online:
            return
        room.sent_online = room.online
        frame = Frame(protocol.presence(room.online))
        overflowed = [s for s in room.subscribers if s.live and not s.push(frame)]
        for sub in overflowed:
            self._cut_off(sub)

    # -- votes -----------------------------------------------------------------------------

    def receive_votes(self, uri: str, comment_ids: list[int]) -> None:
        """Votes changed on these comments: coalesce into one message a second per thread.

        The notice carries ids only; the counts are read from the database when the message
        goes out, so every reader gets the latest counts whatever order notices arrived in.
        While a message is scheduled or being sent, new ids only join the next one.
        """
        room = self.rooms.get(uri)
        if room is None:
            return
        room.voted.update(comment_ids)
        self._schedule_votes(room)

    def _schedule_votes(self, room: Room) -> None:
        if room.votes_timer is not None or room.votes_sending or not room.voted:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, room.votes_sent_at + VOTES_INTERVAL - loop.time())
        room.votes_timer = loop.call_later(delay, self._spawn_votes, room)

    def _spawn_votes(self, room: Room) -> None:
        room.votes_timer = None
        room.votes_sending = True
        self._spawn(self._send_votes(room))

    async def _send_votes(self, room: Room) -> None:
        loop = asyncio.get_running_loop()
        try:
            ids, room.voted = room.voted, set()
            try:
                found = await self.comments.by_ids(ids)
            except Exception as exc:  # the next vote tries again; counts also come with pages
                log.warning("vote counts for %s unavailable: %s", room.uri, exc)
                return
            counts = {
                cid: (c.up, c.down)
                for cid, c in sorted(found.items())
                if c.status == "approved" and room.thread_id in (None, c.thread_id)
            }
            # The read took a moment: still never two messages within the interval.
            wait = room.votes_sent_at + VOTES_INTERVAL - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not counts or self.rooms.get(room.uri) is not room:
                return
            room.votes_sent_at = loop.time()
            frame = Frame(protocol.votes(counts))
            overflowed = [s for s in room.subscribers if s.live and not s.push(frame)]
            for sub in overflowed:
                self._cut_off(sub)
        finally:
            room.votes_sending = False
            if self.rooms.get(room.uri) is room:
                self._schedule_votes(room)
