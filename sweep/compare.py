"""Two result sets side by side: the ratio B/A of the main metrics at every common curve point.

``python -m sweep.compare DIR/A DIR/B`` pairs the successful points of both result sets on
(machine, mix, variant, cores, seed), prints per (machine, mix, variant, cores) the ratio
``mean_B / mean_A`` over the paired seeds of ``wall_s``, ``sys_s``, ``exits_per_s`` and
``reaper_util``, with a 95 % interval when two or more seeds are paired, and flags the ratios
whose interval excludes 1. It writes ``DIR/B/compare-A.md`` and ``DIR/B/compare-A.png`` (the
ratios against cores), ``A`` being the name of A's directory. Points of one set without a
successful partner in the other are counted and listed, and failed rows (``status='error'``)
are counted; neither enters a ratio.

The interval (:func:`ratio_table`) is a Student-t interval on the per-seed log ratios
``log(B_s / A_s)``, exponentiated. Why that one:

* Pairing by seed is valid and removes the workload noise: both studies derive a point's random
  stream from the root seed, the grid seed, the mix parameters and the core count only
  (``sweep.plan``, common random numbers), so seed ``s`` of A and seed ``s`` of B simulate the
  same generated workload unless the mix itself changed. The per-seed ratio then varies only
  by what the change does, and a paired interval is far narrower than one from two independent
  means.
* Logs because the quantities are positive and the effect is multiplicative: a ratio's log is
  symmetric (x2 and x0.5 are equally far from 0), closer to normal than the ratio itself, and
  the interval can never reach zero or below.
* Student t because a study has a handful of seeds: ``t(0.975, n - 1)`` from
  :func:`sweep.curves.t_quantile`, the same as the report's intervals on seed means.

The interval is the one of the geometric mean of the per-seed ratios; the printed ratio is the
ratio of the seed means, as asked for. The two agree when the per-seed ratios do (the usual case
with common random numbers) and the interval contains both in practice. A metric that is zero
in some paired seed (``reaper_util`` of a variant without reaper work) has no log ratio: its
ratio of means is shown without an interval (or ``-`` when both means are zero).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

import numpy as np
import polars as pl
import pyarrow as pa

from sweep.curves import CONFIDENCE, t_quantile
from sweep.store import read_points

if TYPE_CHECKING:
    from matplotlib.figure import Figure  # imported when drawing: matplotlib is slow to load

METRICS: Final[tuple[str, ...]] = ("wall_s", "sys_s", "exits_per_s", "reaper_util")
"""Compared metrics, in table and figure order."""

PAIR_KEYS: Final[tuple[str, ...]] = ("machine", "mix", "variant", "cores", "seed")
"""One point of a result set: the two sets are joined on these."""

ROW_KEYS: Final[tuple[str, ...]] = PAIR_KEYS[:-1]
"""One row of the comparison: the seeds of a curve point aggregated."""

ONE_SIDED_SHOWN: Final[int] = 20
"""Curves with one-sided points printed on the terminal; ``compare-A.md`` lists every point."""


class CompareError(ValueError):
    """Two result sets that cannot be compared; the message is one line for the user."""


@dataclass(frozen=True, slots=True)
class Comparison:
    """What :func:`compare` found.

    ``ratios``: one row per (machine, mix, variant, cores) with ``n_seeds`` and, per metric
    ``m``, ``m_a`` and ``m_b`` (seed means), ``m_ratio``, ``m_lo``, ``m_hi`` (null without an
    interval) and ``m_differs`` (the interval excludes 1; null without an interval).
    ``one_sided``: the points of :data:`PAIR_KEYS` with ``side`` (``A`` or ``B``, the set that
    has the point) and ``reason`` (``absent from B`` or ``error in B``, and the same for A).
    """

    a_dir: Path
    b_dir: Path
    ratios: pl.DataFrame
    one_sided: pl.DataFrame
    errors_a: int
    errors_b: int
    paired_points: int

    @property
    def a_name(self) -> str:
        return self.a_dir.name

    @property
    def b_name(self) -> str:
        return self.b_dir.name

    @property
    def flagged(self) -> int:
        """Rows with at least one metric whose interval excludes 1."""
        return int(self.ratios.select(pl.any_horizontal(_differs_cols()).sum()).item() or 0)


def _differs_cols() -> list[pl.Expr]:
    return [pl.col(f"{m}_differs").fill_null(False) for m in METRICS]


def load_points(study_dir: Path) -> pl.DataFrame:
    """The rows of a result set that a comparison needs: :data:`PAIR_KEYS`, status, metrics.

    Raises :class:`CompareError` when ``study_dir`` is missing, is not a result set, cannot
    be read, or holds a point twice.
    """
    study_dir = Path(study_dir)
    if not study_dir.is_dir():
        raise CompareError(f"no study directory at {study_dir}")
    try:
        table = read_points(study_dir)
    except (OSError, ValueError, pa.ArrowException) as exc:
        detail = " ".join(str(exc).split())[:200]
        raise CompareError(f"{study_dir} cannot be read as a result set: {detail}") from None
    df = pl.from_arrow(table.select([*PAIR_KEYS, "status", *METRICS]))
    assert isinstance(df, pl.DataFrame)
    if df.is_empty():
        raise CompareError(f"{study_dir} is not a result set: no point is stored in it")
    twice = df.group_by(PAIR_KEYS).len().filter(pl.col("len") > 1)
    if twice.height:
        key = ", ".join(f"{k}={v}" for k, v in twice.row(0, named=True).items() if k != "len")
        raise CompareError(
            f"{study_dir} holds {twice.height} point(s) more than once (first: {key}); "
            "it is not one result set"
        )
    return df


def ratio_table(pairs: pl.DataFrame) -> pl.DataFrame:
    """Ratios B/A per (machine, mix, variant, cores) from paired rows (see module docstring).

    ``pairs`` has :data:`PAIR_KEYS` and, per metric ``m``, A's value as ``m`` and B's as
    ``m_b``, one row per paired point.
    """
    aggs: list[pl.Expr] = [pl.len().alias("n_seeds")]
    for m in METRICS:
        a, b = pl.col(m).cast(pl.Float64), pl.col(f"{m}_b").cast(pl.Float64)
        log_ratio = pl.when((a > 0) & (b > 0)).then((b / a).log()).otherwise(None)
        aggs += [
            a.mean().alias(f"{m}_a"),
            b.mean().alias(f"{m}_b"),
            log_ratio.mean().alias(f"_{m}_lr"),
            log_ratio.std(ddof=1).alias(f"_{m}_sd"),
            log_ratio.count().alias(f"_{m}_n"),
        ]
    agg = pairs.group_by(ROW_KEYS).agg(aggs).sort(ROW_KEYS)
    t_by_n = {n: t_quantile(n - 1, CONFIDENCE) for n in agg["n_seeds"].unique() if n >= 2}
    t = pl.col("n_seeds").replace_strict(t_by_n, default=None, return_dtype=pl.Float64)
    out = []
    for m in METRICS:
        mean_a, mean_b = pl.col(f"{m}_a"), pl.col(f"{m}_b")
        # 0/0 is NaN in Polars: no ratio. x/0 with x > 0 stays inf (B has what A lacks).
        ratio = pl.when(mean_a == 0).then(pl.when(mean_b == 0).then(None).otherwise(math.inf))
        ratio = ratio.otherwise(mean_b / mean_a)
        # An interval only when every paired seed has a log ratio, and there are two or more.
        has_ci = (pl.col(f"_{m}_n") == pl.col("n_seeds")) & (pl.col("n_seeds") >= 2)
        half = t * pl.col(f"_{m}_sd") / pl.col("n_seeds").cast(pl.Float64).sqrt()
        lo = pl.when(has_ci).then((pl.col(f"_{m}_lr") - half).exp()).otherwise(None)
        hi = pl.when(has_ci).then((pl.col(f"_{m}_lr") + half).exp()).otherwise(None)
        out += [ratio.alias(f"{m}_ratio"), lo.alias(f"{m}_lo"), hi.alias(f"{m}_hi")]
    agg = agg.with_columns(out)
    agg = agg.with_columns(
        ((pl.col(f"{m}_lo") > 1) | (pl.col(f"{m}_hi") < 1)).alias(f"{m}_differs") for m in METRICS
    )
    return agg.select(
        *ROW_KEYS,
        "n_seeds",
        *[
            pl.col(f"{m}_{part}")
            for m in METRICS
            for part in ("a", "b", "ratio", "lo", "hi", "differs")
        ],
    )


def _one_sided(have: pl.DataFrame, other: pl.DataFrame, side: str, other_name: str) -> pl.DataFrame:
    """Successful points of ``have`` with no successful partner in ``other``, and why."""
    other_keys = other.select(*PAIR_KEYS, pl.col("status").alias("_other_status"))
    lonely = have.filter(pl.col("status") == "ok").join(other_keys, on=PAIR_KEYS, how="left")
    lonely = lonely.filter(pl.col("_other_status").fill_null("") != "ok")
    return lonely.select(
        *PAIR_KEYS,
        pl.lit(side).alias("side"),
        pl.when(pl.col("_other_status").is_null())
        .then(pl.lit(f"absent from {other_name}"))
        .otherwise(pl.lit(f"error in {other_name}"))
        .alias("reason"),
    )


def compare(a_dir: Path, b_dir: Path) -> Comparison:
    """Pair the points of two result sets and compute the ratios B/A (nothing is written).

    Raises :class:`CompareError` when either is not a readable result set or when they have
    no successful point in common.
    """
    a_dir, b_dir = Path(a_dir), Path(b_dir)
    a, b = load_points(a_dir), load_points(b_dir)
    a_ok, b_ok = a.filter(pl.col("status") == "ok"), b.filter(pl.col("status") == "ok")
    pairs = a_ok.drop("status").join(
        b_ok.drop("status"), on=PAIR_KEYS, how="inner", suffix="_b", coalesce=True
    )
    if pairs.is_empty():
        raise CompareError(
            f"{a_dir} ({a_ok.height} successful points) and {b_dir} ({b_ok.height}) have no "
            "successful point in common on (machine, mix, variant, cores, seed)"
        )
    one_sided = pl.concat(
        [_one_sided(a, b, "A", "B"), _one_sided(b, a, "B", "A")], how="vertical"
    ).sort(["side", *PAIR_KEYS])
    return Comparison(
        a_dir=a_dir,
        b_dir=b_dir,
        ratios=ratio_table(pairs),
        one_sided=one_sided,
        errors_a=a.height - a_ok.height,
        errors_b=b.height - b_ok.height,
        paired_points=pairs.height,
    )


# --------------------------------------------------------------------------- rendering


def _fmt_ratio(rec: dict[str, object], m: str) -> str:
    ratio = rec[f"{m}_ratio"]
    if ratio is None:
        return "-"
    text = f"{ratio:.4f}" if math.isfinite(ratio) else "inf"  # type: ignore[arg-type]
    lo, hi = rec[f"{m}_lo"], rec[f"{m}_hi"]
    if lo is not None and hi is not None:
        text += f" [{lo:.4f}, {hi:.4f}]"
        if rec[f"{m}_differs"]:
            text += " *"
    return text


def table_rows(c: Comparison) -> list[list[str]]:
    """Formatted cells of the ratio table, header first."""
    rows = [["machine", "mix", "variant", "cores", "seeds", *[f"{m} B/A" for m in METRICS]]]
    for rec in c.ratios.iter_rows(named=True):
        rows.append(
            [
                str(rec["machine"]),
                str(rec["mix"]),
                str(rec["variant"]),
                str(rec["cores"]),
                str(rec["n_seeds"]),
                *[_fmt_ratio(rec, m) for m in METRICS],
            ]
        )
    return rows


def _legend_lines(c: Comparison) -> list[str]:
    pct = round(100 * CONFIDENCE)
    return [
        f"B/A = mean over the paired seeds in {c.b_name} / the same in {c.a_name}; "
        f"[lo, hi] = {pct} % t interval of the per-seed ratio (log scale, seeds paired: "
        "common random numbers); * = the interval excludes 1.",
    ]


def _summary_lines(c: Comparison) -> list[str]:
    only_a = c.one_sided.filter(pl.col("side") == "A").height
    only_b = c.one_sided.filter(pl.col("side") == "B").height
    return [
        f"{c.paired_points} points paired in {c.ratios.height} rows, {c.flagged} rows flagged; "
        f"{only_a} points only in A ({c.a_name}), {only_b} only in B ({c.b_name}); "
        f"failed rows excluded: {c.errors_a} in A, {c.errors_b} in B.",
    ]


def _one_sided_lines(c: Comparison, limit: int) -> list[str]:
    """One line per (side, reason, curve) of one-sided points: how many, at which cores, seeds."""
    groups = (
        c.one_sided.group_by(["side", "reason", "machine", "mix", "variant"], maintain_order=True)
        .agg(
            pl.len().alias("n"),
            pl.col("cores").unique().sort().alias("cores"),
            pl.col("seed").unique().sort().alias("seeds"),
        )
        .head(limit)
    )
    lines = [
        f"  only in {g['side']} ({g['reason']}): {g['variant']}, {g['mix']} on {g['machine']}: "
        f"{g['n']} point{'s' if g['n'] != 1 else ''}, cores "
        f"{', '.join(map(str, g['cores']))}, seeds {', '.join(map(str, g['seeds']))}"
        for g in groups.iter_rows(named=True)
    ]
    shown = int(groups["n"].sum()) if groups.height else 0
    if c.one_sided.height > shown:
        lines.append(f"  ... {c.one_sided.height - shown} more points, listed in the .md file")
    return lines


def text_report(c: Comparison) -> str:
    """The comparison as plain text: table, legend, counts, one-sided points."""
    from sweep.report import plain_table

    rows = table_rows(c)
    numeric = set(range(3, len(rows[0])))
    lines = [
        f"compare: A = {c.a_dir}, B = {c.b_dir}",
        plain_table(rows, numeric),
        *_legend_lines(c),
        *_summary_lines(c),
        *_one_sided_lines(c, ONE_SIDED_SHOWN),
    ]
    return "\n".join(lines)


def markdown(c: Comparison, figure_name: str) -> str:
    rows = table_rows(c)
    align = ["---"] * 3 + ["---:"] * (len(rows[0]) - 3)
    lines = [
        f"# `{c.b_name}` compared with `{c.a_name}`",
        "",
        f"A = `{c.a_dir}`, B = `{c.b_dir}`.",
        "",
        *_summary_lines(c),
        "",
        "| " + " | ".join(rows[0]) + " |",
        "|" + "|".join(align) + "|",
        *["| " + " | ".join(r) + " |" for r in rows[1:]],
        "",
        *_legend_lines(c),
        "",
        f"![ratios B/A against cores]({figure_name})",
        "",
        "## Points on one side only",
        "",
    ]
    if c.one_sided.is_empty():
        lines.append("None: every successful point of each set has a partner in the other.")
    else:
        lines += ["| side | machine | mix | variant | cores | seed | reason |", "|---" * 7 + "|"]
        lines += [
            f"| {r['side']} | {r['machine']} | {r['mix']} | {r['variant']} | {r['cores']} "
            f"| {r['seed']} | {r['reason']} |"
            for r in c.one_sided.iter_rows(named=True)
        ]
    return "\n".join(lines) + "\n"


LOG_RATIO_SPAN: Final[float] = 4.0
"""(estimate) Ratios spanning more than this factor get a log axis: on a linear one the ratios
near 1 would be squeezed together by an outlier (a variant 50x slower); below it a linear axis
keeps more labelled ticks near 1."""


def ratio_axis_is_log(ratios: Sequence[float | None]) -> bool:
    """Whether a panel of these ratios uses a log axis (all finite and positive, wide span)."""
    known = np.array([r for r in ratios if r is not None and r == r], dtype=float)
    if known.size == 0 or not (np.isfinite(known).all() and (known > 0).all()):
        return False
    return bool(known.max() / known.min() > LOG_RATIO_SPAN)


def figure(c: Comparison) -> Figure:
    """Ratios against cores: one panel per metric, a line per (machine, mix, variant)."""
    from matplotlib.figure import Figure

    from sweep.plots import core_axis, log_y, ordered_variants, variant_style

    ratios = c.ratios
    style = variant_style(ratios["variant"].unique().to_list())
    partitions = sorted(set(ratios.select("machine", "mix").iter_rows()))
    dashes = ["-", "--", ":", "-."]
    fig = Figure(figsize=(13, 3.8))
    fig.subplots_adjust(left=0.05, right=0.80, bottom=0.15, top=0.85, wspace=0.35)
    axes = fig.subplots(1, len(METRICS))
    for ax, m in zip(axes, METRICS, strict=True):
        for p, (machine, mix) in enumerate(partitions):
            part = ratios.filter(machine=machine, mix=mix)
            for variant in ordered_variants(part["variant"].unique().to_list()):
                df = part.filter(variant=variant).sort("cores")
                ys = df[f"{m}_ratio"].cast(pl.Float64).fill_null(float("nan")).to_numpy()
                color, marker = style[variant]
                x = df["cores"].to_numpy()
                ax.plot(
                    x,
                    ys,
                    color=color,
                    marker=marker,
                    markersize=3.5,
                    linewidth=1.2,
                    linestyle=dashes[p % len(dashes)],
                    label=f"{variant}, {mix} on {machine}",
                )
                if df[f"{m}_lo"].null_count() < df.height:
                    ax.fill_between(
                        x,
                        df[f"{m}_lo"].fill_null(float("nan")).to_numpy(),
                        df[f"{m}_hi"].fill_null(float("nan")).to_numpy(),
                        color=color,
                        alpha=0.15,
                        linewidth=0,
                    )
                flagged = df.filter(pl.col(f"{m}_differs").fill_null(False))
                ax.plot(
                    flagged["cores"].to_numpy(),
                    flagged[f"{m}_ratio"].to_numpy(),
                    linestyle="none",
                    marker="o",
                    markersize=9,
                    markerfacecolor="none",
                    markeredgecolor=color,
                    markeredgewidth=1.3,
                )
        ax.axhline(1.0, color="0.4", linewidth=0.8, linestyle="--")
        if ratio_axis_is_log(ratios[f"{m}_ratio"].to_list()):
            log_y(ax)
        ax.set_title(m)
        ax.set_ylabel(f"{m}: B / A")
        core_axis(ax, ratios["cores"].to_list())
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        loc="upper left",
        bbox_to_anchor=(0.81, 0.85),
        frameon=False,
        fontsize=7,
        title="ring: interval excludes 1",
        title_fontsize=7,
    )
    fig.suptitle(f"{c.b_name} / {c.a_name}")
    return fig


def write(c: Comparison) -> tuple[Path, Path]:
    """Write ``B/compare-A.md`` and ``B/compare-A.png``; return both paths.

    Both are written to temporary names first and renamed only when both succeeded, so a
    failure (a full disk, a read-only directory) leaves neither half written. Raises
    :class:`CompareError` naming the directory on such a failure.
    """
    import matplotlib

    from sweep.plots import RC_PARAMS

    stem = c.b_dir / f"compare-{c.a_name}"
    md_path, png_path = stem.with_suffix(".md"), stem.with_suffix(".png")
    md_tmp, png_tmp = (c.b_dir / f".{path.name}.tmp" for path in (md_path, png_path))
    try:
        with matplotlib.rc_context(RC_PARAMS):  # type: ignore[arg-type]
            figure(c).savefig(png_tmp, format="png", dpi=150)
        md_tmp.write_text(markdown(c, png_path.name), encoding="utf-8")
        os.replace(png_tmp, png_path)
        os.replace(md_tmp, md_path)
    except OSError as exc:
        for tmp in (md_tmp, png_tmp):
            tmp.unlink(missing_ok=True)
        raise CompareError(f"cannot write into {c.b_dir}: {exc.strerror or exc}") from None
    return md_path, png_path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sweep.compare",
        description=(
            "Ratios B/A of wall_s, sys_s, exits_per_s and reaper_util between two result sets, "
            "per (machine, mix, variant, cores); writes B/compare-<A's name>.md and .png."
        ),
    )
    parser.add_argument("a_dir", type=Path, metavar="A", help="the reference study DIR/A")
    parser.add_argument("b_dir", type=Path, metavar="B", help="the study compared with it, DIR/B")
    args = parser.parse_args(argv)
    try:
        comparison = compare(args.a_dir, args.b_dir)
        text = text_report(comparison)
        md_path, png_path = write(comparison)
    except CompareError as exc:
        print(f"sweep.compare: error: {exc}", file=sys.stderr)
        return 2
    print(text)
    print(f"wrote {md_path} and {png_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
