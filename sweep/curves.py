"""Scaling curves from a result set: seeds aggregated, speedup, efficiency, gain, knee, bottleneck.

A *curve* is one (machine, mix, variant) traced over the grid's core counts; a *curve point* is
one (machine, mix, variant, cores) with every seed of it aggregated. Only rows with
``status == 'ok'`` are read, and only the columns the curves need.

Definitions (they are also printed in ``report.md``):

* **Mean and 95 % interval** across seeds: the sample mean and the Student-t interval on it,
  ``mean +/- t(0.975, n-1) * sd / sqrt(n)`` with ``sd`` the sample standard deviation; null when
  fewer than two seeds.
* **Throughput** ``X(c)``: mean exits per second.
* **Speedup** ``S(c) = X(c) / X(c0)`` with ``c0`` the smallest core count of the curve;
  **efficiency** ``S(c) / (c / c0)``. Throughput rather than wall time, so that the definition
  holds for mixes whose work grows with cores (``fork_exit``: a loop per slot) as well as for
  fixed work (``kernel_build``: there ``X(c) / X(c0) = W(c0) / W(c)``, the wall-time speedup,
  which the curves also carry as ``wall_speedup``).
* **What-if**: a curve point whose core count exceeds the machine's hardware threads (any seed's
  ``is_what_if``); figures shade that range.
* **Against baseline**, at the same (machine, mix, cores): ``wall_ratio = W / W_baseline`` and
  ``throughput_gain = X / X_baseline`` (above 1 means the variant is faster).
* **Marginal efficiency** of going from grid point ``c_i`` to the next one ``c_{i+1}``:
  ``m_i = ((X(c_{i+1}) - X(c_i)) / X(c_i)) / ((c_{i+1} - c_i) / c_i)``, the relative throughput
  gained per relative core added (1 for linear scaling, 0 when flat, negative when extra cores
  hurt). Null at the largest core count.
* **Knee**: the smallest core count ``c_i`` of a curve with ``m_i < KNEE_MARGINAL_EFFICIENCY``,
  i.e. beyond it adding cores stops helping. Null ("none within the grid") when every step helps.
* **Saturated resource** of a curve point: the most utilised single server of :data:`SERVERS`
  (the reaper, ``kernel_lock`` for KERNEL_LOCK, and the other locks by their names) when its
  utilisation is ``>= UTIL_SATURATED`` (ties go to the one listed first), else ``cpu`` when
  ``cpu_util >= UTIL_SATURATED``, else ``none``. The single servers come first because spinning
  on a lock is CPU time: a busy CPU behind a saturated lock is the lock's doing.
  **Bottleneck** of a curve: the saturated resource at its knee, ``none`` without a knee.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import polars as pl

from exitcore.result import METRIC_FIELDS
from sweep.store import ResultSetError, read_file_by_file, scan_points

KNEE_MARGINAL_EFFICIENCY: Final[float] = 0.1
"""(estimate) Below this marginal efficiency a step adds under a tenth of linear scaling's gain."""

UTIL_SATURATED: Final[float] = 0.8
"""(estimate) Whole-run utilisation from which a resource counts as saturated.

Below the ~0.9 of an open queue on purpose: utilisations are averaged over the whole run, which
includes ramp-up, ramp-down and serial phases (the link at the end of ``kernel_build``) in which
the resource idles. A reaper that is busy all through the parallel phase then shows 0.8-0.9 over
the run (arm64_altra80 ``kernel_build`` ``baseline`` in the default study: 0.83 at its knee, with
throughput falling beyond it).
"""

CONFIDENCE: Final[float] = 0.95
"""Two-sided level of the interval on the seed mean."""

