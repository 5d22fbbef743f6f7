"""Benchmark of the sweep service: throughput, per-point overhead, and Hydra's multirun for scale.

Run from the project directory::

    python scripts/bench_sweep.py            # 10,000 points; last line is one JSON object

A *cheap point* here is a real ``exitcore`` point whose mix is ``configure`` cut to 4 processes
(``CHEAP_MIX``): every stage of the model runs, but each point costs about a millisecond, so
what is measured is the sweep's own machinery (plan, chunking, Ray, Arrow, Parquet).

- ``points_per_s``: 10,000 points (arm64_m2, the cheap mix, 8 variants, cores 1..25, 50 seeds)
  through plan -> execute -> store on a local Ray with ``num_cpus`` CPUs already started
  (``ray_init_s`` is reported apart: it is paid once per study, not per point).
- ``overhead_ms_per_point``: (wall - compute / CPUs) / points, compute being the time spent inside
  the point function as measured in the workers. Target <= 1.
- ``small_study_s``: the whole ``python -m sweep`` process (start, model, store, report) for a
  four-point study (arm64_m2, fork_exit, baseline and pmap_purge, cores 1 and 8) into an empty
  output directory, median of 3. Target <= 4 s.
- ``vs_hydra_multirun``: our points/s over Hydra's basic launcher (``-m``, one job per point, the
  same model call) on the same 200 points. Target >= 50. ``vs_hydra_multirun_with_ray_start``
  charges our side with Ray's start-up too.

The machine is shared (2 cores): timings are pessimistic.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import ray

from exitcore import presets
from sweep.compute import Shared
from sweep.execute import run
from sweep.plan import config_hash, plan, validate
from sweep.spec import StudySpec
from sweep.store import ResultSet

PRESET_MACHINES = presets.load_all("machine")
PRESET_MIXES = presets.load_all("mix")
PRESET_VARIANTS = presets.load_all("variant")
CHEAP_MIX: dict[str, Any] = {**PRESET_MIXES["configure"], "name": "cheap", "processes": 4}
GROUPS = {
    "machine": PRESET_MACHINES,
    "mix": {**PRESET_MIXES, "cheap": CHEAP_MIX},
    "variant": PRESET_VARIANTS,
}
VARIANTS = sorted(PRESET_VARIANTS)


def make_spec(out: Path, name: str, cores: str, seeds: list[int]) -> StudySpec:
    config = {
        "study": {"name": name, "seed": 0},
        "out": str(out),
        "grid": {
            "machine": ["arm64_m2"],
            "mix": ["cheap"],
            "variant": VARIANTS,
            "cores": cores,
            "seed": seeds,
        },
    }
    return StudySpec.from_dicts(
        config, lambda g, n: GROUPS[g][n], {g: sorted(d) for g, d in GROUPS.items()}
    )


def run_sweep(spec: StudySpec) -> tuple[float, float, int, int]:
    """plan -> execute -> store; (wall_s, compute_s, points, parquet files)."""
    start = time.perf_counter()
    validate(spec)
    points = plan(spec)
    result_set = ResultSet(spec.study_dir, spec.store.flush_points)
    todo = result_set.prepare(points, force=True).todo
    stats = run(todo, Shared(spec.name, config_hash(spec), spec.params), result_set.append)
    result_set.flush()
    wall = time.perf_counter() - start
    assert stats.points == len(points) and stats.failed == 0, stats
    return wall, stats.compute_s, len(points), result_set.files_written


HYDRA_APP = """
import hydra
from sweep.compute import exitcore_point
from sweep.plan import point_entropy
import numpy as np
from exitcore import presets

PRESET_MACHINES = presets.load_all("machine")
PRESET_VARIANTS = presets.load_all("variant")
CHEAP_MIX = {cheap!r}


@hydra.main(version_base="1.3", config_path="conf", config_name="point")
def main(cfg):
    rng = np.random.default_rng(np.random.SeedSequence(list(point_entropy(
        "cheap", cfg.cores, cfg.seed, 0))))
    exitcore_point(PRESET_MACHINES[cfg.machine], CHEAP_MIX, PRESET_VARIANTS[cfg.variant],
                   cfg.cores, rng)


main()
"""


def run_hydra_multirun(workdir: Path, cores: list[int]) -> float:
    """Wall seconds of Hydra's basic launcher running one job per point."""
    (workdir / "conf").mkdir()
    (workdir / "conf" / "point.yaml").write_text(
        "machine: arm64_m2\nvariant: baseline\ncores: 1\nseed: 0\n"
    )
    (workdir / "app.py").write_text(textwrap.dedent(HYDRA_APP.format(cheap=CHEAP_MIX)))
    command = [
        sys.executable,
        "app.py",
        "-m",
        "variant=" + ",".join(VARIANTS),
        "cores=" + ",".join(map(str, cores)),
        "seed=0",
    ]
    start = time.perf_counter()
    subprocess.run(command, cwd=workdir, check=True, capture_output=True)
    return time.perf_counter() - start


SMALL_STUDY = [
    "grid.machine=[arm64_m2]",
    "grid.mix=[fork_exit]",
    "grid.variant=[baseline,pmap_purge]",
    "grid.cores=[1,8]",
]


def small_study_s(repeats: int = 3) -> float:
    """Median wall seconds of the four-point study command, each into a fresh directory."""
    walls = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "sweep", *SMALL_STUDY, f"out={tmp}"],
                check=True,
                capture_output=True,
            )
            walls.append(time.perf_counter() - start)
    return sorted(walls)[len(walls) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-cpus", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=50, help="10,000 points with 50")
    args = parser.parse_args()

    small_s = small_study_s()
    start = time.perf_counter()
    ray.init(
        address="local",  # never join a cluster another process started on this machine
        num_cpus=args.num_cpus,
        log_to_driver=False,
        include_dashboard=False,
        logging_level=logging.WARNING,
    )
    ray_init_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        # Warm-up: worker processes and imports, as in any run after the first chunk.
        run_sweep(make_spec(tmp_path, "warmup", "1..2+1", [0]))
        spec = make_spec(tmp_path, "big", "1..25+1", list(range(args.seeds)))
        wall, compute_s, points, files = run_sweep(spec)
        points_per_s = points / wall
        overhead_ms = (wall - compute_s / args.num_cpus) / points * 1000

        cores_200 = list(range(1, 26))  # 8 variants x 25 core counts x seed 0 = 200 points
        small = make_spec(tmp_path, "small", "1..25+1", [0])
        wall_200, _, points_200, _ = run_sweep(small)
        hydra_dir = tmp_path / "hydra"
        hydra_dir.mkdir()
        hydra_wall = run_hydra_multirun(hydra_dir, cores_200)
    ours_200 = points_200 / wall_200
    hydra_rate = points_200 / hydra_wall
    result = {
        "small_study_s": round(small_s, 2),
        "points": points,
        "wall_s": round(wall, 3),
        "points_per_s": round(points_per_s, 1),
        "compute_ms_per_point": round(compute_s / points * 1000, 3),
        "overhead_ms_per_point": round(overhead_ms, 3),
        "parquet_files": files,
        "num_cpus": args.num_cpus,
        "ray_init_s": round(ray_init_s, 2),
        "hydra_multirun_points_per_s": round(hydra_rate, 2),
        "ours_200_points_per_s": round(ours_200, 1),
        "vs_hydra_multirun": round(ours_200 / hydra_rate, 1),
        "vs_hydra_multirun_with_ray_start": round(
            points_200 / (wall_200 + ray_init_s) / hydra_rate, 1
        ),
    }
    ray.shutdown()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
