from __future__ import annotations

import dataclasses
import doctest
import re

import numpy as np
import pytest
from teardown_layouts import random_batch, single_entry

from exitcore import presets
from exitcore.addrspace import PLACEMENT_UNIFORM, AddressSpaces
from exitcore.arch import AMD64, ARCHS, ARM64
from exitcore.locks import FPAGEQ, KLOCK, KMMAP, PAGEQ, SCHEDLOCK, VNODE
from exitcore.pagetable import table_counts_exact
from exitcore.result import CONTEXTS, OPS
from exitcore.teardown import teardown_costs
from exitcore.variant import VARIANTS, Variant

X = {op: i for i, op in enumerate(OPS)}
C = {ctx: i for i, ctx in enumerate(CONTEXTS)}


def _variant(base: str, **ops: str | list[str]) -> Variant:
    d = presets.load("variant", base)
    d["ops"] = {**d["ops"], **ops}
    return Variant.from_dict(d)


def x8_sections(threads: int) -> float:
    """X8 without the notification: the threads' proc free, or its lock sections if longer
    (the uarea free under the kernel map lock per thread, the parent's wakeup)."""
    sections = threads * ARM64.uarea_kmmap_ns + ARM64.wakeup_schedlock_ns
    return max(threads * ARM64.proc_free_ns, sections)


def x6(pages: int, acquisitions: int) -> float:
    """X6: the pages' free, or its lock sections if longer (the free-page lock's acquisitions
    and per-page work, the page-queue lock per page)."""
    sections = acquisitions * ARM64.fpageq_acq_ns + pages * (
        ARM64.fpageq_page_ns + ARM64.page_free_pageq_ns
    )
    return max(pages * ARM64.page_free_ns, sections)


def test_arm64_baseline_by_hand():
    # 2,048 virtual pages from vpn 0, 1,000 resident (dense): leaf tables 0 and 1, then one
    # table per level above (3 levels on arm64). Costs from DESIGN.md section 2 with the ARM64
    # constants.
    spaces = single_entry(2_048, 1_000, threads=2)
    costs = teardown_costs(spaces, VARIANTS["baseline"], ARM64, cores=8)
    tlbi = 2 * ARM64.tlbi_ns * (1 + 0.026 * 7)
    expected = [
        10_000.0,  # X0
        400.0,  # X1: one entry
        2_048 * 3.0,  # X2: one lookup per virtual page
        1_000 * ARM64.pte_ns,  # X3
        1_000 * tlbi,  # X4
        2 * 200.0,  # X5: kernel and user ASID
        x6(1_000, 63),  # X6: anonymous, through the per-CPU cache (63 drains)
        4 * 600.0,  # X7: 2 leaf + 2 upper tables
        x8_sections(2) + 2_000.0,  # X8: per thread (at least its lock sections) + notify
    ]
    assert costs.op_ns[0] == pytest.approx(expected)
    assert costs.ctx_ns[0] == pytest.approx([0.0, 10_000.0, sum(expected) - 10_000.0])
    assert costs.klock_ns[0] == pytest.approx([0.0, 10_000.0, 2_000.0])
    assert costs.pageq_ns[0] == pytest.approx([0.0, 0.0, 1_000 * 40.0])
    assert costs.page_lookups.tolist() == [2_048]
    assert costs.tlb_invalidations.tolist() == [2_000 + 2]
    assert costs.ptes_removed.tolist() == [1_000]
    assert costs.pages_freed.tolist() == [1_000]
    assert costs.ptp_freed.tolist() == [4]
    assert costs.resident_mb.tolist() == [1_000 * 4096 / 2**20]
    assert not costs.notify_from_exit


