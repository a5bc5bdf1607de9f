"""Settings: read once from the environment into one frozen object, then passed down.

Nothing below this module reads ``os.environ``. Each setting is one :class:`Setting` row in
``SETTINGS``: its variable, the ``Settings`` field it fills, its default, the parser that checks
it and its help. :func:`load` builds ``Settings`` from the rows and ``tools/settings_table.py``
the docs tables, so names, defaults, checks and docs cannot drift apart.
"""

from __future__ import annotations

import functools
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from server.errors import ConfigError

LANGUAGES = ("en", "de")
MODERATION_POLICIES = ("none", "first-time", "all")
VOTE_MODES = ("updown", "up", "off")

# A parser turns the variable's text (the default when unset or blank) into the field's value,
# or raises ConfigError naming the variable and what it accepts.
Parser = Callable[[str, str], Any]


@dataclass(frozen=True)
class Setting:
    variable: str
    field: str
    default: str
    parse: Parser
    help: str


# -- parsers -----------------------------------------------------------------------------------


def text(name: str, raw: str) -> str:
    return raw


def optional(name: str, raw: str) -> str | None:
    return raw or None


def url(prefixes: tuple[str, ...], expected: str) -> Parser:
    """An optional URL that must start with one of ``prefixes``."""

    def parse(name: str, raw: str) -> str | None:
        if raw and not raw.startswith(prefixes):
            raise ConfigError(name, raw, expected)
        return raw or None

    return parse


def choice(options: tuple[str, ...], expected: str) -> Parser:
    def parse(name: str, raw: str) -> str:
        value = raw.lower()
        if value not in options:
            raise ConfigError(name, value, expected)
        return value

    return parse


