"""``python -m sweep.validate``: every published measurement against the model, as a table.

Config ``conf/validate.yaml``: ``measurements`` (names, default all), ``role`` (``all``,
``calibrate``, ``check``), ``seeds``, ``out``, ``overrides`` (a ``fitted.yaml`` of
``python -m sweep.fit`` applied to the presets), ``cache``, ``force``, ``ray.*``, ``progress`` and
Hydra's ``hydra.searchpath`` (a user's own ``measurement/``, ``machine/`` ... directories).

Each selected measurement's point runs at every seed through :func:`sweep.pipeline.run_points`
(stored in ``out/validate/points``, cached by point id: a rerun computes nothing). Writes
``out/validate/validation.parquet``, ``validation.md`` and ``validation.png``
(:mod:`sweep.validation`), prints the table and the largest |error| per role, and exits 0 when
every ``calibrate`` figure is within its tolerance, 1 when one is not, 2 on bad input (one line,
nothing written).
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exitcore import MODEL_VERSION
from sweep.errors import StudyError
from sweep.measurement import GROUP, MeasurementSet, load_measurements
from sweep.spec import GROUPS

STUDY_NAME = "validate"
"""``out/validate/``: where the points and the validation table go."""


@dataclass(frozen=True)
class ValidateSpec:
    """A validated ``python -m sweep.validate`` config."""

    measurements: tuple[str, ...] | None
    role: str
    seeds: tuple[int, ...]
    out: Path
    options: Any  # sweep.pipeline.RunOptions
    overrides: Path | None = None
    """A ``fitted.yaml`` of ``python -m sweep.fit`` applied to the presets first."""

    @property
    def dir(self) -> Path:
        return self.out / STUDY_NAME

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> ValidateSpec:
        names = config.get("measurements")
        if isinstance(names, str):
            names = [names]  # measurements=one_name on the command line
        if names is not None:
            if not isinstance(names, Sequence):
                raise StudyError(f"measurements: {names!r} is not a list of measurement names")
            names = tuple(names)
        role = config.get("role", "all")
        overrides = config.get("overrides")
        return cls(
            measurements=names,
            role=str(role),
            seeds=parse_seeds("seeds", config.get("seeds", [0, 1, 2])),
            out=Path(str(config.get("out", "results"))),
            options=run_options(config),
            overrides=None if overrides in (None, "") else Path(str(overrides)),
        )


def parse_seeds(key: str, value: Any) -> tuple[int, ...]:
    """A non-empty list of distinct non-negative integer seeds."""
    items = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else [value]
    if not items:
        raise StudyError(f"{key}: empty; give at least one seed, e.g. {key}=[0]")
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int) or item < 0:
            raise StudyError(f"{key}: {item!r} is not a non-negative integer")
    return tuple(dict.fromkeys(items))


def run_options(config: Mapping[str, Any]) -> Any:
    """``ray.*``, ``progress``, ``cache`` and ``force`` of a config as run options."""
    from sweep.pipeline import RunOptions
    from sweep.spec import parse_bool, parse_progress, parse_ray

    return RunOptions(
        ray=parse_ray(config.get("ray")),
        progress=parse_progress(config.get("progress", "auto")),
        cache=parse_bool("cache", config.get("cache", True)),
        force=parse_bool("force", config.get("force", False)),
    )


def check_writable(directory: Path) -> None:
    """Refuse an output directory that cannot be created or written; writes nothing."""
    from sweep.store import ResultSet

    ResultSet(directory).check_writable()


def write_atomic(path: Path, write: Any) -> None:
    """``write(tmp_path)`` then rename onto ``path``: a reader sees the old file or the new."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def validate(spec: ValidateSpec, ms: MeasurementSet) -> int:
    """Run the points, write the outputs, print the table; the exit status (0 or 1)."""
    from sweep import validation
    from sweep.pipeline import run_points

    check_writable(spec.dir)
    specs, index = ms.point_specs(spec.seeds)
    print(
        f"sweep.validate: {len(ms.selected)} measurements, {len(specs)} points "
        f"({len(spec.seeds)} seeds) -> {spec.dir}",
        file=sys.stderr,
    )
    if specs:
        provenance = {
            "measurements": sorted(m.name for m in ms.all),
            "role": spec.role,
            "seeds": list(spec.seeds),
            "overrides": None if spec.overrides is None else str(spec.overrides),
        }
        rows = run_points(
            specs, spec.dir, STUDY_NAME, spec.options, cache_root=spec.out, config=provenance
        )
    else:
        from sweep.store import POINT_SCHEMA

        rows = POINT_SCHEMA.empty_table()
    samples, errors = validation.collect_samples(ms, index, rows)
    table = validation.validation_table(ms, samples)
    notes = validation.notes(ms, errors)
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    header = (
        f"`python -m sweep.validate` at {now}, model version {MODEL_VERSION}, seeds "
        f"{list(spec.seeds)}, role {spec.role}"
        + (f", presets overridden by `{spec.overrides}`" if spec.overrides else "")
        + ". `within`: |error| <= tolerance, or the model "
        "inside the published bounds; exit status 0 when every calibrate row is within."
    )
    write_atomic(spec.dir / "validation.parquet", lambda p: table.write_parquet(p))
    write_atomic(
        spec.dir / "validation.md",
        lambda p: p.write_text(validation.markdown_report(table, ms, notes, header)),
    )
    write_atomic(spec.dir / "validation.png", lambda p: validation.plot(table, ms, p))
    print(validation.text_table(table, ms))
    for line in [*validation.summary_lines(table), *notes]:
        print(line)
    status = validation.exit_status(table)
    if status:
        print("sweep.validate: a calibrate figure is outside its tolerance", file=sys.stderr)
    return status


def task(cfg: Any) -> int:
    """The Hydra task: config -> measurements -> :func:`validate`."""
    from sweep.config import group_loader, resolved

    config = resolved(cfg)
    spec = ValidateSpec.from_dict(config)
    load, available = group_loader((*GROUPS, GROUP))
    if spec.overrides is not None:
        from sweep.fit import overlay, read_fitted

        fitted = read_fitted(spec.overrides)
        for group, presets in fitted.items():
            for name in presets:
                if name not in available.get(group, ()):
                    where = f"overrides: {spec.overrides}"
                    raise StudyError(f"{where}: no {group} {name!r} to override")
        load = overlay(load, fitted, str(spec.overrides))
    ms = load_measurements(spec.measurements, spec.role, load, available)
    return validate(spec, ms)


def main() -> None:
    from sweep.config import hydra_entry

    hydra_entry(task, "validate", "sweep.validate")()


if __name__ == "__main__":
    main()
