"""Progress of a study: a one-line bar on a terminal, periodic plain log lines otherwise.

Both show points done of the total, the rate over the run so far and an ETA; they go to stderr
so stdout stays for the summary table.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


def format_duration(seconds: float) -> str:
    """``75.0 -> '1m15s'``; ``'?'`` when unknown."""
    if seconds != seconds or seconds == float("inf"):
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


class Progress:
    """Track ``done`` of ``total`` points.

    Parameters
    ----------
    total : int
        Points to compute in this run (stored points are not counted).
    mode : {'auto', 'bar', 'log', 'off'}
        ``auto`` picks ``bar`` when ``stream`` is a terminal and ``log`` otherwise.
    log_every_s : float
        Seconds between log lines in ``log`` mode.
    """

    def __init__(
        self,
        total: int,
        mode: str = "auto",
        stream: TextIO | None = None,
        log_every_s: float = 10.0,
        width: int = 30,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        if mode == "auto":
            mode = "bar" if getattr(self.stream, "isatty", lambda: False)() else "log"
        self.mode = mode
        self.total = total
        self.done = 0
        self.failed = 0
        self.width = width
        self.log_every_s = log_every_s
        self.start = time.monotonic()
        self._last_draw = -1e9

    def update(self, points: int, failed: int = 0) -> None:
        self.done += points
        self.failed += failed
        now = time.monotonic()
        if self.mode == "bar" and (now - self._last_draw >= 0.1 or self.done >= self.total):
            self._last_draw = now
            self.stream.write("\r" + self.line(now))
            self.stream.flush()
        elif self.mode == "log" and now - self._last_draw >= self.log_every_s:
            self._last_draw = now
            self.stream.write("sweep: " + self.line(now) + "\n")
            self.stream.flush()

    def line(self, now: float | None = None) -> str:
        elapsed = (time.monotonic() if now is None else now) - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else float("nan")
        share = self.done / self.total if self.total else 1.0
        failed = f", {self.failed} failed" if self.failed else ""
        text = (
            f"{self.done}/{self.total} points ({share:.0%}), {rate:.1f} points/s, "
            f"ETA {format_duration(eta)}{failed}"
        )
        if self.mode == "bar":
            filled = int(share * self.width)
            text = "[" + "#" * filled + "." * (self.width - filled) + "] " + text
        return text

    def close(self) -> None:
        if self.mode == "bar":
            self.stream.write("\r" + self.line() + "\n")
            self.stream.flush()
        elif self.mode == "log" and self.total:
            self.stream.write("sweep: " + self.line() + "\n")
            self.stream.flush()
