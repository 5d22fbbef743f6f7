"""Figures of scaling curves: one set per (machine, mix), PNG and SVG, knees marked.

Uses matplotlib's object API (``Figure`` with the Agg canvas), never ``pyplot``: no global state,
no display needed. Every figure has a log2 core axis, one line per variant (same colour for a
variant in every figure), the 95 % seed interval as a band and each curve's knee as a ring.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import matplotlib
import polars as pl
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullLocator

from sweep.curves import CTX_METRICS, OP_METRICS, UTIL_SATURATED, VARIANT_ORDER

FORMATS: Final[tuple[str, ...]] = ("png", "svg")
FIGURE_KINDS: Final[tuple[str, ...]] = ("scaling", "utilisation", "latency", "breakdown")
_DPI: Final[int] = 150
_PALETTE: Final[tuple[str, ...]] = (
    "#000000",
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
_MARKERS: Final[str] = "osD^v<>phX*"
RC_PARAMS: Final[dict[str, Any]] = {
    "svg.hashsalt": "exitsweep",  # stable SVG ids: same curves, same bytes
    "svg.fonttype": "none",
    "font.size": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
}


def ordered_variants(variants: Sequence[str]) -> list[str]:
    """Built-in variants in DESIGN.md order, then any others alphabetically."""
    known = [v for v in VARIANT_ORDER if v in variants]
    return known + sorted(set(variants) - set(VARIANT_ORDER))


def variant_style(variants: Sequence[str]) -> dict[str, tuple[str, str]]:
    return {
        v: (_PALETTE[i % len(_PALETTE)], _MARKERS[i % len(_MARKERS)])
        for i, v in enumerate(ordered_variants(variants))
    }


def safe_name(text: str) -> str:
    """File-name-safe form of a machine or mix name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def figure_stem(machine: str, mix: str, kind: str) -> str:
    return f"{safe_name(machine)}__{safe_name(mix)}__{kind}"


def core_axis(ax: Axes, cores: Sequence[int]) -> None:
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(FixedLocator(sorted(set(cores))))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([str(c) for c in sorted(set(cores))])
    ax.set_xlabel("cores")


def log_y(ax: Axes, base: float = 10) -> None:
    # Plain "%g" labels: the default 10^k labels go through mathtext, which dominates render time.
    ax.set_yscale("log", base=base)
    if base == 10:
        # 1-2-5 steps keep several labels on an axis spanning less than a decade.
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.yaxis.set_minor_locator(NullLocator())  # minor ticks cost a third of the drawing time


def _shade_what_if(ax: Axes, group: pl.DataFrame) -> None:
    """Grey background from the first core count beyond the machine's hardware threads."""
    if "is_what_if" not in group.columns:
        return
    what_if = group.filter(pl.col("is_what_if"))["cores"]
    if what_if.len() == 0:
        return
    real = group.filter(~pl.col("is_what_if"))["cores"]
    start = float(what_if.min())  # type: ignore[arg-type]
    if real.len():
        start = (float(real.max()) * start) ** 0.5  # type: ignore[arg-type]  # log midpoint
    ax.axvspan(start, float(what_if.max()) * 1.2, color="0.92", zorder=0, linewidth=0)  # type: ignore[arg-type]


