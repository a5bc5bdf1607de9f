"""Random nonces from the operating system, many per system call.

A kept post page is given again with a fresh form token each time, and each token carries a
nonce (``server/http/pages.py``). ``secrets.token_urlsafe`` asks the kernel for its bytes on
every call: one ``getrandom`` per page, which on this project's VMs cost as much as reading
the request. The bytes are the same kind (``os.urandom``); they are only fetched in batches.
"""

from __future__ import annotations

import base64
import os
import threading

BATCH = 4096  # bytes asked of the kernel at a time


class Nonces:
    """``nonce()`` gives ``size`` random bytes as unpadded URL-safe base64, each call its own.

    Safe across threads (a lock guards the batch) and across ``fork`` (a child process never
    hands out its parent's bytes: the batch is dropped in the child).
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._batch = b""
        self._at = 0
        self._lock = threading.Lock()
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._batch, self._at = b"", 0

    def __call__(self) -> str:
        with self._lock:
            at = self._at
            if at + self.size > len(self._batch):
                self._batch, at = os.urandom(BATCH - BATCH % self.size), 0
            self._at = at + self.size
            chunk = self._batch[at : at + self.size]
        return base64.urlsafe_b64encode(chunk).rstrip(b"=").decode("ascii")
