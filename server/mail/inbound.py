"""``kibitz mail-in``: one answer to a notification mail, read from standard input, becomes
a reply under the same rules as any comment.

The message is parsed with the standard library (``email``, policy ``default``, which
decodes quoted-printable, base64 and charsets); the text/plain part is taken, or the HTML
one turned into text with its quoted blocks dropped; quotes, the "On … wrote:" line and the
signature are cut by ``mail-parser-reply`` (which knows English and German clients). What is
left goes through :meth:`server.discussion.actions.Discussion.submit`: validation,
sanitising, spam checks and moderation as for the form. A staff member's answer to a
held-comment mail approves the held comment and publishes the answer beneath it.

Anything that cannot be taken raises :class:`ReplyRefused` with one line for the MTA's log.
"""

from __future__ import annotations

import email
import re
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.utils import getaddresses
from html.parser import HTMLParser
from typing import TYPE_CHECKING

# mail-parser-reply ships no type information.
from mailparser_reply import EmailReplyParser  # type: ignore[import-untyped]

from db.models import Comment, Status
from server.discussion.errors import DiscussionError, InvalidInput
from server.discussion.moderation import Action
from server.discussion.validation import validate_comment
from server.errors import KibitzError
from server.mail.replies import ReplyRefused, ReplyTokens, token_of

if TYPE_CHECKING:
    from server.state import State

MAX_MESSAGE = 1024 * 1024
# Where the address a message was delivered to may be found, most reliable first.
RECIPIENT_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "To", "Cc")
# HTML elements whose content is the quoted mail (Apple Mail and Thunderbird use blockquote
# type=cite, Gmail div.gmail_quote, Outlook on the web div#divRplyFwdMsg and what follows).
QUOTE_CLASSES = {"gmail_quote", "moz-cite-prefix", "yahoo_quoted"}
QUOTE_IDS = {"divrplyfwdmsg", "appendonsend"}


@dataclass(frozen=True)
class Answer:
    sender: str
    sender_name: str
    token: str
    text: str