def test_amd64_shared_file_pages_and_shootdowns_by_hand():
    # Entry 0: 3 pages, 2 resident, shared by 4 (short range: INVLPG per page);
    # entry 1: 3,000 pages from vpn 1,000 (blocks 1..7), 100 resident, private (full flush).
    spaces = AddressSpaces(
        entry_proc=[0, 0],
        start_vpn=[0, 1_000],
        virtual_pages=[3, 3_000],
        resident_pages=[2, 100],
        is_anon=[False, True],
        sharers=[4, 1],
        placement=[0, 0],
        threads=[3],
        user_va_pages=[1 << 27],
    )
    costs = teardown_costs(spaces, VARIANTS["baseline"], AMD64, cores=16)
    remote = 2  # the process's other threads
    assert costs.page_lookups.tolist() == [1 + 7]
    assert costs.op_ns[0, X["X2"]] == pytest.approx(8 * 15.0)
    assert costs.op_ns[0, X["X3"]] == pytest.approx(2 * (40 + 5 * 4) + 100 * (40 + 5))
    assert costs.op_ns[0, X["X4"]] == pytest.approx(
        2 * (AMD64.invlpg_ns + remote * AMD64.ipi_ns)
        + (AMD64.full_flush_ns + remote * AMD64.ipi_ns)
    )
    assert costs.tlb_invalidations.tolist() == [2 + 1 + 1]
    assert costs.pages_freed.tolist() == [100]  # file pages stay in the page cache
    one_core = teardown_costs(spaces, VARIANTS["baseline"], AMD64, cores=1)
    assert one_core.op_ns[0, X["X4"]] == pytest.approx(2 * AMD64.invlpg_ns + AMD64.full_flush_ns)


@pytest.mark.parametrize("arch", sorted(ARCHS))
@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_work_is_conserved_between_ops_and_contexts(arch, name):
    spaces = random_batch(2, n_procs=15)
    costs = teardown_costs(spaces, VARIANTS[name], ARCHS[arch], cores=24)
    assert costs.op_ns.shape == (15, 9) and costs.ctx_ns.shape == (15, 3)
    assert np.allclose(costs.op_ns.sum(axis=1), costs.ctx_ns.sum(axis=1))
    assert np.all(costs.klock_ns <= costs.ctx_ns + 1e-9)
    assert np.all(costs.pageq_ns <= costs.ctx_ns + 1e-9)
    assert np.allclose(costs.klock_ns[:, C["exit_klock"]], costs.ctx_ns[:, C["exit_klock"]])
    assert np.all(costs.klock_ns[:, C["exit"]] == 0)
    for op, contexts in zip(OPS, VARIANTS[name].op_contexts, strict=True):
        if not contexts and op != "X8":
            assert np.all(costs.op_ns[:, X[op]] == 0), op


@pytest.mark.parametrize("arch", sorted(ARCHS))
@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_more_resident_pages_never_cost_less(arch, name):
    base = random_batch(4, n_procs=12)
    bigger = dataclasses.replace(
        base, resident_pages=np.minimum(base.virtual_pages, base.resident_pages * 3 + 5)
    )
    low = teardown_costs(base, VARIANTS[name], ARCHS[arch], cores=16)
    high = teardown_costs(bigger, VARIANTS[name], ARCHS[arch], cores=16)
    assert np.all(high.op_ns >= low.op_ns - 1e-6)
    assert np.all(high.ctx_ns >= low.ctx_ns - 1e-6)


@pytest.mark.parametrize("op", ["X1", "X2", "X3", "X4", "X6", "X7"])
def test_moving_an_op_between_contexts_conserves_total_work(op):
    spaces = random_batch(6, n_procs=10)
    base = VARIANTS["baseline"]
    moved = _variant("baseline", **{op: "exit"})
    a = teardown_costs(spaces, base, ARM64, cores=8)
    b = teardown_costs(spaces, moved, ARM64, cores=8)
    assert np.allclose(a.op_ns, b.op_ns)
    assert np.allclose(a.total_ns, b.total_ns)
    shift = a.op_ns[:, X[op]]
    assert np.allclose(b.ctx_ns[:, C["exit"]], shift)
    assert np.allclose(b.ctx_ns[:, C["reaper"]], a.ctx_ns[:, C["reaper"]] - shift)


@pytest.mark.parametrize("op", ["X0", "X1", "X3", "X5", "X6", "X7"])
def test_dropping_an_op_saves_exactly_its_cost(op):
    spaces = random_batch(7, n_procs=10)
    full = teardown_costs(spaces, VARIANTS["combined"], AMD64, cores=32)
    dropped = teardown_costs(spaces, _variant("combined", **{op: "none"}), AMD64, cores=32)
    assert np.allclose(full.total_ns - dropped.total_ns, full.op_ns[:, X[op]])
    assert np.all(full.op_ns[:, X[op]] > 0)


