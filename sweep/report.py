"""The study report: curves, figures, ``report.md``, a self-contained ``report.html``.

``python -m sweep.report DIR/NAME`` re-renders everything from the stored result set (nothing is
simulated), and works while the sweep is still writing it: only complete ``part-*.parquet``
files are read. :func:`render` is what ``python -m sweep`` calls at the end of every run.
"""

from __future__ import annotations

import argparse
import html
import io
import os
import sys
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Final

import polars as pl
from rich import box
from rich.console import Console, JustifyMethod
from rich.table import Table
from rich.text import Text

from sweep.curves import (
    CONFIDENCE,
    CURVE_KEYS,
    KNEE_MARGINAL_EFFICIENCY,
    UTIL_SATURATED,
    compute_curves,
    summarize,
)
from sweep.plots import FIGURE_KINDS, render_figures
from sweep.store import ResultSetError, point_files

FIGURE_CAPTIONS: Final[dict[str, str]] = {
    "scaling": "Wall time, throughput and speedup against cores",
    "utilisation": "Reaper and KERNEL_LOCK utilisation against cores",
    "latency": "Exit-to-parent-notified latency (p99) against cores",
    "breakdown": "Teardown seconds by operation and by context, per variant",
}

COLUMNS: Final[tuple[tuple[str, str], ...]] = (
    ("machine", "machine"),
    ("mix", "mix"),
    ("variant", "variant"),
    ("cores", "cores"),
    ("knee_cores", "knee [cores]"),
    ("bottleneck", "bottleneck"),
    ("speedup_at_max", "speedup@max"),
    ("efficiency_at_max", "efficiency@max"),
    ("throughput_at_max", "exits/s@max"),
    ("gain_vs_baseline", "gain vs baseline@max"),
)
"""(summary column, table header) in table order."""


class ReportError(ValueError):
    """The study directory has no result set to report on (one-line message)."""


def definitions() -> list[str]:
    """The definitions behind the table, one sentence each (also in sweep.curves' docstring)."""
    pct = round(100 * CONFIDENCE)
    return [
        f"Values are means over seeds; figures show the {pct} % Student-t interval on the mean.",
        "speedup = X(c) / X(c0), X the mean exits per second, c0 the smallest core count of the "
        "curve (for a fixed amount of work, as in kernel_build, this is the wall-time speedup "
        "W(c0) / W(c)); efficiency = speedup / (c / c0); @max = at the curve's largest core count.",
        "gain vs baseline = X / X_baseline, X the mean exits per second, at the same machine, "
        "mix and core count (above 1: the variant is faster).",
        "knee = the smallest core count c_i whose step to the next grid point has marginal "
        "efficiency ((X(c_i+1) - X(c_i)) / X(c_i)) / ((c_i+1 - c_i) / c_i) below "
        f"{KNEE_MARGINAL_EFFICIENCY:g}: beyond it adding cores stops helping; "
        "'none' if every step helps within the grid.",
        "bottleneck = the resource saturated at the knee: reaper or kernel_lock when its "
        f"utilisation is >= {UTIL_SATURATED:g} (the higher of the two), else cpu when cpu_util "
        f">= {UTIL_SATURATED:g}, else none (waiting, serial phases or latency bound the curve). "
        "Utilisations are whole-run averages, serial phases included, hence a threshold below "
        "an open queue's ~0.9.",
    ]


def _fmt(column: str, value: object) -> str:
    if value is None:
        return "none" if column == "knee_cores" else "-"
    if column == "knee_cores":
        return str(int(value))  # type: ignore[call-overload]
    if column in ("speedup_at_max", "efficiency_at_max", "gain_vs_baseline"):
        return f"{value:.3f}"
    if column == "throughput_at_max":
        return f"{value:.5g}"
    return str(value)


