"""``python -m sweep.fit fit=<name>``: fit the model's constants to published measurements.

The fit spec ``conf/fit/<name>.yaml`` (a config group: found on Hydra's search path, so a user's
own directory works through ``hydra.searchpath``)::

    measurements: null      # measurement names; null = every role: calibrate one
    seeds: [0, 1, 2]        # the same seeds at every evaluation
    parameters: [...]       # the ranges, sweep.ranges: {group, name, param, lo, hi, source}

Objective: the sum over every figure, ratio figure and bound of the chosen measurements of
``log(model / published)^2`` (a bound that holds contributes 0), the residuals being
:func:`sweep.validation.log_residuals` of the validation table: the same "model against
published" as ``python -m sweep.validate``.

Optimiser: ``scipy.optimize.least_squares`` with ``method="trf"`` (trust-region reflective),
which takes box bounds natively and exploits the sum-of-squares structure (a Gauss-Newton step
from the Jacobian of the residual vector), so a handful of parameters converge in a few
iterations. Parameters are mapped to the unit cube (``u = (x - lo) / (hi - lo)``) so one step
size suits them all. The Jacobian is a forward difference of ``fit.diff_step`` of each range
(default 2 %): the model is a discrete-event simulation, piecewise smooth in its constants, and
a step much smaller than that would measure the jumps between event orders instead of the
slope. All columns of one Jacobian are one batch of points on Ray, as is each evaluation.

Writes ``out/fit/<name>/``: ``fitted.yaml`` (group -> name -> param -> value, the form of a
preset override), ``fit.md`` (parameters with bounds hit flagged, residuals of the fitted and of
the ``check`` measurements at the fitted values, objective against iteration), ``fit.png`` and
the points (``points/``, cached by id). Exit 0; bad input: one line, exit 2, nothing written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import io
import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from exitcore import MODEL_VERSION
from sweep.errors import StudyError
from sweep.measurement import GROUP, MeasurementSet, load_measurements
from sweep.ranges import ALL, ParamRange, apply, current_values, list_lookup, load_ranges
from sweep.spec import GROUPS
from sweep.validate import check_writable, parse_seeds, run_options, write_atomic

SPEC_KEYS: tuple[str, ...] = ("measurements", "seeds", "parameters")
AT_BOUND = 1e-3
"""A fitted value within this fraction of its range from an end is flagged as at the bound."""


@dataclass(frozen=True)
class FitSpec:
    """A validated fit: what to fit, to which measurements, and how."""

    name: str
    measurements: MeasurementSet
    ranges: tuple[ParamRange, ...]
    seeds: tuple[int, ...]
    out: Path
    options: Any  # sweep.pipeline.RunOptions
    max_evaluations: int = 300
    diff_step: float = 0.02
    checks: MeasurementSet | None = None
    """Every ``check`` measurement, reported at the fitted values (never fitted)."""
    holdout_seeds: tuple[int, ...] = ()
    """Seeds never used by the optimiser: the objective at the start and at the fitted values is
    recomputed on them, so a fit that won by picking a lucky evaluation shows it."""

    @property
    def dir(self) -> Path:
        return self.out / "fit" / self.name


@dataclass
class FitResult:
    """What the optimiser found, in parameter units."""

    start: list[float]
    values: list[float]
    objective: float
    start_objective: float
    evaluations: int
    holdout: tuple[float, float] | None = None
    """(start, fitted) objective on the fit's ``holdout_seeds``; None when there are none."""
    iterations: list[tuple[int, int, float]] = field(default_factory=list)
    """(iteration, evaluations so far, objective) after each accepted step; 0 is the start."""
    message: str = ""
    wall_s: float = 0.0