def test_pmap_purge_drops_x4_and_flushes_twice():
    spaces = random_batch(8, n_procs=5)
    uvm = teardown_costs(spaces, VARIANTS["uvm_purge"], ARM64, cores=80)
    purge = teardown_costs(spaces, VARIANTS["pmap_purge"], ARM64, cores=80)
    assert np.allclose(
        uvm.total_ns - purge.total_ns,
        uvm.op_ns[:, X["X4"]] - ARM64.asid_flushes * ARM64.asid_flush_ns,
    )
    assert np.allclose(purge.op_ns[:, X["X5"]], 2 * ARM64.asid_flushes * ARM64.asid_flush_ns)


def test_zap_first_cost_grows_with_the_user_address_space():
    spaces = random_batch(9, n_procs=4)
    totals = []
    for va_pages in (1 << 20, 1 << 24, 1 << 27, 1 << 30):
        wider = dataclasses.replace(spaces, user_va_pages=np.full(4, va_pages))
        costs = teardown_costs(wider, VARIANTS["zap_first"], ARM64, cores=8)
        assert costs.page_lookups.tolist() == [va_pages] * 4
        totals.append(costs.total_ns)
    assert np.all(np.diff(np.stack(totals), axis=0) > 0)


def test_broadcast_tlb_cost_grows_with_cores_amd64_with_threads():
    spaces = random_batch(10, n_procs=4, threads=4)
    arm = [
        teardown_costs(spaces, VARIANTS["baseline"], ARM64, c).op_ns[:, X["X4"]] for c in (1, 8, 80)
    ]
    assert np.all(arm[0] < arm[1]) and np.all(arm[1] < arm[2])
    amd = [
        teardown_costs(spaces, VARIANTS["baseline"], AMD64, c).op_ns[:, X["X4"]]
        for c in (1, 2, 4, 64)
    ]
    assert np.all(amd[0] < amd[1]) and np.all(amd[1] < amd[2])
    assert np.allclose(amd[2], amd[3])  # at most threads - 1 remote CPUs


def test_notify_from_exit_moves_the_kernel_lock_part():
    spaces = random_batch(11, n_procs=3)
    combined = teardown_costs(spaces, VARIANTS["combined"], ARM64, cores=8)
    rip = teardown_costs(spaces, VARIANTS["rip_reaper"], ARM64, cores=8)
    assert rip.notify_from_exit and not combined.notify_from_exit
    assert np.allclose(rip.total_ns, combined.total_ns)
    assert np.allclose(combined.klock_ns[:, C["reaper"]], ARM64.notify_ns)
    assert np.all(rip.klock_ns[:, C["reaper"]] == 0)
    assert np.allclose(
        rip.klock_ns[:, C["exit_klock"]], combined.klock_ns[:, C["exit_klock"]] + ARM64.notify_ns
    )


def test_linux_fullmm_overrides_the_pte_cost():
    spaces = random_batch(12, n_procs=3)
    costs = teardown_costs(spaces, VARIANTS["linux_fullmm"], AMD64, cores=8)
    assert np.allclose(costs.op_ns[:, X["X3"]], spaces.resident_pages_per_proc * 110.0)
    assert np.all(costs.ctx_ns[:, C["reaper"]] == 0)


def test_exact_tables_can_replace_the_expected_ones():
    spaces = random_batch(13, n_procs=5, placement_weights=(0.0, 1.0, 0.0))
    tables = table_counts_exact(spaces, np.random.default_rng(0))
    costs = teardown_costs(spaces, VARIANTS["baseline"], ARM64, cores=8, tables=tables)
    assert costs.ptp_freed.tolist() == tables[:, :3].sum(axis=1).tolist()
    amd = teardown_costs(spaces, VARIANTS["baseline"], AMD64, cores=8, tables=tables)
    assert amd.ptp_freed.tolist() == tables.sum(axis=1).tolist()
    expected_path = teardown_costs(spaces, VARIANTS["baseline"], ARM64, cores=8)
    assert np.allclose(expected_path.total_ns, costs.total_ns, rtol=0.01)


