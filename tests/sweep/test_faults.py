"""Failures a cluster has, with a real Ray and real files: a worker killed mid-study, two studies
writing into one result directory at once.

SIGKILL of the driver mid-study followed by a rerun (only the missing points computed, the final
dataset equal to an uninterrupted run, a corrupt file quarantined) is
``test_cli.py::test_sigkill_mid_study_then_rerun_equals_an_uninterrupted_run``; it is not
repeated here.

Studies run in ``python -m sweep`` subprocesses joined to the session's Ray (``ray_local``), so
the worker to kill is found among the descendants of this session's raylet only.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from sweep.store import read_points

try:
    from ray_cluster import session_raylet, sweep_popen, task_workers
    from test_cli import comparable, grid_args, reference
except ImportError:  # run as a package
    from tests.sweep.ray_cluster import session_raylet, sweep_popen, task_workers
    from tests.sweep.test_cli import comparable, grid_args, reference

pytestmark = pytest.mark.slow

# kernel_build points take about a second each: a task is caught running, not just finished.
HEAVY = {
    "machine": ["arm64_m2"],
    "mix": ["kernel_build"],
    "variant": ["baseline", "pmap_deactivate"],
    "cores": [2, 4, 8],
    "seed": [0],
}


@pytest.fixture(scope="module")
def ray_address(ray_local: Any) -> str:
    return ray_local.get_runtime_context().gcs_address


def test_a_worker_killed_mid_study_is_retried_and_every_point_lands_once(
    tmp_path: Path, ray_address: str
) -> None:
    out = tmp_path / "results"
    driver = sweep_popen(
        *grid_args(HEAVY),
        f"out={out}",
        f"ray.address={ray_address}",
        "ray.chunk_points=1",
        "store.flush_s=0.2",
        cwd=tmp_path,
    )
    raylet = session_raylet()
    killed = None
    deadline = time.monotonic() + 120
    while killed is None and driver.poll() is None and time.monotonic() < deadline:
        running = task_workers([raylet], "_compute_chunk_task")
        if running:
            killed = running[0][1]
            os.kill(killed.pid, signal.SIGKILL)
        else:
            time.sleep(0.02)
    _, stderr = driver.communicate(timeout=180)
    assert killed is not None, f"no task was caught running: {stderr}"
    assert not killed.is_running()
    assert driver.returncode == 0, stderr

    stored = read_points(out / "default")
    ids = stored.column("point_id").to_pylist()
    assert len(ids) == len(set(ids)) == 2 * 3
    assert set(stored.column("status").to_pylist()) == {"ok"}
    assert comparable(stored).equals(reference(HEAVY))


def test_two_concurrent_studies_in_one_result_directory_do_not_mix(
    tmp_path: Path, ray_address: str
) -> None:
    # beta's grid is part of alpha's: its point ids all occur in alpha too, so any row that
    # strays into the other study's dataset shows up as a duplicate or a wrong study name.
    grids = {"alpha": {**HEAVY, "seed": [0, 1, 2]}, "beta": HEAVY}
    out = tmp_path / "results"
    common = [f"out={out}", f"ray.address={ray_address}", "ray.chunk_points=1", "store.flush_s=0.1"]

    def start(name: str, *extra: str) -> Any:
        args = [*grid_args(grids[name]), *common, *extra, f"study.name={name}"]
        return sweep_popen(*args, cwd=tmp_path)

    # alpha runs one task at a time (about 18 s), so beta, started with it, writes meanwhile.
    alpha = start("alpha", "ray.max_tasks_in_flight=1")
    beta = start("beta")
    deadline = time.monotonic() + 120
    # They really overlap: beta writes files while alpha is still running.
    overlapped = False
    while beta.poll() is None and time.monotonic() < deadline:
        if alpha.poll() is None and list(out.glob("beta/points/*/*/*.parquet")):
            overlapped = True
        time.sleep(0.05)
    for name, driver in (("alpha", alpha), ("beta", beta)):
        _, stderr = driver.communicate(timeout=180)
        assert driver.returncode == 0, f"{name}: {stderr}"
    assert overlapped, "alpha finished before beta wrote anything; the studies did not overlap"

    assert sorted(p.name for p in out.iterdir()) == [".point-cache", "alpha", "beta"]
    stored = {name: read_points(out / name) for name in grids}
    for name, table in stored.items():
        assert set(table.column("study").to_pylist()) == {name}
        ids = table.column("point_id").to_pylist()
        assert len(ids) == len(set(ids)) == 2 * 3 * len(grids[name]["seed"])
        assert not (out / name / ".tmp").exists()
    assert comparable(stored["alpha"]).equals(reference(grids["alpha"], name="alpha"))
    # beta's points are alpha's first seed (computed once in-process above, for alpha).
    beta_ids = pa.array(stored["beta"].column("point_id").to_pylist())
    alpha_part = stored["alpha"].filter(pc.is_in(stored["alpha"].column("point_id"), beta_ids))
    assert alpha_part.num_rows == len(beta_ids)
    assert without_study(stored["beta"]).equals(without_study(alpha_part))


def without_study(table: pa.Table) -> pa.Table:
    return comparable(table).drop_columns(["study"])