def load_fit_spec(
    name: str,
    spec: Any,
    config: Mapping[str, Any],
    load: Any,
    available: Mapping[str, Sequence[str]],
) -> FitSpec:
    """Validate the fit spec ``fit/<name>.yaml`` (as composed, ``spec``) and the run keys."""
    where = f"fit/{name}.yaml"
    if not isinstance(spec, Mapping):
        raise StudyError(f"{where}: must hold a mapping of {', '.join(SPEC_KEYS)}")
    unknown = sorted(set(spec) - set(SPEC_KEYS))
    if unknown:
        raise StudyError(f"{where}: {unknown[0]}: unknown key; allowed: {', '.join(SPEC_KEYS)}")
    names = spec.get("measurements")
    try:
        ms = load_measurements(names, "calibrate" if names is None else "all", load, available)
    except StudyError as exc:
        raise StudyError(f"{where}: {exc}") from None
    for m in ms.selected:
        if m.role != "calibrate":
            raise StudyError(
                f"{where}: measurements: {m.name!r} has role {m.role}: compared, never fitted"
            )
    seeds = parse_seeds(f"{where}: seeds", spec.get("seeds", [0, 1, 2]))
    presets = _all_presets(load, available)
    try:
        ranges = load_ranges(spec.get("parameters"), presets, list_lookup(load, available))
    except StudyError as exc:
        raise StudyError(f"{where}: {exc}") from None
    _check_dependence(where, ranges, ms)
    max_evaluations = config.get("max_evaluations", 300)
    if isinstance(max_evaluations, bool) or not isinstance(max_evaluations, int):
        raise StudyError(f"max_evaluations: {max_evaluations!r} is not an integer")
    if max_evaluations < len(ranges) + 2:
        raise StudyError(f"max_evaluations: {max_evaluations} leaves no room for one iteration")
    diff_step = config.get("diff_step", 0.02)
    if isinstance(diff_step, bool) or not isinstance(diff_step, int | float):
        raise StudyError(f"diff_step: {diff_step!r} is not a number")
    if not 0 < diff_step <= 0.5:
        raise StudyError(f"diff_step: {diff_step!r}; expected a fraction of each range in (0, 0.5]")
    holdout = config.get("holdout_seeds", [])
    holdout_seeds = parse_seeds("holdout_seeds", holdout) if holdout not in ([], None) else ()
    shared = sorted(set(holdout_seeds) & set(seeds))
    if shared:
        raise StudyError(f"holdout_seeds: seed {shared[0]} is one of the fit's seeds {list(seeds)}")
    checks = None
    check_names = [
        n for n in available.get(GROUP, ()) if (load(GROUP, n) or {}).get("role") == "check"
    ]
    if check_names:
        checks = load_measurements(check_names, "check", load, available)
    fit = FitSpec(
        name=name,
        measurements=ms,
        ranges=ranges,
        seeds=seeds,
        out=Path(str(config.get("out", "results"))),
        options=run_options(config),
        max_evaluations=max_evaluations,
        diff_step=float(diff_step),
        checks=checks,
        holdout_seeds=holdout_seeds,
    )
    _check_corners(fit)
    return fit


def _all_presets(load: Any, available: Mapping[str, Sequence[str]]) -> dict[str, dict[str, Any]]:
    return {group: {n: load(group, n) for n in available.get(group, ())} for group in GROUPS}


def _check_dependence(where: str, ranges: Sequence[ParamRange], ms: MeasurementSet) -> None:
    """Refuse a parameter no fitted figure depends on, or only one unless it is a machine's own
    constant (its speed): fitted to one figure, the value would just restate that figure."""
    for i, r in enumerate(ranges):
        figures = 0
        for m in ms.selected:
            uses = r.name in (ALL, getattr(m.point, r.group))
            fixed = r.keys[0] in (m.point.overrides.get(r.group) or {})  # what was measured
            if uses and not fixed:
                figures += len(m.figures) + len(m.bounds) + len(m.ratio_figures)
        if figures == 0:
            raise StudyError(f"{where}: parameters[{i}]: no fitted figure depends on {r.label}")
        if figures == 1 and r.group != "machine":
            raise StudyError(
                f"{where}: parameters[{i}]: only one fitted figure depends on {r.label}; the fit "
                "would only restate that figure (add measurements or drop the parameter)"
            )


def _check_corners(fit: FitSpec) -> None:
    """Every measurement's point must be a valid model input at both ends of every range."""
    from exitcore.simulate import PointParams

    for corner in ("lo", "hi"):
        values = [getattr(r, corner) for r in fit.ranges]
        presets = apply(fit.measurements.presets, fit.ranges, values)
        for m in fit.measurements.all:
            if not m.modelled:
                continue
            try:
                PointParams.from_dicts(cores=m.point.cores, **m.params(presets))
            except (ValueError, TypeError) as exc:
                raise StudyError(
                    f"fit/{fit.name}.yaml: parameters: at every {corner} ({_vector(fit, values)}) "
                    f"{m.name} is not a valid point: {exc}"
                ) from None


