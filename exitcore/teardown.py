"""What tearing down each exiting process costs, per operation and per context.

:func:`teardown_costs` turns a batch of address spaces, a patch variant, an architecture
profile and a core count into :class:`TeardownCosts`: nanoseconds per op (X0..X8, DESIGN.md
section 2) and per context (``exit``, ``exit_klock``, ``reaper``), the lock acquisitions the
variant's ``locks`` make in each context (count and hold per lock), and operation counts.
Vectorized over processes; the only per-entry work is a few segment sums (and the page-table
occupancy of :mod:`exitcore.pagetable`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from exitcore.addrspace import PAGE_BYTES, AddressSpaces
from exitcore.arch import ArchProfile
from exitcore.locks import KLOCK, LOCKS, PAGEQ
from exitcore.pagetable import LEVELS, table_counts_expected
from exitcore.result import CONTEXTS, OPS
from exitcore.variant import Variant

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_OP: Final = {op: i for i, op in enumerate(OPS)}
_CTX: Final = {ctx: i for i, ctx in enumerate(CONTEXTS)}


@dataclass(frozen=True, eq=False)  # arrays: compare fields explicitly
class TeardownCosts:
    """Teardown cost of ``P`` processes (nanoseconds as float64, counts as int64).

    Attributes
    ----------
    op_ns : float64[P, 9]
        Cost of each op X0..X8 (:data:`exitcore.result.OPS`); 0 where the variant drops it.
    ctx_ns : float64[P, 3]
        Cost per context, columns in :data:`exitcore.result.CONTEXTS` order; row sums equal
        those of ``op_ns``.
    klock_ns : float64[P, 3]
        Part of each context's work holding KERNEL_LOCK: none of ``exit``, all of
        ``exit_klock``, the parent notification in ``reaper`` when the reaper notifies.
    pageq_ns : float64[P, 3]
        Part of each context's work holding the page-queue lock (X6's share).
    lock_acq, lock_ns : float64[P, 3, 6]
        Per context and built-in lock (:data:`exitcore.locks.LOCKS`; ``vnode`` = the shared
        object's lock): acquisitions and their total hold, besides ``final_ns``. Locks of ops
        run in ``exit_klock`` are nested in its KERNEL_LOCK section and not listed.
    final_ns : float64[P, 3]
        The KERNEL_LOCK section that ends each context: none in ``exit``, the whole of
        ``exit_klock``, the notification in ``reaper`` (with X8 when the variant runs it under
        KERNEL_LOCK there).
    page_lookups : int64[P]
        X2 walk steps (virtual pages on arm64, 2 MiB blocks on amd64).
    tlb_invalidations : int64[P]
        X4 per-page invalidations (or amd64 full flushes) plus X5 whole-ASID flushes.
    ptes_removed, pages_freed, ptp_freed : int64[P]
        X3 PTEs, X6 anonymous pages, X7 page-table pages.
    resident_mb : float64[P]
        Resident memory held until the teardown finishes, MiB.
    notify_from_exit : bool
        The parent is woken at the end of the exiting process's KERNEL_LOCK section rather
        than after the reaper.
    """

    op_ns: FloatArray
    ctx_ns: FloatArray
    klock_ns: FloatArray
    pageq_ns: FloatArray
    lock_acq: FloatArray
    lock_ns: FloatArray
    final_ns: FloatArray
    page_lookups: IntArray
    tlb_invalidations: IntArray
    ptes_removed: IntArray
    pages_freed: IntArray
    ptp_freed: IntArray
    resident_mb: FloatArray
    notify_from_exit: bool

    @property
    def n_procs(self) -> int:
        return int(self.op_ns.shape[0])

    @property
    def total_ns(self) -> FloatArray:
        """float64[P]: all teardown work of each process."""
        return self.op_ns.sum(axis=1)


def teardown_costs(
    spaces: AddressSpaces,
    variant: Variant,
    arch: ArchProfile,
    cores: int,
    *,
    tables: npt.ArrayLike | None = None,
) -> TeardownCosts:
    """Per-process teardown cost of ``spaces`` under ``variant`` on ``arch`` with ``cores``.

    Parameters
    ----------
    spaces : AddressSpaces
        ``P`` exiting processes.
    variant : Variant
        Which context runs each op, and its flags.
    arch : ArchProfile
        Cost constants.
    cores : int
        CPUs in the machine (>= 1): broadcast TLBI gets dearer with more of them, and amd64
        shootdowns reach at most ``cores - 1`` remote CPUs.
    tables : array [P, 4], optional
        Page-table pages per level (from :func:`exitcore.pagetable.table_counts_exact`);
        default :func:`exitcore.pagetable.table_counts_expected`.

    Returns
    -------
    TeardownCosts

    Notes
    -----
    With ``V, R, Ra, E, T, L`` per process (virtual, resident, anonymous resident pages, map
    entries, threads, page-table pages over the architecture's ``table_levels`` lowest
    levels)::

        X0 = exit_prologue                     X1 = E * map_entry
        X2 = steps * walk_step                 steps = V (arm64), 2 MiB blocks spanned by the
                                               entries (amd64), user_va_pages / walk_step_pages
                                               (full_user_va), 0 (sparse)
        X3 = sum over entries r * (pte + pte_sharer * m)    (variant pte_ns replaces it)
        X4 = R * tlbi_per_page * tlbi * (1 + tlbi_core_slope * (cores - 1))    (broadcast)
           = sum over entries of r * (invlpg + q * ipi) if the entry spans <= 32 pages,
             else (if r > 0) full_flush + q * ipi                               (ipi)
        X5 = asid_flushes * asid_flush per context that runs it
        X6 = Ra * page_free (page_free_pageq of it under the page-queue lock)
        X7 = L * ptp_free                      X8 = T * proc_free + notify
        an op costs at least the lock sections the variant's ``locks`` give it (below)

    ``q = min(T, cores) - 1`` remote CPUs are assumed to run the pmap on amd64 (the other
    threads of the process; *(estimate)*). The notification (``notify``) is always paid: in
    ``exit_klock`` when the variant notifies from exit, else in the reaper under KERNEL_LOCK.
    An op listed in several contexts runs once in each.

    Locks (the variant's ``locks``): X1 takes an object's lock (``vnode``, the shared object)
    per object entry for ``object_detach_ns``; X6 takes ``fpageq`` once per page
    (``percpu_page_cache: 0``) or once per that many pages, or with ``amap_free: list`` once per
    amap (anonymous entry with resident pages), holding ``fpageq_acq_ns`` plus
    ``fpageq_page_ns`` per page, and ``pageq`` per page for ``page_free_pageq_ns``; X8 takes
    ``kmmap`` per thread (``uarea_kmmap_ns``) and ``schedlock`` once (``wakeup_schedlock_ns``);
    any other (op, lock) pair takes the lock once over the whole op. An op listed with
    ``klock`` runs under KERNEL_LOCK (X1: per object entry; X8: with the notification, one
    section), and so does any op in ``exit_klock``: its other locks are nested in that section
    and not simulated on their own. Lock sections are parts of the op's cost; when they add up to
    more (X6 without the per-CPU cache does the pmemrange work of every page), the op costs what
    its sections hold.

    Examples
    --------
    >>> from exitcore.arch import ARM64
    >>> from exitcore.variant import VARIANTS
    >>> spaces = AddressSpaces(entry_proc=[0], start_vpn=[0], virtual_pages=[1 << 20],
    ...     resident_pages=[7], is_anon=[True], sharers=[1], placement=[0], threads=[1],
    ...     user_va_pages=[1 << 27])
    >>> costs = teardown_costs(spaces, VARIANTS["baseline"], ARM64, cores=8)
    >>> int(costs.page_lookups[0]), int(costs.ptp_freed[0])  # 3-level arm64 user tables
    (1048576, 3)
    """
    if isinstance(cores, bool) or not isinstance(cores, int | np.integer) or cores < 1:
        raise ValueError(f"cores: expected an int >= 1, got {cores!r}")
    n_procs = spaces.n_procs
    if tables is None:
        table_counts = table_counts_expected(spaces)
    else:
        table_counts = np.asarray(tables, dtype=np.float64)
        if table_counts.shape != (n_procs, LEVELS):
            raise ValueError(
                f"tables: expected shape ({n_procs}, {LEVELS}), got {table_counts.shape}"
            )
        if np.any(table_counts < 0):
            raise ValueError("tables: counts must be >= 0")

    entries = spaces.entries_per_proc.astype(np.float64)
    resident = spaces.resident_pages_per_proc
    anon_resident = spaces.anon_resident_pages_per_proc
    threads = spaces.threads
    ptp = table_counts[:, : arch.table_levels].sum(axis=1)

    unit = np.zeros((n_procs, len(OPS)), dtype=np.float64)  # cost of one run of each op
    unit[:, _OP["X0"]] = arch.exit_prologue_ns
    unit[:, _OP["X1"]] = entries * arch.map_entry_ns

    walk_steps = _walk_steps(spaces, variant, arch)
    unit[:, _OP["X2"]] = walk_steps * arch.walk_step_ns

    if variant.pte_ns is not None:
        unit[:, _OP["X3"]] = resident * variant.pte_ns
    elif arch.pte_sharer_ns > 0:
        sharer_pages = spaces.per_proc_sum(spaces.resident_pages * spaces.sharers)
        unit[:, _OP["X3"]] = resident * arch.pte_ns + sharer_pages * arch.pte_sharer_ns
    else:
        unit[:, _OP["X3"]] = resident * arch.pte_ns

    tlb_ns, per_page_invalidations = _tlb_costs(spaces, arch, cores)
    unit[:, _OP["X4"]] = tlb_ns
    unit[:, _OP["X5"]] = arch.asid_flushes * arch.asid_flush_ns
    unit[:, _OP["X6"]] = anon_resident * arch.page_free_ns
    unit[:, _OP["X7"]] = ptp * arch.ptp_free_ns
    unit[:, _OP["X8"]] = threads * arch.proc_free_ns

    runs = np.zeros((len(OPS), len(CONTEXTS)), dtype=np.float64)  # runs of op in context
    for op_index, contexts in enumerate(variant.op_contexts):
        for ctx in contexts:
            runs[op_index, _CTX[ctx]] += 1
    op_ns = unit * runs.sum(axis=1)
    ctx_ns = unit @ runs

    notify_ctx = _CTX["exit_klock"] if variant.notify_from_exit else _CTX["reaper"]
    op_ns[:, _OP["X8"]] += arch.notify_ns
    ctx_ns[:, notify_ctx] += arch.notify_ns

    lock_acq, lock_ns, final_ns, extra = _lock_demand(spaces, variant, arch, unit)
    op_ns += extra.sum(axis=2)
    ctx_ns += extra.sum(axis=1)
    final_ns[:, _CTX["exit_klock"]] = ctx_ns[:, _CTX["exit_klock"]]
    if not variant.notify_from_exit:
        final_ns[:, _CTX["reaper"]] += arch.notify_ns
    klock_ns = final_ns + lock_ns[:, :, KLOCK]
    pageq_ns = np.ascontiguousarray(lock_ns[:, :, PAGEQ])

    op_runs = runs.sum(axis=1).astype(np.int64)
    return TeardownCosts(
        op_ns=op_ns,
        ctx_ns=ctx_ns,
        klock_ns=klock_ns,
        pageq_ns=pageq_ns,
        lock_acq=lock_acq,
        lock_ns=lock_ns,
        final_ns=final_ns,
        page_lookups=walk_steps * op_runs[_OP["X2"]],
        tlb_invalidations=per_page_invalidations * op_runs[_OP["X4"]]
        + arch.asid_flushes * op_runs[_OP["X5"]],
        ptes_removed=resident * op_runs[_OP["X3"]],
        pages_freed=anon_resident * op_runs[_OP["X6"]],
        ptp_freed=np.rint(ptp).astype(np.int64) * op_runs[_OP["X7"]],
        resident_mb=np.asarray(resident * (PAGE_BYTES / 2**20), dtype=np.float64),
        notify_from_exit=variant.notify_from_exit,
    )


def _walk_steps(spaces: AddressSpaces, variant: Variant, arch: ArchProfile) -> IntArray:
    """X2 steps per process: pages (or blocks of ``walk_step_pages``) the walk visits."""
    step = arch.walk_step_pages
    if variant.walk == "sparse":
        return np.zeros(spaces.n_procs, dtype=np.int64)
    if variant.walk == "full_user_va":
        return -(-spaces.user_va_pages // step)
    if step == 1:
        return spaces.virtual_pages_per_proc
    # amd64 pmap_remove per entry: one step per 2 MiB block the entry's range touches.
    first = spaces.start_vpn // step
    last = (spaces.start_vpn + spaces.virtual_pages - 1) // step
    return np.asarray(spaces.per_proc_sum(last - first + 1), dtype=np.int64)


def _tlb_costs(spaces: AddressSpaces, arch: ArchProfile, cores: int) -> tuple[FloatArray, IntArray]:
    """X4 nanoseconds and invalidation counts per process (for one run of X4)."""
    resident = spaces.resident_pages_per_proc
    if arch.tlb_model == "broadcast":
        invalidations = resident * arch.tlbi_per_page
        per_tlbi = arch.tlbi_ns * (1.0 + arch.tlbi_core_slope * (cores - 1))
        return np.asarray(invalidations * per_tlbi, dtype=np.float64), invalidations
    # IPI model (amd64 pmap_do_remove): a range of more than full_flush_range_pages virtual
    # pages gets one full flush; a shorter one INVLPGs each removed page. Each flush is also
    # sent to the remote CPUs where the pmap is active.
    remote = np.maximum(np.minimum(spaces.threads, cores) - 1, 0)
    is_short = spaces.virtual_pages <= arch.full_flush_range_pages
    short_pages = spaces.per_proc_sum(np.where(is_short, spaces.resident_pages, 0))
    full_flushes = spaces.per_proc_sum(~is_short & (spaces.resident_pages > 0)).astype(np.int64)
    per_flush_ipi = remote * arch.ipi_ns
    ns = short_pages * (arch.invlpg_ns + per_flush_ipi) + full_flushes * (
        arch.full_flush_ns + per_flush_ipi
    )
    return np.asarray(ns, dtype=np.float64), short_pages + full_flushes


def _lock_demand(
    spaces: AddressSpaces, variant: Variant, arch: ArchProfile, unit: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Acquisitions and hold per context and lock of the variant's ``locks`` (see Notes of
    :func:`teardown_costs`), the reaper's KERNEL_LOCK part of X8 (added to its final section),
    and the work by which the lock sections exceed each op's cost, per context ``[P, 9, 3]``."""
    n = spaces.n_procs
    extra = np.zeros((n, len(OPS), len(CONTEXTS)))
    acq = np.zeros((n, len(CONTEXTS), len(LOCKS)))
    hold = np.zeros((n, len(CONTEXTS), len(LOCKS)))
    final = np.zeros((n, len(CONTEXTS)))
    is_anon = np.asarray(spaces.is_anon, bool)
    object_entries = spaces.per_proc_sum(~is_anon).astype(np.float64)
    # an anonymous entry with resident pages has an amap to wipe out
    amaps = spaces.per_proc_sum(
        (is_anon & (np.asarray(spaces.resident_pages) > 0)).astype(np.float64)
    )
    pages = spaces.anon_resident_pages_per_proc.astype(np.float64)
    threads = spaces.threads.astype(np.float64)
    ones = np.ones(n)
    for op_index, contexts in enumerate(variant.op_contexts):
        op = OPS[op_index]
        locks = variant.op_locks[op_index]
        for ctx in contexts:
            if not locks:
                continue
            c = _CTX[ctx]
            # inside a KERNEL_LOCK section (exit1's, or the op's own): no acquisitions of their own
            nested = ctx == "exit_klock" or "klock" in locks
            others = np.zeros(n)  # hold of the op's other locks that are part of its cost
            for lock in locks:
                if lock == "klock":
                    continue
                count, total = _unit_demand(op, lock, variant, arch, unit[:, op_index], pages,
                                            threads, object_entries, amaps, ones)  # fmt: skip
                others += total
                if nested:
                    continue
                lk = LOCKS.index(lock)
                acq[:, c, lk] += count
                hold[:, c, lk] += total
            # lock sections longer than the op's own cost make the op that long (the free-page
            # work of every page without the per-CPU cache)
            over = np.maximum(others - unit[:, op_index], 0.0)
            extra[:, op_index, c] += over
            if ctx == "exit_klock":
                continue
            if "klock" in locks:
                if op == "X1":  # uvm_unmap_detach: KERNEL_LOCK per object entry (2024)
                    count = object_entries
                    total = object_entries * arch.map_entry_ns + over
                else:
                    count = ones
                    total = unit[:, op_index] + over
                if op == "X8" and ctx == "reaper" and not variant.notify_from_exit:
                    final[:, c] += total  # one section with the notification
                else:
                    acq[:, c, KLOCK] += np.where(total > 0, count, 0.0)
                    hold[:, c, KLOCK] += total
    return acq, hold, final, extra


def _unit_demand(  # noqa: PLR0913
    op: str,
    lock: str,
    variant: Variant,
    arch: ArchProfile,
    op_ns: FloatArray,
    pages: FloatArray,
    threads: FloatArray,
    object_entries: FloatArray,
    amaps: FloatArray,
    ones: FloatArray,
) -> tuple[FloatArray, FloatArray]:
    """(acquisitions, total hold) of ``lock`` taken by one run of ``op``; a pair without a
    finer unit takes the lock once over the whole op."""
    if op == "X6" and lock == "fpageq":
        per = variant.percpu_page_cache
        if variant.amap_free == "list":  # one uvm_pmr_freepageq per amap
            count = amaps
        else:
            count = pages if per == 0 else np.ceil(pages / per)
        return count, count * arch.fpageq_acq_ns + pages * arch.fpageq_page_ns
    if op == "X6" and lock == "pageq":
        return pages, pages * arch.page_free_pageq_ns
    if op == "X8" and lock == "kmmap":
        return threads, threads * arch.uarea_kmmap_ns
    if op == "X8" and lock == "schedlock":
        return ones, ones * arch.wakeup_schedlock_ns
    if op == "X1" and lock == "vnode":
        return object_entries, object_entries * arch.object_detach_ns
    return ones, op_ns.copy()
