"""The pipeline behind every entry point: points -> stored, cached or computed rows -> result set.

:func:`run_study` runs a grid study (plan -> execute -> store -> curves -> report);
:func:`run_points` runs an explicit list of points with their own parameters (``sweep.validate``
runs measurements, ``sweep.fit`` one batch per evaluation). Both go through the same steps:

1. validate every parameter set with ``exitcore``'s own parsers and check the output directory
   (nothing is written yet);
2. find what is already stored in the result set and what the output root's point cache
   (:mod:`sweep.cache`) holds; join a Ray cluster now when one is named (``ray.address`` or
   ``RAY_ADDRESS``) and something is left to compute, so an unreachable cluster fails before a
   file is written;
3. clean the result set for this plan and write the cached rows into it;
4. compute the rest: on a cluster, on Ray; locally, in this process first and, once that has
   taken ``ray.inprocess_s`` seconds with points still to go, on a local Ray for the rest
   (starting Ray costs seconds, more than a small study computes). The rows are the same
   either way (:func:`sweep.compute.compute_chunk`);
5. close the result set (flush, compact) and add the new rows to the cache.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import platform
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from exitcore import MODEL_VERSION
from sweep.cache import PointCache
from sweep.compute import PointFn, Shared, compute_chunk, exitcore_point
from sweep.errors import StudyError
from sweep.plan import (
    GROUP_PARSERS,
    Point,
    _point_id,
    canonical_json,
    config_hash,
    digest,
    plan,
    point_entropy,
    validate,
    validate_params,
)
from sweep.progress import Progress, format_duration
from sweep.spec import GROUPS, RaySpec, StudySpec
from sweep.store import ResultSet, read_points


@dataclass(frozen=True)
class RunOptions:
    """How points run and are stored (the ``ray.*``, ``progress``, ``cache``, ``force``,
    ``store.*`` keys of every entry point)."""

    ray: RaySpec = field(default_factory=RaySpec)
    progress: str = "auto"
    cache: bool = True
    force: bool = False
    flush_points: int = 5000
    flush_s: float = 30.0


@dataclass(frozen=True)
class PointSpec:
    """One point to compute with its fully resolved parameters.

    ``params`` maps ``machine``, ``mix`` and ``variant`` to the parameter dicts ``exitcore``
    parses; the names label the row (and enter the point id with the parameters).
    """

    machine: str
    mix: str
    variant: str
    cores: int
    seed: int
    params: Mapping[str, Mapping[str, Any]]


@dataclass
class Outcome:
    """What one execution did."""

    points: int = 0
    stored: int = 0
    cached: int = 0
    computed: int = 0
    failed: int = 0


def versions(chash: str) -> dict[str, str]:
    """Model and package versions recorded in ``study.yaml``."""
    found = {"model_version": MODEL_VERSION, "config_hash": chash}
    for package in ("exitsweep", "numpy", "ray", "pyarrow", "hydra-core"):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = "unknown"
    found["python"] = platform.python_version()
    found["written_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return found


def _names_cluster(ray: RaySpec) -> bool:
    return ray.address is not None or bool(os.environ.get("RAY_ADDRESS"))


def _relabel(table: pa.Table, study: str, chash: str) -> pa.Table:
    """Cached rows as rows of this result set: its study name and config hash."""
    n = table.num_rows
    for name, value in (("study", study), ("config_hash", chash)):
        i = table.schema.get_field_index(name)
        table = table.set_column(i, table.schema.field(i), pa.array([value] * n, pa.string()))
    return table


def execute(
    points: Sequence[Point],
    shared: Shared,
    result_set: ResultSet,
    options: RunOptions,
    cache_root: Path | None,
    *,
    keyed_by_grid: bool,
    study_yaml: tuple[Mapping[str, Any], Mapping[str, str]],
    label: str,
) -> Outcome:
    """Steps 2-5 of the module docstring for validated ``points``; see :class:`Outcome`."""
    start = time.monotonic()
    log = sys.stderr
    result_set.check_writable()
    result_set.check_compatible(options.force)
    stored = set() if options.force else result_set.stored_ok_ids()
    pending = [p for p in points if p.point_id not in stored]
    cache = PointCache(cache_root) if options.cache and cache_root is not None else None
    hits = (
        cache.lookup(p.point_id for p in pending)
        if cache is not None and pending and not options.force
        else None
    )
    hit_ids = set(hits.column("point_id").to_pylist()) if hits is not None else set()
    if any(p.point_id not in hit_ids for p in pending) and _names_cluster(options.ray):
        _connect(options.ray)  # before anything is written: a bad address writes nothing
    # From here on the result set is created and written.
    prepared = result_set.prepare(points, options.force, keyed_by_grid=keyed_by_grid)
    result_set.write_study_yaml(*study_yaml)
    todo_ids = {p.point_id for p in prepared.todo}
    outcome = Outcome(points=len(points), stored=prepared.stored_ok)
    if hits is not None and hits.num_rows:
        mask = pc.is_in(hits.column("point_id"), value_set=pa.array(sorted(todo_ids), pa.string()))
        taken = _relabel(hits.filter(mask), shared.study, shared.config_hash)
        outcome.cached = taken.num_rows
        result_set.append(taken)
        todo_ids -= set(taken.column("point_id").to_pylist())
    todo = [p for p in prepared.todo if p.point_id in todo_ids]
    outcome.computed = len(todo)
    where = (
        ""
        if not todo or _names_cluster(options.ray)
        else (f" (in this process first, then on Ray after {options.ray.inprocess_s:g} s)")
    )
    print(
        f"sweep: {label}: {len(points)} points, {outcome.stored} already stored, "
        f"{outcome.cached} from the cache, {len(todo)} to compute{where} -> {result_set.dir}",
        file=log,
    )
    if todo:
        outcome.failed = _compute(todo, shared, result_set, cache, options, start)
    result_set.close()  # flush, compact, clear scratch: once, whether or not points ran
    if cache is not None:
        cache.flush()
    return outcome


def _connect(ray_spec: RaySpec) -> None:
    from sweep.execute import connect  # Ray is imported only when it is needed

    connect(ray_spec.address, ray_spec.num_cpus)


def _compute(
    todo: Sequence[Point],
    shared: Shared,
    result_set: ResultSet,
    cache: PointCache | None,
    options: RunOptions,
    start: float,
) -> int:
    log = sys.stderr
    progress = Progress(len(todo), options.progress, stream=log)
    last_flush = [time.monotonic()]
    failed = [0]

    def on_rows(table: pa.Table) -> None:
        result_set.append(table)
        if cache is not None:
            cache.add(table)
        errors = table.column("status").to_pylist().count("error")
        failed[0] += errors
        progress.update(table.num_rows, errors)

    def on_tick() -> None:
        if result_set.buffered_rows and time.monotonic() - last_flush[0] >= options.flush_s:
            result_set.flush()
            if cache is not None:
                cache.flush()
            last_flush[0] = time.monotonic()

    rest = list(todo)
    in_process = 0
    if not _names_cluster(options.ray):
        began = time.monotonic()
        while rest and time.monotonic() - began < options.ray.inprocess_s:
            table, _ = compute_chunk(shared, [rest.pop(0)])
            on_rows(table)
            on_tick()
            in_process += 1
    tasks = 0
    if rest:
        from sweep.execute import run

        _connect(options.ray)
        stats = run(
            rest,
            shared,
            on_rows,
            task_target_s=options.ray.task_target_s,
            max_tasks_in_flight=options.ray.max_tasks_in_flight,
            chunk_points=options.ray.chunk_points,
            on_tick=on_tick,
        )
        tasks = stats.tasks
    progress.close()
    how = f"{tasks} Ray tasks" if tasks else "this process"
    if tasks and in_process:
        how = f"this process ({in_process}) and {tasks} Ray tasks"
    print(
        f"sweep: computed {len(todo)} points in {how}, {format_duration(time.monotonic() - start)}",
        file=log,
    )
    return failed[0]


def run_study(spec: StudySpec, point_fn: PointFn | None = None) -> int:
    """Plan, execute, store and report one study; the exit status (1 if any point failed).

    ``point_fn`` defaults to the real model (:func:`sweep.compute.exitcore_point`).
    """
    validate(spec)
    points = plan(spec)
    chash = config_hash(spec)
    result_set = ResultSet(spec.study_dir, spec.store.flush_points)
    options = RunOptions(
        ray=spec.ray,
        progress=spec.progress,
        cache=spec.cache,
        force=spec.force,
        flush_points=spec.store.flush_points,
        flush_s=spec.store.flush_s,
    )
    outcome = execute(
        points,
        Shared(spec.name, chash, spec.params, point_fn or exitcore_point),
        result_set,
        options,
        spec.out,
        keyed_by_grid=True,
        study_yaml=({**spec.config, "params": spec.params}, versions(chash)),
        label=f"study {spec.name!r}",
    )
    report_status = report(spec.study_dir) if spec.report else 0
    if outcome.failed:
        print(
            f"sweep: {outcome.failed} of {outcome.computed} points failed; their rows have "
            f"status='error' in {spec.study_dir / 'points'}; rerun the command to retry them",
            file=sys.stderr,
        )
        return 1
    return report_status


def run_points(
    specs: Sequence[PointSpec],
    study_dir: Path,
    name: str,
    options: RunOptions,
    *,
    root_seed: int = 0,
    cache_root: Path | None = None,
    point_fn: PointFn | None = None,
    config: Mapping[str, Any] | None = None,
) -> pa.Table:
    """Rows of ``specs`` (one each, in order, :data:`sweep.store.POINT_SCHEMA`).

    Stored in the result set ``study_dir`` (rows keyed by point id: specs may share grid
    labels with different parameters) and taken from or added to the point cache of
    ``cache_root`` (default: the parent of ``study_dir``). Raises :class:`StudyError` for a
    bad parameter set or core count before anything is written.
    """
    if not specs:
        raise StudyError(f"{name}: no points to run")
    params: dict[str, dict[str, Mapping[str, Any]]] = {group: {} for group in GROUPS}
    points: list[Point] = []
    ids: list[str] = []
    seen: dict[str, Point] = {}
    for spec in specs:
        names = {"machine": spec.machine, "mix": spec.mix, "variant": spec.variant}
        texts = {group: canonical_json(spec.params[group]) for group in GROUPS}
        keys = tuple(f"{names[g]}@{digest(texts[g])[:12]}" for g in GROUPS)
        for group, key in zip(GROUPS, keys, strict=True):
            params[group].setdefault(key, spec.params[group])
        pid = _point_id(names, texts, spec.cores, spec.seed, root_seed, MODEL_VERSION)
        ids.append(pid)
        if pid not in seen:
            seen[pid] = Point(
                point_id=pid,
                machine=spec.machine,
                mix=spec.mix,
                variant=spec.variant,
                cores=spec.cores,
                seed=spec.seed,
                entropy=point_entropy(spec.params["mix"], spec.cores, spec.seed, root_seed),
                params_keys=(keys[0], keys[1], keys[2]),
            )
            points.append(seen[pid])
    validate_params(params, {(p.param_keys, p.cores) for p in points})
    chash = digest(sorted(seen))[:16]
    result_set = ResultSet(study_dir, options.flush_points)
    execute(
        points,
        Shared(name, chash, params, point_fn or exitcore_point),
        result_set,
        options,
        Path(study_dir).parent if cache_root is None else cache_root,
        keyed_by_grid=False,
        study_yaml=(dict(config or {}), versions(chash)),
        label=name,
    )
    table = read_points(study_dir)
    table = table.filter(pc.is_in(table.column("point_id"), value_set=pa.array(sorted(seen))))
    first: dict[str, int] = {}
    for i, pid in enumerate(table.column("point_id").to_pylist()):
        first.setdefault(pid, i)
    return table.take(pa.array([first[pid] for pid in ids], type=pa.int64()))


def report(study_dir: Path) -> int:
    """Curves, figures and report of a study; the summary table goes to stdout."""
    from sweep import report as report_module  # matplotlib is slow to load; bad input needs none

    try:
        table = report_module.render(study_dir)
    except report_module.ReportError as exc:
        print(f"sweep: report: {exc}", file=sys.stderr)
        return 1
    if table:
        print(table)
    return 0


__all__ = [
    "GROUP_PARSERS",
    "Outcome",
    "PointSpec",
    "RunOptions",
    "execute",
    "report",
    "run_points",
    "run_study",
    "versions",
]
