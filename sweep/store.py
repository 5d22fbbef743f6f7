"""The result set on disk: one Arrow schema, atomic appends to a hive-partitioned Parquet dataset.

Layout (docs/ARCHITECTURE.md)::

    DIR/NAME/study.yaml                                    resolved config + versions
    DIR/NAME/points/machine=<m>/mix=<x>/part-<uuid>.parquet
    DIR/NAME/quarantine/...                                corrupt files moved aside
    DIR/NAME/.tmp/                                         files being written

``machine`` and ``mix`` live in the directory names only (hive partitions), so every reader
(``polars.scan_parquet(..., hive_partitioning=True)``, ``pyarrow.dataset`` with
``partitioning="hive"``, DuckDB ``read_parquet(..., hive_partitioning=true)``) sees each column
once. A file is written under ``.tmp/`` and then ``os.replace``-d into ``points/``: a reader,
or a rerun after SIGKILL, sees whole files or nothing.

Resume rules (:meth:`ResultSet.prepare`): a stored ``ok`` row whose ``point_id`` is planned is
kept and not recomputed; ``error`` rows of planned points, rows superseded by a new parameter
value at the same grid key, and duplicate ids are removed (their files rewritten atomically)
before the run, so the dataset never holds two rows for one grid key; rows of grid keys not in
the current plan are left alone (a study can grow in several runs).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sys
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from exitcore import METRIC_FIELDS, MODEL_VERSION
from sweep.errors import StudyError
from sweep.plan import Point

_ARROW_TYPES = {float: pa.float64(), int: pa.int64(), bool: pa.bool_()}

KEY_FIELDS: tuple[pa.Field, ...] = (
    pa.field("point_id", pa.string(), nullable=False),
    pa.field("study", pa.string(), nullable=False),
    pa.field("machine", pa.string(), nullable=False),
    pa.field("mix", pa.string(), nullable=False),
    pa.field("variant", pa.string(), nullable=False),
    pa.field("cores", pa.int64(), nullable=False),
    pa.field("seed", pa.int64(), nullable=False),
    pa.field("draw", pa.int64()),
)
"""``draw``: the index of the parameter draw a point was simulated at (``uncertainty.samples``,
:mod:`sweep.uncertainty`; a sensitivity sample, :mod:`sweep.sensitivity`); null for a point at
the presets' own values. Files written before the column existed read it as null."""
PROVENANCE_FIELDS: tuple[pa.Field, ...] = (
    pa.field("status", pa.string(), nullable=False),
    pa.field("error", pa.string()),
    pa.field("model_version", pa.string(), nullable=False),
    pa.field("config_hash", pa.string(), nullable=False),
    pa.field("created_at", pa.timestamp("us", tz="UTC"), nullable=False),
)
POINT_SCHEMA: pa.Schema = pa.schema(
    [
        *KEY_FIELDS,
        *(pa.field(name, _ARROW_TYPES[kind]) for name, kind in METRIC_FIELDS),
        *PROVENANCE_FIELDS,
    ]
)
"""One row per point. Metric columns are null on ``status='error'`` rows."""

PARTITION_COLUMNS: tuple[str, ...] = ("machine", "mix")
FILE_SCHEMA: pa.Schema = pa.schema([f for f in POINT_SCHEMA if f.name not in PARTITION_COLUMNS])
"""What a Parquet file holds: the point schema minus the hive partition columns."""

HIVE_SCHEMA: pa.Schema = pa.schema([POINT_SCHEMA.field(c) for c in PARTITION_COLUMNS])
"""Types of the partition columns, for readers that would otherwise infer them."""

METRIC_NAMES: tuple[str, ...] = tuple(name for name, _ in METRIC_FIELDS)


def rows_table(
    points: Sequence[Point],
    metrics: Sequence[Mapping[str, Any] | None],
    errors: Sequence[str | None],
    study: str,
    config_hash: str,
    model_version: str = MODEL_VERSION,
) -> pa.Table:
    """Rows for ``points`` in :data:`POINT_SCHEMA`; ``metrics[i]`` is None where ``errors[i]``."""
    now = dt.datetime.now(dt.UTC)
    n = len(points)
    columns: dict[str, list[Any]] = {
        "point_id": [p.point_id for p in points],
        "study": [study] * n,
        "machine": [p.machine for p in points],
        "mix": [p.mix for p in points],
        "variant": [p.variant for p in points],
        "cores": [p.cores for p in points],
        "seed": [p.seed for p in points],
        "draw": [p.draw for p in points],
    }
    for name in METRIC_NAMES:
        columns[name] = [None if m is None else m[name] for m in metrics]
    columns["status"] = ["ok" if e is None else "error" for e in errors]
    columns["error"] = list(errors)
    columns["model_version"] = [model_version] * n
    columns["config_hash"] = [config_hash] * n
    columns["created_at"] = [now] * n
    return pa.Table.from_pydict(columns, schema=POINT_SCHEMA)