CURVE_KEYS: Final[tuple[str, ...]] = ("machine", "mix", "variant")
POINT_KEYS: Final[tuple[str, ...]] = (*CURVE_KEYS, "cores")
BASELINE: Final[str] = "baseline"
VARIANT_ORDER: Final[tuple[str, ...]] = (
    "baseline",
    "uvm_purge",
    "pmap_purge",
    "pmap_deactivate",
    "combined",
    "rip_reaper",
    "linux_fullmm",
    "zap_first",
)
"""Built-in variants in DESIGN.md order: tables and legends list variants this way."""
SERVERS: Final[tuple[tuple[str, str], ...]] = (
    ("reaper", "reaper_util"),
    ("kernel_lock", "klock_util"),
    ("schedlock", "schedlock_util"),
    ("fpageq", "fpageq_util"),
    ("pageq", "pageq_util"),
    ("kmmap", "kmmap_util"),
    ("vnode", "vnode_util"),
)
"""(resource name, utilisation metric) of every single server a curve can saturate."""
RESOURCES: Final[tuple[str, ...]] = (*(name for name, _ in SERVERS), "cpu", "none")

OP_METRICS: Final[tuple[str, ...]] = tuple(f"op_x{i}_s" for i in range(9))
CTX_METRICS: Final[tuple[str, ...]] = ("ctx_exit_s", "ctx_exit_klock_s", "ctx_reaper_s")
CURVE_METRICS: Final[tuple[str, ...]] = (
    "wall_s",
    "user_s",
    "sys_s",
    "exits_per_s",
    *(metric for _, metric in SERVERS),
    "cpu_util",
    "notify_latency_mean_s",
    "notify_latency_p99_s",
    "zombies_max",
    "unreclaimed_mb_max",
    *OP_METRICS,
    *CTX_METRICS,
)
"""Metrics aggregated across seeds (each becomes ``<name>_mean``, ``_lo``, ``_hi``)."""

_METRIC_NAMES = {name for name, _ in METRIC_FIELDS}
assert set(CURVE_METRICS) <= _METRIC_NAMES, set(CURVE_METRICS) - _METRIC_NAMES

_READ_RETRIES: Final[int] = 3


# --------------------------------------------------------------------------- statistics


def t_quantile(df: int, level: float = CONFIDENCE) -> float:
    """Two-sided Student-t critical value: ``P(|T| <= t) = level`` for ``df`` degrees of freedom.

    Uses the closed form of the t distribution for integer ``df`` (Abramowitz and Stegun 26.7.3
    and 26.7.4, (published)) inverted by bisection; ``t_quantile(4) == 2.776...``.
    """
    if df < 1 or int(df) != df:
        raise ValueError(f"df must be a positive integer, got {df!r}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level!r}")

    def central_mass(t: float) -> float:
        theta = math.atan(t / math.sqrt(df))
        s, c = math.sin(theta), math.cos(theta)
        if df % 2 == 1:
            if df == 1:
                return 2.0 * theta / math.pi
            term, total = c, c
            for k in range(3, df - 1, 2):
                term *= (k - 1) / k * c * c
                total += term
            return 2.0 / math.pi * (theta + s * total)
        term, total = 1.0, 1.0
        for k in range(2, df - 1, 2):
            term *= (k - 1) / k * c * c
            total += term
        return s * total

    lo, hi = 0.0, 1.0
    while central_mass(hi) < level:
        hi *= 2.0
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if central_mass(mid) < level:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def aggregate_seeds(points: pl.LazyFrame, metrics: Sequence[str] = CURVE_METRICS) -> pl.DataFrame:
    """One row per (machine, mix, variant, cores): ``n_seeds`` and ``<m>_mean/_lo/_hi``."""
    aggs: list[pl.Expr] = [pl.col("seed").n_unique().alias("n_seeds"), pl.len().alias("n_rows")]
    if "is_what_if" in points.collect_schema().names():
        aggs.append(pl.col("is_what_if").cast(pl.Boolean).any().alias("is_what_if"))
    for m in metrics:
        x = pl.col(m).cast(pl.Float64)
        aggs += [x.mean().alias(f"{m}_mean"), x.std(ddof=1).alias(f"_{m}_sd")]
    agg = (
        points.with_columns(pl.col("cores").cast(pl.Int64))
        .group_by(list(POINT_KEYS))
        .agg(aggs)
        .sort(list(POINT_KEYS))
        .collect()
    )
    t_by_n = {n: t_quantile(n - 1) for n in agg["n_rows"].unique().to_list() if n >= 2}
    t = pl.col("n_rows").replace_strict(t_by_n, default=None, return_dtype=pl.Float64)
    half = {m: t * pl.col(f"_{m}_sd") / pl.col("n_rows").cast(pl.Float64).sqrt() for m in metrics}
    return agg.with_columns(
        *[(pl.col(f"{m}_mean") - half[m]).alias(f"{m}_lo") for m in metrics],
        *[(pl.col(f"{m}_mean") + half[m]).alias(f"{m}_hi") for m in metrics],
    ).drop([f"_{m}_sd" for m in metrics])


