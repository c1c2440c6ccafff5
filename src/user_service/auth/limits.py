"""Slow down token guessing: count failed authentications per client address."""

import math
import time


class FailureLimit:
    """At most `limit` failures per address in any fixed one-minute window.

    Counts live in this process: with N workers an address gets at most N x `limit` tries
    a minute, still far too few to guess a token.
    """

    WINDOW = 60.0
    MAX_ADDRESSES = 100_000  # bounded memory under a flood from many addresses

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._windows: dict[str, tuple[float, int]] = {}  # address -> (window start, failures)

    def retry_after(self, address: str) -> int | None:
        """Seconds until `address` may try again, or None when it may now."""
        window = self._windows.get(address)
        if window is None or window[1] < self.limit:
            return None
        remaining = window[0] + self.WINDOW - time.monotonic()
        return math.ceil(remaining) if remaining > 0 else None

    def record(self, address: str) -> None:
        now = time.monotonic()
        start, failures = self._windows.get(address, (now, 0))
        if now - start >= self.WINDOW:
            start, failures = now, 0
        if len(self._windows) >= self.MAX_ADDRESSES:
            self._forget_before(now - self.WINDOW)
        self._windows[address] = (start, failures + 1)

    def _forget_before(self, cutoff: float) -> None:
        self._windows = {a: w for a, w in self._windows.items() if w[0] >= cutoff}
        if len(self._windows) >= self.MAX_ADDRESSES:
            self._windows.clear()  # every window is current: forget them all, stay bounded
