"""Benchmark of parameter draws: the default study with ``uncertainty.samples=16`` against the
plain default study, both measured the same way.

Run from the project directory::

    python scripts/bench_uncertainty.py                  # last line is one JSON object
    python scripts/bench_uncertainty.py --machines arm64_altra80 --mixes kernel_build  # a subset
    python scripts/bench_uncertainty.py --params estimates   # another parameter list

The study is ``conf/config.yaml``'s default (2 machines, 2 mixes, 8 variants, cores 1..128,
seed 0: 256 points; ``uncertainty.params`` its default list) read from the files, with
``--machines``/``--mixes`` narrowing it. Both runs go through :func:`sweep.pipeline.run_study`
(plan -> execute -> store, no report, no point cache, each into an empty directory) on one
local Ray with ``--cpus`` CPUs started beforehand (its start-up is paid once per process, not
per point, and is reported apart). The plain study is measured before and after the drawn one
and the two rates averaged, since the machine is shared and its speed drifts.

- ``points``, ``wall_s``, ``points_per_s``: the drawn study (the plain points plus every point at
  each of the 16 draws).
- ``plain_points_per_s`` and ``ratio_vs_plain``: the target is a ratio >= 0.8.
- ``knee``: ``arm64_altra80 / kernel_build / baseline`` as ``p50 (p05-p95)`` over the draws, and
  the presets' own knee (``knee_cores``), when that curve is in the study.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import ray
import yaml
from omegaconf import OmegaConf

from exitcore import presets
from sweep.config import CONF_DIR
from sweep.curves import compute_curves
from sweep.pipeline import run_study
from sweep.spec import GROUPS, StudySpec
from sweep.uncertainty import format_knee, format_share

CURVE = ("arm64_altra80", "kernel_build", "baseline")


def default_config() -> dict[str, Any]:
    cfg = OmegaConf.load(CONF_DIR / "config.yaml")
    for key in ("defaults", "hydra"):
        cfg.pop(key, None)
    container = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(container, dict)
    return container


def load(group: str, name: str) -> dict[str, Any]:
    if group in GROUPS:  # the presets ship inside exitcore; conf/ holds the rest
        return dict(presets.load(group, name))
    data = yaml.safe_load((CONF_DIR / group / f"{name}.yaml").read_text())
    data.pop("defaults", None)
    return data


def make_spec(out: Path, name: str, samples: int, args: argparse.Namespace) -> StudySpec:
    config = default_config()
    config.update(out=str(out), report=False, cache=False, progress="off")
    config["study"]["name"] = name
    config["uncertainty"]["samples"] = samples
    if args.params:
        config["uncertainty"]["params"] = args.params
    if args.machines:
        config["grid"]["machine"] = args.machines
    if args.mixes:
        config["grid"]["mix"] = args.mixes
    available = {g: sorted(presets.names(g)) for g in GROUPS}
    available["fit"] = sorted(p.stem for p in (CONF_DIR / "fit").glob("*.yaml"))
    return StudySpec.from_dicts(config, load, available)


def timed(spec: StudySpec) -> tuple[int, float]:
    start = time.perf_counter()
    status = run_study(spec)
    wall = time.perf_counter() - start
    if status:
        raise SystemExit(f"study {spec.name} exited with status {status}")
    from sweep.plan import plan

    return len(plan(spec)), wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--machines", nargs="*", default=None)
    parser.add_argument("--mixes", nargs="*", default=None)
    parser.add_argument("--params", default=None, help="parameter list (default: the config's)")
    args = parser.parse_args()

    start = time.perf_counter()
    ray.init(
        address="local",
        num_cpus=args.cpus,
        log_to_driver=False,
        include_dashboard=False,
        logging_level=logging.ERROR,
    )
    ray_init_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory(prefix="bench-uncertainty-") as tmp:
        out = Path(tmp)
        # numba compiles the event loop once per process: pay it before anything is timed
        warm = make_spec(out / "warm", "warm", 0, args)
        from sweep.compute import exitcore_point
        from sweep.plan import plan

        point = plan(warm)[0]
        exitcore_point(
            warm.params["machine"][point.machine],
            warm.params["mix"][point.mix],
            warm.params["variant"][point.variant],
            point.cores,
            point.rng(),
        )
        plain_before = timed(make_spec(out, "plain_before", 0, args))
        drawn_spec = make_spec(out, "drawn", args.samples, args)
        points, wall = timed(drawn_spec)
        plain_after = timed(make_spec(out, "plain_after", 0, args))
        curves = compute_curves(drawn_spec.study_dir / "points")
    ray.shutdown()
    rates = [n / w for n, w in (plain_before, plain_after)]
    plain_rate = sum(rates) / len(rates)
    rate = points / wall
    result: dict[str, Any] = {
        "samples": args.samples,
        "grid": {"machine": drawn_spec.grid.machine, "mix": drawn_spec.grid.mix},
        "uncertainty_params": drawn_spec.uncertainty.params,
        "points": points,
        "wall_s": round(wall, 2),
        "points_per_s": round(rate, 2),
        "plain_points": plain_before[0],
        "plain_wall_s": [round(plain_before[1], 2), round(plain_after[1], 2)],
        "plain_points_per_s": round(plain_rate, 2),
        "ratio_vs_plain": round(rate / plain_rate, 3),
        "ray_init_s": round(ray_init_s, 2),
    }
    row = curves.filter(
        (curves["machine"] == CURVE[0])
        & (curves["mix"] == CURVE[1])
        & (curves["variant"] == CURVE[2])
    )
    if row.height:
        rec = row.row(0, named=True)
        result["knee"] = {
            "curve": " / ".join(CURVE),
            "interval": format_knee(rec["knee_p05"], rec["knee_p50"], rec["knee_p95"]),
            "knee_p05": rec["knee_p05"],
            "knee_p50": rec["knee_p50"],
            "knee_p95": rec["knee_p95"],
            "presets_knee": rec["knee_cores"],
            "bottleneck_share": format_share(rec["bottleneck_share"]),
        }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