def _saturated(servers: Sequence[pl.Expr], cpu: pl.Expr) -> pl.Expr:
    values = [u.fill_null(0) for u in servers]
    top = pl.max_horizontal(values)
    expr = pl.when(pl.lit(False)).then(pl.lit("none"))
    for (name, _), value in zip(SERVERS, values, strict=True):
        expr = expr.when((top >= UTIL_SATURATED) & (value == top)).then(pl.lit(name))
    return (
        expr.when(cpu.fill_null(0) >= UTIL_SATURATED).then(pl.lit("cpu")).otherwise(pl.lit("none"))
    )


def add_scaling(agg: pl.DataFrame) -> pl.DataFrame:
    """Add speedup, efficiency, baseline comparison, marginal efficiency, knee and bottleneck."""
    curve = list(CURVE_KEYS)
    wall, thr = pl.col("wall_s_mean"), pl.col("exits_per_s_mean")
    cores = pl.col("cores").cast(pl.Float64)
    df = agg.sort(list(POINT_KEYS)).with_columns(
        (thr / thr.first().over(curve)).alias("speedup"),
        (wall.first().over(curve) / wall).alias("wall_speedup"),
        (cores / cores.first().over(curve)).alias("_core_ratio"),
        ((thr.shift(-1).over(curve) - thr) / thr).alias("_gain"),
        ((cores.shift(-1).over(curve) - cores) / cores).alias("_step"),
        _saturated(
            [
                pl.col(f"{m}_mean") if f"{m}_mean" in agg.columns else pl.lit(0.0)
                for _, m in SERVERS
            ],
            pl.col("cpu_util_mean"),
        ).alias("saturated"),
    )
    df = df.with_columns(
        (pl.col("speedup") / pl.col("_core_ratio")).alias("efficiency"),
        pl.when(pl.col("_gain").is_finite())
        .then(pl.col("_gain") / pl.col("_step"))
        .otherwise(None)
        .alias("marginal_efficiency"),
    ).drop("_core_ratio", "_gain", "_step")
    is_knee = pl.col("marginal_efficiency") < KNEE_MARGINAL_EFFICIENCY
    df = df.with_columns(
        pl.col("cores").filter(is_knee).min().over(curve).alias("knee_cores"),
    )
    df = df.with_columns(
        (pl.col("cores") == pl.col("knee_cores")).fill_null(False).alias("is_knee"),
        pl.col("saturated")
        .filter(pl.col("cores") == pl.col("knee_cores"))
        .first()
        .over(curve)
        .fill_null("none")
        .alias("bottleneck"),
    )
    base = df.filter(pl.col("variant") == BASELINE).select(
        "machine",
        "mix",
        "cores",
        pl.col("wall_s_mean").alias("_wall_base"),
        pl.col("exits_per_s_mean").alias("_thr_base"),
    )
    df = df.join(base, on=["machine", "mix", "cores"], how="left", maintain_order="left")
    return df.with_columns(
        (pl.col("wall_s_mean") / pl.col("_wall_base")).alias("wall_ratio_vs_baseline"),
        (pl.col("exits_per_s_mean") / pl.col("_thr_base")).alias("throughput_gain_vs_baseline"),
    ).drop("_wall_base", "_thr_base")


