"""Widget figures: gzipped size, and time from script load to a rendered 100-comment thread.

    .venv/bin/python bench/widget.py [--comments 100] [--runs 7]

Starts kibitz (SQLite) on a free port with one thread of N comments (every third a reply),
serves a host page from a second origin, and loads it in Debian's chromium N times (fresh
context, nothing cached). Times come from the page's own clock: the embed.js resource entry
(request start, response end) and the widget's marks: `kibitz:start` (the script runs),
`kibitz:data` (config and thread fetched), `kibitz:rendered` (thread and form in the DOM).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server.http.widget import Bundle
from tests.helpers.browsers import (
    CHROMIUM,
    CHROMIUM_ARGS,
    host_page,
    run_host,
    run_kibitz,
    strict_csp,
)
from tests.helpers.servers import free_port, make_settings

TIMING = """() => {
  const script = performance.getEntriesByType('resource').find(e => e.name.includes('/embed.js'));
  const mark = (name) => performance.getEntriesByName(name)[0].startTime;
  return { requested: script.startTime, loaded: script.responseEnd, start: mark('kibitz:start'),
           data: mark('kibitz:data'), rendered: mark('kibitz:rendered') };
}"""


def sizes() -> None:
    bundle = Bundle()
    for asset in bundle.assets.values():
        print(f"{asset.url:36} {len(asset.body):7,d} B minified {len(asset.gzipped):7,d} B gzipped")
    print(
        f"widget total loaded from kibitz (embed.js, CSS inside): "
        f"{bundle.embed_gzipped_size / 1024:.1f} KiB gzipped (budget 15 KB)"
    )


def render_times(comments: int, runs: int) -> dict[str, list[float]]:
    from playwright.sync_api import sync_playwright

    uri = "/bench/thread/"
    with tempfile.TemporaryDirectory() as tmp:
        port, host_port = free_port(), free_port()
        settings = make_settings(
            f"sqlite:///{Path(tmp) / 'k.db'}",
            Path(tmp),
            KIBITZ_PUBLIC_URL=f"http://127.0.0.1:{port}",
            KIBITZ_ALLOWED_ORIGINS=f"http://127.0.0.1:{host_port}",
        )
        with run_host(host_port) as host, run_kibitz(settings, port) as kibitz:
            ids: list[int] = []
            for i in range(comments):
                parent = ids[i - 1] if i % 3 == 2 else None
                text = (
                    f"Comment {i}: a few sentences of ordinary length, with a link "
                    f"https://example.org/{i} and *some* emphasis.\n\nA second paragraph."
                )
                ids.append(
                    kibitz.add_comment(uri, text, author=f"Reader {i % 17}", parent=parent).id
                )
            page_html = host_page(kibitz.url, f'<div data-kibitz-thread="{uri}"></div>')
            url = host.add("/post", page_html, csp=strict_csp(kibitz.url))
            found: dict[str, list[float]] = {
                "loaded→rendered": [],
                "requested→rendered": [],
                "executing→rendered": [],
                "data→rendered": [],
            }
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
                )
                for _ in range(runs + 1):  # the first run warms chromium up and is dropped
                    context = browser.new_context()
                    page = context.new_page()
                    page.goto(url)
                    # (wait_for_function would need eval, which the host's strict CSP forbids)
                    page.locator("[data-kibitz-thread] form[data-comment-form]").wait_for()
                    shown = page.locator("[data-kibitz-thread] li.comment").count()
                    # the first page: 50 top-level comments (two in three) with their replies
                    assert shown == min(comments, 75), shown
                    t = page.evaluate(TIMING)
                    found["loaded→rendered"].append(t["rendered"] - t["loaded"])
                    found["requested→rendered"].append(t["rendered"] - t["requested"])
                    found["executing→rendered"].append(t["rendered"] - t["start"])
                    found["data→rendered"].append(t["rendered"] - t["data"])
                    context.close()
                browser.close()
            return {k: v[1:] for k, v in found.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comments", type=int, default=100)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    sizes()
    times = render_times(args.comments, args.runs)
    print(f"\n{args.comments}-comment thread, {args.runs} runs, chromium headless, ms:")
    for name, values in times.items():
        print(
            f"  {name:22} median {statistics.median(values):7.1f}   min {min(values):7.1f}"
            f"   max {max(values):7.1f}"
        )


if __name__ == "__main__":
    main()
