"""``python -m sweep``: a study from Hydra config to a Parquet result set and its report.

The pipeline: config -> :class:`~sweep.spec.StudySpec` (validated, no Hydra below this module)
-> :func:`~sweep.plan.plan` -> :func:`~sweep.execute.run` -> :class:`~sweep.store.ResultSet`
-> ``sweep.report.render`` (curves, figures, report; the summary table goes to stdout).

Errors in the user's input print one line on stderr and exit with status 2 before anything is
written; a study whose points partly failed completes, then exits with status 1.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import platform
import re
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.object_type import ObjectType
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from exitcore import MODEL_VERSION
from sweep.errors import StudyError
from sweep.plan import config_hash, plan, validate
from sweep.progress import Progress, format_duration
from sweep.spec import GROUPS, StudySpec
from sweep.store import ResultSet

if TYPE_CHECKING:
    from sweep.execute import PointFn

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
_exit_code = 0


def _group_loader() -> tuple[Any, dict[str, list[str]]]:
    """Load group files from the search path Hydra composed with (``hydra.searchpath`` too)."""
    from hydra._internal.sources_registry import SourcesRegistry  # no public equivalent in 1.3

    sources = [
        SourcesRegistry.instance().resolve(entry.schema)(
            entry.provider, f"{entry.schema}://{entry.path}"
        )
        for entry in HydraConfig.get().runtime.config_sources
    ]
    available: dict[str, list[str]] = {}
    for group in GROUPS:
        names: set[str] = set()
        for source in sources:
            if source.available() and source.exists(group):
                names.update(source.list(group, ObjectType.CONFIG))
        available[group] = sorted(names)

    def load(group: str, name: str) -> dict[str, Any]:
        for source in sources:
            if source.available() and source.is_config(f"{group}/{name}"):
                try:
                    loaded = source.load_config(f"{group}/{name}.yaml").config
                    container = OmegaConf.to_container(loaded, resolve=True)
                except Exception as exc:  # a YAML or interpolation error in the user's file
                    detail = _one_line(exc)
                    raise StudyError(f"{group}/{name}.yaml cannot be read: {detail}") from None
                assert isinstance(container, dict)
                container.pop("defaults", None)
                return container
        raise StudyError(f"grid.{group}: no {group}/{name}.yaml on the config search path")

    return load, available


def spec_from_config(cfg: DictConfig) -> StudySpec:
    """The one place a DictConfig becomes typed: resolve, load groups, validate."""
    try:
        container = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as exc:
        raise StudyError(_one_line(exc)) from None
    assert isinstance(container, dict)
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode == RunMode.MULTIRUN and not any(
        o.lstrip("+").startswith("study.name=") for o in hydra_cfg.overrides.task
    ):
        # Each multirun job is its own study: NAME-<job number> unless study.name is swept.
        container["study"]["name"] = f"{container['study']['name']}-{hydra_cfg.job.num}"
    load, available = _group_loader()
    return StudySpec.from_dicts(container, load, available)


def _versions(chash: str) -> dict[str, str]:
    versions = {"model_version": MODEL_VERSION, "config_hash": chash}
    for package in ("exitsweep", "numpy", "ray", "pyarrow", "hydra-core"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "unknown"
    versions["python"] = platform.python_version()
    versions["written_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return versions


def run_study(spec: StudySpec, point_fn: PointFn | None = None) -> int:
    """Plan, execute, store and report one study; the exit status (1 if any point failed).

    ``point_fn`` defaults to the real model (:func:`sweep.execute.exitcore_point`).
    """
    start = time.monotonic()
    validate(spec)
    points = plan(spec)
    result_set = ResultSet(spec.study_dir, spec.store.flush_points)
    result_set.check_writable()
    result_set.check_compatible(spec.force)
    # Ray is imported only once the input is known good: bad input fails fast.
    from sweep.execute import Shared, connect, exitcore_point, joins_cluster, run

    if joins_cluster(spec.ray.address):
        # A cluster that does not answer is bad input too: join it before anything is written.
        connect(spec.ray.address, spec.ray.num_cpus, spec.ray.connect_timeout_s)
    chash = config_hash(spec)
    # Validation is over: from here on the study directory is created and written.
    prepared = result_set.prepare(points, spec.force)
    result_set.write_study_yaml({**spec.config, "params": spec.params}, _versions(chash))
    log = sys.stderr
    print(
        f"sweep: study {spec.name!r}: {len(points)} points, {prepared.stored_ok} already stored, "
        f"{len(prepared.todo)} to compute -> {spec.study_dir}",
        file=log,
    )
    failed = 0
    if prepared.todo:
        connect(spec.ray.address, spec.ray.num_cpus, spec.ray.connect_timeout_s)
        progress = Progress(len(prepared.todo), spec.progress, stream=log)
        last_flush = [time.monotonic()]

        def on_rows(table: Any) -> None:
            result_set.append(table)
            errors = table.column("status").to_pylist().count("error")
            progress.update(table.num_rows, errors)

        def on_tick() -> None:
            if result_set.buffered_rows and time.monotonic() - last_flush[0] >= spec.store.flush_s:
                result_set.flush()
                last_flush[0] = time.monotonic()

        stats = run(
            prepared.todo,
            Shared(spec.name, chash, spec.params, point_fn or exitcore_point),
            on_rows,
            task_target_s=spec.ray.task_target_s,
            max_tasks_in_flight=spec.ray.max_tasks_in_flight,
            chunk_points=spec.ray.chunk_points,
            on_tick=on_tick,
        )
        progress.close()
        failed = stats.failed
        print(
            f"sweep: computed {stats.points} points in {stats.tasks} tasks, "
            f"{format_duration(time.monotonic() - start)}",
            file=log,
        )
    result_set.close()  # flush, compact, clear scratch: once, whether or not points ran
    report_status = _report(spec.study_dir) if spec.report else 0
    if failed:
        print(
            f"sweep: {failed} of {len(prepared.todo)} points failed; their rows have "
            f"status='error' "
            f"in {spec.study_dir / 'points'}; rerun the command to retry them",
            file=log,
        )
        return 1
    return report_status


def _report(study_dir: Path) -> int:
    """Curves, figures and report of the study (issue 5); the summary table goes to stdout."""
    from sweep import report  # imported here: matplotlib is slow to load and bad input needs none

    try:
        table = report.render(study_dir)
    except report.ReportError as exc:
        print(f"sweep: report: {exc}", file=sys.stderr)
        return 1
    if table:
        print(table)
    return 0


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def _hydra_main(cfg: DictConfig) -> None:
    global _exit_code
    try:
        code = run_study(spec_from_config(cfg))
    except StudyError as exc:
        print(f"sweep: error: {exc}", file=sys.stderr)
        sys.exit(2)
    _exit_code = max(_exit_code, code)


def _one_line(exc: BaseException) -> str:
    lines = [str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__]
    cause = exc.__cause__
    if cause is not None and str(cause).strip():
        lines.append(str(cause).strip().splitlines()[0])
    return " ".join(lines)


def _unknown_key_message(exc: BaseException) -> str | None:
    match = re.search(r"Could not override '([^']+)'", str(exc))
    if match is None or "not in struct" not in str(exc.__cause__ or ""):
        return None
    key = match.group(1)
    parent, _, leaf = key.rpartition(".")
    node: Any = OmegaConf.load(CONF_DIR / "config.yaml")
    for part in parent.split(".") if parent else []:
        node = node.get(part) if isinstance(node, Mapping | DictConfig) else None
    allowed = (
        sorted(k for k in node if k not in ("defaults", "hydra"))
        if isinstance(node, Mapping | DictConfig)
        else []
    )
    where = f"under '{parent}'" if parent else "at the top level"
    listing = ", ".join(str(k) for k in allowed) or "none"
    return f"unknown config key '{key}'; keys {where}: {listing}"


def _rewrite(arg: str) -> str:
    # set.<group>.<param> targets free-form dicts: add the key (Hydra's ++) so the user need not;
    # sweep.spec validates it against the group's own parameters.
    return "++" + arg if arg.startswith("set.") else arg


def main() -> None:
    """Console entry point: Hydra with every error reduced to one line."""
    global _exit_code
    _exit_code = 0
    sys.argv = [sys.argv[0], *(_rewrite(arg) for arg in sys.argv[1:])]
    full_error = bool(os.environ.get("HYDRA_FULL_ERROR"))
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let Hydra's errors reach us instead of printing them
    try:
        _hydra_main()
    except (HydraException, OmegaConfBaseException) as exc:
        if full_error:
            raise
        message = _unknown_key_message(exc) or _one_line(exc)
        print(f"sweep: error: {message}", file=sys.stderr)
        sys.exit(2)
    finally:
        if not full_error:
            os.environ.pop("HYDRA_FULL_ERROR", None)
    sys.exit(_exit_code)


if __name__ == "__main__":
    main()