def test_processes_without_entries_pay_only_fixed_parts():
    spaces = AddressSpaces(
        entry_proc=[1],
        start_vpn=[0],
        virtual_pages=[10],
        resident_pages=[10],
        is_anon=[True],
        sharers=[1],
        placement=[PLACEMENT_UNIFORM],
        threads=[1, 1],
        user_va_pages=[1 << 27, 1 << 27],
    )
    costs = teardown_costs(spaces, VARIANTS["baseline"], ARM64, cores=8)
    x8 = x8_sections(1) + ARM64.notify_ns
    assert costs.op_ns[0].tolist() == pytest.approx([10_000.0, 0, 0, 0, 0, 400.0, 0, 0, x8])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cores": 0}, "cores: expected an int >= 1"),
        ({"cores": 2.5}, "cores: expected an int >= 1"),
        ({"cores": 4, "tables": np.zeros((2, 4))}, "tables: expected shape (1, 4)"),
        ({"cores": 4, "tables": -np.ones((1, 4))}, "tables: counts must be >= 0"),
    ],
)
def test_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        teardown_costs(single_entry(10, 5), VARIANTS["baseline"], ARM64, **kwargs)


def test_same_inputs_same_bits():
    spaces = random_batch(14, n_procs=6)
    a = teardown_costs(spaces, VARIANTS["pmap_purge"], AMD64, cores=12)
    b = teardown_costs(random_batch(14, n_procs=6), VARIANTS["pmap_purge"], AMD64, cores=12)
    for f in dataclasses.fields(a):
        assert np.array_equal(getattr(a, f.name), getattr(b, f.name))


def test_docstring_examples_run():
    import exitcore.addrspace
    import exitcore.pagetable
    import exitcore.teardown

    for module in (exitcore.addrspace, exitcore.pagetable, exitcore.teardown):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, module.__name__


def test_lock_demand_by_hand() -> None:
    """Which lock each op takes where it runs, counted by hand (DESIGN.md section 9)."""
    spaces = single_entry(2_048, 1_000, threads=2)  # one anonymous entry, 1,000 pages
    r = C["reaper"]
    base = teardown_costs(spaces, VARIANTS["baseline"], ARM64, cores=8)
    # 2025: frees through the per-CPU cache (16 pages per drain), page queues per page, uarea
    # free per thread under the kernel map lock, the parent's wakeup under SCHED_LOCK
    assert base.lock_acq[0, r, FPAGEQ] == 63  # ceil(1000 / 16)
    assert base.lock_ns[0, r, FPAGEQ] == pytest.approx(
        63 * ARM64.fpageq_acq_ns + 1_000 * ARM64.fpageq_page_ns
    )
    assert base.lock_acq[0, r, PAGEQ] == 1_000
    assert base.lock_acq[0, r, KMMAP] == 2 and base.lock_acq[0, r, SCHEDLOCK] == 1
    assert base.lock_acq[0, r, VNODE] == 0  # no object entry to detach
    assert base.lock_acq[0, r, KLOCK] == 0
    assert base.final_ns[0].tolist() == [0.0, 10_000.0, ARM64.notify_ns]
    # 2024: the reaper holds KERNEL_LOCK over pmap_destroy (X7) and, with the notification,
    # over all of X8: the uarea free's kernel-map section is nested in it (taken before
    # uvm_uarea_free), not an acquisition of its own
    old = teardown_costs(spaces, VARIANTS["baseline_2024"], ARM64, cores=8)
    assert old.lock_acq[0, r, KLOCK] == 1
    assert old.lock_ns[0, r, KLOCK] == pytest.approx(4 * ARM64.ptp_free_ns)
    assert old.final_ns[0, r] == pytest.approx(ARM64.notify_ns + x8_sections(2))
    assert old.lock_acq[0, r, KMMAP] == 0 and old.lock_acq[0, r, SCHEDLOCK] == 0
    # without the per-CPU cache every page free takes the free-page lock
    no_cache = presets.load("variant", "baseline_2024") | {"percpu_page_cache": 0}
    old0 = teardown_costs(spaces, Variant.from_dict(no_cache), ARM64, cores=8)
    assert old0.lock_acq[0, r, FPAGEQ] == 1_000
    assert old0.lock_ns[0, r, FPAGEQ] == pytest.approx(
        1_000 * (ARM64.fpageq_acq_ns + ARM64.fpageq_page_ns)
    )
    # lock sections are parts of an op's cost, and an op costs at least its sections: without
    # the cache the pmemrange work of every page costs more than with it
    i6 = X["X6"]
    assert base.op_ns[0, i6] == pytest.approx(x6(1_000, 63))
    assert old0.op_ns[0, i6] == pytest.approx(x6(1_000, 1_000))
    assert old0.op_ns[0, i6] > base.op_ns[0, i6]
    others = [i for i in range(9) if i != i6]
    np.testing.assert_allclose(old0.op_ns[0, others], base.op_ns[0, others])


