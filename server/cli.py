"""The ``kibitz`` command: serve, migrate, and the operator's small tools.

Exit status 0 on success and 2 on bad arguments or input, with one line on stderr that says
what to do next: an operator's script should never have to parse a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from db.database import Database, connect
from db.errors import Conflict, DatabaseError, InvalidValue
from db.migrate import migrate
from server.auth.accounts import ROLES
from server.discussion.errors import InvalidInput
from server.errors import ConfigError
from server.settings import Settings, load

if TYPE_CHECKING:
    import uvicorn

    from db.models import Post, StaffMember
    from db.staff import ApiToken
    from server.portability.importers.report import Report
    from server.portability.importers.writer import Source

T = TypeVar("T")

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,99}$")


class UsageError(Exception):
    """Bad arguments or input: exit 2 with this message."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"kibitz: {message} (see 'kibitz --help')\n")


def _run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


async def _with_db(settings: Settings, work: Callable[[Database], Awaitable[T]]) -> T:
    db = await connect(settings.database_url, readers=1)
    try:
        await migrate(db)
        return await work(db)
    finally:
        await db.close()


async def _migrate(settings: Settings) -> list[str]:
    db = await connect(settings.database_url, readers=1)
    try:
        return await migrate(db)
    finally:
        await db.close()


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    applied = _run(_migrate(settings))
    print(f"applied {', '.join(applied)}" if applied else "the database is up to date")
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from server.app import SHUTDOWN_GRACE

    if args.workers > 1 and not (settings.is_postgres and settings.redis_url):
        raise UsageError(
            "--workers above 1 needs KIBITZ_DATABASE_URL=postgresql://… and KIBITZ_REDIS_URL="
            "redis://…: SQLite and in-process fan-out serve one process only"
        )
    # Workers read their settings from the environment: hand them the listener's shape.
    # The live channel is served apart (websockets' own server, pre-built frames) on
    # --live-port, default P+1; the site's own /ws keeps working on P as well.
    live_port = args.live_port if args.live_port is not None else args.port + 1
    os.environ.update(
        KIBITZ_LIVE_PORT=str(live_port) if live_port else "",
        KIBITZ_LIVE_HOST=args.host,
        KIBITZ_HTTP_PORT=str(args.port),
        KIBITZ_WORKERS=str(args.workers),
    )

    _run(_migrate(settings))
    options: dict[str, Any] = {
        "factory": True,
        "host": args.host,
        "port": args.port,
        "workers": args.workers,
        "log_level": "info",
        # SIGTERM: stop listening, close readers with 1012, let requests finish, then exit.
        "timeout_graceful_shutdown": SHUTDOWN_GRACE,
        **uvicorn_options(),
    }
    if args.workers > 1:
        _serve_workers(uvicorn.Config("server.app:from_environment", **options))
    else:
        uvicorn.run("server.app:from_environment", **options)
    return 0


def _serve_workers(config: uvicorn.Config) -> None:
    """uvicorn's supervisor and workers, each worker with a listening socket of its own
    (server/http/listener.py): the kernel, not the first worker to wake, spreads connections."""
    from uvicorn.supervisors import Multiprocess

    from server.http.listener import reserve

    try:
        port = reserve(config.host, config.port)
    except OSError as exc:
        raise UsageError(
            f"cannot listen on {config.host}:{config.port}: {exc.strerror}. Choose another "
            "--port or --host, or stop what is listening there."
        ) from None
    with port:
        host, number = port.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        logging.getLogger("uvicorn.error").info(
            "kibitz listening on http://%s:%d with %d workers", shown, number, config.workers
        )
        Multiprocess(config, sockets=[port]).run()


def uvicorn_options() -> dict[str, Any]:
    """How kibitz is served, for ``kibitz serve`` and the servers of the tests alike."""
    from server.http.protocol import IDLE_TIMEOUT, LimitedHttpToolsProtocol

    return {
        # httptools with a header size limit, a header timeout (docs/security.md) and
        # answers given again (server/http/replay.py).
        "http": LimitedHttpToolsProtocol,
        "timeout_keep_alive": IDLE_TIMEOUT,
        # kibitz alone decides whom to believe (KIBITZ_TRUSTED_PROXIES); uvicorn would
        # trust 127.0.0.1's X-Forwarded-For by default.
        "proxy_headers": False,
        "server_header": False,
        "ws": "websockets-sansio",
        "ws_per_message_deflate": False,
        "ws_max_size": 65536,
        # One log line per request costs more than a cached thread read; the reverse proxy
        # in front of a real site keeps the access log.
        "access_log": False,
    }


