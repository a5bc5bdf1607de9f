"""Write the last `make fuzz` result into docs/security.md, between its fuzz markers.

Usage: fuzz_summary.py SUMMARY.jsonl DOC.md --examples N --status RC --seconds S
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path

START, END = "<!-- fuzz:start -->", "<!-- fuzz:end -->"


def table(lines: list[dict[str, object]]) -> list[str]:
    merged: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    requests: Counter[tuple[str, str]] = Counter()
    for entry in lines:
        key = (str(entry["target"]), str(entry["backend"]))
        requests[key] += int(entry["requests"])  # type: ignore[call-overload]
        merged[key].update(entry["statuses"])  # type: ignore[arg-type]
    rows = [
        "| target | backend | requests | answers (status: count) |",
        "| --- | --- | ---: | --- |",
    ]
    for (target, backend), statuses in sorted(merged.items()):
        shown = ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items()))
        rows.append(f"| {target} | {backend} | {requests[(target, backend)]} | {shown} |")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("summary", type=Path)
    parser.add_argument("doc", type=Path)
    parser.add_argument("--examples", type=int, required=True)
    parser.add_argument("--status", type=int, required=True)
    parser.add_argument("--seconds", type=int, default=0)
    args = parser.parse_args(argv)
    lines = []
    if args.summary.exists():
        lines = [json.loads(x) for x in args.summary.read_text().splitlines() if x.strip()]
    total = sum(int(e["requests"]) for e in lines)
    fivexx = sum(
        n for e in lines for s, n in e["statuses"].items() if s.isdigit() and 500 <= int(s) < 600
    )
    verdict = "passed" if args.status == 0 else f"FAILED (pytest exit {args.status})"
    block = [
        START,
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, `make fuzz FUZZ_EXAMPLES={args.examples}`, "
        f"{args.seconds} s: **{verdict}**; {total} requests or invocations, {fivexx} answered 5xx.",
        "",
        *table(lines),
        END,
    ]
    text = args.doc.read_text(encoding="utf-8")
    if START in text and END in text:
        head, rest = text.split(START, 1)
        text = head + "\n".join(block) + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + "\n".join(block) + "\n"
    args.doc.write_text(text, encoding="utf-8")
    print(f"fuzz: {verdict}, {total} requests; summary written to {args.doc}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