def test_amap_list_free_takes_the_free_page_lock_once_per_amap() -> None:
    """uvm_amap.c 1.82-1.93 (the kernel of targets 9-11): amap_wipeout gathers the amap's pages
    and frees them with one uvm_pmr_freepageq; each page is still cleaned under the page-queue
    lock. Counted by hand on two processes of four entries."""
    spaces = AddressSpaces(
        entry_proc=[0, 0, 0, 0, 1],
        start_vpn=[0, 4_096, 8_192, 12_288, 0],
        virtual_pages=[2_048, 64, 64, 512, 256],
        resident_pages=[1_000, 24, 0, 300, 200],  # the third amap is empty, the fourth a file
        is_anon=[True, True, True, False, True],
        sharers=[1, 1, 1, 1, 1],
        placement=[0, 0, 0, 0, 0],
        threads=[1, 1],
        user_va_pages=[1 << 27, 1 << 27],
    )
    r = C["reaper"]
    march = presets.load("variant", "baseline_2024") | {"percpu_page_cache": 0}
    per_page = teardown_costs(spaces, Variant.from_dict(march), ARM64, cores=8)
    listed = teardown_costs(
        spaces, Variant.from_dict(march | {"amap_free": "list"}), ARM64, cores=8
    )
    pages = np.array([1_024, 200])
    assert per_page.lock_acq[:, r, FPAGEQ].tolist() == pages.tolist()
    assert listed.lock_acq[:, r, FPAGEQ].tolist() == [2, 1]
    np.testing.assert_allclose(
        listed.lock_ns[:, r, FPAGEQ],
        np.array([2, 1]) * ARM64.fpageq_acq_ns + pages * ARM64.fpageq_page_ns,
    )
    assert listed.lock_acq[:, r, PAGEQ].tolist() == pages.tolist()
    # the list free does not go through the per-CPU cache: a cache changes nothing
    cached = teardown_costs(
        spaces, Variant.from_dict(march | {"amap_free": "list", "percpu_page_cache": 16}),
        ARM64, cores=8,
    )  # fmt: skip
    np.testing.assert_array_equal(cached.lock_acq[:, r, FPAGEQ], listed.lock_acq[:, r, FPAGEQ])
    with pytest.raises(ValueError, match="amap_free"):
        Variant.from_dict(march | {"amap_free": "batch"})


def test_object_entries_take_the_object_lock_and_in_2024_kernel_lock() -> None:
    spaces = single_entry(64, 10, is_anon=False)
    r = C["reaper"]
    base = teardown_costs(spaces, VARIANTS["baseline"], ARM64, cores=8)
    assert base.lock_acq[0, r, VNODE] == 1
    assert base.lock_ns[0, r, VNODE] == pytest.approx(ARM64.object_detach_ns)
    assert base.lock_acq[0, r, FPAGEQ] == 0  # file pages are not freed by the exit
    old = teardown_costs(spaces, VARIANTS["baseline_2024"], ARM64, cores=8)
    # X1's object entry under KERNEL_LOCK (its object lock nested in it), then pmap_destroy
    assert old.lock_acq[0, r, KLOCK] == 2
    entry = max(ARM64.map_entry_ns, ARM64.object_detach_ns)
    assert old.lock_ns[0, r, KLOCK] == pytest.approx(entry + old.op_ns[0, X["X7"]])
    assert old.lock_acq[0, r, VNODE] == 0
    assert old.op_ns[0, X["X1"]] == pytest.approx(entry)
