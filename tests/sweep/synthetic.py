"""Synthetic result sets in the sweep's on-disk layout, with metrics from closed-form curves.

``DIR/NAME/points/machine=<m>/mix=<x>/part-<uuid>.parquet``, one row per point with every
``METRIC_FIELDS`` column, ``status``/``error`` and provenance, as docs/ARCHITECTURE.md fixes it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from exitcore.result import METRIC_FIELDS, OPS

_ARROW = {float: pa.float64(), int: pa.int64(), bool: pa.bool_()}
SCHEMA = pa.schema(
    [
        ("point_id", pa.string()),
        ("study", pa.string()),
        ("machine", pa.string()),
        ("mix", pa.string()),
        ("variant", pa.string()),
        ("cores", pa.int64()),
        ("seed", pa.int64()),
        *[(name, _ARROW[typ]) for name, typ in METRIC_FIELDS],
        ("status", pa.string()),
        ("error", pa.string()),
        ("model_version", pa.string()),
        ("config_hash", pa.string()),
        ("created_at", pa.timestamp("us", tz="UTC")),
    ]
)

# Mean-preserving seed noise: the seed mean of a metric equals the closed form exactly.
SEED_FACTORS = (0.98, 1.0, 1.02)


def point_row(
    machine: str,
    mix: str,
    variant: str,
    cores: int,
    seed: int,
    *,
    status: str = "ok",
    error: str | None = None,
    **metrics: float,
) -> dict[str, object]:
    """A full row: metrics not given are 0 (False for booleans)."""
    names = {name for name, _ in METRIC_FIELDS}
    unknown = set(metrics) - names
    if unknown:
        raise ValueError(f"unknown metric(s) {sorted(unknown)}")
    row: dict[str, object] = {name: typ(0) for name, typ in METRIC_FIELDS}
    row.update(metrics)
    row.update(
        point_id=uuid.uuid4().hex,
        study="synthetic",
        machine=machine,
        mix=mix,
        variant=variant,
        cores=cores,
        seed=seed,
        status=status,
        error=error,
        model_version="test",
        config_hash="0" * 16,
        created_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    )
    return row


def curve_rows(
    machine: str,
    mix: str,
    variant: str,
    cores: Sequence[int],
    throughput: Sequence[float],
    *,
    exits: int = 1000,
    seeds: int = 3,
    per_cores: Sequence[dict[str, float]] | None = None,
) -> list[dict[str, object]]:
    """Rows of one curve whose seed-mean throughput is exactly ``throughput``.

    Seed ``k`` scales throughput by ``SEED_FACTORS[k]`` (factors average to 1); wall time is
    ``exits / throughput`` per row. ``per_cores[i]`` adds metrics at ``cores[i]`` (utilisations,
    op seconds...), identical across seeds.
    """
    if seeds > len(SEED_FACTORS):
        raise ValueError(f"seeds must be <= {len(SEED_FACTORS)}")
    factors = SEED_FACTORS if seeds == 3 else (1.0,) * seeds
    rows = []
    for i, (c, x) in enumerate(zip(cores, throughput, strict=True)):
        extra = dict(per_cores[i]) if per_cores else {}
        for seed in range(seeds):
            xs = x * factors[seed]
            rows.append(
                point_row(
                    machine,
                    mix,
                    variant,
                    c,
                    seed,
                    exits=exits,
                    exits_per_s=xs,
                    wall_s=exits / xs,
                    **extra,
                )
            )
    return rows


def amdahl_throughput(cores: Iterable[int], serial: float, x1: float = 10.0) -> list[float]:
    """``X(c) = x1 / (s + (1 - s) / c)``: Amdahl's law with serial fraction ``s``."""
    return [x1 / (serial + (1.0 - serial) / c) for c in cores]


def amdahl_knee(cores: Sequence[int], serial: float, threshold: float) -> int | None:
    """Knee of an Amdahl curve from theory (independent of sweep.curves).

    From c to c' the throughput ratio is (s + (1-s)/c) / (s + (1-s)/c'), so the marginal
    efficiency is (ratio - 1) / ((c' - c) / c).
    """
    s = serial
    for c, c2 in zip(cores, cores[1:], strict=False):
        ratio = (s + (1 - s) / c) / (s + (1 - s) / c2)
        if (ratio - 1) / ((c2 - c) / c) < threshold:
            return c
    return None


def saturating_throughput(cores: Iterable[int], x1: float, reaper_s: float) -> list[float]:
    """``X(c) = min(c x1, 1 / D_reaper)``: linear until the single reaper saturates."""
    return [min(c * x1, 1.0 / reaper_s) for c in cores]


def breakdown_metrics(scale: float) -> dict[str, float]:
    """Op and context seconds with a known split: op Xi costs ``scale * (i + 1)``."""
    ops = {f"op_{op.lower()}_s": scale * (i + 1) for i, op in enumerate(OPS)}
    total = sum(ops.values())
    return {
        **ops,
        "ctx_exit_s": 0.5 * total,
        "ctx_exit_klock_s": 0.1 * total,
        "ctx_reaper_s": 0.4 * total,
    }


def write_result_set(
    study_dir: Path,
    rows: Sequence[dict[str, object]],
    *,
    files_per_partition: int = 1,
    keep_partition_columns: bool = True,
) -> Path:
    """Write ``rows`` under ``study_dir/points`` in hive partitions; returns ``study_dir``.

    ``keep_partition_columns=False`` drops ``machine``/``mix`` from the files, as
    ``pyarrow.dataset.write_dataset`` does.
    """
    points = study_dir / "points"
    groups: dict[tuple[str, str], list[dict[str, object]]] = {}
    for row in rows:
        groups.setdefault((str(row["machine"]), str(row["mix"])), []).append(row)
    for (machine, mix), group in groups.items():
        part_dir = points / f"machine={machine}" / f"mix={mix}"
        part_dir.mkdir(parents=True, exist_ok=True)
        for k in range(files_per_partition):
            chunk = group[k::files_per_partition]
            if not chunk:
                continue
            table = pa.Table.from_pylist(list(chunk), schema=SCHEMA)
            if not keep_partition_columns:
                table = table.drop_columns(["machine", "mix"])
            tmp = part_dir / f".part-{uuid.uuid4().hex}.parquet.tmp"
            pq.write_table(table, tmp)
            tmp.rename(part_dir / f"part-{uuid.uuid4().hex}.parquet")
    return study_dir