def read_points(study_dir: Path) -> pa.Table:
    """The whole dataset of a study as one table in :data:`POINT_SCHEMA` column order."""
    import pyarrow.dataset as ds

    points_dir = Path(study_dir) / "points"
    if not points_dir.is_dir():
        return POINT_SCHEMA.empty_table()
    dataset = ds.dataset(
        points_dir,
        format="parquet",
        partitioning=ds.partitioning(HIVE_SCHEMA, flavor="hive"),
        schema=POINT_SCHEMA,
    )
    return dataset.to_table().select(POINT_SCHEMA.names)


# ---- reading (the one reader of the layout: curves, report and compare use it) --------


class ResultSetError(ValueError):
    """A result set that cannot be read: missing, empty, or without a successful point."""


# --------------------------------------------------------------------------- reading


LISTING_ATTEMPTS = 20
"""Listings of a result set tried before :func:`point_files` gives up on a consistent one."""


def point_files(points_dir: Path) -> list[Path]:
    """Complete ``part-*.parquet`` files under ``points_dir``, in a stable order.

    Hidden paths and temporary names are skipped by the glob itself; a file whose Parquet footer
    cannot be read (half-written) is skipped too, so a result set still being written reads as
    the points stored so far. Compaction swaps a partition directory for a new one
    (sweep/compact.py), so a listing is kept only when no partition directory was swapped while
    it was taken and none of its files vanished; otherwise it is taken again.
    """
    for _ in range(LISTING_ATTEMPTS):
        before = _partition_dirs(points_dir)
        files, consistent = _listing(points_dir)
        if consistent and _partition_dirs(points_dir) == before:
            return files
    raise ResultSetError(
        f"{points_dir}: the result set kept changing while being listed "
        f"({LISTING_ATTEMPTS} attempts); read it again when its writer has finished"
    )


def _partition_dirs(points_dir: Path) -> dict[str, int]:
    """Inode of each partition directory: a compaction's swap changes it, an append does not."""
    from sweep.compact import partition_dirs

    dirs = {}
    for path in partition_dirs(points_dir):
        try:
            dirs[str(path)] = os.stat(path).st_ino
        except FileNotFoundError:
            continue
    return dirs


def _listing(points_dir: Path) -> tuple[list[Path], bool]:
    files = []
    for path in sorted(points_dir.rglob("part-*.parquet")):
        parts = path.relative_to(points_dir).parts
        if any(p.startswith((".", "_")) for p in parts):
            continue
        try:
            pq.read_metadata(path)
        except FileNotFoundError:
            return files, False  # removed since the glob: a compaction ran
        except (OSError, ValueError):
            continue
        files.append(path)
    return files, True


def _hive_values(path: Path, points_dir: Path) -> dict[str, str]:
    values = {}
    for part in path.relative_to(points_dir).parts[:-1]:
        key, sep, value = part.partition("=")
        if sep:
            values[key] = unquote(value)
    return values


def scan_points(
    points_dir: Path, columns: Iterable[str], files: Sequence[Path] | None = None
) -> Any:
    """Lazy frame of the successful rows of ``points_dir`` with only ``columns``.

    ``files`` restricts the scan to some of the point files (default: :func:`point_files`).
    Raises :class:`ResultSetError` when the directory is missing or holds no point file.
    """
    points_dir = Path(points_dir)
    if not points_dir.is_dir():
        raise ResultSetError(f"no result set: {points_dir} is not a directory")
    files = point_files(points_dir) if files is None else list(files)
    if not files:
        raise ResultSetError(f"empty result set: no part-*.parquet file under {points_dir}")
    import polars as pl  # here: Ray workers import this module for rows_table, not for reading

    wanted = list(dict.fromkeys([*columns, "status"]))
    hive_keys = [k for k in PARTITION_COLUMNS if k in _hive_values(files[0], points_dir)]
    lf = pl.scan_parquet(
        files,
        # The declared schema, so a column added since a file was written (draw) reads as null
        # in that file whichever file comes first.
        schema={
            name: dtype
            for name, dtype in pl.from_arrow(POINT_SCHEMA.empty_table()).schema.items()  # type: ignore[union-attr]
            if name not in hive_keys
        },
        hive_partitioning=bool(hive_keys),
        hive_schema={k: pl.String for k in hive_keys} or None,
        missing_columns="insert",
        extra_columns="ignore",
    )
    names = lf.collect_schema().names()
    missing = [c for c in wanted if c not in names and c != "status"]
    if missing:
        raise ResultSetError(f"result set {points_dir} lacks columns {missing}")
    status_ok = pl.col("status") == "ok" if "status" in names else pl.lit(True)
    return lf.filter(status_ok).select([c for c in wanted if c != "status"])


