"""Benchmark of ``python -m sweep.validate`` and ``python -m sweep.fit``, whole processes.

Run from the project directory::

    python scripts/bench_validate.py         # last line is one JSON object

- ``validate_s``: ``python -m sweep.validate`` over every shipped measurement, 3 seeds, into an
  empty output directory (cold point cache), start to exit. Target < 120 s.
- ``validate_stored_s``: the same command again, every point stored. Target < 15 s.
- ``fit_evaluations_per_min``: ``python -m sweep.fit fit=calibration`` (the shipped fit spec,
  3 seeds, 12 points per evaluation) from an empty output directory: parameter vectors
  evaluated per minute of the optimisation (Ray's start included, the process's start and the
  final report not).
- ``fit_s``, ``fit_optimise_s``, ``fit_evaluations``: that run's whole-process wall time, the
  optimisation's, and its evaluation count.

Each command runs with the environment's Ray settings (local Ray, started by the command when a
batch takes longer than ``ray.inprocess_s``). The machine is shared (2 cores): timings vary.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def timed(*args: str, cwd: Path) -> tuple[float, subprocess.CompletedProcess[str]]:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True, text=True
    )
    elapsed = time.perf_counter() - start
    if result.returncode not in (0, 1):  # 1: a calibrate figure outside its tolerance
        sys.exit(f"{' '.join(args)} failed ({result.returncode}): {result.stderr[-2000:]}")
    return elapsed, result


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-validate-") as tmp:
        work = Path(tmp)
        validate_s, first = timed("sweep.validate", "out=out", "seeds=[0,1,2]", cwd=work)
        stored_s, again = timed("sweep.validate", "out=out", "seeds=[0,1,2]", cwd=work)
        if " 0 to compute" not in again.stderr:
            sys.exit(f"the rerun computed points: {again.stderr}")
        fit_s, fit = timed("sweep.fit", "fit=calibration", "out=fit-out", cwd=work)
        match = re.search(r"in (\d+) evaluations, ([\d.]+) (s|min) ", fit.stderr)
        if match is None:
            sys.exit(f"no evaluation count in the fit's output: {fit.stderr[-2000:]}")
        evaluations = int(match.group(1))
        optimise_s = float(match.group(2)) * (60 if match.group(3) == "min" else 1)
    print(first.stdout)
    result = {
        "validate_s": round(validate_s, 2),
        "validate_stored_s": round(stored_s, 2),
        "validate_exit_status": first.returncode,
        "fit_evaluations_per_min": round(evaluations / optimise_s * 60, 1),
        "fit_s": round(fit_s, 1),
        "fit_optimise_s": round(optimise_s, 1),
        "fit_evaluations": evaluations,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
