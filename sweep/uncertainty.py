"""Parameter uncertainty of a study: Latin-hypercube draws of the constants, and the spread of
the curves and knees across them.

``uncertainty.samples=N`` draws N parameter vectors inside the ranges of the parameter list
``uncertainty.params`` (``conf/fit/<name>.yaml``, :mod:`sweep.ranges`) and simulates every grid
point at each of them, besides the presets' own values (the plain study, whose point ids do not
change). Definitions (also printed in ``report.md``):

* **Draws**: ``scipy.stats.qmc.LatinHypercube`` over the unit cube of the list's ranges, seeded
  from ``SeedSequence([study.seed, DRAW_STREAM])``, scaled linearly to ``[lo, hi]``; integer
  parameters are rounded (:func:`sweep.ranges.apply`). Draw ``k`` of a grid point is a point of
  its own (``draw = k``: its id, its row, its place in the cache). Every draw of a grid point
  sees the random stream of the presets' point (common random numbers), so the spread across
  draws is the constants' doing, not sampling noise. The draws depend on the list, N and the
  study seed only, not on the grid: two studies with the same list share their draw points.
* **Per draw**, the seeds are aggregated and the knee and bottleneck found exactly as for the
  presets' curves (:func:`sweep.curves.add_scaling`).
* **Knee quantiles** ``knee_p05``, ``knee_p50``, ``knee_p95``: the inverted empirical
  distribution function (Hyndman and Fan type 1, ``numpy.quantile(method="inverted_cdf")``):
  the smallest knee ``k`` such that at least a fraction ``q`` of the draws have a knee ``<= k``,
  so a quantile is always a core count of the grid. A draw without a knee in the grid counts
  as a knee beyond it; a quantile falling there is null ("none within the grid").
* **Bottleneck share**: per curve, the fraction of draws in which each resource is the
  bottleneck at that draw's knee (``none`` for a draw without a knee), largest first.
* **Bands** ``<metric>_p05`` / ``<metric>_p95`` per curve point: the 5 % and 95 % quantiles
  across draws of the draw's seed mean, linear interpolation (type 7, numpy's default).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np
import polars as pl

from exitcore import MODEL_VERSION
from sweep.curves import CURVE_KEYS, CURVE_METRICS, POINT_KEYS, add_scaling, aggregate_seeds
from sweep.errors import StudyError
from sweep.plan import GROUP_PARSERS, Point, _point_id, canonical_json, validate_params
from sweep.spec import GROUPS, StudySpec

DRAW_STREAM: Final[int] = 0x6472_6177
"""Second word of the draws' seed sequence (ASCII ``draw``): keeps the Latin hypercube's
stream apart from every point's stream, which starts with the same root seed."""

QUANTILES: Final[tuple[float, float, float]] = (0.05, 0.5, 0.95)
KNEE_COLUMNS: Final[tuple[str, str, str]] = ("knee_p05", "knee_p50", "knee_p95")
BAND_METRICS: Final[tuple[str, ...]] = (
    *CURVE_METRICS,
    "speedup",
    "efficiency",
    "throughput_gain_vs_baseline",
)
"""Columns of the per-draw curves that get a 5-95 % band (``<name>_p05``, ``<name>_p95``)."""

_FOLD: Final[str] = "\x1f"


# --------------------------------------------------------------------------- draws


def draw_values(ranges: Sequence[Any], samples: int, root_seed: int) -> np.ndarray:
    """``samples`` x ``len(ranges)`` values, a Latin hypercube scaled to each range.

    Scaled by hand rather than ``qmc.scale``, which refuses a range with ``lo == hi``.
    """
    from scipy.stats import qmc

    rng = np.random.default_rng(np.random.SeedSequence([root_seed, DRAW_STREAM]))
    unit = qmc.LatinHypercube(d=len(ranges), rng=rng).random(samples)
    lo = np.array([r.lo for r in ranges], dtype=float)
    hi = np.array([r.hi for r in ranges], dtype=float)
    return lo + unit * (hi - lo)


def draw_key(name: str, draw: int) -> str:
    """Where draw ``draw`` of preset ``name`` lives in a study's ``params[group]``."""
    return f"{name}@draw{draw}"


def drawn_params(spec: StudySpec) -> list[dict[str, dict[str, dict[str, Any]]]]:
    """The study's presets at each draw (:func:`sweep.ranges.apply` of each vector)."""
    from sweep.ranges import apply

    ranges = spec.uncertainty.ranges
    values = draw_values(ranges, spec.uncertainty.samples, spec.root_seed)
    return [apply(spec.params, ranges, row.tolist()) for row in values]


def study_params(spec: StudySpec) -> dict[str, dict[str, Mapping[str, Any]]]:
    """``spec.params`` plus every draw's presets under :func:`draw_key` names."""
    out: dict[str, dict[str, Mapping[str, Any]]] = {
        group: dict(spec.params[group]) for group in GROUPS
    }
    for k, params in enumerate(drawn_params(spec)):
        for group in GROUPS:
            for name, value in params[group].items():
                out[group][draw_key(name, k)] = value
    return out


def draw_points(spec: StudySpec, nominal: Sequence[Point]) -> list[Point]:
    """Every point of ``nominal`` (the plain grid) at each draw, draw by draw."""
    points: list[Point] = []
    for k, params in enumerate(drawn_params(spec)):
        encoded = {
            group: {name: canonical_json(value) for name, value in params[group].items()}
            for group in GROUPS
        }
        for p in nominal:
            names = {"machine": p.machine, "mix": p.mix, "variant": p.variant}
            texts = {group: encoded[group][names[group]] for group in GROUPS}
            points.append(
                Point(
                    point_id=_point_id(
                        names, texts, p.cores, p.seed, spec.root_seed, MODEL_VERSION, k
                    ),
                    machine=p.machine,
                    mix=p.mix,
                    variant=p.variant,
                    cores=p.cores,
                    seed=p.seed,
                    entropy=p.entropy,  # the presets' stream: common random numbers
                    params_keys=(
                        draw_key(p.machine, k),
                        draw_key(p.mix, k),
                        draw_key(p.variant, k),
                    ),
                    draw=k,
                )
            )
    return points