def read_file_by_file(points_dir: Path, columns: Sequence[str]) -> Any:
    """Fallback for a result set rewritten faster than a whole scan: skip files that vanish."""
    import polars as pl

    frames = []
    for path in point_files(points_dir):
        try:
            frames.append(scan_points(points_dir, columns, [path]).collect())
        except (OSError, pl.exceptions.ComputeError):
            continue
    if not frames:
        raise ResultSetError(f"empty result set: no readable part-*.parquet under {points_dir}")
    return pl.concat(frames, how="vertical_relaxed").lazy()


@dataclass(frozen=True, slots=True)
class PrepareReport:
    """What :meth:`ResultSet.prepare` found: points to compute and what it cleaned up."""

    todo: list[Point]
    stored_ok: int
    quarantined: list[Path]
    dropped_rows: int


class ResultSet:
    """One study directory: study.yaml, the points dataset, buffered atomic appends."""

    def __init__(self, study_dir: Path, flush_points: int = 5000) -> None:
        self.dir = Path(study_dir)
        self.points_dir = self.dir / "points"
        self.tmp_dir = self.dir / ".tmp"
        self.quarantine_dir = self.dir / "quarantine"
        self.flush_points = flush_points
        self._buffer: list[pa.Table] = []
        self._buffered_rows = 0
        self.files_written = 0

    # ---- checks before anything is written -------------------------------------------------

    def check_writable(self) -> None:
        """Raise StudyError if the study directory cannot be created or written; writes nothing."""
        path = self.dir.absolute()
        probe = path
        while not probe.exists():
            if probe.parent == probe:
                break
            probe = probe.parent
        if probe.exists() and not probe.is_dir():
            raise StudyError(f"output directory {path} is not writable: {probe} is not a directory")
        try:
            # An actual probe: os.access says yes to root even on read-only mounts.
            fd, name = _mkstemp(probe)
            os.close(fd)
            os.unlink(name)
        except OSError as exc:
            raise StudyError(f"output directory {path} is not writable: {exc.strerror}") from None

    def check_compatible(self, force: bool) -> None:
        """Refuse to add to a result set made by another model version unless ``force``."""
        study_yaml = self.dir / "study.yaml"
        if force or not study_yaml.exists():
            return
        try:
            recorded = yaml.safe_load(study_yaml.read_text()) or {}
            version = recorded.get("versions", {}).get("model_version")
        except (OSError, yaml.YAMLError, AttributeError):
            version = None
        if version != MODEL_VERSION:
            raise StudyError(
                f"{self.dir} was made by model version {version}, this is {MODEL_VERSION}; "
                "pass force=true to recompute it or choose a new study.name"
            )

    # ---- resume -----------------------------------------------------------------------------

    def part_files(self) -> list[Path]:
        if not self.points_dir.is_dir():
            return []
        return sorted(self.points_dir.glob("machine=*/mix=*/*.parquet"))

    def stored_ok_ids(self) -> set[str]:
        """Point ids of the stored ``ok`` rows, read only (unreadable files are skipped)."""
        ids: set[str] = set()
        for path in self.part_files():
            try:
                table = pq.read_table(path, columns=["point_id", "status"])
            except (pa.ArrowException, OSError):
                continue
            for pid, status in zip(*(c.to_pylist() for c in table.columns), strict=True):
                if status == "ok":
                    ids.add(pid)
        return ids

    def prepare(
        self, points: Sequence[Point], force: bool, keyed_by_grid: bool = True
    ) -> PrepareReport:
        """Clean the dataset for this plan and return the points still to compute.

        ``keyed_by_grid`` (a study): one row per grid key, a row superseded by a new parameter
        value at the same key is dropped. Otherwise (validation and fit runs, whose points share
        grid keys but not parameters) rows are keyed by point id alone and every ``ok`` row is
        kept.
        """
        self.dir.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.tmp_dir, ignore_errors=True)
        if force:
            shutil.rmtree(self.points_dir, ignore_errors=True)
        self.points_dir.mkdir(exist_ok=True)
        planned = {p.key: p.point_id for p in points}
        planned_ids = {p.point_id for p in points}
        kept: set[str] = set()
        quarantined: list[Path] = []
        dropped = 0
        for path in self.part_files():
            try:
                table = pq.read_table(
                    path,
                    columns=["point_id", "status", "variant", "cores", "seed", "draw"],
                    schema=FILE_SCHEMA,  # a file older than the draw column reads it as null
                )
            except (pa.ArrowException, OSError) as exc:
                quarantined.append(self._quarantine(path, exc))
                continue
            machine, mix = _partition_values(path)
            keep_mask = []
            for pid, status, variant, cores, seed, draw in zip(
                *(table.column(c).to_pylist() for c in table.column_names), strict=True
            ):
                if keyed_by_grid:
                    want = planned.get((machine, mix, variant, cores, seed, draw))
                    keep = pid not in kept and (want is None or (want == pid and status == "ok"))
                    counts = want is not None
                else:
                    counts = pid in planned_ids
                    keep = pid not in kept and (status == "ok" or not counts)
                if keep and counts:
                    kept.add(pid)
                keep_mask.append(keep)
            if not all(keep_mask):
                dropped += keep_mask.count(False)
                self._rewrite_without(path, keep_mask)
        todo = [p for p in points if p.point_id not in kept]
        return PrepareReport(
            todo=todo,
            stored_ok=len(points) - len(todo),
            quarantined=quarantined,
            dropped_rows=dropped,
        )

    def _quarantine(self, path: Path, exc: Exception) -> Path:
        self.quarantine_dir.mkdir(exist_ok=True)
        relative = path.relative_to(self.points_dir)
        target = self.quarantine_dir / "__".join(relative.parts)
        os.replace(path, target)
        message = " ".join(str(exc).split())[:200]
        print(
            f"sweep: corrupt Parquet file {path} ({message}); moved to {target}, "
            "its points will be recomputed",
            file=sys.stderr,
        )
        return target

    def _rewrite_without(self, path: Path, keep_mask: list[bool]) -> None:
        table = pq.read_table(path, schema=FILE_SCHEMA)
        kept = table.filter(pa.array(keep_mask, type=pa.bool_()))
        if kept.num_rows == 0:
            path.unlink()
            return
        self.tmp_dir.mkdir(exist_ok=True)
        tmp = self.tmp_dir / f"rewrite-{uuid.uuid4().hex}.parquet"
        pq.write_table(kept, tmp)
        os.replace(tmp, path)

    # ---- writing ----------------------------------------------------------------------------

    def write_study_yaml(self, config: Mapping[str, Any], versions: Mapping[str, str]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.tmp_dir.mkdir(exist_ok=True)
        tmp = self.tmp_dir / f"study-{uuid.uuid4().hex}.yaml"
        tmp.write_text(
            yaml.safe_dump({"versions": dict(versions), "config": dict(config)}, sort_keys=False)
        )
        os.replace(tmp, self.dir / "study.yaml")

    def append(self, table: pa.Table) -> None:
        """Buffer rows; write when ``flush_points`` rows are buffered."""
        if table.num_rows == 0:
            return
        self._buffer.append(table)
        self._buffered_rows += table.num_rows
        if self._buffered_rows >= self.flush_points:
            self.flush()

    @property
    def buffered_rows(self) -> int:
        return self._buffered_rows

    def flush(self) -> None:
        """Write the buffered rows: one new file per (machine, mix) partition, atomically."""
        if not self._buffer:
            return
        table = pa.concat_tables(self._buffer)
        self._buffer, self._buffered_rows = [], 0
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        for (machine, mix), part in _partitions(table):
            target_dir = self.points_dir / f"machine={machine}" / f"mix={mix}"
            target_dir.mkdir(parents=True, exist_ok=True)
            name = f"part-{uuid.uuid4().hex}.parquet"
            tmp = self.tmp_dir / name
            pq.write_table(part.select(FILE_SCHEMA.names).cast(FILE_SCHEMA), tmp)
            os.replace(tmp, target_dir / name)
            self.files_written += 1

    def close(self) -> None:
        """Flush what is buffered, compact partitions left with many small files (atomically,
        see :mod:`sweep.compact`) and remove the empty scratch directory."""
        self.flush()
        if self.files_written:
            from sweep.compact import compact

            compact(self.points_dir, FILE_SCHEMA, self.tmp_dir)
        try:
            self.tmp_dir.rmdir()
        except OSError:
            pass


def _partitions(table: pa.Table) -> Iterable[tuple[tuple[str, str], pa.Table]]:
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    machines = table.column("machine").to_pylist()
    mixes = table.column("mix").to_pylist()
    for i, key in enumerate(zip(machines, mixes, strict=True)):
        groups[key].append(i)
    for key in sorted(groups):
        yield key, table.take(pa.array(groups[key], type=pa.int64()))


def _partition_values(path: Path) -> tuple[str, str]:
    values = _hive_values(path, path.parent.parent.parent)
    return values["machine"], values["mix"]


def _mkstemp(directory: Path) -> tuple[int, str]:
    import tempfile

    return tempfile.mkstemp(prefix=".sweep-probe-", dir=directory)


__all__ = [
    "FILE_SCHEMA",
    "HIVE_SCHEMA",
    "POINT_SCHEMA",
    "PrepareReport",
    "ResultSetError",
    "ResultSet",
    "point_files",
    "read_points",
    "scan_points",
    "rows_table",
]