def _read_body(path: str | None) -> str:
    if path is None:
        return ""
    if path == "-":
        return sys.stdin.read()
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not UTF-8 text") from None


def cmd_post_add(args: argparse.Namespace, settings: Settings) -> int:
    from db.posts import PostStore
    from server.discussion.markup import clean_article

    if not SLUG.match(args.slug):
        raise UsageError(f"slug {args.slug!r}: use lowercase letters, digits and hyphens")
    if not args.title.strip():
        raise UsageError("--title must not be empty")
    body = clean_article(_read_body(args.body_file))

    async def work(db: Database) -> Post:
        return await PostStore(db).add(
            slug=args.slug,
            title=args.title.strip(),
            author=(args.author or "").strip() or "admin",
            body_html=body,
            categories=args.category or [],
        )

    post = _run(_with_db(settings, work))
    print(f"{settings.public_url}{post.uri}")
    return 0


def cmd_user_add(args: argparse.Namespace, settings: Settings) -> int:
    from db.staff import StaffStore
    from server.auth.accounts import account_problems
    from server.auth.credentials import hash_password

    if not args.password_stdin:
        raise UsageError("give the password on standard input with --password-stdin")
    password = sys.stdin.readline().rstrip("\r\n")
    problems = account_problems(args.name, args.role, password, args.email or "")
    if problems:
        field, problem = next(iter(problems.items()))
        shown = f"{field} {args.name!r}" if field == "name" else field
        raise UsageError(f"{shown}: {problem}")

    async def work(db: Database) -> StaffMember:
        return await StaffStore(db).add(
            args.name, args.role, hash_password(password), email=args.email
        )

    member = _run(_with_db(settings, work))
    print(f"created {member.role} {member.name}")
    return 0