def compute_curves(points_dir: Path) -> pl.DataFrame:
    """Curves of a result set's ``points/`` directory (see the module docstring)."""
    columns = [*POINT_KEYS, "seed", "draw", "is_what_if", *CURVE_METRICS]
    for _ in range(_READ_RETRIES):
        try:
            rows = scan_points(points_dir, columns).collect()
            break
        except ResultSetError:
            raise
        except (OSError, pl.exceptions.ComputeError):  # a file vanished under the scan
            time.sleep(0.05)
    else:
        rows = read_file_by_file(points_dir, columns).collect()
    # Rows at parameter draws (uncertainty.samples) have their own curves: sweep.uncertainty.
    drawn = rows.filter(pl.col("draw").is_not_null())
    agg = aggregate_seeds(rows.filter(pl.col("draw").is_null()).drop("draw").lazy())
    if agg.is_empty():
        raise ResultSetError(f"no successful point (status 'ok') in {points_dir}")
    curves = add_scaling(agg)
    if drawn.height:
        from sweep.uncertainty import add_uncertainty

        curves = add_uncertainty(curves, drawn.lazy())
    return curves


def summarize(curves: pl.DataFrame) -> pl.DataFrame:
    """One row per curve: knee, bottleneck, and the curve's state at its largest core count."""
    curve = list(CURVE_KEYS)
    last = (
        curves.sort(list(POINT_KEYS))
        .group_by(curve, maintain_order=True)
        .agg(
            pl.col("knee_cores").first(),
            pl.col("bottleneck").first(),
            pl.col("cores").min().alias("min_cores"),
            pl.col("cores").last().alias("max_cores"),
            pl.col("speedup").last().alias("speedup_at_max"),
            pl.col("efficiency").last().alias("efficiency_at_max"),
            pl.col("exits_per_s_mean").last().alias("throughput_at_max"),
            pl.col("wall_s_mean").last().alias("wall_s_at_max"),
            pl.col("throughput_gain_vs_baseline").last().alias("gain_vs_baseline"),
            pl.col("wall_ratio_vs_baseline").last().alias("wall_ratio_vs_baseline"),
            # parameter uncertainty (sweep.uncertainty), when the study drew parameters
            *[
                pl.col(c).first()
                for c in ("knee_p05", "knee_p50", "knee_p95", "bottleneck_share", "n_draws")
                if c in curves.columns
            ],
        )
    )
    rank = pl.col("variant").replace_strict(
        {v: i for i, v in enumerate(VARIANT_ORDER)},
        default=len(VARIANT_ORDER),
        return_dtype=pl.Int64,
    )
    return last.sort(["machine", "mix", rank, "variant"])


def knee_of(
    cores: Sequence[int], throughput: Sequence[float], *, utils: Sequence[Sequence[float]] = ()
) -> tuple[int | None, str]:
    """Knee and bottleneck of a single curve given as arrays (same rules as the result sets).

    ``utils`` optionally gives (reaper_util, klock_util, cpu_util) per core count.
    """
    n = len(cores)
    if len(throughput) != n or (utils and len(utils) != n):
        raise ValueError("cores, throughput and utils must have the same length")
    if sorted(set(cores)) != list(cores):
        raise ValueError("cores must be strictly increasing")
    u = list(utils) or [(0.0, 0.0, 0.0)] * n
    agg = pl.DataFrame(
        {
            "machine": ["m"] * n,
            "mix": ["x"] * n,
            "variant": ["v"] * n,
            "cores": list(cores),
            "wall_s_mean": [1.0 / x if x else math.inf for x in throughput],
            "exits_per_s_mean": [float(x) for x in throughput],
            "reaper_util_mean": [float(r[0]) for r in u],
            "klock_util_mean": [float(r[1]) for r in u],
            "cpu_util_mean": [float(r[2]) for r in u],
        },
        schema_overrides={"cores": pl.Int64},
    )
    out = add_scaling(agg)
    knee = out["knee_cores"][0]
    return (None if knee is None else int(knee)), str(out["bottleneck"][0])
