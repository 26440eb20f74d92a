"""Logging for a loop that retries a failing dependency every second: its traceback once, then a line a minute."""

import logging
import time


class OutageLog:
    """`failed()` from an `except` block on each failed attempt, `recovered()` after each one that worked."""

    REPEAT_SECONDS = 60

    def __init__(self, logger: logging.Logger, what: str) -> None:
        self.logger, self.what = logger, what
        self.since: float | None = None
        self._last_logged = 0.0
        self._failures = 0

    def failed(self) -> None:
        now = time.monotonic()
        self._failures += 1
        if self.since is None:
            self.since = self._last_logged = now
            self.logger.exception("%s; retrying", self.what)
        elif now - self._last_logged >= self.REPEAT_SECONDS:
            self._last_logged = now
            self.logger.error("%s: still failing after %d attempts in %.0f s", self.what, self._failures,
                              now - self.since)

    def recovered(self) -> None:
        if self.since is not None:
            self.logger.warning("%s: working again after %.1f s", self.what, time.monotonic() - self.since)
            self.since, self._failures = None, 0
