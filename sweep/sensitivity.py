"""``python -m sweep.sensitivity``: which constant moves the answer, ranked with SALib.

Config ``conf/sensitivity.yaml``: every key of a study (the grid, ``set.``, ``study.*``, ``out``,
``ray.*``, ...) plus ``uncertainty.params`` (the parameter list whose ranges are ranked,
``conf/fit/<name>.yaml``), ``metric``, ``method`` (``morris`` or ``sobol``), ``size`` and
``levels``. Steps:

1. validate everything (one line, exit 2, nothing written);
2. sample the ranges with SALib (Morris trajectories on a ``levels``-level grid, or Saltelli's
   scheme for first and total Sobol indices) seeded from ``study.seed``;
3. run every grid point at every sample through :func:`sweep.pipeline.run_points` (stored in
   ``out/<study.name>/sensitivity/``, cached by point id in ``out/``'s point cache: a rerun or
   a killed run resumes with only what is missing); sample ``k`` is stored as ``draw = k`` and
   uses the presets' random stream (common random numbers);
4. per curve point, the metric at each sample (seed mean) -> SALib's analysis;
5. write ``out/<study.name>/sensitivity.parquet``, ``sensitivity.md`` and a tornado figure per
   curve under ``figures/``, print the five most influential parameters.

Metrics: any numeric point metric (``wall_s``, ``exits_per_s``, ...) per (curve, cores);
``knee`` per curve (cores; a sample without a knee in the grid counts as
``KNEE_BEYOND_FACTOR`` x the largest core count, ``cores`` is null); ``gain:<metric>``, the
variant's metric over baseline's at the same machine, mix, cores and sample (baseline itself
is not ranked).
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import polars as pl
from omegaconf import DictConfig

from sweep.config import group_loader, hydra_entry, resolved
from sweep.errors import StudyError
from sweep.spec import GROUPS, StudySpec, load_param_list

METHODS: Final[tuple[str, ...]] = ("morris", "sobol")
DEFAULT_SIZE: Final[dict[str, int]] = {"morris": 10, "sobol": 32}
"""Morris trajectories (10: Campolongo et al. 2007 report stable rankings from ~10) and Sobol
base samples (32: a power of two, as Saltelli's scheme wants; an estimate, raise it when the
confidence intervals are wide)."""
KNEE_BEYOND_FACTOR: Final[int] = 2
"""A sample whose curve has no knee in the grid counts as a knee at twice the largest core
count: beyond the grid, and finite so that the analysis can use it."""
SCORES: Final[dict[str, str]] = {"morris": "mu_star", "sobol": "ST"}
RESULT_KEYS: Final[tuple[str, ...]] = ("machine", "mix", "variant", "cores", "metric", "parameter")
TOP: Final[int] = 5


@dataclass(frozen=True)
class SensitivitySpec:
    """A validated ``python -m sweep.sensitivity`` config."""

    study: StudySpec
    ranges: tuple[Any, ...]  # sweep.ranges.ParamRange, each with lo < hi and naming the grid
    metric: str
    method: str
    size: int
    levels: int

    @property
    def dir(self) -> Path:
        return self.study.study_dir

    @property
    def points_dir(self) -> Path:
        return self.study.study_dir / "sensitivity"

    @classmethod
    def from_dicts(
        cls, config: Mapping[str, Any], load_group: Any, available: Mapping[str, Sequence[str]]
    ) -> SensitivitySpec:
        study_cfg = {
            k: v for k, v in config.items() if k not in ("metric", "method", "size", "levels")
        }
        study_cfg["uncertainty"] = {"samples": 0}  # ranking, not drawing: a plain grid
        study = StudySpec.from_dicts(study_cfg, load_group, available)
        method = config.get("method", "morris")
        if method not in METHODS:
            raise StudyError(f"method: {method!r}; allowed: {', '.join(METHODS)}")
        metric = _metric(config.get("metric", "knee"), study)
        size = config.get("size")
        size = DEFAULT_SIZE[method] if size is None else size
        if isinstance(size, bool) or not isinstance(size, int) or size < 2:
            raise StudyError(f"size: {size!r} is not an integer >= 2")
        if method == "sobol" and size & (size - 1):
            raise StudyError(f"size: {size} is not a power of two (Saltelli's scheme needs one)")
        levels = config.get("levels", 4)
        if isinstance(levels, bool) or not isinstance(levels, int) or levels < 2 or levels % 2:
            raise StudyError(f"levels: {levels!r} is not an even integer >= 2")
        name = (config.get("uncertainty") or {}).get("params", "calibration")
        ranges = load_param_list("uncertainty.params", name, load_group, available, study.params)
        grid = {group: set(getattr(study.grid, group)) for group in GROUPS}
        used = tuple(
            r for r in ranges if r.hi > r.lo and (r.name == "*" or r.name in grid[r.group])
        )
        if not used:
            raise StudyError(
                f"uncertainty.params={name}: no range with lo < hi names a machine, mix or "
                "variant of this grid; nothing to rank"
            )
        return cls(study, used, metric, method, size, levels)


def _metric(value: Any, study: StudySpec) -> str:
    from sweep.store import METRIC_NAMES

    numeric = sorted(METRIC_NAMES)
    allowed = "knee, gain:<metric> or a point metric (" + ", ".join(numeric) + ")"
    if not isinstance(value, str):
        raise StudyError(f"metric: {value!r}; allowed: {allowed}")
    base = value.removeprefix("gain:")
    if value == "knee" and len(study.grid.cores) < 2:
        raise StudyError("metric=knee needs at least two core counts in grid.cores")
    if value != "knee" and base not in METRIC_NAMES:
        raise StudyError(f"metric: unknown metric {value!r}; allowed: {allowed}")
    if value.startswith("gain:") and (
        "baseline" not in study.grid.variant or len(study.grid.variant) < 2
    ):
        raise StudyError(f"metric={value} needs baseline and another variant in grid.variant")
    return value


# --------------------------------------------------------------------------- sampling


def problem(ranges: Sequence[Any]) -> dict[str, Any]:
    """SALib's problem dict of ``ranges`` (names are the ranges' labels)."""
    return {
        "num_vars": len(ranges),
        "names": [r.label for r in ranges],
        "bounds": [[r.lo, r.hi] for r in ranges],
    }


def sample(spec: SensitivitySpec) -> np.ndarray:
    """The parameter vectors to simulate, one row per sample."""
    prob = problem(spec.ranges)
    if spec.method == "morris":
        from SALib.sample import morris

        return morris.sample(prob, spec.size, num_levels=spec.levels, seed=spec.study.root_seed)
    from SALib.sample import sobol

    return sobol.sample(prob, spec.size, calc_second_order=False, seed=spec.study.root_seed)


def point_specs(spec: SensitivitySpec, values: np.ndarray) -> list[Any]:
    """Every grid point at every sample, sample by sample (``draw`` = the sample's row)."""
    from sweep.pipeline import PointSpec
    from sweep.ranges import apply

    grid, params = spec.study.grid, spec.study.params
    specs = []
    for k, row in enumerate(values):
        at = apply(params, spec.ranges, row.tolist())
        for machine, mix, variant, cores, seed in itertools.product(
            grid.machine, grid.mix, grid.variant, grid.cores, grid.seed
        ):
            specs.append(
                PointSpec(
                    machine=machine,
                    mix=mix,
                    variant=variant,
                    cores=cores,
                    seed=seed,
                    params={
                        "machine": at["machine"][machine],
                        "mix": at["mix"][mix],
                        "variant": at["variant"][variant],
                    },
                    draw=k,
                )
            )
    return specs


# --------------------------------------------------------------------------- analysis


def outputs(rows: pl.DataFrame, metric: str) -> pl.DataFrame:
    """The metric per curve point and sample: columns machine, mix, variant, cores (null for
    the knee), draw, y."""
    keys = ["machine", "mix", "variant", "cores", "draw"]
    if metric == "knee":
        from sweep.uncertainty import draw_curves

        curves = draw_curves(rows.lazy())
        top = int(rows["cores"].max())  # type: ignore[arg-type]
        return (
            curves.group_by(["machine", "mix", "variant", "draw"])
            .agg(pl.col("knee_cores").first())
            .select(
                "machine",
                "mix",
                "variant",
                pl.lit(None, pl.Int64).alias("cores"),
                "draw",
                pl.col("knee_cores")
                .fill_null(KNEE_BEYOND_FACTOR * top)
                .cast(pl.Float64)
                .alias("y"),
            )
        )
    base = metric.removeprefix("gain:")
    means = rows.group_by(keys).agg(pl.col(base).cast(pl.Float64).mean().alias("y"))
    if metric == base:
        return means
    baseline = means.filter(pl.col("variant") == "baseline").select(
        "machine", "mix", "cores", "draw", pl.col("y").alias("_base")
    )
    return (
        means.filter(pl.col("variant") != "baseline")
        .join(baseline, on=["machine", "mix", "cores", "draw"], how="left")
        .with_columns((pl.col("y") / pl.col("_base")).alias("y"))
        .drop("_base")
    )


def analyze(spec: SensitivitySpec, values: np.ndarray, ys: pl.DataFrame) -> pl.DataFrame:
    """SALib's indices per curve point and parameter (:data:`RESULT_KEYS` plus the scores)."""
    prob = problem(spec.ranges)
    n = values.shape[0]
    records = []
    groups = ys.sort("draw").group_by(["machine", "mix", "variant", "cores"], maintain_order=True)
    for (machine, mix, variant, cores), group in groups:
        y = group["y"].to_numpy()
        if len(y) != n:
            raise StudyError(f"{machine}/{mix}/{variant}: {len(y)} of {n} samples have a value")
        result = _indices(spec, prob, values, y.astype(float))
        for i, label in enumerate(prob["names"]):
            record: dict[str, Any] = {
                "machine": machine,
                "mix": mix,
                "variant": variant,
                "cores": cores,
                "metric": spec.metric,
                "parameter": label,
                "method": spec.method,
            }
            for column, series in result.items():
                value = float(series[i])
                record[column] = value if np.isfinite(value) else None
            records.append(record)
    order = pl.col(SCORES[spec.method]).fill_null(-1.0)
    return pl.DataFrame(records, infer_schema_length=None).sort(
        ["machine", "mix", "variant", "cores", order],
        descending=[False] * 4 + [True],
        nulls_last=True,
    )


def _indices(
    spec: SensitivitySpec, prob: dict[str, Any], values: np.ndarray, y: np.ndarray
) -> dict[str, np.ndarray]:
    seed = spec.study.root_seed
    if spec.method == "morris":
        from SALib.analyze import morris

        r = morris.analyze(prob, values, y, num_levels=spec.levels, seed=seed)
        return {k: np.asarray(r[k], float) for k in ("mu_star", "sigma", "mu_star_conf", "mu")}
    from SALib.analyze import sobol

    if np.ptp(y) == 0:  # no variance to apportion: every index is undefined
        nan = np.full(prob["num_vars"], np.nan)
        return {k: nan for k in ("S1", "S1_conf", "ST", "ST_conf")}
    r = sobol.analyze(prob, y, calc_second_order=False, seed=seed)
    return {k: np.asarray(r[k], float) for k in ("S1", "S1_conf", "ST", "ST_conf")}


def selection(results: pl.DataFrame) -> pl.DataFrame:
    """Each curve's rows at its largest core count (the knee's rows, whose cores are null)."""
    top = results.group_by(["machine", "mix", "variant"]).agg(pl.col("cores").max().alias("_top"))
    return (
        results.join(top, on=["machine", "mix", "variant"], how="left", nulls_equal=True)
        .filter(pl.col("cores").is_null() | (pl.col("cores") == pl.col("_top")))
        .drop("_top")
    )


def top_parameters(results: pl.DataFrame, method: str, n: int = TOP) -> pl.DataFrame:
    """The ``n`` parameters with the largest score on any curve (at :func:`selection`), each
    with that curve."""
    score = SCORES[method]
    return (
        selection(results)
        .filter(pl.col(score).is_not_null())
        .sort(score, descending=True)
        .group_by("parameter", maintain_order=True)
        .first()
        .head(n)
    )


# --------------------------------------------------------------------------- output


def _unit(metric: str) -> str:
    if metric == "knee":
        return " cores"
    if metric.startswith("gain:"):
        return "x"
    for suffix, unit in (("_per_s", " /s"), ("_s", " s"), ("_mb", " MB")):
        if metric.endswith(suffix):
            return unit
    return ""


def _markdown(spec: SensitivitySpec, results: pl.DataFrame, n_samples: int, points: int) -> str:
    score = SCORES[spec.method]
    where = "at the knee" if spec.metric == "knee" else "at each curve's largest core count"
    method = (
        f"Morris elementary effects, {spec.size} trajectories on a {spec.levels}-level grid"
        if spec.method == "morris"
        else f"Sobol indices (Saltelli sampling, N = {spec.size}, first and total order)"
    )
    lines = [
        f"# Sensitivity of `{spec.metric}`: study `{spec.study.name}`",
        "",
        f"{method}: {n_samples} parameter samples x {spec.study.grid.size} grid points = "
        f"{points} points (stored in `sensitivity/points`). All core counts are in "
        f"`sensitivity.parquet`; the tables rank the parameters {where}.",
        "",
        "## Parameters",
        "",
        "| parameter | lo | hi | source |",
        "|---|---:|---:|---|",
        *[f"| {r.label} | {r.lo:g} | {r.hi:g} | {r.source} |" for r in spec.ranges],
        "",
        "## Rankings",
    ]
    cols = (
        ["mu_star", "sigma", "mu_star_conf"]
        if spec.method == "morris"
        else ["S1", "S1_conf", "ST", "ST_conf"]
    )
    for (machine, mix, variant), group in selection(results).group_by(
        ["machine", "mix", "variant"], maintain_order=True
    ):
        cores = group["cores"][0]
        at = "knee" if cores is None else f"{cores} cores"
        lines += ["", f"### {machine} / {mix} / {variant} ({at})", ""]
        lines += ["| parameter | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
        for rec in group.sort(pl.col(score).fill_null(-1.0), descending=True).iter_rows(named=True):
            cells = ["-" if rec[c] is None else f"{rec[c]:.4g}" for c in cols]
            lines.append(f"| {rec['parameter']} | " + " | ".join(cells) + " |")
        lines.append("")
        stem = _tornado_stem(spec, machine, mix, variant).relative_to(spec.dir).as_posix()
        lines.append(f"![tornado]({stem}.png)")
    return "\n".join(lines).rstrip() + "\n"


def _tornado_stem(spec: SensitivitySpec, machine: str, mix: str, variant: str) -> Path:
    from sweep.plots import safe_name

    name = f"{safe_name(machine)}__{safe_name(mix)}__{safe_name(variant)}__tornado"
    return spec.dir / "figures" / "sensitivity" / name


def write_outputs(
    spec: SensitivitySpec, results: pl.DataFrame, n_samples: int, points: int
) -> None:
    """``sensitivity.parquet``, ``sensitivity.md`` and the tornado figures, each atomically."""
    from sweep.plots import render_tornado

    score = SCORES[spec.method]
    err = "mu_star_conf" if spec.method == "morris" else "ST_conf"
    label = {"mu_star": "Morris mu*", "ST": "Sobol total index ST"}[score]
    for (machine, mix, variant), group in selection(results).group_by(
        ["machine", "mix", "variant"], maintain_order=True
    ):
        cores = group["cores"][0]
        at = "knee" if cores is None else f"{cores} cores"
        render_tornado(
            group["parameter"].to_list(),
            group[score].fill_null(0.0).to_list(),
            group[err].fill_null(0.0).to_list(),
            _tornado_stem(spec, str(machine), str(mix), str(variant)),
            title=f"{spec.metric} ({at}): {mix} on {machine}, {variant}",
            xlabel=f"{label} of {spec.metric}"
            + (
                f" [{_unit(spec.metric).strip()}]"
                if score == "mu_star" and _unit(spec.metric)
                else ""
            ),
        )
    tmp = spec.dir / ".sensitivity.parquet.tmp"
    results.write_parquet(tmp)
    os.replace(tmp, spec.dir / "sensitivity.parquet")
    text = _markdown(spec, results, n_samples, points)
    tmp = spec.dir / ".sensitivity.md.tmp"
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, spec.dir / "sensitivity.md")


def run_sensitivity(spec: SensitivitySpec, point_fn: Any = None) -> int:
    """Sample, run, analyze and write (module docstring); the exit status."""
    from sweep.pipeline import RunOptions, run_points

    values = sample(spec)
    specs = point_specs(spec, values)
    study = spec.study
    options = RunOptions.of_study(study)
    table = run_points(
        specs,
        spec.points_dir,
        f"sensitivity {study.name!r}",
        options,
        root_seed=study.root_seed,
        cache_root=study.out if study.cache else None,
        point_fn=point_fn,
        config={**study.config, "metric": spec.metric, "method": spec.method, "size": spec.size},
    )
    rows = pl.from_arrow(table)
    assert isinstance(rows, pl.DataFrame)
    failed = rows.filter(pl.col("status") != "ok").height
    if failed:
        print(
            f"sweep.sensitivity: {failed} of {rows.height} points failed (status='error' in "
            f"{spec.points_dir / 'points'}); rerun the command to retry them",
            file=sys.stderr,
        )
        return 1
    results = analyze(spec, values, outputs(rows, spec.metric))
    write_outputs(spec, results, values.shape[0], len(specs))
    score = SCORES[spec.method]
    unit = _unit(spec.metric) if score == "mu_star" else ""
    print(
        f"most influential on {spec.metric} ({'Morris mu*' if score == 'mu_star' else 'Sobol ST'}):"
    )
    for i, rec in enumerate(top_parameters(results, spec.method).iter_rows(named=True), 1):
        at = "knee" if rec["cores"] is None else f"{rec['cores']} cores"
        print(
            f"{i}. {rec['parameter']}: {rec[score]:.4g}{unit} "
            f"({rec['machine']} / {rec['mix']} / {rec['variant']}, {at})"
        )
    print(f"wrote {spec.dir / 'sensitivity.parquet'} and {spec.dir / 'sensitivity.md'}")
    return 0


def spec_from_config(cfg: DictConfig) -> SensitivitySpec:
    load, available = group_loader((*GROUPS, "fit"))
    return SensitivitySpec.from_dicts(resolved(cfg), load, available)


def _task(cfg: DictConfig) -> int:
    return run_sensitivity(spec_from_config(cfg))


main = hydra_entry(_task, config_name="sensitivity", prog="sweep.sensitivity")

if __name__ == "__main__":
    main()
