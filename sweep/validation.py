"""Model against published: point rows and measurements -> the validation table, report, figure.

Pure functions (no Ray, no Hydra); ``python -m sweep.validate`` and ``python -m sweep.fit`` both
use them, so there is one implementation of "how far is the model from each measurement".

The table has one row per measurement and figure, columns :data:`COLUMNS`:

- a **figure** (``wall_s``): ``published``; ``model_mean`` over the seeds and ``model_ci95``, the
  half-width of its 95 % confidence interval (Student t over the seeds; null for one seed);
  ``rel_error = model_mean / published - 1``; ``within = |rel_error| <= tolerance``.
- a **ratio figure** (``sys_s/kernel_build_m2_baseline``, a measurement with ``versus``): the same
  for this measurement's figure divided by the other's; the model's ratio is taken seed by seed
  (both points see the same workload) and then averaged.
- a **bound** (``reaper_util`` in ``[0, 0.05]``): ``within`` = the model mean is inside the
  interval, ``rel_error`` is the relative distance outside it (0 inside), ``tolerance`` is null and
  ``published`` is the end of the interval the claim is about: the upper end, unless the model
  is below the lower one (or the upper end is infinite). Reports print the interval.
- a measurement the model cannot compute yet (:attr:`sweep.measurement.Measurement.not_modelled`)
  has null model columns and a null ``within``; its reason is in :func:`notes`.

Exit status (:func:`exit_status`): 0 when every ``calibrate`` row is within, else 1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from sweep.measurement import Measurement, MeasurementSet, ratio_figure

COLUMNS: tuple[str, ...] = (
    "measurement",
    "role",
    "figure",
    "published",
    "model_mean",
    "model_ci95",
    "rel_error",
    "tolerance",
    "within",
)
SCHEMA: dict[str, Any] = {
    "measurement": pl.String,
    "role": pl.String,
    "figure": pl.String,
    "published": pl.Float64,
    "model_mean": pl.Float64,
    "model_ci95": pl.Float64,
    "rel_error": pl.Float64,
    "tolerance": pl.Float64,
    "within": pl.Boolean,
}

ROLE_ORDER: tuple[str, ...] = ("calibrate", "check")

Samples = Mapping[str, Mapping[str, np.ndarray]]
"""``samples[measurement][figure]``: the model's value at each seed (NaN where a point failed)."""


def collect_samples(
    ms: MeasurementSet, index: Sequence[tuple[str, int]], rows: pa.Table | pl.DataFrame
) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, list[str]]]:
    """Per-seed values of every figure and bound column, and the errors of failed points.

    ``rows`` holds one point row per entry of ``index`` (``(measurement, seed)``), in that
    order: what :func:`sweep.pipeline.run_points` returns for the specs of
    :meth:`MeasurementSet.point_specs`.
    """
    frame = rows if isinstance(rows, pl.DataFrame) else pl.from_arrow(rows)
    assert isinstance(frame, pl.DataFrame)
    if frame.height != len(index):
        raise ValueError(f"rows: expected {len(index)} rows, one per point, got {frame.height}")
    positions: dict[str, list[int]] = {}
    for i, (name, _seed) in enumerate(index):
        positions.setdefault(name, []).append(i)
    statuses = frame.get_column("status").to_list()
    messages = frame.get_column("error").to_list()
    samples: dict[str, dict[str, np.ndarray]] = {}
    errors: dict[str, list[str]] = {}
    for name, where in positions.items():
        m = ms.by_name[name]
        ok = np.array([statuses[i] == "ok" for i in where])
        errors[name] = [str(messages[i]) for i in where if statuses[i] != "ok"]
        samples[name] = {}
        for column in (*m.figures, *m.bounds):
            values = frame.get_column(column).gather(where).cast(pl.Float64).to_numpy()
            samples[name][column] = np.where(ok, values, np.nan)
    return samples, errors


def _mean_ci(values: np.ndarray) -> tuple[float, float | None]:
    from scipy import stats

    if len(values) == 0 or np.isnan(values).any():
        return math.nan, None
    mean = float(np.mean(values))
    if len(values) < 2:
        return mean, None
    half = stats.t.ppf(0.975, len(values) - 1) * np.std(values, ddof=1) / math.sqrt(len(values))
    return mean, float(half)