def whole(low: int = 0, high: int | None = None) -> Parser:
    def parse(name: str, raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(name, raw, "a whole number") from None
        if high is not None and not low <= value <= high:
            raise ConfigError(name, raw, f"a whole number from {low} to {high}")
        if value < low:
            raise ConfigError(name, raw, f"a whole number of at least {low}")
        return value

    return parse


def port(name: str, raw: str) -> int | None:
    if not raw:
        return None
    value: int = whole(1)(name, raw)
    if value > 65535:
        raise ConfigError(name, str(value), "a port number up to 65535")
    return value


def boolean(name: str, raw: str) -> bool:
    value = raw.lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(name, value, "true or false")


def public_url(name: str, raw: str) -> str:
    value = raw.rstrip("/")
    try:
        origin_of(value)
    except ValueError:
        raise ConfigError(
            name, value, "an http(s) URL such as https://comments.example.com"
        ) from None
    return value


def origins(name: str, raw: str) -> tuple[str, ...]:
    found = []
    for item in raw.split(","):
        if item.strip():
            try:
                found.append(origin_of(item))
            except ValueError:
                raise ConfigError(
                    name, item, "comma-separated origins such as https://blog.example.com"
                ) from None
    return tuple(dict.fromkeys(found))


def listed(name: str, raw: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in raw.split(",") if p.strip())


def sso_secret(name: str, raw: str) -> str | None:
    if raw and len(raw.encode()) < 32:
        # HS256 with a short secret can be brute-forced offline from one token. The value is
        # a secret: the message never repeats it.
        raise ConfigError(name, "…", "a random secret of at least 32 bytes")
    return raw or None


def rate(name: str, raw: str) -> str | None:
    if raw.lower() == "off":
        return None
    from limits import parse_many

    try:
        parse_many(raw)
    except ValueError:
        raise ConfigError(name, raw, "limits notation such as 5/minute;30/hour, or off") from None
    return raw


def fill_seconds(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(name, raw, "a number of seconds") from None
    if not 0 <= value <= 3:
        raise ConfigError(name, str(value), "between 0 and 3 seconds")
    return value


def path(name: str, raw: str) -> Path:
    return Path(raw).expanduser()


def bare_address(name: str, raw: str) -> str | None:
    """An optional plain address (``reply@example.com``): one ``@``, no ``+``, no name."""
    if raw and (
        raw.count("@") != 1
        or "+" in raw
        or not all(raw.split("@"))
        or any(c.isspace() or c in "<>" for c in raw)
    ):
        raise ConfigError(name, raw, "a bare address such as reply@example.com")
    return raw or None


# -- the table ---------------------------------------------------------------------------------

# Order is the order of the docs table. A help text's "; default: …" tail is shown as the
# default of a setting whose default is worked out at start (database, secret, mail sender).
SETTINGS: tuple[Setting, ...] = (
    Setting(
        "KIBITZ_DATABASE_URL",
        "database_url",
        "",
        url(
            ("sqlite:///", "postgresql://", "postgres://"),
            "sqlite:///file.db, sqlite:////absolute/file.db or postgresql://…",
        ),
        "sqlite:///relative.db, sqlite:////absolute.db or postgresql://…; "
        "default: a SQLite file in KIBITZ_DATA_DIR",
    ),
    Setting(
        "KIBITZ_REDIS_URL",
        "redis_url",
        "",
        url(("redis://", "rediss://", "unix://"), "a redis:// or rediss:// URL"),
        "redis://…; when set, live events and rate limits go through "
        "Redis, so several processes and hosts can serve one site; default: in-process fan-out "
        "(one process)",
    ),
    Setting(
        "KIBITZ_DATA_DIR",
        "data_dir",
        "./data",
        path,
        "where the embedded default keeps its database and secret",
    ),
    Setting(
        "KIBITZ_SECRET_KEY",
        "secret_key",
        "",
        text,
        "signs sessions and edit tokens; default: generated once into the data dir",
    ),
    Setting(
        "KIBITZ_MODERATION",
        "moderation",
        "first-time",
        choice(MODERATION_POLICIES, "none, first-time or all"),
        "none (publish at once), first-time (hold unless an "
        "earlier comment with the same e-mail address was approved) or all (hold every comment)",
    ),
    Setting(
        "KIBITZ_MAX_LINKS",
        "max_links",
        "2",
        whole(1),
        "under first-time, a comment with this many links or more is held",
    ),
    Setting(
        "KIBITZ_ALLOWED_ORIGINS",
        "allowed_origins",
        "",
        origins,
        "comma-separated origins allowed to embed the widget and open the "
        "live channel; default: the site's own origin only",
    ),
    Setting(
        "KIBITZ_PUBLIC_URL",
        "public_url",
        "http://127.0.0.1:8000",
        public_url,
        "the site's own origin",
    ),
    Setting(
        "KIBITZ_EDIT_WINDOW",
        "edit_window",
        "900",
        whole(),
        "seconds a commenter may edit or delete their comment",
    ),
    Setting(
        "KIBITZ_LANGUAGE",
        "language",
        "en",
        choice(LANGUAGES, "one of " + ", ".join(LANGUAGES)),
        "interface language: en or de",
    ),
    Setting(
        "KIBITZ_FOLLOW_AUTHOR_LINKS",
        "follow_author_links",
        "false",
        boolean,
        "true drops nofollow from commenters' website links",
    ),
    Setting("KIBITZ_MAX_DEPTH", "max_depth", "5", whole(1), "deepest reply level shown nested"),
    Setting(
        "KIBITZ_SMTP_URL",
        "smtp_url",
        "",
        url(("smtp://", "smtps://"), "smtp://user:pass@host:587"),
        "smtp://user:pass@host:587 for notification mail; default: no mail",
    ),
    Setting(
        "KIBITZ_POST_RATE",
        "post_rate",
        "5/minute;30/hour",
        rate,
        "comments one client address may post; off disables",
    ),
    Setting(
        "KIBITZ_TRUSTED_PROXIES",
        "trusted_proxies",
        "",
        listed,
        "comma-separated proxy addresses (or networks) whose "
        "X-Forwarded-For is believed; default: none",
    ),
    Setting(
        "KIBITZ_ADDRESS_RETENTION_DAYS",
        "address_retention_days",
        "30",
        whole(),
        "client addresses are erased this many days after the comment",
    ),
    Setting(
        "KIBITZ_EVENT_RETENTION_DAYS",
        "event_retention_days",
        "7",
        whole(1),
        "live events kept for resuming",
    ),
    Setting(
        "KIBITZ_SESSION_HOURS",
        "session_hours",
        "12",
        whole(1),
        "hours after which staff sessions expire",
    ),
    Setting(
        "KIBITZ_DUPLICATE_WINDOW",
        "duplicate_window",
        "600",
        whole(),
        "seconds within which the same text on the same thread is held as a duplicate; 0 disables",
    ),
    Setting(
        "KIBITZ_MAIL_FROM",
        "mail_from",
        "",
        text,
        "sender of notification mail; default: kibitz@ + the public host",
    ),
    Setting(
        "KIBITZ_MIN_FILL_SECONDS",
        "min_fill_seconds",
        "2",
        fill_seconds,
        "a form submitted faster than this after rendering is held",
    ),
    Setting(
        "KIBITZ_REDIS_PREFIX",
        "redis_prefix",
        "kibitz",
        text,
        "prefix of every Redis key and channel kibitz uses",
    ),
    Setting(
        "KIBITZ_SSO_SECRET",
        "sso_secret",
        "",
        sso_secret,
        "shared secret (HS256, at least 32 bytes) with which the embedding site signs its user "
        "into the widget (docs/sso.md); default: single sign-on off",
    ),
    Setting(
        "KIBITZ_SSO_ONLY",
        "sso_only",
        "false",
        boolean,
        "true refuses comments without a valid single sign-on token",
    ),
    Setting(
        "KIBITZ_SSO_LOGIN_URL",
        "sso_login_url",
        "",
        url(("http://", "https://"), "an http(s) URL"),
        "where the widget sends readers to sign in when KIBITZ_SSO_ONLY is true",
    ),
    Setting(
        "KIBITZ_LIVE_URL",
        "live_url",
        "",
        url(("ws://", "wss://"), "a ws:// or wss:// URL"),
        "where browsers open the live channel (ws:// or wss://…/ws); default: "
        "the site's /ws, or the live port's when the live channel is served apart",
    ),
    Setting(
        "KIBITZ_LIVE_PORT",
        "live_port",
        "",
        port,
        "serve the live channel on this port too (set by kibitz serve "
        "--live-port); empty: only the site's own /ws",
    ),
    Setting(
        "KIBITZ_LIVE_HOST",
        "live_host",
        "127.0.0.1",
        text,
        "address the live port binds (set by kibitz serve --host)",
    ),
    Setting(
        "KIBITZ_HTTP_PORT",
        "http_port",
        "",
        port,
        "the HTTP port of this server (set by kibitz serve); the live port "
        "accepts the origins that listener would",
    ),
    Setting(
        "KIBITZ_WORKERS",
        "workers",
        "1",
        whole(1),
        "processes serving on this host (set by kibitz serve --workers); "
        "above 1 they share the live port",
    ),
    Setting(
        "KIBITZ_WEBHOOK_ALLOW_PRIVATE",
        "webhook_allow_private",
        "false",
        boolean,
        "true lets webhooks reach private, loopback and link-local addresses "
        "(a receiver on this host or network)",
    ),
    Setting(
        "KIBITZ_MAIL_REPLY_ADDRESS",
        "mail_reply_address",
        "",
        bare_address,
        "address whose plus-addressed form (reply+TOKEN@…) notification mails carry as "
        "Reply-To, for answers taken by kibitz mail-in; default: no replies by e-mail",
    ),
    Setting(
        "KIBITZ_MAIL_REPLY_DAYS",
        "mail_reply_days",
        "14",
        whole(1),
        "days a reply address in a mail stays valid",
    ),
    Setting(
        "KIBITZ_PAGE_SIZE",
        "page_size",
        "50",
        whole(1, 200),
        "top-level comments (each with its replies) on one page of a post; 1 to 200",
    ),
    Setting(
        "KIBITZ_VOTES",
        "votes",
        "updown",
        choice(VOTE_MODES, "updown, up or off"),
        "updown (up and down votes), up (likes only) or off",
    ),
    Setting(
        "KIBITZ_VOTE_RATE",
        "vote_rate",
        "60/minute;600/hour",
        rate,
        "votes one client address may cast, in the limits notation; off disables",
    ),
    Setting(
        "KIBITZ_VOTER_RATE",
        "voter_rate",
        "10/minute;50/hour",
        rate,
        "anonymous voter ids one client address may get; off disables",
    ),
    Setting(
        "KIBITZ_CLOSE_AFTER_DAYS",
        "close_after_days",
        "0",
        whole(),
        "close a thread to new comments this many days after its post's date (or its first "
        "comment); 0 never closes automatically",
    ),
    Setting(
        "KIBITZ_LIVE_PER_ADDRESS",
        "live_per_address",
        "50",
        whole(1),
        "open live connections one client address (an IPv6 /64) may hold in one process, "
        "on /ws and the live port together; more are refused with 429",
    ),
    Setting(
        "KIBITZ_REPLAY_LIMIT",
        "replay_limit",
        "1000",
        whole(1),
        "most events a reader resuming with since is sent; further behind, it gets reset "
        "and reloads the thread",
    ),
)


@dataclass(frozen=True)
class Settings:
    database_url: str
    redis_url: str | None
    data_dir: Path
    secret_key: str
    moderation: str
    max_links: int
    allowed_origins: tuple[str, ...]
    public_url: str
    edit_window: int
    language: str
    follow_author_links: bool
    max_depth: int
    smtp_url: str | None
    post_rate: str | None
    trusted_proxies: tuple[str, ...]
    address_retention_days: int
    event_retention_days: int
    session_hours: int
    duplicate_window: int
    mail_from: str
    min_fill_seconds: float
    redis_prefix: str
    sso_secret: str | None = None
    sso_only: bool = False
    sso_login_url: str | None = None
    live_url: str | None = None
    live_port: int | None = None
    live_host: str = "127.0.0.1"
    http_port: int | None = None
    workers: int = 1
    webhook_allow_private: bool = False
    mail_reply_address: str | None = None
    mail_reply_days: int = 14
    page_size: int = 50
    votes: str = "updown"
    vote_rate: str | None = "60/minute;600/hour"
    voter_rate: str | None = "10/minute;50/hour"
    close_after_days: int = 0
    live_per_address: int = 50
    replay_limit: int = 1000

    @property
    def public_origin(self) -> str:
        return origin_of(self.public_url)

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith(("postgresql://", "postgres://"))

    @property
    def https(self) -> bool:
        return self.public_url.startswith("https://")


@functools.lru_cache(maxsize=1024)  # every POST and live connection asks for a few origins
def origin_of(url: str) -> str:
    """Return ``scheme://host[:port]`` with default ports dropped, as browsers send ``Origin``."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    default = 443 if parts.scheme == "https" else 80
    port = f":{parts.port}" if parts.port and parts.port != default else ""
    return f"{parts.scheme}://{host}{port}"


# Every field of Settings has exactly one row.
assert [s.field for s in SETTINGS] == [f.name for f in fields(Settings)], "SETTINGS ≠ Settings"


def load(environ: Mapping[str, str] | None = None, *, create_secret: bool = True) -> Settings:
    """Build :class:`Settings` from ``environ`` (default ``os.environ``), validating every value.

    A wrong value raises :class:`ConfigError` naming the variable and what it accepts, so the
    operator sees one clear line instead of a traceback deep inside a request.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        raw = env.get(setting.variable, "").strip() or setting.default
        values[setting.field] = setting.parse(setting.variable, raw)
    # The three defaults worked out from other settings.
    data_dir: Path = values["data_dir"]
    if values["database_url"] is None:
        values["database_url"] = f"sqlite:///{data_dir / 'kibitz.db'}"
    if not values["mail_from"]:
        host = urlsplit(origin_of(values["public_url"])).hostname
        values["mail_from"] = "kibitz@" + (host or "localhost")
    if not values["secret_key"]:
        values["secret_key"] = (
            _stored_secret(data_dir) if create_secret else "unset-secret-for-offline-commands"
        )
    if values["sso_only"] and values["sso_secret"] is None:
        raise ConfigError("KIBITZ_SSO_ONLY", "true", "false unless KIBITZ_SSO_SECRET is set")
    return Settings(**values)


def _stored_secret(data_dir: Path) -> str:
    """Return the secret kept in the data dir, creating it once.

    ``O_EXCL`` makes the first of several starting processes win; the others read its key, so
    every worker signs with the same secret.
    """
    path = data_dir / "secret_key"
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):
            value = path.read_text().strip()
            if value:
                return value
            import time

            time.sleep(0.02)
        raise ConfigError("KIBITZ_SECRET_KEY", str(path), "a non-empty secret file") from None
    with os.fdopen(fd, "w") as f:
        value = secrets.token_urlsafe(48)
        f.write(value + "\n")
    return value