def _vector(fit: FitSpec, values: Sequence[float]) -> str:
    return ", ".join(f"{r.label}={v:.6g}" for r, v in zip(fit.ranges, values, strict=True))


class _Budget(Exception):
    """The evaluation budget is spent: stop the optimiser, keep the best point."""


def residual_batch(
    fit: FitSpec, runner: Any, seeds: Sequence[int], vectors: Sequence[Sequence[float]]
) -> list[np.ndarray]:
    """``log(model / published)`` of the fitted measurements at each parameter vector, on
    ``seeds``: every point of every vector in one ``runner`` batch. A failed point is a
    :class:`StudyError` naming the vector."""
    from sweep import validation

    ms = fit.measurements
    specs: list[Any] = []
    slices = []
    for values in vectors:
        s, index = ms.point_specs(seeds, apply(ms.presets, fit.ranges, values))
        slices.append((len(specs), len(s), index))
        specs.extend(s)
    rows = runner(specs)
    residuals = []
    for values, (start, n, index) in zip(vectors, slices, strict=True):
        samples, errors = validation.collect_samples(ms, index, rows.slice(start, n))
        failed = [e for errs in errors.values() for e in errs]
        if failed:
            raise StudyError(f"a point failed at {_vector(fit, values)}: {failed[0][:300]}")
        residuals.append(validation.log_residuals(validation.validation_table(ms, samples)))
    return residuals