def _bound_row(lo: float, hi: float, mean: float) -> tuple[float, float, bool]:
    """(published end, rel_error outside the interval, within) of a bound."""
    if math.isnan(mean):
        return (hi if math.isfinite(hi) else lo), math.nan, False
    if mean > hi:
        return hi, (mean / hi - 1 if hi > 0 else math.inf), False
    if mean < lo:
        return lo, (mean / lo - 1 if lo > 0 else -math.inf), False
    return (hi if math.isfinite(hi) else lo), 0.0, True


def validation_table(ms: MeasurementSet, samples: Samples) -> pl.DataFrame:
    """The validation table of ``ms.selected`` (see the module docstring)."""
    records: list[dict[str, Any]] = []
    for m in sorted(ms.selected, key=lambda m: (ROLE_ORDER.index(m.role), m.name)):
        records.extend(_rows(m, ms, samples))
    return pl.DataFrame(records, schema=SCHEMA, orient="row") if records else _empty()


def _empty() -> pl.DataFrame:
    return pl.DataFrame(schema=SCHEMA)


def _rows(m: Measurement, ms: MeasurementSet, samples: Samples) -> list[dict[str, Any]]:
    def record(figure: str, published: float, **model: Any) -> dict[str, Any]:
        base = {"measurement": m.name, "role": m.role, "figure": figure, "published": published}
        empty = dict.fromkeys(("model_mean", "model_ci95", "rel_error", "tolerance", "within"))
        return {**base, **empty, **model}

    out = []
    own = samples.get(m.name) if m.modelled else None
    for figure, published in m.figures.items():
        tolerance = m.tolerance[figure]
        if own is None:
            out.append(record(figure, published, tolerance=tolerance))
            continue
        mean, ci = _mean_ci(own[figure])
        rel = mean / published - 1
        within = bool(abs(rel) <= tolerance) if not math.isnan(rel) else False
        out.append(
            record(
                figure,
                published,
                model_mean=mean,
                model_ci95=ci,
                rel_error=rel,
                tolerance=tolerance,
                within=within,
            )
        )
    if m.versus is not None:
        other = ms.by_name[m.versus]
        theirs = samples.get(other.name) if other.modelled else None
        for figure in m.ratio_figures:
            published = m.figures[figure] / other.figures[figure]
            tolerance = m.ratio_tolerance[figure]
            name = ratio_figure(figure, other.name)
            if own is None or theirs is None:
                out.append(record(name, published, tolerance=tolerance))
                continue
            mean, ci = _mean_ci(own[figure] / theirs[figure])
            rel = mean / published - 1
            within = bool(abs(rel) <= tolerance) if not math.isnan(rel) else False
            out.append(
                record(
                    name,
                    published,
                    model_mean=mean,
                    model_ci95=ci,
                    rel_error=rel,
                    tolerance=tolerance,
                    within=within,
                )
            )
    for figure, (lo, hi) in m.bounds.items():
        if own is None:
            out.append(record(figure, hi if math.isfinite(hi) else lo))
            continue
        mean, ci = _mean_ci(own[figure])
        published, rel, within = _bound_row(lo, hi, mean)
        out.append(
            record(figure, published, model_mean=mean, model_ci95=ci, rel_error=rel, within=within)
        )
    return out


def exit_status(table: pl.DataFrame) -> int:
    """0 when every ``calibrate`` row is within its tolerance or bounds, else 1."""
    calibrate = table.filter(pl.col("role") == "calibrate")
    return 0 if calibrate.get_column("within").fill_null(False).all() else 1


def log_residuals(table: pl.DataFrame) -> np.ndarray:
    """``log(model / published)`` of every row (0 for a bound that holds): what a fit minimises.

    Raises ``ValueError`` when a row has no model value (a failed or unmodelled point).
    """
    rel = table.get_column("rel_error").to_numpy()
    if len(rel) and (np.isnan(rel).any() or not np.isfinite(rel).all()):
        bad = table.filter(~pl.col("rel_error").is_finite() | pl.col("rel_error").is_null())
        first = bad.row(0, named=True)
        raise ValueError(f"{first['measurement']} {first['figure']}: no model value to fit")
    return np.log1p(rel)


