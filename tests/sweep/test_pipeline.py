"""The pipeline's execution paths: in-process or on Ray, the point cache, explicit point lists.

Every path must give the rows an independent in-process computation gives (``reference``), so
where a point was computed, or whether it came from the cache, never shows in the data.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.compute as pc
import pytest

from exitcore import presets
from sweep.cache import PointCache
from sweep.pipeline import PointSpec, RunOptions, run_points
from sweep.spec import RaySpec
from sweep.store import read_points
from tests.sweep.test_cli import comparable, grid_args, reference, sweep

pytestmark = pytest.mark.slow
SMALL = {"machine": ["arm64_m2"], "mix": ["fork_exit"], "variant": ["baseline", "pmap_purge"]}
# grid.seed defaults to [0] in conf/config.yaml


def test_in_process_rows_equal_ray_rows(tmp_path: Path, ray_local) -> None:
    grid = {**SMALL, "cores": "[1,8]", "seed": [0]}
    out = tmp_path / "results"
    inproc = sweep(*grid_args(grid), f"out={out}", "study.name=a", "report=false", cwd=tmp_path)
    assert inproc.returncode == 0, inproc.stderr
    assert "4 to compute (in this process first" in inproc.stderr
    assert "computed 4 points in this process" in inproc.stderr
    address = ray_local.get_runtime_context().gcs_address
    on_ray = sweep(
        *grid_args(grid),
        f"out={out}",
        "study.name=b",
        "report=false",
        "cache=false",
        f"ray.address={address}",
        cwd=tmp_path,
    )
    assert on_ray.returncode == 0, on_ray.stderr
    assert "Ray tasks" in on_ray.stderr and "in this process" not in on_ray.stderr
    expected = reference({**grid, "cores": [1, 8]}, name="a")
    assert comparable(read_points(out / "a")).equals(expected)
    assert (
        comparable(read_points(out / "b"))
        .drop_columns(["study"])
        .equals(expected.drop_columns(["study"]))
    )


def test_in_process_hands_the_rest_to_a_local_ray(tmp_path: Path) -> None:
    grid = {**SMALL, "cores": "1..8", "seed": [0, 1]}  # 16 points
    out = tmp_path / "results"
    run = sweep(
        *grid_args(grid),
        f"out={out}",
        "ray.inprocess_s=0.001",
        "ray.num_cpus=2",
        "report=false",
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    assert "computed 16 points in this process (1) and" in run.stderr
    assert comparable(read_points(out / "default")).equals(
        reference({**grid, "cores": [1, 2, 4, 8]})
    )


def test_studies_sharing_points_compute_each_once(tmp_path: Path) -> None:
    out = tmp_path / "results"
    common = [f"out={out}", "report=false"]
    first = sweep(
        *grid_args({**SMALL, "cores": "[1,2,4]"}), *common, "study.name=one", cwd=tmp_path
    )
    assert first.returncode == 0, first.stderr
    assert "6 points, 0 already stored, 0 from the cache, 6 to compute" in first.stderr
    second = sweep(
        *grid_args({**SMALL, "cores": "[2,4,8]"}), *common, "study.name=two", cwd=tmp_path
    )
    assert second.returncode == 0, second.stderr
    assert "6 points, 0 already stored, 4 from the cache, 2 to compute" in second.stderr
    one, two = (
        comparable(read_points(out / name)).drop_columns(["study"]) for name in ("one", "two")
    )
    shared = [r for r in one.to_pylist() if r["cores"] in (2, 4)]
    assert shared == [r for r in two.to_pylist() if r["cores"] in (2, 4)]
    assert comparable(read_points(out / "two")).equals(
        reference({**SMALL, "cores": [2, 4, 8], "seed": [0]}, name="two")
    )
    off = sweep(
        *grid_args({**SMALL, "cores": "[2,4,8]"}),
        *common,
        "study.name=three",
        "cache=false",
        cwd=tmp_path,
    )
    assert "6 points, 0 already stored, 0 from the cache, 6 to compute" in off.stderr
    # Entries of another model version never match.
    ids = read_points(out / "two").column("point_id").to_pylist()
    assert PointCache(out).lookup(ids).num_rows == 6
    assert PointCache(out, model_version="0.0.0-other").lookup(ids).num_rows == 0


def _spec(processes_per_slot: int, cores: int = 2) -> PointSpec:
    return PointSpec(
        machine="arm64_m2",
        mix="fork_exit",
        variant="baseline",
        cores=cores,
        seed=0,
        params={
            "machine": presets.load("machine", "arm64_m2"),
            "mix": {**presets.load("mix", "fork_exit"), "processes_per_slot": processes_per_slot},
            "variant": presets.load("variant", "baseline"),
        },
    )


def test_run_points_keeps_points_that_share_labels(tmp_path: Path, capfd) -> None:
    specs = [_spec(20), _spec(30), _spec(20)]
    options = RunOptions(ray=RaySpec(inprocess_s=60), progress="off")
    rows = run_points(specs, tmp_path / "out" / "check", "check", options)
    assert rows.num_rows == 3
    exits = rows.column("exits").to_pylist()
    assert exits == [40, 60, 40]  # 2 slots x processes_per_slot each: the parameters, not labels
    assert rows.column("point_id")[0] == rows.column("point_id")[2]
    again = run_points(specs, tmp_path / "out" / "check", "check", options)
    assert "2 points, 2 already stored, 0 from the cache, 0 to compute" in capfd.readouterr().err
    metrics = [c for c in rows.column_names if c not in ("created_at",)]
    assert again.select(metrics).equals(rows.select(metrics))
    assert pc.all(pc.equal(rows.column("status"), "ok")).as_py()


def test_run_points_rejects_bad_parameters_before_writing(tmp_path: Path) -> None:
    from sweep.errors import StudyError

    bad = _spec(20, cores=0)
    with pytest.raises(StudyError, match="cores=0"):
        run_points([bad], tmp_path / "out" / "check", "check", RunOptions(progress="off"))
    assert not (tmp_path / "out").exists()
