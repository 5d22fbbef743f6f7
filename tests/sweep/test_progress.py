"""sweep.progress: the bar and the log lines say points done, rate and ETA."""

from __future__ import annotations

import io

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


def test_bar_mode_redraws_one_line() -> None:
    stream = io.StringIO()
    progress = Progress(total=4, mode="bar", stream=stream, width=8)
    progress.update(4)
    progress.close()
    text = stream.getvalue()
    assert text.startswith("\r[########] 4/4 points (100%)") and text.endswith("\n")
    assert text.count("\n") == 1