def table_rows(summary: pl.DataFrame) -> list[list[str]]:
    """Formatted cells of the summary table, header first."""
    rows = [[header for _, header in COLUMNS]]
    for rec in summary.iter_rows(named=True):
        rec = dict(rec, cores=f"{rec['min_cores']}-{rec['max_cores']}")
        rows.append([_fmt(col, rec[col]) for col, _ in COLUMNS])
    return rows


def plain_table(rows: Sequence[Sequence[str]], numeric: Collection[int] = ()) -> str:
    """``rows`` (header first) as an aligned plain-text table drawn by rich, without colour.

    Columns in ``numeric`` are right-aligned. The console is as wide as the table needs, so no
    cell is wrapped or cut whatever the terminal width: the lines can be parsed back.
    """
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="none")
    for i, header in enumerate(rows[0]):
        justify: JustifyMethod = "right" if i in numeric else "left"
        table.add_column(Text(header), justify=justify, no_wrap=True)
    for row in rows[1:]:
        table.add_row(*(Text(cell) for cell in row))  # Text: "[...]" in a cell is not markup
    buffer = io.StringIO()
    Console(file=buffer, width=100_000, color_system=None, force_terminal=False).print(table)
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines())


def text_table(summary: pl.DataFrame) -> str:
    """The summary as aligned plain text (what ``python -m sweep`` prints)."""
    numeric = {i for i, (col, _) in enumerate(COLUMNS) if col.endswith(("_max", "_baseline"))}
    return (
        plain_table(table_rows(summary), numeric)
        + "\nknee: first core count where the next grid step adds < "
        f"{KNEE_MARGINAL_EFFICIENCY:g} of linear scaling's throughput gain; bottleneck: "
        f"resource >= {UTIL_SATURATED:g} utilised there"
    )


def markdown_table(summary: pl.DataFrame) -> str:
    rows = table_rows(summary)
    out = ["| " + " | ".join(rows[0]) + " |"]
    out.append("|" + "|".join("---:" if c.endswith("max") else "---" for c in rows[0]) + "|")
    out += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(out)


def _status_counts(points_dir: Path) -> dict[str, int]:
    files = point_files(points_dir)
    if not files:
        return {}
    try:
        counts = (
            pl.scan_parquet(files, hive_partitioning=False, missing_columns="insert")
            .group_by("status")
            .len()
            .collect()
        )
    except (OSError, pl.exceptions.PolarsError):
        return {}
    return {str(s): int(n) for s, n in counts.iter_rows()}


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.parent / f".{path.name}.tmp"
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _markdown(
    name: str,
    summary: pl.DataFrame,
    figures: dict[tuple[str, str], dict[str, Path]],
    counts: dict[str, int],
    study_dir: Path,
) -> str:
    errors = sum(n for s, n in counts.items() if s != "ok")
    lines = [
        f"# Study `{name}`",
        "",
        f"Result set `{study_dir / 'points'}`: {counts.get('ok', 0)} successful points"
        + (f", {errors} failed points (not shown)" if errors else "")
        + ". Curves in `curves.parquet`.",
        "",
        "## Summary",
        "",
        markdown_table(summary),
        "",
        "## Definitions",
        "",
        *[f"- {d}" for d in definitions()],
        "",
        "## Figures",
    ]
    for (machine, mix), stems in figures.items():
        lines += ["", f"### {mix} on {machine}", ""]
        for kind in FIGURE_KINDS:
            rel = stems[kind].relative_to(study_dir).as_posix()
            lines.append(f"![{FIGURE_CAPTIONS[kind]}]({rel}.png)  ")
            lines.append(f"{FIGURE_CAPTIONS[kind]} ([SVG]({rel}.svg))")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


_CSS: Final[str] = """
body { font-family: sans-serif; max-width: 1300px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1.5em 0; } figure svg { max-width: 100%; height: auto; }
"""


