"""Benchmark of the per-process teardown model (expected and exact page-table paths).

Run from the project directory::

    python scripts/bench_teardown.py                 # last line is one JSON object
    python scripts/bench_teardown.py --procs 2000    # a smaller expected-path batch

- ``map_entries_per_s`` (target >= 20 M/s): a kernel-build-like batch (default 20,000 compiler
  processes, 800-1,200 map entries each, RSS 40-150 MB, VA 0.5-2 GB) priced with
  ``teardown_costs`` on the expected page-table path (arm64, baseline, 80 cores).
- ``resident_pages_per_s`` (target >= 20 M/s): a batch of the same processes on the exact path
  (``table_counts_exact``: every resident page materialized and its tables counted), then
  ``teardown_costs`` with those tables.

Single core: BLAS/OpenMP threads are pinned to 1 and the model itself is single-threaded.
Rates are the best of ``--repeats`` wall-clock runs; ``*_cpu_per_s`` divide by the process's
CPU time instead, which is less sensitive to other jobs on a shared machine. Building the batch
and loading the compiled kernels are not timed (``build_s`` and ``warmup_s`` are reported).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from exitcore.addrspace import AddressSpaces  # noqa: E402
from exitcore.arch import ARM64  # noqa: E402
from exitcore.pagetable import table_counts_exact  # noqa: E402
from exitcore.teardown import teardown_costs  # noqa: E402
from exitcore.variant import VARIANTS  # noqa: E402

PAGES_PER_MB = 256


def compiler_batch(rng: np.random.Generator, n_procs: int) -> AddressSpaces:
    """Kernel-build compiler processes over DESIGN.md section 5's ranges."""
    return AddressSpaces.from_processes(
        rng,
        entries=rng.integers(800, 1201, n_procs),
        virtual_pages=rng.integers(512 * PAGES_PER_MB, 2048 * PAGES_PER_MB, n_procs),
        resident_pages=rng.integers(40 * PAGES_PER_MB, 150 * PAGES_PER_MB, n_procs),
        anon_fraction=rng.uniform(0.6, 0.7, n_procs),
        file_sharers=80,
    )


def best_of(
    repeats: int, setup: Callable[[], Any], run: Callable[[Any], Any]
) -> tuple[float, float]:
    """Best wall and CPU seconds of ``run(setup())`` (setup not timed)."""
    walls, cpus = [], []
    for _ in range(repeats):
        arg = setup()
        wall0, cpu0 = time.perf_counter(), time.process_time()
        run(arg)
        walls.append(time.perf_counter() - wall0)
        cpus.append(time.process_time() - cpu0)
    return min(walls), min(cpus)


def fresh(spaces: AddressSpaces) -> AddressSpaces:
    """The same batch without cached per-process sums, so their cost is timed too."""
    return dataclasses.replace(spaces)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--procs", type=int, default=20_000, help="expected-path processes")
    parser.add_argument("--exact-procs", type=int, default=300, help="exact-path processes")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=2025)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    variant, arch, cores = VARIANTS["baseline"], ARM64, 80

    t0 = time.perf_counter()
    small = compiler_batch(rng, 4)
    teardown_costs(small, variant, arch, cores)
    table_counts_exact(small, rng)
    warmup_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    big = compiler_batch(rng, args.procs)
    exact_batch = compiler_batch(rng, args.exact_procs)
    build_s = time.perf_counter() - t0

    def expected(spaces: AddressSpaces) -> None:
        teardown_costs(spaces, variant, arch, cores)

    def exact(spaces: AddressSpaces) -> None:
        tables = table_counts_exact(spaces, rng)
        teardown_costs(spaces, variant, arch, cores, tables=tables)

    exp_wall, exp_cpu = best_of(args.repeats, lambda: fresh(big), expected)
    ex_wall, ex_cpu = best_of(args.repeats, lambda: fresh(exact_batch), exact)
    entries = big.n_entries
    pages = int(exact_batch.resident_pages.sum())
    result = {
        "map_entries_per_s": entries / exp_wall,
        "resident_pages_per_s": pages / ex_wall,
        "map_entries_cpu_per_s": entries / exp_cpu,
        "resident_pages_cpu_per_s": pages / ex_cpu,
        "expected_processes": big.n_procs,
        "map_entries": entries,
        "expected_wall_s": exp_wall,
        "exact_processes": exact_batch.n_procs,
        "resident_pages": pages,
        "exact_wall_s": ex_wall,
        "build_s": build_s,
        "warmup_s": warmup_s,
        "cpu_count": os.cpu_count(),
        "load_avg_1m": os.getloadavg()[0],
    }
    print(f"expected path: {entries:,} map entries in {exp_wall:.3f} s")
    print(f"exact path: {pages:,} resident pages in {ex_wall:.3f} s")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
