"""Benchmark of the machine model. Last line of output: one JSON object.

- ``fork_exit_exits_per_s``: fork_exit at 64 cores with >= 1,000,000 exits, whole simulate()
  (workload draw, teardown pricing, event loop, reduction), best of 3 (a first call in a
  process also pays the first touch of its ~600 MB of fresh arrays);
  ``..._engine_exits_per_s`` is the event loop alone.
- ``kernel_build_128_s``: the default kernel_build on arm64_m2 at 128 cores (what-if), whole
  simulate(), best of 10; ``kernel_build_128_engine_s`` the event loop alone.
- ``kernel_build_80_s``: the 80-CPU kernel build of calibration target 11 (arm64_altra80,
  ``baseline_2024``, ``percpu_page_cache: 0``, ``amap_free: list``, ``make -j64``: every lock
  on), whole simulate(),
  best of 3.
- ``speedup_vs_reference``: the event loop against the SimPy reference of
  tests/exitcore/reference_sim.py on the same segments (a 300-compiler build on 8 cores).
- ``first_call_s``: the first simulate() of the process (numba cache load, or compile when the
  cache is cold).

Times are the process's CPU time (time.process_time, best of the repeats): everything runs on
one core, and CPU time is less disturbed than wall time on a shared machine.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "exitcore"))

from reference_sim import reference_run  # noqa: E402

from exitcore import engine, presets  # noqa: E402
from exitcore.machine import MachineProfile  # noqa: E402
from exitcore.mix import MixParams, generate  # noqa: E402
from exitcore.simulate import (  # noqa: E402
    PointParams,
    build_segments,
    engine_inputs,
    simulate,
    teardown_for,
)
from exitcore.variant import VARIANTS  # noqa: E402

MACHINES = presets.load_all("machine")
MIXES = presets.load_all("mix")


def engine_kwargs(mix: dict, cores: int, variant: str = "baseline") -> dict:
    """What simulate() hands the event loop for this point (seed 0): the loop's whole input."""
    machine = MachineProfile.from_dict(MACHINES["arm64_m2"])
    w = generate(MixParams.from_dict(mix), cores, np.random.default_rng(0))
    v = VARIANTS[variant]
    segs = build_segments(w, teardown_for(w, v, machine, cores), v, machine)
    return engine_inputs(w, segs, v, machine, cores)


def timed(fn, repeat: int = 1) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


def main() -> None:
    m2 = MACHINES["arm64_m2"]
    base = presets.load("variant", "baseline")
    kb = PointParams.from_dicts(m2, MIXES["kernel_build"], base, 128)
    first_call_s = timed(lambda: simulate(kb, np.random.default_rng(0)))

    kb_s = timed(lambda: simulate(kb, np.random.default_rng(0)), repeat=10)
    kb_args = engine_kwargs(MIXES["kernel_build"], 128)
    kb_engine_s = timed(lambda: engine.run(**kb_args), repeat=10)
    print(f"kernel_build at 128 cores: simulate {kb_s:.4f} s, event loop {kb_engine_s:.4f} s")

    v2024 = {
        **presets.load("variant", "baseline_2024"),
        "percpu_page_cache": 0,
        "amap_free": "list",
    }
    kb80 = PointParams.from_dicts(
        MACHINES["arm64_altra80"], {**MIXES["kernel_build"], "slots": 64}, v2024, 80
    )
    kb80_s = timed(lambda: simulate(kb80, np.random.default_rng(0)), repeat=3)
    print(f"kernel_build on 80 CPUs, make -j64, every lock on: simulate {kb80_s:.4f} s")

    cores = 64
    per_slot = -(-1_000_000 // cores)
    fork_mix = {**MIXES["fork_exit"], "processes_per_slot": per_slot}
    fork = PointParams.from_dicts(m2, fork_mix, base, cores)
    exits = per_slot * cores
    fork_s = timed(lambda: simulate(fork, np.random.default_rng(0)), repeat=3)
    fork_args = engine_kwargs(fork_mix, cores)
    fork_engine_s = timed(lambda: engine.run(**fork_args), repeat=3)
    print(f"fork_exit, {exits} exits at {cores} cores: simulate {fork_s:.2f} s, "
          f"event loop {fork_engine_s:.2f} s")  # fmt: skip

    small = {**MIXES["kernel_build"], "processes": 300, "address_space_templates": 32}
    args = engine_kwargs(small, 8)
    fast_s = timed(lambda: engine.run(**args), repeat=5)
    ref_s = timed(lambda: reference_run(**args))
    print(
        f"300-compiler build on 8 cores: event loop {fast_s:.4f} s, SimPy reference {ref_s:.2f} s"
    )

    print(
        json.dumps(
            {
                "fork_exit_exits_per_s": round(exits / fork_s),
                "fork_exit_engine_exits_per_s": round(exits / fork_engine_s),
                "fork_exit_exits": exits,
                "kernel_build_128_s": round(kb_s, 4),
                "kernel_build_128_engine_s": round(kb_engine_s, 4),
                "kernel_build_80_s": round(kb80_s, 4),
                "speedup_vs_reference": round(ref_s / fast_s, 1),
                "reference_s": round(ref_s, 3),
                "first_call_s": round(first_call_s, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
