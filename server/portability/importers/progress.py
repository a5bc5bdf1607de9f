"""Progress for a long import: a tqdm bar on a terminal, plain lines in logs and pipes."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


class Progress:
    """Counts comments written out of ``total`` (the comments in the file, skipped ones
    included, so the count may end below it); writes to ``stream`` (stderr by default)."""

    def __init__(
        self,
        total: int,
        *,
        stream: TextIO | None = None,
        every: float = 5.0,
        label: str = "comments",
    ) -> None:
        self.stream = stream or sys.stderr
        self.total, self.done, self.label = total, 0, label
        self.every, self._last = every, time.monotonic()
        self._bar: Any = None
        if self.stream.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit=" " + label, file=self.stream, dynamic_ncols=True)

    def update(self, count: int) -> None:
        self.done += count
        if self._bar is not None:
            self._bar.update(count)
            return
        moment = time.monotonic()
        if moment - self._last >= self.every:
            self._last = moment
            self._line()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        else:
            print(f"import: done, {self.done} {self.label} written", file=self.stream, flush=True)

    def _line(self) -> None:
        share = f" ({100 * self.done // self.total}%)" if self.total else ""
        print(
            f"import: {self.done} of {self.total} {self.label}{share}", file=self.stream, flush=True
        )


class Silent(Progress):
    def __init__(self) -> None:
        self.total = self.done = 0

    def update(self, count: int) -> None:
        self.done += count

    def close(self) -> None:
        pass
