"""Scale benchmark: a 100,000-point study through ``python -m sweep`` joined to a running Ray.

Run from the project directory::

    python scripts/bench_scale.py                 # 100,000 points; last line is one JSON object
    python scripts/bench_scale.py --seeds 25      # a 4,000-point smoke run of the same script
    python scripts/bench_scale.py --flush-s 1     # a flush a second: compaction at the end

A *cheap point* is a real ``exitcore`` point of the ``configure`` mix cut to 4 processes
(``set.mix.processes=4``) at 1-5 cores: every stage of the model runs, at a few milliseconds a
point. The grid is 4 machines x 1 mix x 8 variants x 5 core counts x 625 seeds = 100,000 points
in 4 hive partitions (one per machine).

This process starts a local Ray (``--cpus``, default 2) and the study joins it with
``ray.address``, as on a cluster: the driver subprocess then starts no Ray daemons of its own,
so ``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` after it exits is the driver's own peak
RSS (the Ray daemons are this process's children but have not exited, so they do not count).

Printed fields: ``points``, ``wall_s`` (the whole command: plan, resume check, compute, store,
report), ``compute_wall_s`` (the driver's "computed ... in" line), ``driver_peak_rss_mb``,
``parquet_files``, ``dataset_mb``, ``polars_read_s`` (``polars.scan_parquet(...).collect()`` of
the whole dataset, best of 3), ``rows_read``, ``rerun_s`` (the same command again: nothing to
compute). The machine is shared (2 cores): timings are pessimistic.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl
import ray

PROJECT = Path(__file__).resolve().parent.parent
MACHINES = ["arm64_m2", "amd64_ryzen8845", "arm64_altra80", "amd64_epyc192"]


def study_args(out: Path, seeds: int, address: str, flush_s: float | None) -> list[str]:
    flush = [] if flush_s is None else [f"store.flush_s={flush_s}"]
    return [
        *flush,
        f"grid.machine=[{','.join(MACHINES)}]",
        "grid.mix=[configure]",
        "set.mix.processes=4",
        "grid.cores=1..5+1",
        f"grid.seed=[{','.join(map(str, range(seeds)))}]",
        "study.name=scale",
        f"out={out}",
        f"ray.address={address}",
        "progress=log",
    ]


def run_cli(args: list[str]) -> tuple[float, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "HYDRA_FULL_ERROR")}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "sweep", *args],
        cwd=PROJECT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"bench_scale: python -m sweep failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return wall, done.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=625, help="seeds (160 points each)")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray")
    parser.add_argument("--keep", type=Path, help="write the study here instead of a temp dir")
    parser.add_argument(
        "--flush-s", type=float, help="store.flush_s (default: the config's); small = many files"
    )
    options = parser.parse_args()

    out = options.keep or Path(tempfile.mkdtemp(prefix="bench-scale-"))
    ray.init(
        address="local",
        num_cpus=options.cpus,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.WARNING,
    )
    address = ray.get_runtime_context().gcs_address
    args = study_args(out, options.seeds, address, options.flush_s)
    wall_s, log = run_cli(args)
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # Linux: kilobytes
    print(log.strip().splitlines()[-1] if log.strip() else "", file=sys.stderr)

    points_dir = out / "scale" / "points"
    files = sorted(points_dir.rglob("*.parquet"))
    reads = []
    for _ in range(3):
        start = time.perf_counter()
        frame = pl.scan_parquet(points_dir / "**" / "*.parquet", hive_partitioning=True).collect()
        reads.append(time.perf_counter() - start)
    # The same command again (after measuring the dataset the first run left): nothing to do.
    rerun_s, rerun_log = run_cli(args)
    ray.shutdown()
    computed = re.search(
        r"computed (\d+) points in (?:this process \(\d+\) and )?(\d+) Ray tasks, (.+)", log
    )
    result = {
        "points": 160 * options.seeds,
        "rows_read": frame.height,
        "unique_point_ids": frame["point_id"].n_unique(),
        "wall_s": round(wall_s, 1),
        "compute_wall": computed.group(3) if computed else None,
        "tasks": int(computed.group(2)) if computed else None,
        "points_per_s": round(160 * options.seeds / wall_s, 1),
        "driver_peak_rss_mb": round(peak_kb / 1024, 1),
        "parquet_files": len(files),
        "dataset_mb": round(sum(f.stat().st_size for f in files) / 2**20, 1),
        "polars_read_s": round(min(reads), 3),
        "rerun_s": round(rerun_s, 1),
        "rerun_computed_nothing": "0 to compute" in rerun_log,
        "cpus": options.cpus,
        "flush_s": options.flush_s,
        "out": str(out),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
