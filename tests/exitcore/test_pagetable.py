from __future__ import annotations

import math

import numpy as np
import pytest
from teardown_layouts import random_batch, single_entry

from exitcore.addrspace import (
    PLACEMENT_CLUSTERED,
    PLACEMENT_DENSE,
    PLACEMENT_UNIFORM,
    AddressSpaces,
)
from exitcore.pagetable import table_counts_exact, table_counts_expected


def _brute_force_counts(spaces: AddressSpaces, procs, vpns) -> np.ndarray:
    """Distinct tables per level with Python sets: the independent oracle."""
    counts = np.zeros((spaces.n_procs, 4), dtype=np.int64)
    for level, shift in enumerate((9, 18, 27, 36)):
        tables = {(int(p), int(v) >> shift) for p, v in zip(procs, vpns, strict=True)}
        for p, _ in tables:
            counts[p, level] += 1
    return counts


def test_exact_counts_match_brute_force():
    spaces = random_batch(
        1,
        n_procs=6,
        entries=np.full(6, 40),
        virtual_pages=60_000,
        resident_pages=np.arange(6) * 3_000,
        mean_gap_pages=3_000,
    )
    rng = np.random.default_rng(2)
    procs, vpns = spaces.resident_vpns(np.random.default_rng(2))
    counts = table_counts_exact(spaces, rng)
    assert np.array_equal(counts, _brute_force_counts(spaces, procs, vpns))
    assert counts[0].tolist() == [0, 0, 0, 0]  # no resident page, no table


def test_dense_layout_expected_equals_exact_and_theory():
    # 1,000 resident pages from vpn 500: leaf tables 0..2 (vpns 500..1499), one of each above.
    spaces = single_entry(5_000, 1_000, start_vpn=500)
    expected = table_counts_expected(spaces)
    exact = table_counts_exact(spaces, np.random.default_rng(0))
    assert exact.tolist() == [[3, 1, 1, 1]]
    assert np.array_equal(expected, exact)


def test_entries_sharing_a_table_count_it_once():
    # Three dense entries inside leaf table 1 and one straddling tables 1 and 2.
    spaces = AddressSpaces(
        entry_proc=[0, 0, 0, 0],
        start_vpn=[520, 600, 700, 1000],
        virtual_pages=[10, 10, 10, 100],
        resident_pages=[1, 1, 1, 100],
        is_anon=[True] * 4,
        sharers=[1] * 4,
        placement=[PLACEMENT_DENSE] * 4,
        threads=[1],
        user_va_pages=[1 << 20],
    )
    assert table_counts_expected(spaces).tolist() == [[2.0, 1.0, 1.0, 1.0]]
    assert table_counts_exact(spaces, np.random.default_rng(0)).tolist() == [[2, 1, 1, 1]]


@pytest.mark.parametrize(
    ("start", "size", "resident"),
    [(300, 1_500, 5), (0, 2_048, 40), (511, 3, 2), (100, 5_000, 4_000)],
)
def test_uniform_expected_matches_hypergeometric_theory(start, size, resident):
    spaces = single_entry(size, resident, start_vpn=start, placement=PLACEMENT_UNIFORM)
    theory = 0.0
    for table in range(start // 512, (start + size - 1) // 512 + 1):
        width = min(start + size, (table + 1) * 512) - max(start, table * 512)
        theory += 1 - math.comb(size - width, resident) / math.comb(size, resident)
    assert table_counts_expected(spaces)[0, 0] == pytest.approx(theory, rel=2e-3)


@pytest.mark.parametrize(
    "weights",
    [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (0.3, 0.5, 0.2)],
    ids=["dense", "uniform", "clustered", "mixed"],
)
def test_expected_agrees_with_exact_on_random_layouts(weights):
    spaces = random_batch(21, n_procs=60, placement_weights=weights, mean_gap_pages=300)
    exact = table_counts_exact(spaces, np.random.default_rng(4)).sum(axis=0)
    expected = table_counts_expected(spaces).sum(axis=0)
    assert np.allclose(expected, exact, rtol=0.02)


@pytest.mark.parametrize("placement", [PLACEMENT_UNIFORM, PLACEMENT_CLUSTERED])
def test_expected_agrees_with_exact_on_sparse_mappings(placement):
    # sparse_mmap-like: 4 GiB mapped, a few pages touched, averaged over many processes.
    n = 400
    spaces = AddressSpaces(
        entry_proc=np.arange(n),
        start_vpn=np.full(n, 12_345),
        virtual_pages=np.full(n, 1 << 20),
        resident_pages=np.full(n, 7 if placement == PLACEMENT_UNIFORM else 300),
        is_anon=np.ones(n, bool),
        sharers=np.ones(n, np.int64),
        placement=np.full(n, placement),
        threads=np.ones(n, np.int64),
        user_va_pages=np.full(n, 1 << 27),
    )
    exact = table_counts_exact(spaces, np.random.default_rng(9)).sum(axis=0)
    expected = table_counts_expected(spaces).sum(axis=0)
    assert np.allclose(expected, exact, rtol=0.02)


def test_exact_is_deterministic_per_seed():
    spaces = random_batch(5, n_procs=8)
    a = table_counts_exact(spaces, np.random.default_rng(3))
    b = table_counts_exact(spaces, np.random.default_rng(3))
    assert np.array_equal(a, b)


def test_more_resident_pages_never_fewer_expected_tables():
    base = random_batch(8, n_procs=10, placement_weights=(0.3, 0.5, 0.2))
    more = AddressSpaces(
        entry_proc=base.entry_proc,
        start_vpn=base.start_vpn,
        virtual_pages=base.virtual_pages,
        resident_pages=np.minimum(base.virtual_pages, base.resident_pages * 2 + 1),
        is_anon=base.is_anon,
        sharers=base.sharers,
        placement=base.placement,
        threads=base.threads,
        user_va_pages=base.user_va_pages,
        cluster_pages=base.cluster_pages,
    )
    assert np.all(table_counts_expected(more) >= table_counts_expected(base) - 1e-9)