def largest_errors(table: pl.DataFrame) -> dict[str, dict[str, Any]]:
    """Per role, the row with the largest ``|rel_error|`` (roles with no model value omitted)."""
    out: dict[str, dict[str, Any]] = {}
    for role in ("calibrate", "check"):
        rows = table.filter((pl.col("role") == role) & pl.col("rel_error").is_not_null())
        if rows.height:
            i = int(rows.get_column("rel_error").abs().arg_max() or 0)
            out[role] = rows.row(i, named=True)
    return out


def notes(ms: MeasurementSet, errors: Mapping[str, Sequence[str]]) -> list[str]:
    """One line per selected measurement that has no model value, and why."""
    lines = []
    for m in ms.selected:
        if not m.modelled:
            lines.append(f"{m.name}: not yet modelled: {m.not_modelled}")
        elif errors.get(m.name):
            failed = errors[m.name]
            lines.append(f"{m.name}: {len(failed)} point(s) failed: {failed[0][:300]}")
    return lines


# ---- presentation --------------------------------------------------------------------------


def _number(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.5g}"


def _percent(x: float | None) -> str:
    if x is None or math.isnan(x):
        return "-"
    if math.isinf(x):
        return "inf"
    return f"{x * 100:+.1f} %"


def _interval(ci: float | None, mean: float | None) -> str:
    if ci is None or mean is None or math.isnan(ci):
        return ""
    return " ± 0" if ci <= 1e-9 * abs(mean) else f" ± {ci:.2g}"


def display_rows(table: pl.DataFrame, ms: MeasurementSet) -> list[list[str]]:
    """The table as strings: bounds shown as their interval, unmodelled rows said so."""
    out = []
    for row in table.iter_rows(named=True):
        m = ms.by_name[row["measurement"]]
        bound = m.bounds.get(row["figure"]) if row["tolerance"] is None else None
        published = f"[{_number(bound[0])}, {_number(bound[1])}]" if bound else None
        if row["model_mean"] is None and not m.modelled:
            within = "not yet modelled"
        elif row["within"] is None:
            within = "-"
        else:
            within = "yes" if row["within"] else "NO"
        ci = row["model_ci95"]
        out.append(
            [
                row["measurement"],
                row["role"],
                row["figure"],
                published or _number(row["published"]),
                _number(row["model_mean"]) + _interval(ci, row["model_mean"]),
                _percent(row["rel_error"]),
                "bounds" if bound else _percent(row["tolerance"]).lstrip("+"),
                within,
            ]
        )
    return out


HEADERS = (
    "measurement",
    "role",
    "figure",
    "published",
    "model (± 95 %)",
    "error",
    "tol.",
    "within",
)


def markdown_table(table: pl.DataFrame, ms: MeasurementSet) -> str:
    """The validation table in Markdown."""
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    for cells in display_rows(table, ms):
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def text_table(table: pl.DataFrame, ms: MeasurementSet) -> str:
    """The validation table in aligned plain text, for a terminal (the reports' renderer)."""
    from sweep.report import plain_table

    return plain_table([list(HEADERS), *display_rows(table, ms)], numeric={3, 4, 5, 6})


def summary_lines(table: pl.DataFrame) -> list[str]:
    """Per role: how many rows are within, and the largest |error|."""
    lines = []
    largest = largest_errors(table)
    for role in ROLE_ORDER:
        rows = table.filter(pl.col("role") == role)
        if not rows.height:
            continue
        within = int(rows.get_column("within").fill_null(False).sum())
        unvalued = rows.get_column("model_mean").null_count()
        text = f"{role}: {within} of {rows.height} rows within"
        if unvalued:
            text += f", {unvalued} without a model value"
        if role in largest:
            row = largest[role]
            text += (
                f"; largest |error| {_percent(row['rel_error'])} "
                f"({row['measurement']} {row['figure']})"
            )
        lines.append(text)
    return lines