def _plot_metric(
    ax: Axes,
    group: pl.DataFrame,
    style: dict[str, tuple[str, str]],
    metric: str,
    scale: float,
    ylabel: str,
    *,
    logy: bool = False,
) -> None:
    for variant in ordered_variants(group["variant"].unique().to_list()):
        df = group.filter(pl.col("variant") == variant).sort("cores")
        color, marker = style[variant]
        x = df["cores"].to_numpy()
        y = df[f"{metric}_mean"].to_numpy() * scale
        ax.plot(x, y, color=color, marker=marker, markersize=3.5, linewidth=1.2, label=variant)
        lo = df[f"{metric}_lo"] if f"{metric}_lo" in df.columns else None
        if lo is not None and lo.null_count() < df.height:
            ax.fill_between(
                x,
                lo.fill_null(strategy="zero").to_numpy() * scale,
                df[f"{metric}_hi"].fill_null(strategy="zero").to_numpy() * scale,
                color=color,
                alpha=0.15,
                linewidth=0,
            )
        knee = df.filter(pl.col("is_knee"))
        if knee.height:
            ax.plot(
                knee["cores"].to_numpy(),
                knee[f"{metric}_mean"].to_numpy() * scale,
                linestyle="none",
                marker="o",
                markersize=10,
                markerfacecolor="none",
                markeredgecolor=color,
                markeredgewidth=1.5,
            )
    if logy:
        log_y(ax)
    _shade_what_if(ax, group)
    ax.set_ylabel(ylabel)
    core_axis(ax, group["cores"].to_list())


def _legend(fig: Figure, group: pl.DataFrame, style: dict[str, tuple[str, str]]) -> None:
    handles: list[Artist] = [
        Line2D([], [], color=style[v][0], marker=style[v][1], markersize=4, label=v)
        for v in ordered_variants(group["variant"].unique().to_list())
    ]
    handles.append(
        Line2D(
            [],
            [],
            linestyle="none",
            marker="o",
            markersize=9,
            markerfacecolor="none",
            markeredgecolor="0.3",
            label="knee",
        )
    )
    if "is_what_if" in group.columns and group["is_what_if"].any():
        handles.append(Patch(color="0.92", label="what-if\n(> hw threads)"))
    fig.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(fig.subplotpars.right + 0.01, fig.subplotpars.top),
        frameon=False,
    )


def _title(fig: Figure, machine: str, mix: str, what: str) -> None:
    fig.suptitle(f"{what}: {mix} on {machine}")


def _scaling(group: pl.DataFrame, style: dict[str, tuple[str, str]]) -> Figure:
    fig = Figure(figsize=(12, 3.6))
    fig.subplots_adjust(left=0.06, right=0.86, bottom=0.15, top=0.86, wspace=0.32)
    ax_wall, ax_thr, ax_sp = fig.subplots(1, 3)
    _plot_metric(ax_wall, group, style, "wall_s", 1.0, "wall time [s]", logy=True)
    _plot_metric(ax_thr, group, style, "exits_per_s", 1.0, "throughput [exits/s]", logy=True)
    for variant in ordered_variants(group["variant"].unique().to_list()):
        df = group.filter(pl.col("variant") == variant).sort("cores")
        color, marker = style[variant]
        ax_sp.plot(df["cores"], df["speedup"], color=color, marker=marker, markersize=3.5)
        knee = df.filter(pl.col("is_knee"))
        ax_sp.plot(
            knee["cores"],
            knee["speedup"],
            linestyle="none",
            marker="o",
            markersize=10,
            markerfacecolor="none",
            markeredgecolor=color,
            markeredgewidth=1.5,
        )
    cores = sorted(set(group["cores"].to_list()))
    ax_sp.plot(cores, [c / cores[0] for c in cores], color="0.6", linestyle=":", label="ideal")
    ax_sp.set_xscale("log", base=2)
    log_y(ax_sp, base=2)
    _shade_what_if(ax_sp, group)
    ax_sp.set_ylabel("throughput speedup vs smallest core count [x]")
    core_axis(ax_sp, cores)
    return fig


def _utilisation(group: pl.DataFrame, style: dict[str, tuple[str, str]]) -> Figure:
    fig = Figure(figsize=(9, 3.6))
    fig.subplots_adjust(left=0.08, right=0.81, bottom=0.15, top=0.86, wspace=0.1)
    ax_r, ax_k = fig.subplots(1, 2, sharey=True)
    _plot_metric(ax_r, group, style, "reaper_util", 100.0, "reaper utilisation [%]")
    _plot_metric(ax_k, group, style, "klock_util", 100.0, "KERNEL_LOCK utilisation [%]")
    for ax in (ax_r, ax_k):
        ax.axhline(100 * UTIL_SATURATED, color="0.5", linestyle="--", linewidth=0.8)
        ax.set_ylim(0, 105)
    return fig


