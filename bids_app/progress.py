"""Progress lines a person at a terminal can follow: stage, count, rate and time left.

:class:`Progress` is called as ``progress(done)`` (or ``progress(done, total)``)
while a long stage runs; it logs at most every ``every_s`` seconds, and
always once at the end::

    ranking: 120000 of 500000 photos (24%) in 31 s, 3871 photos/s, about 98 s left
"""

from __future__ import annotations

import logging
import math
import time

__all__ = ["PROGRESS_EVERY_S", "Progress"]

#: Seconds between two progress lines of one stage.
PROGRESS_EVERY_S = 10.0


class Progress:
    """A ``progress(done[, total])`` callback that logs the stage's count, rate and time left."""

    def __init__(self, stage: str, total: int, unit: str, every_s: float = PROGRESS_EVERY_S,
                 logger: logging.Logger | None = None):
        self.stage, self.total, self.unit, self.every_s = stage, int(total), unit, every_s
        self.logger = logger or logging.getLogger("facerisk")
        self.start = self.last = time.monotonic()

    def __call__(self, done: int, total: int | None = None) -> None:
        if total is not None:
            self.total = int(total)
        now = time.monotonic()
        if done < self.total and now - self.last < self.every_s:
            return
        self.last = now
        elapsed = now - self.start
        rate = done / elapsed if elapsed > 0 else math.nan
        if done >= self.total:
            left = "done"
        elif done and rate > 0:
            left = f"about {(self.total - done) / rate:.0f} s left"
        else:
            left = "time left not known yet"
        self.logger.info("%s: %d of %d %s (%.0f%%) in %.1f s, %.0f %s/s, %s",
                         self.stage, done, self.total, self.unit, 100.0 * done / max(self.total, 1), elapsed,
                         rate, self.unit, left)