class Objective:
    """Residual vectors of parameter vectors in the unit cube, computed in batches, memoised."""

    def __init__(self, fit: FitSpec, runner: Any) -> None:
        self.fit = fit
        self.runner = runner  # (specs) -> rows, one run_points batch
        self.lo = np.array([r.lo for r in fit.ranges])
        self.span = np.array([r.hi - r.lo for r in fit.ranges])
        self.memo: dict[tuple[float, ...], np.ndarray] = {}
        self.evaluations = 0
        self.best: tuple[float, tuple[float, ...]] = (math.inf, ())
        self.started = time.monotonic()
        self.last_report = 0.0

    def values(self, u: np.ndarray) -> list[float]:
        return list(self.lo + self.span * np.clip(u, 0.0, 1.0))

    def batch(self, us: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Residuals at each ``u``; the new ones computed as one batch of points."""
        keys = [tuple(float(x) for x in np.clip(u, 0.0, 1.0)) for u in us]
        todo = list(dict.fromkeys(k for k in keys if k not in self.memo))
        if todo:
            if self.evaluations + len(todo) > self.fit.max_evaluations:
                raise _Budget
            vectors = [self.values(np.array(key)) for key in todo]
            residuals = residual_batch(self.fit, self.runner, self.fit.seeds, vectors)
            for key, residual in zip(todo, residuals, strict=True):
                self.memo[key] = residual
                cost = float(residual @ residual)
                if cost < self.best[0]:
                    self.best = (cost, key)
            self.evaluations += len(todo)
        return [self.memo[k] for k in keys]

    def __call__(self, u: np.ndarray) -> np.ndarray:
        return self.batch([u])[0]

    def jacobian(self, u: np.ndarray) -> np.ndarray:
        """Forward differences of ``diff_step`` in the unit cube (backward at the upper end);
        every column in one batch."""
        h = self.fit.diff_step
        steps = [h if u[i] + h <= 1.0 else -h for i in range(len(u))]
        trial = []
        for i, step in enumerate(steps):
            v = np.array(u, dtype=float)
            v[i] += step
            trial.append(v)
        base, *columns = self.batch([u, *trial])
        return np.column_stack([(c - base) / s for c, s in zip(columns, steps, strict=True)])


def optimise(fit: FitSpec, runner: Any, log: Any = sys.stderr) -> FitResult:
    """Minimise the sum of squared log residuals over the ranges, from the presets' values."""
    from scipy.optimize import least_squares

    objective = Objective(fit, runner)
    start = current_values(fit.measurements.presets, fit.ranges)
    start_values = [
        min(max(v if v is not None else (r.lo + r.hi) / 2, r.lo), r.hi)
        for r, v in zip(fit.ranges, start, strict=True)
    ]
    u0 = (np.array(start_values) - objective.lo) / np.where(objective.span > 0, objective.span, 1)
    r0 = objective(u0)
    start_cost = float(r0 @ r0)
    iterations: list[tuple[int, int, float]] = [(0, objective.evaluations, start_cost)]
    budget = fit.max_evaluations

    def progress(intermediate_result: Any) -> None:
        cost = 2.0 * float(intermediate_result.cost)  # scipy's cost is half the sum of squares
        iterations.append((len(iterations), objective.evaluations, cost))
        if fit.options.progress == "off":
            return
        elapsed = time.monotonic() - objective.started
        per_s = objective.evaluations / elapsed if elapsed > 0 else 0.0
        rate = per_s * 60
        left = (budget - objective.evaluations) / per_s if per_s > 0 else math.inf
        print(
            f"sweep.fit: iteration {len(iterations) - 1}: objective {cost:.4g} "
            f"(start {start_cost:.4g}), {objective.evaluations} evaluations, "
            f"{rate:.0f} evaluations/min, at most {_minutes(left)} left "
            f"(budget {budget} evaluations)",
            file=log,
            flush=True,
        )

    message = ""
    free = objective.span > 0
    try:
        if free.any():
            # fixed parameters (lo == hi) are left out of the optimiser's vector
            def fun(v: np.ndarray) -> np.ndarray:
                return objective(_full(u0, free, v))

            def jac(v: np.ndarray) -> np.ndarray:
                return objective.jacobian(_full(u0, free, v))[:, free]

            result = least_squares(
                fun,
                u0[free],
                jac=jac,
                bounds=(0.0, 1.0),
                method="trf",
                x_scale=1.0,
                xtol=1e-4,
                ftol=1e-6,
                gtol=1e-8,
                callback=progress,
            )
            message = str(result.message)
        else:
            message = "every parameter is fixed (lo == hi)"
    except _Budget:
        message = f"stopped: {budget} evaluations spent (max_evaluations)"
    best_cost, best_key = objective.best
    best = objective.values(np.array(best_key))
    return FitResult(
        start=start_values,
        values=best,
        objective=best_cost,
        start_objective=start_cost,
        evaluations=objective.evaluations,
        iterations=iterations,
        message=message,
        wall_s=time.monotonic() - objective.started,
    )


def _full(u0: np.ndarray, free: np.ndarray, v: np.ndarray) -> np.ndarray:
    u = np.array(u0, dtype=float)
    u[free] = v
    return u


def _minutes(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"


def fitted_overrides(fit: FitSpec, values: Sequence[float]) -> dict[str, dict[str, Any]]:
    """``group -> name -> param -> value`` (dotted params nested), "*" expanded to the presets
    the fitted measurements use. Integers stay integers."""
    presets = apply(fit.measurements.presets, fit.ranges, values)
    out: dict[str, dict[str, Any]] = {}
    for r in fit.ranges:
        names = sorted(fit.measurements.presets.get(r.group, {})) if r.name == ALL else [r.name]
        for name in names:
            node: Any = presets[r.group][name]
            for key in r.keys:
                node = node[key]
            target = out.setdefault(r.group, {}).setdefault(name, {})
            *parents, leaf = r.keys
            for key in parents:
                target = target.setdefault(key, {})
            target[leaf] = node if isinstance(node, int) else float(f"{node:.6g}")
    return out


def read_fitted(path: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """A ``fitted.yaml`` (group -> name -> param -> value); one-line errors naming the file."""
    try:
        content = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        detail = " ".join(str(getattr(exc, "strerror", None) or exc).split())[:200]
        raise StudyError(f"overrides: cannot read {path}: {detail}") from None
    if not isinstance(content, Mapping):
        raise StudyError(f"overrides: {path} must map group -> name -> param -> value")
    for group, presets in content.items():
        if group not in GROUPS:
            raise StudyError(f"overrides: {path}: {group}: unknown group; allowed: {GROUPS}")
        if not isinstance(presets, Mapping) or not all(
            isinstance(p, Mapping) for p in presets.values()
        ):
            raise StudyError(f"overrides: {path}: {group}: must map preset names to parameters")
    return {g: {n: dict(p) for n, p in presets.items()} for g, presets in content.items()}


def overlay(load: Any, fitted: Mapping[str, Mapping[str, Mapping[str, Any]]], where: str) -> Any:
    """``load(group, name)`` with the fitted values of that preset applied (the grammar of
    ``set.<group>.<param>``: every key must exist in the preset)."""
    from sweep.spec import apply_overrides

    def load_with(group: str, name: str) -> dict[str, Any]:
        base = load(group, name)
        values = fitted.get(group, {}).get(name)
        if not values:
            return base
        try:
            return apply_overrides(group, base, values, f"{group}.{name}.")
        except StudyError as exc:  # "set.machine.m2.cpu: unknown machine parameter; ..."
            raise StudyError(f"overrides: {where}: {str(exc).removeprefix('set.')}") from None

    return load_with


def run_fit(fit: FitSpec) -> int:
    """Optimise, then write ``fitted.yaml``, ``fit.md`` and ``fit.png``; the exit status."""
    from sweep import validation
    from sweep.pipeline import RunOptions, run_points

    check_writable(fit.dir)
    # The fit reports its own progress (per iteration); each batch runs quietly.
    quiet = RunOptions(
        ray=fit.options.ray, progress="off", cache=fit.options.cache, force=fit.options.force
    )

    provenance = {
        "fit": fit.name,
        "measurements": sorted(m.name for m in fit.measurements.selected),
        "seeds": list(fit.seeds),
        "parameters": [dataclasses.asdict(r) for r in fit.ranges],
    }

    def runner(specs: Sequence[Any]) -> Any:
        # run_points says per batch what it stored and computed; a fit's hundred batches would
        # bury its own per-iteration progress, so that is kept and shown only on failure.
        said = io.StringIO()
        try:
            with contextlib.redirect_stderr(said):
                return run_points(
                    specs,
                    fit.dir,
                    f"fit-{fit.name}",
                    quiet,
                    cache_root=fit.out,
                    config=provenance,
                )
        except BaseException:
            sys.stderr.write(said.getvalue())
            raise

    n_points = len(fit.measurements.point_specs(fit.seeds)[0])
    print(
        f"sweep.fit: {fit.name}: {len(fit.ranges)} parameters, "
        f"{len(fit.measurements.selected)} measurements, {n_points} points per evaluation "
        f"({len(fit.seeds)} seeds) -> {fit.dir}",
        file=sys.stderr,
    )
    result = optimise(fit, runner)

    # The residual tables at the fitted values: fitted measurements and every check one.
    tables = []
    for ms in (fit.measurements, fit.checks):
        if ms is None:
            continue
        specs, index = ms.point_specs(fit.seeds, apply(ms.presets, fit.ranges, result.values))
        rows = runner(specs) if specs else None
        if rows is None:
            from sweep.store import POINT_SCHEMA

            rows = POINT_SCHEMA.empty_table()
        samples, errors = validation.collect_samples(ms, index, rows)
        tables.append((ms, validation.validation_table(ms, samples), validation.notes(ms, errors)))

    if fit.holdout_seeds:
        start, fitted = residual_batch(
            fit, runner, fit.holdout_seeds, (result.start, result.values)
        )
        result.holdout = (float(start @ start), float(fitted @ fitted))
    overrides = fitted_overrides(fit, result.values)
    header = (
        f"# fitted by `python -m sweep.fit fit={fit.name}` "
        f"({dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}, model {MODEL_VERSION}, "
        f"seeds {list(fit.seeds)}): objective {result.objective:.4g} "
        f"(start {result.start_objective:.4g})\n" + _holdout_line(fit, result, "# ")
    )
    write_atomic(
        fit.dir / "fitted.yaml",
        lambda p: p.write_text(header + yaml.safe_dump(overrides, sort_keys=False)),
    )
    write_atomic(fit.dir / "fit.md", lambda p: p.write_text(fit_markdown(fit, result, tables)))
    write_atomic(fit.dir / "fit.png", lambda p: plot_objective(result, p))
    print(parameter_text(fit, result))
    for ms, table, notes in tables:
        print(validation.text_table(table, ms))
        for line in [*validation.summary_lines(table), *notes]:
            print(line)
    print(_holdout_line(fit, result, "sweep.fit: "), end="", file=sys.stderr)
    print(
        f"sweep.fit: objective {result.start_objective:.4g} -> {result.objective:.4g} in "
        f"{result.evaluations} evaluations, {_minutes(result.wall_s)} ({result.message}); "
        f"wrote {fit.dir / 'fitted.yaml'}",
        file=sys.stderr,
    )
    return 0


def _holdout_line(fit: FitSpec, result: FitResult, prefix: str) -> str:
    if result.holdout is None:
        return ""
    start, fitted = result.holdout
    return (
        f"{prefix}on held-out seeds {list(fit.holdout_seeds)}: objective {fitted:.4g} "
        f"(start {start:.4g})\n"
    )


def _parameter_rows(fit: FitSpec, result: FitResult) -> list[list[str]]:
    rows = []
    for r, start, value in zip(fit.ranges, result.start, result.values, strict=True):
        span = r.hi - r.lo
        flag = ""
        if span > 0 and (value - r.lo) <= AT_BOUND * span:
            flag = "at lo"
        elif span > 0 and (r.hi - value) <= AT_BOUND * span:
            flag = "at hi"
        change = f"{(value / start - 1) * 100:+.1f} %" if start else "-"
        rows.append(
            [r.label, f"{r.lo:.6g}", f"{r.hi:.6g}", f"{start:.6g}", f"{value:.6g}", change, flag]
        )
    return rows


PARAMETER_HEADERS = ("parameter", "lo", "hi", "start", "fitted", "change", "bound hit")


def parameter_text(fit: FitSpec, result: FitResult) -> str:
    from sweep.report import plain_table

    rows = [list(PARAMETER_HEADERS), *_parameter_rows(fit, result)]
    return plain_table(rows, numeric={1, 2, 3, 4, 5})


def fit_markdown(fit: FitSpec, result: FitResult, tables: Sequence[Any]) -> str:
    from sweep import validation

    lines = [
        f"# Fit `{fit.name}`",
        "",
        f"`python -m sweep.fit fit={fit.name}`, model version {MODEL_VERSION}, seeds "
        f"{list(fit.seeds)}. Objective: sum of squared log(model / published) over "
        f"{len(fit.measurements.selected)} measurements; {result.start_objective:.4g} at the "
        f"start, {result.objective:.4g} fitted, {result.evaluations} evaluations in "
        f"{_minutes(result.wall_s)}. Optimiser: {result.message}",
        "",
        *([_holdout_line(fit, result, "Recomputed ").strip(), ""] if result.holdout else []),
        "## Parameters",
        "",
        "| " + " | ".join(PARAMETER_HEADERS) + " | source |",
        "|" + "---|" * (len(PARAMETER_HEADERS) + 1),
    ]
    for r, cells in zip(fit.ranges, _parameter_rows(fit, result), strict=True):
        lines.append("| " + " | ".join(cells) + f" | {r.source} |")
    for ms, table, notes in tables:
        title = "fitted" if ms is fit.measurements else "check (never fitted)"
        lines += ["", f"## Residuals at the fitted values: {title} measurements", ""]
        lines.append(validation.markdown_table(table, ms))
        lines += [""] + [f"- {line}" for line in (*validation.summary_lines(table), *notes)]
    lines += [
        "",
        "## Objective against iteration",
        "",
        "| iteration | evaluations | objective |",
        "|---|---|---|",
    ]
    lines += [f"| {i} | {n} | {cost:.6g} |" for i, n, cost in result.iterations]
    lines += ["", "![objective against iteration](fit.png)", ""]
    return "\n".join(lines)


def plot_objective(result: FitResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    its = [i for i, _, _ in result.iterations]
    costs = [max(c, 1e-300) for _, _, c in result.iterations]
    ax.plot(its, costs, marker="o")
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("sum of squared log(model / published)")
    ax.set_title("Objective against iteration", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=130, format="png")
    plt.close(fig)


def task(cfg: Any) -> int:
    """The Hydra task: config -> :class:`FitSpec` -> :func:`run_fit`."""
    from hydra.core.hydra_config import HydraConfig

    from sweep.config import group_loader, resolved

    config = resolved(cfg)
    name = HydraConfig.get().runtime.choices.get("fit")
    load, available = group_loader((*GROUPS, GROUP, "fit"))
    if not name or config.get("fit") is None:
        listing = ", ".join(available.get("fit", ())) or "none"
        raise StudyError(f"fit: give a fit spec, fit=<name>; available: {listing}")
    return run_fit(load_fit_spec(str(name), config["fit"], config, load, available))


def main() -> None:
    from sweep.config import hydra_entry

    hydra_entry(task, "fit", "sweep.fit")()


if __name__ == "__main__":
    main()