def validate_draws(spec: StudySpec) -> None:
    """Every draw's presets through ``exitcore``'s parsers (a drawn value the model refuses
    is bad input, found before anything is written). Raises :class:`StudyError`."""
    grid = spec.grid
    for k, params in enumerate(drawn_params(spec)):
        used = {g: {n: params[g][n] for n in getattr(grid, g)} for g in GROUP_PARSERS}
        first = (grid.machine[0], grid.mix[0], grid.variant[0])
        try:
            validate_params(used, [(first, cores) for cores in grid.cores])
        except StudyError as exc:
            raise StudyError(
                f"uncertainty.params={spec.uncertainty.params}: draw {k}: {exc}"
            ) from None


# --------------------------------------------------------------------------- curves


def draw_curves(rows: pl.LazyFrame) -> pl.DataFrame:
    """One curve per (machine, mix, variant, draw) of the drawn ``rows``: seeds aggregated,
    knee and bottleneck, with :func:`sweep.curves.add_scaling` itself.

    The draw is folded into the machine label for the call, so the same definitions (and the
    baseline comparison, which joins on machine, mix and cores) apply within each draw.
    """
    folded = rows.with_columns(
        (pl.col("machine") + _FOLD + pl.col("draw").cast(pl.String)).alias("machine")
    ).drop("draw")
    per_draw = add_scaling(aggregate_seeds(folded))
    parts = pl.col("machine").str.split_exact(_FOLD, 1)
    return per_draw.with_columns(
        parts.struct.field("field_0").alias("machine"),
        parts.struct.field("field_1").cast(pl.Int64).alias("draw"),
    )


def knee_quantile(knees: Sequence[float | None], q: float) -> int | None:
    """Type-1 quantile of per-draw knees (None = beyond the grid) as a core count or None."""
    values = np.array([math.inf if k is None else float(k) for k in knees], dtype=float)
    if values.size == 0:
        return None
    value = float(np.quantile(values, q, method="inverted_cdf"))
    return None if math.isinf(value) else int(value)


def knee_summary(per_draw: pl.DataFrame) -> pl.DataFrame:
    """Per curve: ``n_draws``, the knee quantiles and ``bottleneck_share``."""
    knees = per_draw.group_by([*CURVE_KEYS, "draw"]).agg(
        pl.col("knee_cores").first(), pl.col("bottleneck").first()
    )
    records = []
    for key, group in knees.group_by(list(CURVE_KEYS), maintain_order=True):
        values = group["knee_cores"].to_list()
        n = group.height
        counts = group["bottleneck"].value_counts()
        share = sorted(
            (
                {"resource": str(r), "share": c / n}
                for r, c in zip(counts["bottleneck"], counts["count"], strict=True)
            ),
            key=lambda d: (-d["share"], d["resource"]),
        )
        record: dict[str, Any] = dict(zip(CURVE_KEYS, key, strict=True))
        record["n_draws"] = n
        for column, q in zip(KNEE_COLUMNS, QUANTILES, strict=True):
            record[column] = knee_quantile(values, q)
        record["bottleneck_share"] = share
        records.append(record)
    return pl.DataFrame(
        records,
        schema={
            **{k: pl.String for k in CURVE_KEYS},
            "n_draws": pl.Int64,
            **{c: pl.Int64 for c in KNEE_COLUMNS},
            "bottleneck_share": pl.List(pl.Struct({"resource": pl.String, "share": pl.Float64})),
        },
    )


def bands(per_draw: pl.DataFrame) -> pl.DataFrame:
    """Per curve point: the 5 % and 95 % quantile across draws of each of :data:`BAND_METRICS`."""
    lo, _, hi = QUANTILES
    aggs = []
    for m in BAND_METRICS:
        column = f"{m}_mean" if f"{m}_mean" in per_draw.columns else m
        if column not in per_draw.columns:
            continue
        x = pl.col(column).cast(pl.Float64)
        aggs += [
            x.quantile(lo, interpolation="linear").alias(f"{m}_p05"),
            x.quantile(hi, interpolation="linear").alias(f"{m}_p95"),
        ]
    return per_draw.group_by(list(POINT_KEYS)).agg(aggs)


def add_uncertainty(curves: pl.DataFrame, drawn: pl.LazyFrame) -> pl.DataFrame:
    """``curves`` (the presets' curves) with the bands and knee summary of the ``drawn`` rows."""
    per_draw = draw_curves(drawn)
    out = curves.join(bands(per_draw), on=list(POINT_KEYS), how="left", maintain_order="left")
    return out.join(knee_summary(per_draw), on=list(CURVE_KEYS), how="left", maintain_order="left")


def format_knee(p05: int | None, p50: int | None, p95: int | None) -> str:
    """``16 (8-32)``: the median knee and its 5-95 % interval; ``none`` beyond the grid."""

    def one(value: int | None) -> str:
        return "none" if value is None else str(int(value))

    if p05 is None:  # every quantile beyond the grid
        return "none"
    return f"{one(p50)} ({one(p05)}-{one(p95)})"


def format_share(share: Sequence[Mapping[str, Any]] | None) -> str:
    """``reaper 80 %, kernel_lock 20 %`` from a ``bottleneck_share`` list."""
    if not share:
        return "-"
    return ", ".join(f"{s['resource']} {round(100 * s['share'])} %" for s in share)
