"""Benchmark of the study report: curves, figures and report of a default-sized study.

Usage: ``python scripts/bench_report.py [DIR/NAME]``. Without an argument, a synthetic result
set shaped like the default study (2 machines x 2 mixes x 8 variants x 8 core counts x 1 seed =
256 points) is written to a temporary directory. The last line of output is one JSON object.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "sweep"))

import synthetic as syn  # noqa: E402

from sweep.curves import VARIANT_ORDER, compute_curves  # noqa: E402
from sweep.report import render  # noqa: E402

CORES = [1, 2, 4, 8, 16, 32, 64, 128]


def default_shaped_study(root: Path) -> Path:
    rows = []
    for machine, threads in [("arm64_m2", 8), ("arm64_altra80", 80)]:
        for mix in ["kernel_build", "fork_exit"]:
            for i, variant in enumerate(VARIANT_ORDER):
                reaper_s = 0.05 / (i + 1)
                xs = syn.saturating_throughput(CORES, 1.0, reaper_s)
                per = [
                    {
                        "reaper_util": x * reaper_s,
                        "klock_util": 0.3,
                        "cpu_util": 0.8,
                        "notify_latency_p99_s": 1e-3 * c,
                        "is_what_if": c > threads,
                        **syn.breakdown_metrics(0.1 * (i + 1)),
                    }
                    for c, x in zip(CORES, xs, strict=True)
                ]
                rows += syn.curve_rows(machine, mix, variant, CORES, xs, seeds=1, per_cores=per)
    return syn.write_result_set(root, rows, files_per_partition=4, keep_partition_columns=False)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        study = Path(sys.argv[1]) if len(sys.argv) > 1 else default_shaped_study(Path(tmp) / "s")
        t0 = time.perf_counter()
        curves = compute_curves(study / "points")
        t1, c1 = time.perf_counter(), time.process_time()
        render(study)
        t2, c2 = time.perf_counter(), time.process_time()
        figures = len(list((study / "figures").glob("*.*")))
        print(
            json.dumps(
                {
                    "curve_points": curves.height,
                    "curves_s": round(t1 - t0, 3),
                    "render_s": round(t2 - t1, 3),
                    "render_cpu_s": round(c2 - c1, 3),  # less sensitive to a shared machine
                    "figures": figures,
                    "report_html_bytes": (study / "report.html").stat().st_size,
                }
            )
        )


if __name__ == "__main__":
    main()