def _inline_svg(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    start = text.find("<svg")
    return text[start:] if start >= 0 else ""


def _html(
    name: str,
    summary: pl.DataFrame,
    figures: dict[tuple[str, str], dict[str, Path]],
    counts: dict[str, int],
) -> str:
    esc = html.escape
    rows = table_rows(summary)
    numeric = {i for i, (col, _) in enumerate(COLUMNS) if col.endswith(("_max", "_baseline"))}
    head = "".join(f"<th>{esc(h)}</th>" for h in rows[0])
    body = "\n".join(
        "<tr>"
        + "".join(
            f'<td class="num">{esc(c)}</td>' if i in numeric else f"<td>{esc(c)}</td>"
            for i, c in enumerate(r)
        )
        + "</tr>"
        for r in rows[1:]
    )
    errors = sum(n for s, n in counts.items() if s != "ok")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Study {esc(name)}</title><style>{_CSS}</style></head><body>",
        f"<h1>Study <code>{esc(name)}</code></h1>",
        f"<p>{counts.get('ok', 0)} successful points"
        + (f", {errors} failed points (not shown)" if errors else "")
        + ".</p>",
        "<h2>Summary</h2>",
        f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>",
        "<h2>Definitions</h2><ul>",
        *[f"<li>{esc(d)}</li>" for d in definitions()],
        "</ul><h2>Figures</h2>",
    ]
    for (machine, mix), stems in figures.items():
        parts.append(f"<h3>{esc(mix)} on {esc(machine)}</h3>")
        for kind in FIGURE_KINDS:
            svg = _inline_svg(stems[kind].parent / f"{stems[kind].name}.svg")
            parts.append(
                f"<figure>{svg}<figcaption>{esc(FIGURE_CAPTIONS[kind])}</figcaption></figure>"
            )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def render(study_dir: Path, *, breakdown_cores: int | None = None) -> str:
    """Write curves, figures and reports of ``study_dir``; return the summary as plain text.

    Writes ``curves.parquet``, ``figures/<machine>__<mix>__<kind>.{png,svg}``, ``report.md``
    and ``report.html`` (figures inlined as SVG) into ``study_dir``. ``breakdown_cores`` picks
    the core count of the breakdown figures (default: the largest of each machine and mix).
    Raises :class:`ReportError` when there is nothing to report on.
    """
    study_dir = Path(study_dir)
    if not study_dir.is_dir():
        raise ReportError(f"no study directory at {study_dir}")
    points_dir = study_dir / "points"
    try:
        curves = compute_curves(points_dir)
    except ResultSetError as exc:
        raise ReportError(str(exc)) from None
    summary = summarize(curves)
    tmp = study_dir / ".curves.parquet.tmp"
    curves.sort(list(CURVE_KEYS) + ["cores"]).write_parquet(tmp)
    os.replace(tmp, study_dir / "curves.parquet")
    try:
        figures = render_figures(curves, study_dir / "figures", breakdown_cores=breakdown_cores)
    except ValueError as exc:
        raise ReportError(str(exc)) from None
    counts = _status_counts(points_dir)
    name = study_dir.name
    _write_atomic(study_dir / "report.md", _markdown(name, summary, figures, counts, study_dir))
    _write_atomic(study_dir / "report.html", _html(name, summary, figures, counts))
    return text_table(summary)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sweep.report",
        description="Re-render curves, figures and report.md/report.html of a stored result set.",
    )
    parser.add_argument("study_dir", type=Path, help="the study directory DIR/NAME")
    parser.add_argument(
        "--breakdown-cores",
        type=int,
        default=None,
        help="core count of the teardown breakdown figures (default: the largest)",
    )
    args = parser.parse_args(argv)
    try:
        table = render(args.study_dir, breakdown_cores=args.breakdown_cores)
    except ReportError as exc:
        print(f"sweep.report: error: {exc}", file=sys.stderr)
        return 2
    print(table)
    print(f"wrote {args.study_dir / 'report.md'} and {args.study_dir / 'report.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