def cmd_mail_in(args: argparse.Namespace, settings: Settings) -> int:
    """Take one answer to a notification mail from standard input (an MTA pipe).

    Exit 0 when taken, 2 with one line on stderr when refused: the MTA bounces or logs it.
    """
    from starlette.applications import Starlette

    from server.app import close_state, open_state
    from server.mail.inbound import MAX_MESSAGE, take
    from server.mail.replies import ReplyRefused

    raw = sys.stdin.buffer.read(MAX_MESSAGE + 1)

    async def work() -> int:
        state = await open_state(Starlette(), settings, background=False)
        try:
            comment = await take(state, raw, args.recipient)
        finally:
            await close_state(state)
        return comment.id

    try:
        comment_id = _run(work())
    except ReplyRefused as exc:
        print(f"kibitz mail-in: refused: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        # Not the message's fault (the database is down, say): 75 is EX_TEMPFAIL, and the
        # MTA keeps the message and tries again later. Exit at once: a half-opened database
        # may leave a thread behind that would keep the process alive.
        print(f"kibitz mail-in: temporary failure: {exc}", file=sys.stderr, flush=True)
        os._exit(75)
    print(f"taken as comment {comment_id}")
    return 0


async def _staff_changed(settings: Settings, staff_id: int) -> None:
    """Tell running servers (through Redis, when there is one) to re-check this member's
    moderation connections now; without Redis their one-second re-check does it."""
    if not settings.redis_url:
        return
    from realtime import protocol
    from realtime.broker import publish_once

    try:
        await publish_once(
            settings.redis_url, settings.redis_prefix, protocol.staff_recheck(staff_id)
        )
    except Exception as exc:  # the change is committed; servers notice it within a second
        print(
            f"kibitz: could not reach Redis ({exc}); servers notice within a second",
            file=sys.stderr,
        )


def cmd_user_disable(args: argparse.Namespace, settings: Settings) -> int:
    from db.staff import StaffStore

    async def work(db: Database) -> StaffMember | None:
        disabled = await StaffStore(db).disable_by_name(args.name)
        if disabled is not None:
            await _staff_changed(settings, disabled.id)
        return disabled

    if _run(_with_db(settings, work)) is None:
        raise UsageError(f"no active staff account named {args.name!r}")
    print(f"disabled {args.name}: its sessions and tokens no longer work")
    return 0


def cmd_token_add(args: argparse.Namespace, settings: Settings) -> int:
    from db.staff import StaffStore
    from server.auth.credentials import new_api_token

    token = new_api_token()

    async def work(db: Database) -> None:
        store = StaffStore(db)
        found = await store.by_name(args.name)
        if found is None:
            raise UsageError(
                f"no staff account named {args.name!r}; create it with 'kibitz user add'"
            )
        await store.add_token(found[0].id, token)

    _run(_with_db(settings, work))
    print(token)
    return 0


def cmd_token_list(args: argparse.Namespace, settings: Settings) -> int:
    from db.staff import StaffStore

    async def work(db: Database) -> list[ApiToken]:
        return await StaffStore(db).tokens()

    for t in _run(_with_db(settings, work)):
        state = f"revoked {t.revoked:%Y-%m-%d}" if t.revoked else "in use"
        print(f"{t.id}\t{t.staff_name}\t{t.created:%Y-%m-%d}\t{state}\t{t.label or ''}")
    return 0


def cmd_token_revoke(args: argparse.Namespace, settings: Settings) -> int:
    from db.staff import StaffStore

    async def work(db: Database) -> int | None:
        owner = await StaffStore(db).revoke_token(args.id)
        if owner is not None:
            await _staff_changed(settings, owner)
        return owner

    if _run(_with_db(settings, work)) is None:
        raise UsageError(f"no token {args.id} in use; see 'kibitz token list'")
    print(f"revoked token {args.id}")
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from server.portability.demo import seed

    created = _run(_with_db(settings, seed))
    print(f"demo: {created} post(s) created" if created else "demo: already there")
    return 0


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    from server.portability.importers import disqus, isso, kibitz, wordpress
    from server.portability.importers.progress import Progress
    from server.portability.importers.report import ImportRefused, Report
    from server.portability.importers.writer import run_import, undo_unfinished

    if not os.path.isfile(args.file):
        raise UsageError(f"cannot import {args.file}: no such file")
    if args.batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    report = Report(args.format, args.file)
    if args.format == "wordpress":
        source: Source = wordpress.Source(args.file, report, pingbacks=args.pingbacks)
    else:
        source = {"disqus": disqus, "isso": isso, "kibitz": kibitz}[args.format].Source(
            args.file, report
        )

    async def work(db: Database) -> Report:
        for line in await undo_unfinished(db):
            print(f"kibitz: {line}", file=sys.stderr)
        return await run_import(
            db,
            source,
            retention_days=settings.address_retention_days,
            progress=Progress(0),
            batch_size=args.batch_size,
        )

    try:
        _run(_with_db(settings, work))
    except ImportRefused as exc:
        raise UsageError(f"cannot import {args.file}: {exc}; nothing was imported") from None
    print("\n".join(report.lines()))
    return 0


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    from server.portability.export import write_export

    if args.file in (None, "-"):
        counts = _run(_with_db(settings, lambda db: write_export(db, sys.stdout)))
    else:
        # Written beside the target and renamed: a failed export never leaves half a file.
        partial = f"{args.file}.partial"
        try:
            with open(partial, "w", encoding="utf-8") as out:
                counts = _run(_with_db(settings, lambda db: write_export(db, out)))
            os.replace(partial, args.file)
        except OSError as exc:
            raise UsageError(f"cannot write {args.file}: {exc.strerror}") from None
        finally:
            if os.path.exists(partial):
                os.unlink(partial)
    print(
        f"exported {counts['posts']} posts, {counts['threads']} threads, "
        f"{counts['comments']} comments",
        file=sys.stderr,
    )
    return 0


def parser() -> Parser:
    top = Parser(prog="kibitz", description="Self-hosted, real-time discussion for blogs.")
    sub = top.add_subparsers(dest="command", required=True, parser_class=Parser)

    serve = sub.add_parser("serve", help="serve the site, API and live channel")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=_port_argument, default=8000)
    serve.add_argument("--workers", type=_workers_argument, default=1)
    serve.add_argument(
        "--live-port",
        type=_port_argument,
        default=None,
        help="port of the live channel's own server (default: --port + 1; "
        "0: only the site's own /ws)",
    )
    serve.set_defaults(run=cmd_serve)

    sub.add_parser("migrate", help="bring the database schema up to date").set_defaults(
        run=cmd_migrate
    )

    post = sub.add_parser("post", help="manage posts").add_subparsers(
        dest="action", required=True, parser_class=Parser
    )
    post_add = post.add_parser("add", help="create a post; prints its URL")
    post_add.add_argument("--slug", required=True)
    post_add.add_argument("--title", required=True)
    post_add.add_argument("--author")
    post_add.add_argument("--category", action="append")
    post_add.add_argument("--body-file", help="HTML body; - reads standard input")
    post_add.set_defaults(run=cmd_post_add)

    user = sub.add_parser("user", help="manage staff accounts").add_subparsers(
        dest="action", required=True, parser_class=Parser
    )
    user_add = user.add_parser("add", help="create a staff account")
    user_add.add_argument("name")
    user_add.add_argument("--role", choices=ROLES, default="moderator")
    user_add.add_argument("--email")
    user_add.add_argument("--password-stdin", action="store_true")
    user_add.set_defaults(run=cmd_user_add)
    user_disable = user.add_parser(
        "disable", help="disable a staff account: its sessions, tokens and live queues end"
    )
    user_disable.add_argument("name")
    user_disable.set_defaults(run=cmd_user_disable)

    mail_in = sub.add_parser(
        "mail-in", help="take one answer to a notification mail from standard input"
    )
    mail_in.add_argument(
        "--recipient", help="the address the message was delivered to (the MTA knows it)"
    )
    mail_in.set_defaults(run=cmd_mail_in)

    token = sub.add_parser("token", help="manage API tokens").add_subparsers(
        dest="action", required=True, parser_class=Parser
    )
    token_add = token.add_parser("add", help="print a new API token for a staff account")
    token_add.add_argument("name")
    token_add.set_defaults(run=cmd_token_add)
    token.add_parser("list", help="list API tokens (never the tokens themselves)").set_defaults(
        run=cmd_token_list
    )
    token_revoke = token.add_parser("revoke", help="revoke an API token by its number")
    token_revoke.add_argument("id", type=_id_argument)
    token_revoke.set_defaults(run=cmd_token_revoke)

    sub.add_parser("demo", help="seed the demo posts (once)").set_defaults(run=cmd_demo)

    imports = sub.add_parser("import", help="import posts and comments from another system")
    imports.add_argument("format", choices=("wordpress", "disqus", "isso", "kibitz"))
    imports.add_argument("file")
    imports.add_argument(
        "--pingbacks",
        action="store_true",
        help="WordPress: import pingbacks and trackbacks as comments too",
    )
    imports.add_argument(
        "--batch-size", type=int, default=500, help="comments written per transaction (default 500)"
    )
    imports.set_defaults(run=cmd_import)

    export = sub.add_parser("export", help="write every post, thread and comment as JSON")
    export.add_argument("file", nargs="?", default="-", help="default: standard output")
    export.set_defaults(run=cmd_export)
    return top


