"""sweep.execute on a real local Ray with the real model: determinism, errors, worker deaths."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import ray.cloudpickle

from exitcore import presets
from sweep.compute import Shared, compute_chunk, exitcore_point
from sweep.execute import run
from sweep.plan import Point, plan
from sweep.spec import StudySpec

PRESET_MACHINES = presets.load_all("machine")
PRESET_MIXES = presets.load_all("mix")
PRESET_VARIANTS = presets.load_all("variant")

pytestmark = pytest.mark.slow
BUILTIN = {"machine": PRESET_MACHINES, "mix": PRESET_MIXES, "variant": PRESET_VARIANTS}
# Functions of this module run inside Ray workers, which cannot import the test module.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


def tiny_spec(variants: tuple[str, ...] = ("baseline", "pmap_deactivate")) -> StudySpec:
    config = {
        "study": {"name": "t", "seed": 0},
        "grid": {
            "machine": ["arm64_m2"],
            "mix": ["fork_exit", "configure"],
            "variant": list(variants),
            "cores": [1, 2, 4],
            "seed": [0, 1],
        },
    }
    return StudySpec.from_dicts(
        config, lambda g, n: BUILTIN[g][n], {g: sorted(d) for g, d in BUILTIN.items()}
    )


def sorted_rows(tables: list[pa.Table]) -> pa.Table:
    table = pa.concat_tables(tables).drop_columns(["created_at"])
    return table.sort_by("point_id")


def collect(points: list[Point], shared: Shared, **options: Any) -> pa.Table:
    tables: list[pa.Table] = []
    stats = run(points, shared, tables.append, **options)
    assert stats.points == len(points)
    return sorted_rows(tables)


def test_rows_are_bit_identical_whatever_the_chunking_and_order(ray_local: Any) -> None:
    spec = tiny_spec()
    points = plan(spec)
    shared = Shared("t", "h", spec.params)
    # Reference: every point in this process, in grid order, no Ray.
    reference = sorted_rows([compute_chunk(shared, points)[0]])
    assert reference.column("status").to_pylist() == ["ok"] * len(points)
    for options, order in [
        ({"chunk_points": 1}, points),
        ({"chunk_points": 5, "max_tasks_in_flight": 1}, points[::-1]),
        ({}, points[7:] + points[:7]),
    ]:
        assert collect(order, shared, **options).equals(reference), options


def test_common_random_numbers_make_identical_variants_identical(ray_local: Any) -> None:
    BUILTIN["variant"] = {**PRESET_VARIANTS, "baseline_copy": PRESET_VARIANTS["baseline"]}
    try:
        spec = tiny_spec(variants=("baseline", "baseline_copy"))
    finally:
        BUILTIN["variant"] = PRESET_VARIANTS
    rows = collect(plan(spec), Shared("t", "h", spec.params)).to_pylist()
    by_key = {(r["mix"], r["cores"], r["seed"], r["variant"]): r for r in rows}
    for (mix, cores, seed, variant), row in by_key.items():
        if variant == "baseline":
            twin = by_key[(mix, cores, seed, "baseline_copy")]
            assert twin["point_id"] != row["point_id"]
            assert twin["wall_s"] == row["wall_s"] and twin["exits"] == row["exits"]


def test_a_failing_point_is_an_error_row_and_the_rest_complete(ray_local: Any) -> None:
    spec = tiny_spec()
    broken = dict(spec.params["variant"]["pmap_deactivate"], no_such_parameter=1)
    params = {**spec.params, "variant": {**spec.params["variant"], "pmap_deactivate": broken}}
    points = plan(spec)
    table = collect(points, Shared("t", "h", params), chunk_points=4)
    rows = table.to_pylist()
    failed = [r for r in rows if r["status"] == "error"]
    assert {r["variant"] for r in failed} == {"pmap_deactivate"}
    assert len(failed) == len(points) // 2
    assert all("no_such_parameter" in r["error"] and r["wall_s"] is None for r in failed)
    assert all(r["wall_s"] > 0 for r in rows if r["status"] == "ok")


@dataclass(frozen=True)
class CrashOnce:
    """The real point function, but the first call anywhere kills its worker process."""

    marker: Path

    def __call__(self, machine: Any, mix: Any, variant: Any, cores: int, rng: Any) -> Any:
        try:
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return exitcore_point(machine, mix, variant, cores, rng)
        os.close(fd)
        os._exit(1)


def test_a_dead_worker_is_retried_and_no_point_is_lost(ray_local: Any, tmp_path: Path) -> None:
    marker = tmp_path / "crashed"
    spec = tiny_spec()
    points = plan(spec)[:6]
    tables: list[pa.Table] = []
    stats = run(
        points, Shared("t", "h", spec.params, CrashOnce(marker)), tables.append, chunk_points=2
    )
    assert marker.exists(), "the crash never happened, the test proves nothing"
    table = sorted_rows(tables)
    assert table.column("status").to_pylist() == ["ok"] * 6 and stats.lost_tasks == 0
    assert table.column("point_id").to_pylist() == sorted(p.point_id for p in points)
    expected = sorted_rows([compute_chunk(Shared("t", "h", spec.params), points)[0]])
    assert table.equals(expected)


def test_rng_of_a_point_is_reproducible() -> None:
    point = plan(tiny_spec())[0]
    assert np.array_equal(point.rng().random(8), point.rng().random(8))