def _latency(group: pl.DataFrame, style: dict[str, tuple[str, str]]) -> Figure:
    fig = Figure(figsize=(6.5, 3.6))
    fig.subplots_adjust(left=0.13, right=0.72, bottom=0.15, top=0.86)
    ax = fig.subplots()
    positive = group["notify_latency_p99_s_mean"].fill_null(0).min() > 0  # type: ignore[operator]
    _plot_metric(
        ax,
        group,
        style,
        "notify_latency_p99_s",
        1e3,
        "exit-to-parent-notified latency, p99 [ms]",
        logy=bool(positive),
    )
    return fig


OUTLIER_GAP: Final[float] = 5.0
"""(estimate) A step of this factor between consecutive variant totals splits the breakdown.

Variants of one (machine, mix, cores) differ by up to ~3x in teardown seconds in the default
study (combined vs baseline, fork_exit on arm64 at 128 cores) and zap_first by 25-2000x: a
shared axis would leave every other variant a sliver at the bottom. Stacked bars cannot go on
a log axis (each segment's height would no longer be its share), hence a panel of their own.
"""


def split_outliers(totals: dict[str, float]) -> tuple[list[str], list[str]]:
    """Variants drawn on the main axis and those above the largest step of totals.

    The totals are sorted; when the largest ratio between two consecutive positive totals is at
    least :data:`OUTLIER_GAP`, the variants above it are outliers. Both lists keep
    :func:`ordered_variants` order.
    """
    ranked = sorted((t, v) for v, t in totals.items())
    best, cut = 1.0, None
    for i in range(1, len(ranked)):
        low, high = ranked[i - 1][0], ranked[i][0]
        if low > 0 and high / low > best:
            best, cut = high / low, i
    if cut is None or best < OUTLIER_GAP:
        return ordered_variants(list(totals)), []
    above = {v for _, v in ranked[cut:]}
    order = ordered_variants(list(totals))
    return [v for v in order if v not in above], [v for v in order if v in above]


def _stacked_bars(
    ax: Axes,
    at: dict[str, dict[str, Any]],
    variants: list[str],
    metrics: Sequence[str],
    labels: Sequence[str],
) -> None:
    cmap = matplotlib.colormaps["tab10"]
    bottoms = [0.0] * len(variants)
    for j, (metric, label) in enumerate(zip(metrics, labels, strict=True)):
        heights = [float(at[v][f"{metric}_mean"] or 0.0) for v in variants]
        ax.bar(range(len(variants)), heights, bottom=bottoms, color=cmap(j), label=label)
        bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
    ax.set_xticks(range(len(variants)), variants, rotation=30, ha="right")
    ax.grid(axis="x", visible=False)


