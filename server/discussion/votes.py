"""Votes: anonymous voter ids, one vote per voter and comment, counts published live.

Readers are told apart without third-party cookies (the widget runs on other sites): the
browser asks once for a voter id (``POST /api/voters``) and keeps it. The id is a random
value signed with the site's secret, so nobody can mint ids or vote as someone else by
guessing; the random part alone is stored with a vote and never shown. A single sign-on
user votes as ``sso:<sub>`` (see :meth:`Votes.voter_of`, the one place that decides who
votes).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any

from itsdangerous import BadSignature, Signer

from db.votes import NotVotable, Tally, VoteStore
from server.auth import sso
from server.discussion.actions import Listeners, notify
from server.discussion.errors import InvalidInput, Limited, NotAllowed, UnknownComment
from server.discussion.ratelimit import PostLimiter
from server.errors import Unauthorized
from server.i18n import N_
from server.settings import Settings

log = logging.getLogger("kibitz.votes")

VALUES = (1, -1, 0)
BUMP_AFTER = 0.1  # seconds: cached reads show new counts this soon after a vote


class Voters:
    """Issues and checks signed anonymous voter ids."""

    def __init__(self, secret: str) -> None:
        self._signer = Signer(secret, salt="kibitz.voter")

    def issue(self) -> str:
        return self._signer.sign(secrets.token_urlsafe(16)).decode()

    def check(self, token: object) -> str:
        """The voter's stored identity, or :class:`Unauthorized` for a missing or forged id."""
        if not isinstance(token, str) or not token or len(token) > 200:
            raise Unauthorized(N_('Give the voter id from POST /api/voters as "voter".'))
        try:
            return "anon:" + self._signer.unsign(token).decode()
        except (BadSignature, UnicodeError):
            raise Unauthorized(N_("This voter id is not valid.")) from None


class Votes:
    def __init__(
        self,
        settings: Settings,
        store: VoteStore,
        listeners: Listeners,
        per_vote: PostLimiter,
        per_voter: PostLimiter,
    ) -> None:
        self.settings = settings
        self.store = store
        self.listeners = listeners
        self.voters = Voters(settings.secret_key)
        self.per_vote = per_vote
        self.per_voter = per_voter
        self._dirty: set[int] = set()  # threads whose votes_seq is due for a bump
        self._bumper: asyncio.Task[None] | None = None
        self._local: dict[int, int] = {}  # votes taken by this process, per thread
        self.changes = 0  # votes taken by this process, all threads

    def local_version(self, thread_id: int) -> int:
        """Votes this process took on the thread: with ``votes_seq`` it keys cached reads,
        so this process's own readers see a vote at once (other processes within
        ``BUMP_AFTER``, when the shared ``votes_seq`` moves)."""
        return self._local.get(thread_id, 0)

    def _changed(self, thread_id: int) -> None:
        self._local[thread_id] = self._local.get(thread_id, 0) + 1
        self.changes += 1
        self._dirty.add(thread_id)
        if self._bumper is None or self._bumper.done():
            self._bumper = asyncio.get_running_loop().create_task(self._bump_soon())

    async def _bump_soon(self) -> None:
        """Bump the version of every thread voted on in the last moment, in one statement."""
        while self._dirty:
            await asyncio.sleep(BUMP_AFTER)
            threads, self._dirty = sorted(self._dirty), set()
            try:
                await self.store.bump(threads)
            except Exception:
                log.exception("vote counts of threads %s not bumped; trying again", threads)
                self._dirty.update(threads)
                await asyncio.sleep(1)

    async def close(self) -> None:
        """Bump what is due now (shutdown), so no cached read elsewhere stays behind."""
        if self._bumper is not None:
            self._bumper.cancel()
            await asyncio.gather(self._bumper, return_exceptions=True)
        threads, self._dirty = sorted(self._dirty), set()
        try:
            await self.store.bump(threads)
        except Exception:
            log.exception("vote counts of threads %s not bumped at shutdown", threads)

    def check_enabled(self) -> None:
        if self.settings.votes == "off":
            raise NotAllowed(N_("Voting is switched off on this site."))

    async def _limit(self, limiter: PostLimiter, address: str | None, scope: str) -> None:
        if address is None or not limiter.items:
            return
        try:
            await limiter.hit(address, scope)
        except Limited as exc:
            raise Limited(
                exc.retry_after, N_("Too many votes from your address. Please wait a little.")
            ) from None
        except Exception:
            log.warning("rate limit store unavailable; %s from %s not limited", scope, address)

    async def new_voter(self, address: str | None) -> str:
        self.check_enabled()
        await self._limit(self.per_voter, address, "voter")
        return self.voters.issue()

    def voter_of(self, data: dict[str, Any]) -> str:
        """Who votes: a user the embedding site signed in (``"sso"``, stored as ``sso:<sub>``,
        so one user's vote is one vote from every browser), else the anonymous ``"voter"``.
        A bad sign-in token is 401, as for a comment."""
        if data.get("sso") is not None:
            return "sso:" + sso.verify(data["sso"], self.settings.sso_secret).sub
        return self.voters.check(data.get("voter"))

    def value_of(self, data: dict[str, Any]) -> int:
        value = data.get("value")
        if isinstance(value, bool) or not isinstance(value, int) or value not in VALUES:
            raise InvalidInput(fields={"value": N_("A vote is 1, -1, or 0 to withdraw it.")})
        if value == -1 and self.settings.votes == "up":
            raise InvalidInput(fields={"value": N_("This site takes likes only: 1 or 0.")})
        return value

    async def vote(self, comment_id: int, data: dict[str, Any], address: str | None) -> Tally:
        self.check_enabled()
        value = self.value_of(data)
        voter = self.voter_of(data)
        await self._limit(self.per_vote, address, "vote")
        try:
            tally = await self.store.vote(comment_id, voter, value)
        except NotVotable:
            raise UnknownComment(comment_id) from None
        if tally.changed:
            self._changed(tally.thread_id)
            await notify(self.listeners.votes, tally.uri, [comment_id])
        return tally
