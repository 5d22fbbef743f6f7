"""DESIGN.md section 6, calibration targets 1-3: the per-process teardown model alone."""

from __future__ import annotations

import numpy as np
import pytest
from teardown_layouts import single_entry

from exitcore import presets
from exitcore.addrspace import PLACEMENT_DENSE, PLACEMENT_UNIFORM
from exitcore.arch import ARM64
from exitcore.mix import MixParams, generate
from exitcore.pagetable import table_counts_exact
from exitcore.result import OPS
from exitcore.teardown import teardown_costs
from exitcore.variant import VARIANTS

X = {op: i for i, op in enumerate(OPS)}
FOUR_GIB_PAGES = 4 * 2**30 // 4096
M2_CORES = 8  # Apple M2 class, the machine of the published kernel-build figures


@pytest.mark.parametrize("placement", [PLACEMENT_DENSE, PLACEMENT_UNIFORM])
def test_target_1_four_gib_with_seven_pages(placement):
    """4 GiB mapped, 7 pages touched: 1,048,576 lookups for baseline; sparse variants touch
    only the populated tables."""
    spaces = single_entry(FOUR_GIB_PAGES, 7, placement=placement, start_vpn=1 << 20)
    tables = table_counts_exact(spaces, np.random.default_rng(1))
    baseline = teardown_costs(spaces, VARIANTS["baseline"], ARM64, M2_CORES, tables=tables)
    assert baseline.page_lookups.tolist() == [1_048_576]
    assert baseline.op_ns[0, X["X2"]] == pytest.approx(1_048_576 * ARM64.walk_step_ns)
    populated = int(tables[:, : ARM64.table_levels].sum())
    # 7 pages sit in at most 7 leaf tables and 5 1-GiB tables (4 GiB from 4 GiB), one root.
    assert 3 <= populated <= 7 + 5 + 1
    for name in ("combined", "linux_fullmm"):
        sparse = teardown_costs(spaces, VARIANTS[name], ARM64, M2_CORES, tables=tables)
        assert sparse.page_lookups.tolist() == [0]
        assert sparse.op_ns[0, X["X2"]] == 0
        assert sparse.ptp_freed.tolist() == [populated]
        assert sparse.op_ns[0, X["X7"]] == pytest.approx(populated * ARM64.ptp_free_ns)
        # Eight times the mapping, same pages: a sparse teardown costs the same.
        wider = single_entry(8 * FOUR_GIB_PAGES, 7, placement=PLACEMENT_DENSE, start_vpn=1 << 20)
        if placement == PLACEMENT_DENSE:
            again = teardown_costs(wider, VARIANTS[name], ARM64, M2_CORES)
            assert again.total_ns == pytest.approx(sparse.total_ns)


def _pmap_ns(op_ns: np.ndarray) -> np.ndarray:
    return op_ns[:, [X["X2"], X["X3"], X["X4"], X["X5"], X["X7"]]].sum(axis=1)


def _kernel_build_costs(seed: int):  # type: ignore[no-untyped-def]
    """Teardown costs of the address spaces the kernel_build mix draws (all 64 templates)."""
    mix = MixParams.from_dict(presets.load("mix", "kernel_build"))
    w = generate(mix, M2_CORES, np.random.default_rng(seed))
    return teardown_costs(w.spaces, VARIANTS["baseline"], ARM64, M2_CORES)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_target_2_tlb_invalidation_is_most_of_pmap_time(seed):
    """Over the compilers a kernel build draws (what a profile of the build sees) and for its
    median compiler."""
    op_ns = _kernel_build_costs(seed).op_ns
    pmap = _pmap_ns(op_ns)
    assert op_ns[:, X["X4"]].sum() / pmap.sum() > 0.5
    assert np.median(op_ns[:, X["X4"]] / pmap) > 0.5


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_target_3_uvm_and_pmap_time_about_equal(seed):
    op_ns = _kernel_build_costs(seed).op_ns
    uvm = op_ns[:, X["X1"]] + op_ns[:, X["X6"]]
    pmap = _pmap_ns(op_ns)
    assert 0.7 <= uvm.sum() / pmap.sum() <= 1.4
    ratio = uvm / pmap
    assert 0.7 <= np.median(ratio) <= 1.4
    assert np.mean((ratio >= 0.7) & (ratio <= 1.4)) >= 0.8  # and most compilers, not one