class _HtmlText(HTMLParser):
    """HTML mail as plain text, without quoted blocks, scripts and styles."""

    SKIP = frozenset({"script", "style", "head", "title"})
    BLOCK = frozenset(
        {"p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol"}
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skipping: list[str] = []  # the stack of open tags while inside a skipped element
        self.cut = False  # Outlook: everything after its reply header is the quote

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.cut:
            return
        if self.skipping:
            if tag not in ("br", "img", "hr", "meta", "input", "wbr"):
                self.skipping.append(tag)
            return
        found = dict(attrs)
        classes = set((found.get("class") or "").lower().split())
        ident = (found.get("id") or "").lower()
        if ident in QUOTE_IDS:
            self.cut = True
            return
        if tag in self.SKIP or tag == "blockquote" or classes & QUOTE_CLASSES:
            self.skipping.append(tag)
            return
        if tag == "br":
            self.out.append("\n")
        elif tag in self.BLOCK:
            self.out.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if self.cut:
            return
        if self.skipping:
            if tag in self.skipping:
                while self.skipping and self.skipping.pop() != tag:
                    pass
            return
        if tag in self.BLOCK:
            self.out.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping and not self.cut:
            self.out.append(re.sub(r"[ \t\r\n]+", " ", data))


def html_to_text(html: str) -> str:
    parser = _HtmlText()
    parser.feed(html)
    parser.close()
    lines = [line.strip() for line in "".join(parser.out).splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def new_text(text: str) -> str:
    """The part of a reply its sender wrote: above or below the quote, without the quote,
    the attribution line or the signature."""
    parsed = EmailReplyParser(languages=["en", "de"]).read(text.replace("\r\n", "\n"))
    kept = parsed.replies[0].body if parsed.replies else ""
    lines: list[str] = []
    for line in kept.splitlines():
        if line.rstrip() in ("--", "-- "):
            break  # the signature separator
        if line.lstrip().startswith(">"):
            continue  # quoted, whatever the position (bottom posting, interleaved)
        lines.append(line.rstrip())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _automatic(message: EmailMessage) -> bool:
    """An out-of-office note or other machine answer (RFC 3834 and common vendor headers):
    never a comment, or every holiday would post one."""
    submitted = str(message.get("Auto-Submitted", "no")).strip().lower()
    precedence = str(message.get("Precedence", "")).strip().lower()
    return (
        submitted != "no"
        or precedence in ("bulk", "junk", "list", "auto_reply")
        or any(message.get(h) is not None for h in ("X-Autoreply", "X-Autorespond"))
    )


def read_answer(raw: bytes, base: str, recipient: str | None = None) -> Answer:
    """Parse one RFC 5322 message; find the sender, the token and the new text."""
    if len(raw) > MAX_MESSAGE:
        raise ReplyRefused("the message is larger than 1 MiB")
    try:
        message = email.message_from_bytes(raw, policy=policy.default)
        assert isinstance(message, EmailMessage)
        senders = getaddresses(message.get_all("From") or [])
        candidates = [recipient] if recipient else []
        for header in RECIPIENT_HEADERS:
            candidates += [a for _, a in getaddresses(message.get_all(header) or [])]
        body = message.get_body(preferencelist=("plain", "html"))
        content = body.get_content() if body is not None else None
    except (ValueError, LookupError, TypeError, AttributeError, AssertionError) as exc:
        raise ReplyRefused(f"the message cannot be parsed: {exc}") from None
    if _automatic(message):
        raise ReplyRefused("the message is an automatic reply (out of office or similar)")
    if len(senders) != 1 or "@" not in senders[0][1]:
        raise ReplyRefused("the message has no single From address")
    name, sender = senders[0][0].strip(), senders[0][1].strip().lower()
    token = next((t for t in (token_of(a, base) for a in candidates if a) if t), None)
    if token is None:
        raise ReplyRefused(f"the message was not sent to a {base.replace('@', '+…@')} address")
    if not isinstance(content, str):
        raise ReplyRefused("the message has no text or HTML part")
    if body is not None and body.get_content_subtype() == "html":
        content = html_to_text(content)
    text = new_text(content)
    if not text:
        raise ReplyRefused("the message has no new text once quotes and signature are cut")
    return Answer(sender, name, token, text)


async def take(state: State, raw: bytes, recipient: str | None = None) -> Comment:
    """Turn the message into a reply, or raise :class:`ReplyRefused`; nothing is stored
    when it is refused."""
    settings = state.settings
    if not settings.mail_reply_address:
        raise ReplyRefused("KIBITZ_MAIL_REPLY_ADDRESS is not set")
    answer = read_answer(raw, settings.mail_reply_address, recipient)
    token = ReplyTokens(settings.secret_key, settings.mail_reply_days).check(
        answer.token, answer.sender
    )
    about = (await state.comments.by_ids([token.comment_id])).get(token.comment_id)
    if about is None:
        raise ReplyRefused("the comment this mail was about does not exist")
    async with state.db.read() as conn:
        uri = await conn.fetchval("SELECT uri FROM threads WHERE id = $1", about.thread_id)
    try:
        if token.kind == "h":
            return await _staff_answer(state, answer, about, uri, token.version)
        return await _reader_answer(state, answer, about, uri)
    except InvalidInput as exc:
        detail = "; ".join(f"{k}: {v}" for k, v in exc.fields.items()) or exc.message
        raise ReplyRefused(f"the reply is not valid: {detail}") from None
    except (DiscussionError, KibitzError) as exc:
        raise ReplyRefused(f"the reply was refused: {exc.message}") from None


async def _staff_answer(
    state: State, answer: Answer, held: Comment, uri: str, version: int | None
) -> Comment:
    """Approve the held comment (only the version the mail showed) and post the answer."""
    member = next(
        (m for m in await state.staff.active() if (m.email or "").lower() == answer.sender), None
    )
    if member is None:
        raise ReplyRefused("the sender is no longer an active staff member")
    data = validate_comment(
        {"author": member.name, "email": answer.sender, "text": answer.text, "parent": held.id}
    )
    if held.status != Status.APPROVED:
        await state.discussion.moderate(held.id, Action.APPROVE, member, version=version)
    return await state.discussion.submit(uri, data, address=None, staff=member)


async def _reader_answer(state: State, answer: Answer, about: Comment, uri: str) -> Comment:
    if about.status != Status.APPROVED:
        raise ReplyRefused("the comment this mail was about is no longer visible")
    parent = (
        (await state.comments.by_ids([about.parent_id])).get(about.parent_id)
        if about.parent_id is not None
        else None
    )
    own_name = parent.author if parent and parent.email.lower() == answer.sender else None
    name = own_name or answer.sender_name or answer.sender.partition("@")[0]
    data = validate_comment(
        {"author": name, "email": answer.sender, "text": answer.text, "parent": about.id}
    )
    return await state.discussion.submit(uri, data, address=None)
