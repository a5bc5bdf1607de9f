"""Settings: read once from the environment into one frozen object, then passed down.

Nothing below this module reads ``os.environ``. The table ``SETTINGS`` is the single source
for names, defaults and help text, so docs and error messages cannot drift from the code.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from server.errors import ConfigError

# (environment variable, default, help). Order is the order of the docs table.
SETTINGS: tuple[tuple[str, str, str], ...] = (
    (
        "KIBITZ_DATABASE_URL",
        "",
        "sqlite:///relative.db, sqlite:////absolute.db or postgresql://…; "
        "default: a SQLite file in KIBITZ_DATA_DIR",
    ),
    (
        "KIBITZ_REDIS_URL",
        "",
        "redis://…; when set, live events and rate limits go through "
        "Redis, so several processes and hosts can serve one site; default: in-process fan-out "
        "(one process)",
    ),
    ("KIBITZ_DATA_DIR", "./data", "where the embedded default keeps its database and secret"),
    (
        "KIBITZ_SECRET_KEY",
        "",
        "signs sessions and edit tokens; default: generated once into the data dir",
    ),
    (
        "KIBITZ_MODERATION",
        "first-time",
        "none (publish at once), first-time (hold unless an "
        "earlier comment with the same e-mail address was approved) or all (hold every comment)",
    ),
    ("KIBITZ_MAX_LINKS", "2", "under first-time, a comment with this many links or more is held"),
    (
        "KIBITZ_ALLOWED_ORIGINS",
        "",
        "comma-separated origins allowed to embed the widget and open the "
        "live channel; default: the site's own origin only",
    ),
    ("KIBITZ_PUBLIC_URL", "http://127.0.0.1:8000", "the site's own origin"),
    ("KIBITZ_EDIT_WINDOW", "900", "seconds a commenter may edit or delete their comment"),
    ("KIBITZ_LANGUAGE", "en", "interface language: en or de"),
    ("KIBITZ_FOLLOW_AUTHOR_LINKS", "false", "true drops nofollow from commenters' website links"),
    ("KIBITZ_MAX_DEPTH", "5", "deepest reply level shown nested"),
    ("KIBITZ_SMTP_URL", "", "smtp://user:pass@host:587 for notification mail; default: no mail"),
    ("KIBITZ_POST_RATE", "5/minute;30/hour", "comments one client address may post; off disables"),
    (
        "KIBITZ_TRUSTED_PROXIES",
        "",
        "comma-separated proxy addresses (or networks) whose "
        "X-Forwarded-For is believed; default: none",
    ),
    (
        "KIBITZ_ADDRESS_RETENTION_DAYS",
        "30",
        "client addresses are erased this many days after the comment",
    ),
    ("KIBITZ_EVENT_RETENTION_DAYS", "7", "live events kept for resuming"),
    ("KIBITZ_SESSION_HOURS", "12", "hours after which staff sessions expire"),
    (
        "KIBITZ_DUPLICATE_WINDOW",
        "600",
        "seconds within which the same text on the same thread is held as a duplicate; 0 disables",
    ),
    (
        "KIBITZ_PAGE_SIZE",
        "50",
        "top-level comments (each with its replies) on one page of a post; 1 to 200",
    ),
    ("KIBITZ_VOTES", "updown", "updown (up and down votes), up (likes only) or off"),
    (
        "KIBITZ_VOTE_RATE",
        "60/minute;600/hour",
        "votes one client address may cast, in the limits notation; off disables",
    ),
    (
        "KIBITZ_VOTER_RATE",
        "10/minute;50/hour",
        "anonymous voter ids one client address may get; off disables",
    ),
    (
        "KIBITZ_CLOSE_AFTER_DAYS",
        "0",
        "close a thread to new comments this many days after its post's date (or its first "
        "comment); 0 never closes automatically",
    ),
    ("KIBITZ_MAIL_FROM", "", "sender of notification mail; default: kibitz@ + the public host"),
    ("KIBITZ_MIN_FILL_SECONDS", "2", "a form submitted faster than this after rendering is held"),
    ("KIBITZ_REDIS_PREFIX", "kibitz", "prefix of every Redis key and channel kibitz uses"),
    (
        "KIBITZ_LIVE_URL",
        "",
        "where browsers open the live channel (ws:// or wss://…/ws); default: "
        "the site's /ws, or the live port's when the live channel is served apart",
    ),
    (
        "KIBITZ_LIVE_PORT",
        "",
        "serve the live channel on this port too (set by kibitz serve "
        "--live-port); empty: only the site's own /ws",
    ),
    ("KIBITZ_LIVE_HOST", "127.0.0.1", "address the live port binds (set by kibitz serve --host)"),
    (
        "KIBITZ_HTTP_PORT",
        "",
        "the HTTP port of this server (set by kibitz serve); the live port "
        "accepts the origins that listener would",
    ),
    (
        "KIBITZ_WORKERS",
        "1",
        "processes serving on this host (set by kibitz serve --workers); "
        "above 1 they share the live port",
    ),
)

LANGUAGES = ("en", "de")
MODERATION_POLICIES = ("none", "first-time", "all")
VOTE_MODES = ("updown", "up", "off")


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
    live_url: str | None = None
    live_port: int | None = None
    live_host: str = "127.0.0.1"
    http_port: int | None = None
    workers: int = 1
    page_size: int = 50
    votes: str = "updown"
    vote_rate: str | None = "60/minute;600/hour"
    voter_rate: str | None = "10/minute;50/hour"
    close_after_days: int = 0

    @property
    def public_origin(self) -> str:
        return origin_of(self.public_url)

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith(("postgresql://", "postgres://"))

    @property
    def https(self) -> bool:
        return self.public_url.startswith("https://")


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


def load(environ: Mapping[str, str] | None = None, *, create_secret: bool = True) -> Settings:
    """Build :class:`Settings` from ``environ`` (default ``os.environ``), validating every value.

    A wrong value raises :class:`ConfigError` naming the variable and what it accepts, so the
    operator sees one clear line instead of a traceback deep inside a request.
    """
    env = dict(os.environ if environ is None else environ)

    def get(name: str) -> str:
        default = next(d for n, d, _ in SETTINGS if n == name)
        value = env.get(name, "").strip()
        return value if value else default

    def integer(name: str, low: int = 0) -> int:
        raw = get(name)
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(name, raw, "a whole number") from None
        if value < low:
            raise ConfigError(name, raw, f"a whole number of at least {low}")
        return value

    def boolean(name: str) -> bool:
        raw = get(name).lower()
        if raw in ("1", "true", "yes", "on"):
            return True
        if raw in ("0", "false", "no", "off"):
            return False
        raise ConfigError(name, raw, "true or false")

    data_dir = Path(get("KIBITZ_DATA_DIR")).expanduser()

    database_url = get("KIBITZ_DATABASE_URL") or f"sqlite:///{data_dir / 'kibitz.db'}"
    if not database_url.startswith(("sqlite:///", "postgresql://", "postgres://")):
        raise ConfigError(
            "KIBITZ_DATABASE_URL",
            database_url,
            "sqlite:///file.db, sqlite:////absolute/file.db or postgresql://…",
        )

    redis_url = get("KIBITZ_REDIS_URL") or None
    if redis_url and not redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError("KIBITZ_REDIS_URL", redis_url, "a redis:// or rediss:// URL")

    moderation = get("KIBITZ_MODERATION").lower()
    if moderation not in MODERATION_POLICIES:
        raise ConfigError("KIBITZ_MODERATION", moderation, "none, first-time or all")

    language = get("KIBITZ_LANGUAGE").lower()
    if language not in LANGUAGES:
        raise ConfigError("KIBITZ_LANGUAGE", language, "one of " + ", ".join(LANGUAGES))

    public_url = get("KIBITZ_PUBLIC_URL").rstrip("/")
    try:
        public_origin = origin_of(public_url)
    except ValueError:
        raise ConfigError(
            "KIBITZ_PUBLIC_URL", public_url, "an http(s) URL such as https://comments.example.com"
        ) from None

    origins = []
    for item in get("KIBITZ_ALLOWED_ORIGINS").split(","):
        if item.strip():
            try:
                origins.append(origin_of(item))
            except ValueError:
                raise ConfigError(
                    "KIBITZ_ALLOWED_ORIGINS",
                    item,
                    "comma-separated origins such as https://blog.example.com",
                ) from None

    def rate(name: str) -> str | None:
        value = get(name)
        if value.lower() == "off":
            return None
        from limits import parse_many

        try:
            parse_many(value)
        except ValueError:
            raise ConfigError(
                name, value, "limits notation such as 5/minute;30/hour, or off"
            ) from None
        return value

    post_rate_value = rate("KIBITZ_POST_RATE")

    votes = get("KIBITZ_VOTES").lower()
    if votes not in VOTE_MODES:
        raise ConfigError("KIBITZ_VOTES", votes, "updown, up or off")
    page_size = integer("KIBITZ_PAGE_SIZE", 1)
    if page_size > 200:
        raise ConfigError("KIBITZ_PAGE_SIZE", str(page_size), "a whole number from 1 to 200")

    live_url = get("KIBITZ_LIVE_URL") or None
    if live_url and not live_url.startswith(("ws://", "wss://")):
        raise ConfigError("KIBITZ_LIVE_URL", live_url, "a ws:// or wss:// URL")

    def port(name: str) -> int | None:
        if not get(name):
            return None
        value = integer(name, 1)
        if value > 65535:
            raise ConfigError(name, str(value), "a port number up to 65535")
        return value

    smtp_url = get("KIBITZ_SMTP_URL") or None
    if smtp_url and not smtp_url.startswith(("smtp://", "smtps://")):
        raise ConfigError("KIBITZ_SMTP_URL", smtp_url, "smtp://user:pass@host:587")

    try:
        min_fill = float(get("KIBITZ_MIN_FILL_SECONDS"))
    except ValueError:
        raise ConfigError(
            "KIBITZ_MIN_FILL_SECONDS", get("KIBITZ_MIN_FILL_SECONDS"), "a number of seconds"
        ) from None
    if not 0 <= min_fill <= 3:
        raise ConfigError("KIBITZ_MIN_FILL_SECONDS", str(min_fill), "between 0 and 3 seconds")

    secret = get("KIBITZ_SECRET_KEY") or (
        _stored_secret(data_dir) if create_secret else "unset-secret-for-offline-commands"
    )

    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        data_dir=data_dir,
        secret_key=secret,
        moderation=moderation,
        max_links=integer("KIBITZ_MAX_LINKS", 1),
        allowed_origins=tuple(dict.fromkeys(origins)),
        public_url=public_url,
        edit_window=integer("KIBITZ_EDIT_WINDOW"),
        language=language,
        follow_author_links=boolean("KIBITZ_FOLLOW_AUTHOR_LINKS"),
        max_depth=integer("KIBITZ_MAX_DEPTH", 1),
        smtp_url=smtp_url,
        post_rate=post_rate_value,
        trusted_proxies=tuple(
            p.strip() for p in get("KIBITZ_TRUSTED_PROXIES").split(",") if p.strip()
        ),
        address_retention_days=integer("KIBITZ_ADDRESS_RETENTION_DAYS"),
        event_retention_days=integer("KIBITZ_EVENT_RETENTION_DAYS", 1),
        session_hours=integer("KIBITZ_SESSION_HOURS", 1),
        duplicate_window=integer("KIBITZ_DUPLICATE_WINDOW"),
        mail_from=get("KIBITZ_MAIL_FROM")
        or "kibitz@" + (urlsplit(public_origin).hostname or "localhost"),
        min_fill_seconds=min_fill,
        redis_prefix=get("KIBITZ_REDIS_PREFIX"),
        live_url=live_url,
        live_port=port("KIBITZ_LIVE_PORT"),
        live_host=get("KIBITZ_LIVE_HOST"),
        http_port=port("KIBITZ_HTTP_PORT"),
        workers=integer("KIBITZ_WORKERS", 1),
        page_size=page_size,
        votes=votes,
        vote_rate=rate("KIBITZ_VOTE_RATE"),
        voter_rate=rate("KIBITZ_VOTER_RATE"),
        close_after_days=integer("KIBITZ_CLOSE_AFTER_DAYS"),
    )


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