def markdown_report(
    table: pl.DataFrame, ms: MeasurementSet, note_lines: Sequence[str], header: str
) -> str:
    """``validation.md``: the table, the largest errors, the notes and each source."""
    parts = [f"# Model against published measurements\n\n{header}\n", markdown_table(table, ms)]
    parts.append("\n" + "\n".join(f"- {line}" for line in summary_lines(table)))
    if note_lines:
        parts.append("\n" + "\n".join(f"- {line}" for line in note_lines))
    parts.append("\n## Sources\n")
    parts.append("\n".join(f"- `{m.name}` ({m.role}): {m.source}" for m in ms.selected))
    return "\n".join(parts) + "\n"


def plot(table: pl.DataFrame, ms: MeasurementSet, path: Path) -> Path:
    """Predicted against published: log-log on the left, model / published per row on the right.

    One marker per row with a model value: ``calibrate`` filled circles, ``check`` open squares,
    each with its 95 % interval. The tolerance band (grey; for a bound, its interval) is drawn
    around each marker's published value on the left and as a span per row on the right, where
    the rows without a model value are listed with the reason.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    styles = {
        "calibrate": {"marker": "o", "color": "C0", "mfc": "C0"},
        "check": {"marker": "s", "color": "C3", "mfc": "none"},
    }
    n = table.height
    fig, (ax, bx) = plt.subplots(
        1, 2, figsize=(13, max(4.5, 0.28 * n + 1.5)), gridspec_kw={"width_ratios": [1, 1.25]}
    )
    has = table.filter(pl.col("model_mean").is_not_null() & (pl.col("model_mean") > 0))
    xs = has.get_column("published").to_list() + has.get_column("model_mean").to_list()
    lo_all, hi_all = (min(xs) / 2, max(xs) * 2) if xs else (0.01, 10.0)
    ax.plot([lo_all, hi_all], [lo_all, hi_all], color="0.5", lw=0.8, zorder=1)
    labelled: set[str] = set()
    for i, row in enumerate(table.iter_rows(named=True)):
        m = ms.by_name[row["measurement"]]
        x, y, tol = row["published"], row["model_mean"], row["tolerance"]
        if tol is not None:
            band, ratio_band = (x * (1 - tol), x * (1 + tol)), (1 - tol, 1 + tol)
        else:
            lo, hi = m.bounds[row["figure"]]
            band = (max(lo, lo_all), min(hi, hi_all))
            ratio_band = (max(lo / x, 1e-3), min(hi / x, 1e3))
        bx.plot(ratio_band, [i, i], color="0.8", lw=7, solid_capstyle="butt", zorder=1)
        style = styles[row["role"]]
        if y is None or not y > 0:
            reason = m.not_modelled and "not yet modelled" or "no model value"
            bx.text(1.0, i, reason, fontsize=7, va="center", ha="center", color="0.3")
            continue
        ax.plot([x, x], band, color="0.75", lw=6, solid_capstyle="butt", zorder=2)
        label = row["role"] if row["role"] not in labelled else None
        labelled.add(row["role"])
        ci = row["model_ci95"] or 0.0
        ax.errorbar(x, y, yerr=ci, ls="none", ms=6, zorder=3, label=label, **style)
        bx.errorbar(y / x, i, xerr=ci / x, ls="none", ms=5, zorder=3, **style)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo_all, hi_all)
    ax.set_ylim(lo_all, hi_all)
    ax.set_xlabel("published")
    ax.set_ylabel("model (mean over seeds, 95 % interval)")
    ax.set_title("Model against published (grey: tolerance or bound)", fontsize=9)
    if labelled:
        ax.legend(loc="upper left", fontsize=8)
    bx.axvline(1.0, color="0.5", lw=0.8)
    bx.set_xscale("log")
    ratios = (has.get_column("model_mean") / has.get_column("published")).to_list()
    bx.set_xlim(min([0.85, *ratios]) / 1.1, max([1.15, *ratios]) * 1.1)
    bx.set_yticks(range(n))
    bx.set_yticklabels([f"{r['measurement']}  {r['figure']}" for r in table.iter_rows(named=True)])
    bx.tick_params(axis="y", labelsize=6)
    bx.invert_yaxis()
    bx.set_xlabel("model / published (bound rows: model / published end)")
    bx.set_title("Each row against its tolerance band", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130, format="png")
    plt.close(fig)
    return path