def breakdown_figure(group: pl.DataFrame, cores: int) -> Figure:
    """Stacked teardown seconds per variant at ``cores``, by operation and by context.

    Variants whose total is an outlier (:func:`split_outliers`) get a panel of their own with
    its own y axis next to each of the two panels.
    """
    rows = group.filter(pl.col("cores") == cores)
    variants = ordered_variants(rows["variant"].unique().to_list())
    at = {v: rows.filter(pl.col("variant") == v).row(0, named=True) for v in variants}
    totals = {v: sum(float(at[v][f"{m}_mean"] or 0.0) for m in OP_METRICS) for v in variants}
    main, outliers = split_outliers(totals)
    panels = (
        (OP_METRICS, [f"X{i}" for i in range(9)], "by operation"),
        (CTX_METRICS, ["exit", "exit + KERNEL_LOCK", "reaper"], "by context"),
    )
    if not outliers:
        fig = Figure(figsize=(12, 4.0))
        fig.subplots_adjust(left=0.06, right=0.85, bottom=0.24, top=0.86, wspace=0.4)
        ax_op, ax_ctx = fig.subplots(1, 2, sharey=True)
        pairs: list[tuple[Axes, Axes | None]] = [(ax_op, None), (ax_ctx, None)]
    else:
        fig = Figure(figsize=(14, 4.0))
        fig.subplots_adjust(left=0.06, right=0.9, bottom=0.24, top=0.86, wspace=0.5)
        axes = fig.subplots(
            1, 4, width_ratios=[len(main), len(outliers) + 0.6, len(main), len(outliers) + 0.6]
        )
        axes[2].sharey(axes[0])  # op and context stacks of a variant have the same height
        axes[3].sharey(axes[1])
        pairs = [(axes[0], axes[1]), (axes[2], axes[3])]
    for (ax, ax_out), (metrics, labels, title) in zip(pairs, panels, strict=True):
        _stacked_bars(ax, at, main, metrics, labels)
        ax.set_title(f"{title}, {cores} cores")
        legend_ax = ax
        if ax_out is not None:
            _stacked_bars(ax_out, at, outliers, metrics, labels)
            ax_out.set_title("own scale", fontsize=8)
            ax_out.set_xlim(-0.8, len(outliers) - 0.2)
            legend_ax = ax_out
        legend_ax.legend(
            fontsize=7, frameon=False, ncols=1, loc="upper left", bbox_to_anchor=(1.0, 1.0)
        )
    pairs[0][0].set_ylabel("teardown time [s] (summed over exits)")
    return fig


def breakdown_cores_for(group: pl.DataFrame, requested: int | None) -> int:
    """Core count of the breakdown figure: ``requested``, or the largest in the group."""
    available = sorted(set(group["cores"].to_list()))
    if requested is None:
        return int(available[-1])
    if requested not in available:
        raise ValueError(
            f"breakdown cores {requested} is not in the grid; allowed: "
            + ", ".join(str(c) for c in available)
        )
    return requested


def render_figures(
    curves: pl.DataFrame, figures_dir: Path, *, breakdown_cores: int | None = None
) -> dict[tuple[str, str], dict[str, Path]]:
    """Write every figure of ``curves`` under ``figures_dir``.

    Returns, per (machine, mix), the path stem of each figure kind (add ``.png`` or ``.svg``).
    """
    figures_dir.mkdir(parents=True, exist_ok=True)
    style = variant_style(curves["variant"].unique().to_list())
    written: dict[tuple[str, str], dict[str, Path]] = {}
    groups = sorted(((str(m), str(x)), g) for (m, x), g in curves.group_by(["machine", "mix"]))
    # Check the breakdown core count everywhere before drawing anything.
    cores_by_group = {key: breakdown_cores_for(g, breakdown_cores) for key, g in groups}
    with matplotlib.rc_context(RC_PARAMS):  # type: ignore[arg-type]
        for (machine, mix), group in groups:
            cores = cores_by_group[(machine, mix)]
            figs = {
                "scaling": (_scaling(group, style), "Wall time, throughput and speedup"),
                "utilisation": (_utilisation(group, style), "Reaper and KERNEL_LOCK utilisation"),
                "latency": (_latency(group, style), "Exit-to-parent-notified latency"),
                "breakdown": (breakdown_figure(group, cores), "Teardown time per variant"),
            }
            stems = {}
            for kind, (fig, what) in figs.items():
                _title(fig, machine, mix, what)
                if kind != "breakdown":
                    _legend(fig, group, style)
                stem = figures_dir / figure_stem(machine, mix, kind)
                for fmt in FORMATS:
                    # Temporary name then rename: a reader never sees half a figure.
                    tmp = stem.parent / f".{stem.name}.{fmt}.tmp"
                    fig.savefig(
                        tmp,
                        format=fmt,
                        dpi=_DPI,
                        metadata={"Date": None} if fmt == "svg" else None,
                    )
                    os.replace(tmp, stem.parent / f"{stem.name}.{fmt}")
                stems[kind] = stem
            written[(machine, mix)] = stems
    return written
