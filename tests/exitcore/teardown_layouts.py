"""Address-space layouts shared by the teardown-model tests."""

from __future__ import annotations

import numpy as np

from exitcore.addrspace import PLACEMENT_DENSE, AddressSpaces

PAGES_PER_MB = 256


def single_entry(
    virtual_pages: int,
    resident_pages: int,
    *,
    placement: int = PLACEMENT_DENSE,
    start_vpn: int = 0,
    is_anon: bool = True,
    sharers: int = 1,
    threads: int = 1,
    user_va_pages: int = 1 << 27,
    cluster_pages: int = 16,
) -> AddressSpaces:
    """One process with one map entry."""
    return AddressSpaces(
        entry_proc=[0],
        start_vpn=[start_vpn],
        virtual_pages=[virtual_pages],
        resident_pages=[resident_pages],
        is_anon=[is_anon],
        sharers=[sharers],
        placement=[placement],
        threads=[threads],
        user_va_pages=[user_va_pages],
        cluster_pages=cluster_pages,
    )


def random_batch(
    seed: int,
    n_procs: int = 40,
    placement_weights: tuple[float, float, float] = (0.3, 0.5, 0.2),
    **overrides: object,
) -> AddressSpaces:
    """Compiler-like processes with sizes drawn over DESIGN.md's ranges."""
    rng = np.random.default_rng(seed)
    args: dict[str, object] = {
        "entries": rng.integers(300, 1501, n_procs),
        "virtual_pages": rng.integers(512 * PAGES_PER_MB, 2048 * PAGES_PER_MB, n_procs),
        "resident_pages": rng.integers(40 * PAGES_PER_MB, 150 * PAGES_PER_MB, n_procs),
        "anon_fraction": rng.uniform(0.6, 0.7, n_procs),
        "file_sharers": rng.integers(1, 9, n_procs),
        "threads": rng.integers(1, 4, n_procs),
        "placement_weights": placement_weights,
    }
    args.update(overrides)
    return AddressSpaces.from_processes(rng, **args)  # type: ignore[arg-type]
