"""sweep.progress: the bar and the log lines say points done, rate and ETA."""

from __future__ import annotations

import io
import re
import time

from sweep.progress import Progress, format_duration


def test_durations_read_naturally() -> None:
    assert [format_duration(s) for s in (0, 59.4, 75, 3600 + 125)] == [
        "0s",
        "59s",
        "1m15s",
        "1h02m",
    ]
    assert format_duration(float("nan")) == "?"


def test_log_mode_writes_plain_lines_with_counts_rate_and_eta() -> None:
    stream = io.StringIO()  # not a terminal: auto picks log lines
    progress = Progress(total=10, stream=stream, log_every_s=0.0)
    assert progress.mode == "log"
    progress.update(4)
    progress.update(1, failed=1)
    progress.close()
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("sweep: 4/10 points (40%), ") and "points/s, ETA " in lines[0]
    assert lines[1].startswith("sweep: 5/10 points (50%)") and lines[1].endswith(", 1 failed")
    assert "\r" not in stream.getvalue() and len(lines) == 3


def test_log_mode_writes_a_line_only_every_log_every_s() -> None:
    stream = io.StringIO()
    progress = Progress(total=10, mode="log", stream=stream, log_every_s=3600)
    for _ in range(5):
        progress.update(1)
    progress.close()
    progress.close()  # closing twice writes the final line once
    lines = stream.getvalue().splitlines()
    assert [ln.split(" (")[0] for ln in lines] == ["sweep: 1/10 points", "sweep: 5/10 points"]


def _visible(text: str) -> str:
    """What a terminal shows of the last redraw: control sequences removed."""
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text).rsplit("\r", 1)[-1]


def test_bar_mode_redraws_one_line_with_counts_rate_and_eta() -> None:
    stream = io.StringIO()  # not a terminal: the bar is drawn because it was asked for
    progress = Progress(total=4, mode="bar", stream=stream)
    progress.update(2)
    time.sleep(0.3)
    progress.update(2, failed=1)
    progress.close()
    progress.close()  # a second close draws nothing more
    text = stream.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n\x1b[?25h")
    assert "\r" in text  # redrawn in place
    last = " ".join(_visible(text).split())
    assert re.fullmatch(
        r"sweep ━+ 4/4 points 100% \d+\.\d points/s \d:\d\d:\d\d ETA 0:00:00 1 failed", last
    ), last
    assert text.startswith("\x1b[?25l") and text.endswith("\x1b[?25h")  # cursor given back


def test_off_mode_writes_nothing() -> None:
    stream = io.StringIO()
    progress = Progress(total=3, mode="off", stream=stream)
    progress.update(3)
    progress.close()
    assert stream.getvalue() == ""
