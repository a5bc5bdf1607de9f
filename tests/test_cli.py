"""The ``kibitz`` command, run as operators run it: a real process, real stdin/stdout/stderr."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers.servers import ROOT, RUN_ID, make_settings, serve, start_process, stop_process
from tests.helpers.view import by_class, by_id, form_values, parse, text_of


def cli_env(database_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIBITZ_")}
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "KIBITZ_DATABASE_URL": database_url,
            "KIBITZ_DATA_DIR": str(data_dir),
            "KIBITZ_SECRET_KEY": "cli-test-" + RUN_ID,
            "KIBITZ_PUBLIC_URL": "https://comments.example.com",
            **extra,
        }
    )
    return env


def kibitz(
    env: dict[str, str],
    *args: str,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server", *args],
        env=env,
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


async def test_migrate_is_idempotent(database_url: str, tmp_path: Path) -> None:
    """`kibitz migrate` brings a database up to date, and a second run changes nothing."""
    env = cli_env(database_url, tmp_path)
    first = kibitz(env, "migrate")
    second = kibitz(env, "migrate")
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert one_line(second.stdout) == "the database is up to date"
    if database_url.startswith("sqlite"):  # PostgreSQL test databases come pre-migrated
        assert one_line(first.stdout).startswith("applied 001_initial")


async def test_post_add_prints_url_and_sanitises_stdin_body(
    database_url: str, tmp_path: Path
) -> None:
    """`post add --body-file -` reads stdin, keeps article markup, drops scripts and handlers."""
    env = cli_env(database_url, tmp_path)
    body = (
        '<h2>Heading</h2><p onclick="steal()">Text with <a href="javascript:alert(1)">bad</a>'
        ' and <a href="https://example.org/">good</a> links.</p><script>alert(1)</script>'
        '<img src="https://example.org/a.png" alt="A" onerror="steal()">'
        "<ul><li>one</li></ul><style>body{display:none}</style>"
    )
    added = kibitz(
        env,
        "post",
        "add",
        "--slug",
        "first-post",
        "--title",
        "First post",
        "--author",
        "Maren",
        "--category",
        "Kitchen",
        "--category",
        "Notes",
        "--body-file",
        "-",
        stdin=body,
    )
    assert added.returncode == 0, added.stderr
    assert added.stdout == "https://comments.example.com/posts/first-post\n"
    async with serve(make_settings(database_url, tmp_path)) as server:
        async with server.client() as client:
            page = await client.get("/posts/first-post")
            index = await client.get("/")
    assert page.status_code == 200
    root = parse(page.text)
    article = by_class(root, "post__body")[0]
    tags = {e.tag for e in article.iter()}
    assert {"h2", "p", "a", "img", "ul", "li"} <= tags
    assert not tags & {"script", "style"}
    for element in article.iter():
        assert not any(name.startswith("on") for name in element.attrib), element.attrib
        assert not (element.get("href") or "").lower().startswith("javascript:")
    assert text_of(by_class(root, "post__title")[0]) == "First post"
    meta = text_of(by_class(root, "post-meta")[0])
    assert "By Maren" in meta and "Kitchen" in meta and "Notes" in meta
    assert "First post" in index.text


async def test_post_add_from_a_file_and_duplicate_slug(database_url: str, tmp_path: Path) -> None:
    """--body-file reads a file; adding the same slug again is exit 2 with one line."""
    env = cli_env(database_url, tmp_path)
    source = tmp_path / "body.html"
    source.write_text("<p>From a file</p>", encoding="utf-8")
    first = kibitz(
        env, "post", "add", "--slug", "twice", "--title", "Twice", "--body-file", str(source)
    )
    again = kibitz(env, "post", "add", "--slug", "twice", "--title", "Twice")
    assert first.returncode == 0, first.stderr
    assert again.returncode == 2
    assert "twice" in one_line(again.stderr)
    assert again.stdout == ""


async def test_user_and_token_work_against_the_api(database_url: str, tmp_path: Path) -> None:
    """`user add --password-stdin` then `token add` prints only a token the API accepts."""
    env = cli_env(database_url, tmp_path)
    user = kibitz(
        env,
        "user",
        "add",
        "maren",
        "--role",
        "admin",
        "--password-stdin",
        stdin="correct horse battery\n",
    )
    token = kibitz(env, "token", "add", "maren")
    assert user.returncode == 0, user.stderr
    assert token.returncode == 0, token.stderr
    value = token.stdout.strip()
    assert token.stdout == value + "\n" and " " not in value and value
    assert token.stderr == ""
    async with serve(make_settings(database_url, tmp_path)) as server:
        async with server.client() as client:
            allowed = await client.get(
                "/api/moderation", headers={"Authorization": f"Bearer {value}"}
            )
            anonymous = await client.get("/api/moderation")
            wrong = await client.get(
                "/api/moderation", headers={"Authorization": f"Bearer {value}x"}
            )
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["comments"] == []
    assert anonymous.status_code == 401
    assert wrong.status_code == 401


async def test_demo_seeds_two_threaded_posts_once(database_url: str, tmp_path: Path) -> None:
    """`kibitz demo` (what `make run` runs) creates the two demo posts once, with replies."""
    env = cli_env(database_url, tmp_path)
    first = kibitz(env, "demo")
    second = kibitz(env, "demo")
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert one_line(first.stdout) == "demo: 2 post(s) created"
    assert one_line(second.stdout) == "demo: already there"
    async with serve(make_settings(database_url, tmp_path)) as server:
        async with server.client() as client:
            index = await client.get("/")
            english = await client.get("/posts/slow-bread")
            german = await client.get("/posts/stadtgarten")
    assert len(by_class(parse(index.text), "post-summary")) == 2
    for page in (english, german):
        root = parse(page.text)
        assert page.status_code == 200
        assert by_class(root, "comment-list--children"), "the demo discussion has replies"
        assert "@example" not in page.text


@pytest.mark.parametrize(
    ("args", "stdin", "says"),
    [
        ((), None, "command"),
        (("frobnicate",), None, "frobnicate"),
        (("post", "add", "--title", "No slug"), None, "--slug"),
        (("post", "add", "--slug", "Not A Slug", "--title", "T"), None, "slug"),
        (("post", "add", "--slug", "ok", "--title", "  "), None, "--title"),
        (
            ("post", "add", "--slug", "ok", "--title", "T", "--body-file", "/no/such/file"),
            None,
            "/no/such/file",
        ),
        (("user", "add", "ada"), None, "--password-stdin"),
        (("user", "add", "ada", "--password-stdin"), "short\n", "8 characters"),
        (("user", "add", "ada", "--role", "king", "--password-stdin"), "long enough\n", "role"),
        (("user", "add", "a d a", "--password-stdin"), "long enough\n", "name"),
        (("token", "add", "nobody"), None, "nobody"),
        (("serve", "--port", "eighty"), None, "--port"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(
    tmp_path: Path, args: tuple[str, ...], stdin: str | None, says: str
) -> None:
    """Wrong arguments or input exit with status 2 and one line on stderr naming the problem."""
    env = cli_env(f"sqlite:///{tmp_path / 'cli.db'}", tmp_path)
    result = kibitz(env, *args, stdin=stdin)
    assert result.returncode == 2, result
    line = one_line(result.stderr)
    assert line.startswith("kibitz: ") and says in line, line
    assert "Traceback" not in result.stderr


def test_bad_setting_exits_2_naming_the_variable(tmp_path: Path) -> None:
    """A setting kibitz cannot use is one line naming the variable, before anything starts."""
    env = cli_env(f"sqlite:///{tmp_path / 'cli.db'}", tmp_path, KIBITZ_MODERATION="sometimes")
    result = kibitz(env, "migrate")
    assert result.returncode == 2
    assert "KIBITZ_MODERATION" in one_line(result.stderr)


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"KIBITZ_REDIS_URL": "redis://127.0.0.1:1/0"},
        {"KIBITZ_DATABASE_URL": "postgresql://127.0.0.1:1/x"},
    ],
)
def test_serve_refuses_several_workers_without_postgres_and_redis(
    tmp_path: Path, extra: dict[str, str]
) -> None:
    """`serve --workers 2` without PostgreSQL and Redis is refused at once, never split-brained."""
    env = cli_env(f"sqlite:///{tmp_path / 'cli.db'}", tmp_path, **extra)
    started = time.monotonic()
    result = kibitz(env, "serve", "--workers", "2", "--port", "1")
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert "--workers" in line and "KIBITZ_REDIS_URL" in line and "postgresql" in line
    assert time.monotonic() - started < 30


@pytest.mark.parametrize(
    "args",
    [
        ("--port", "70000"),
        ("--port", "-1"),
        ("--live-port", "65536"),
        ("--workers", "0"),
        ("--workers", "-2"),
        ("--workers", "two"),
    ],
)
def test_serve_refuses_a_port_or_worker_count_out_of_range(
    tmp_path: Path, args: tuple[str, str]
) -> None:
    """A port past 65535 or fewer than one worker: exit 2 and a line naming the argument,
    before anything is bound or started (a port out of range once reached bind() as a
    traceback, and a negative worker count a supervisor with no workers)."""
    env = cli_env(f"sqlite:///{tmp_path / 'cli.db'}", tmp_path)
    result = kibitz(env, "serve", *args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert args[0] in result.stderr and repr(args[1]) in result.stderr


def test_served_form_works_without_javascript(tmp_path: Path) -> None:
    """`kibitz serve` as a subprocess: a plain form post, the 303 followed, shows the comment."""
    env = cli_env(
        f"sqlite:///{tmp_path / 'site.db'}",
        tmp_path,
        KIBITZ_MODERATION="none",
        KIBITZ_POST_RATE="off",
    )
    env.pop("KIBITZ_PUBLIC_URL")
    added = kibitz(
        env,
        "post",
        "add",
        "--slug",
        "hello",
        "--title",
        "Hello",
        "--body-file",
        "-",
        stdin="<p>Say something.</p>",
    )
    assert added.returncode == 0, added.stderr
    process = start_process(env)
    try:
        with httpx.Client(base_url=process.url, timeout=30, follow_redirects=True) as client:
            page = client.get("/posts/hello")
            fields = form_values(parse(page.text))
            fields.update(
                author="Jonas",
                email="jonas@example.org",
                website="",
                text="Posted with JavaScript off.",
            )
            time.sleep(2.1)  # the default minimum fill time holds faster forms
            answer = client.post("/posts/hello/comments", data=fields)
    finally:
        output = stop_process(process)
    assert answer.history and answer.history[0].status_code == 303, output
    location = answer.history[0].headers["location"]
    assert location.startswith("/posts/hello#comment-")
    assert answer.status_code == 200
    root = parse(answer.text)
    card = by_id(root, location.split("#", 1)[1])
    assert card is not None
    assert text_of(by_class(card, "comment__author")[0]) == "Jonas"
    assert "Posted with JavaScript off." in text_of(card)
    assert "jonas@example.org" not in answer.text
