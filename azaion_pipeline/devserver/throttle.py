"""Login throttling: failed attempts per account and per client address, then a temporary lockout.

A key (an account or a client address) that fails ``max_failures`` times within ``window_s`` is
locked for ``lockout_s``; while locked, logins for it are answered 429 with Retry-After before any
password work is done. A successful login clears the account's failures (not the client's).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable


class LoginThrottle:
    def __init__(
        self,
        *,
        account_failures: int,
        client_failures: int,
        window_s: float,
        lockout_s: float,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._limits = {"account": account_failures, "client": client_failures}
        self._window_s = window_s
        self._lockout_s = lockout_s
        self._clock = clock
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._locked_until: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def retry_after(self, account: str, client: str) -> int | None:
        """Whole seconds until this account and client may try again; None when neither is locked."""
        now = self._clock()
        with self._lock:
            waits = [
                self._locked_until.get(key, now) - now
                for key in (("account", account), ("client", client))
            ]
        wait = max(waits)
        return math.ceil(wait) if wait > 0 else None

    def failed(self, account: str, client: str) -> None:
        now = self._clock()
        with self._lock:
            for key in (("account", account), ("client", client)):
                times = self._failures.setdefault(key, deque())
                times.append(now)
                while times and times[0] <= now - self._window_s:
                    times.popleft()
                if len(times) >= self._limits[key[0]]:
                    self._locked_until[key] = now + self._lockout_s
                    times.clear()

    def succeeded(self, account: str) -> None:
        with self._lock:
            self._failures.pop(("account", account), None)