def _id_argument(value: str) -> int:
    """An id as the database holds them (1 … 2^63-1); argparse says so and exits 2 otherwise."""
    from server.discussion.values import id_or_none

    found = id_or_none(value)
    if found is None:
        raise argparse.ArgumentTypeError(f"{value[:30]!r} is not an id (a number 1 … 2^63-1)")
    return found


def _port_argument(value: str) -> int:
    """A TCP port (0 … 65535); argparse says so and exits 2 otherwise."""
    if not value.isdigit() or int(value) > 65535:
        raise argparse.ArgumentTypeError(f"{value[:30]!r} is not a port (a number 0 … 65535)")
    return int(value)


def _workers_argument(value: str) -> int:
    """How many worker processes (1 or more); argparse says so and exits 2 otherwise."""
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{value[:30]!r} is not a number of workers (1 or more)")
    return int(value)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = load()
        return int(args.run(args, settings))
    except UsageError as exc:
        print(f"kibitz: {exc}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"kibitz: {exc}", file=sys.stderr)
        return 2
    except Conflict as exc:
        print(f"kibitz: {exc}", file=sys.stderr)
        return 2
    except (InvalidValue, InvalidInput) as exc:
        # A value given on the command line that the database cannot hold (an id past 64
        # bits): the caller's mistake, said in one line.
        detail = "; ".join(getattr(exc, "fields", {}).values())
        print(f"kibitz: {exc}" + (f": {detail}" if detail else ""), file=sys.stderr)
        return 2
    except DatabaseError as exc:
        print(f"kibitz: database error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
