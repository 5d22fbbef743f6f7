"""Progress of a study: a rich progress bar on a terminal, periodic plain log lines otherwise.

Both show points done of the total, the rate and an ETA; they go to stderr so stdout stays for
the summary table. The bar is ``rich.progress`` (rate and ETA over its recent window); the log
line is written here because rich has no "one plain line every N seconds" mode, and a log file
or CI console wants exactly that: no control codes, no redraws.
"""

from __future__ import annotations

import atexit
import sys
import time
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichProgress
from rich.text import Text


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


class _RateColumn(ProgressColumn):
    """Points per second over rich's speed window (rich's own speed column counts bytes)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("? points/s" if speed is None else f"{speed:.1f} points/s")


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
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        if mode == "auto":
            mode = "bar" if getattr(self.stream, "isatty", lambda: False)() else "log"
        self.mode = mode
        self.total = total
        self.done = 0
        self.failed = 0
        self.log_every_s = log_every_s
        self.start = time.monotonic()
        self._last_log = -float("inf")  # the first update is logged at once
        self._closed = False
        self._bar: RichProgress | None = None
        if mode == "bar":
            self._bar = RichProgress(
                TextColumn("sweep"),
                BarColumn(bar_width=30),
                MofNCompleteColumn(),
                TextColumn("points"),
                TaskProgressColumn(),
                _RateColumn(),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[failed]}", style="red"),
                # A bar was asked for: draw it even when the stream does not look like a terminal.
                console=Console(file=self.stream, force_terminal=True),
                refresh_per_second=4,
            )
            self._task = self._bar.add_task("points", total=total, failed="")
            self._bar.start()
            atexit.register(self.close)  # restore the cursor even if the study dies mid-run

    def update(self, points: int, failed: int = 0) -> None:
        self.done += points
        self.failed += failed
        if self._bar is not None:
            note = f"{self.failed} failed" if self.failed else ""
            self._bar.update(self._task, completed=self.done, failed=note)
        elif self.mode == "log":
            now = time.monotonic()
            if now - self._last_log >= self.log_every_s:
                self._last_log = now
                self._write_log_line(now)

    def line(self, now: float | None = None) -> str:
        """Points done, share, rate over the run so far, ETA and failures, as plain text."""
        elapsed = (time.monotonic() if now is None else now) - self.start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else float("nan")
        share = self.done / self.total if self.total else 1.0
        failed = f", {self.failed} failed" if self.failed else ""
        return (
            f"{self.done}/{self.total} points ({share:.0%}), {rate:.1f} points/s, "
            f"ETA {format_duration(eta)}{failed}"
        )

    def _write_log_line(self, now: float | None = None) -> None:
        self.stream.write("sweep: " + self.line(now) + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Draw the final state (bar) or write the final line (log); later calls do nothing."""
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.stop()
            atexit.unregister(self.close)
        elif self.mode == "log" and self.total:
            self._write_log_line()
