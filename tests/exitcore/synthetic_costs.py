"""Closed-form per-process teardown costs as a TeardownCosts record, for machine tests.

A stand-in that follows DESIGN.md section 2's table with an :class:`ArchProfile`'s constants and a
:class:`Variant`'s contexts, so engine, law and reference tests do not depend on the page-table
model's details. Not used by ``exitcore`` itself.
"""

from __future__ import annotations

import numpy as np

from exitcore.arch import ArchProfile
from exitcore.mix import Workload
from exitcore.result import CONTEXTS, OPS
from exitcore.teardown import TeardownCosts
from exitcore.variant import Variant


def synthetic_costs(w: Workload, variant: Variant, arch: ArchProfile, cores: int) -> TeardownCosts:
    n = w.processes
    res = w.resident_pages.astype(float)
    anon = w.anon_pages.astype(float)
    steps = np.ceil(w.virtual_pages / arch.walk_step_pages)
    ptp = np.ceil(res / 512.0) + 3.0
    pte = arch.pte_ns if variant.pte_ns is None else variant.pte_ns
    if arch.tlb_model == "broadcast":
        tlb = res * arch.tlbi_per_page * arch.tlbi_ns * (1 + arch.tlbi_core_slope * (cores - 1))
    else:
        tlb = res * arch.invlpg_ns
    base = np.stack(
        [
            np.full(n, arch.exit_prologue_ns),
            w.map_entries * arch.map_entry_ns,
            steps * arch.walk_step_ns,
            res * (pte + arch.pte_sharer_ns * w.sharers),
            tlb,
            np.full(n, arch.asid_flush_ns * arch.asid_flushes),
            anon * arch.page_free_ns,
            ptp * arch.ptp_free_ns,
            w.threads * arch.proc_free_ns,
        ],
        axis=1,
    )
    op_ns = np.zeros((n, 9))
    ctx_ns = np.zeros((n, 3))
    pageq_ns = np.zeros((n, 3))
    for i, op in enumerate(OPS):
        for ctx in variant.contexts_of(op):
            c = CONTEXTS.index(ctx)
            op_ns[:, i] += base[:, i]
            ctx_ns[:, c] += base[:, i]
            if op == "X6":
                pageq_ns[:, c] += anon * arch.page_free_pageq_ns
    klock_ns = np.zeros((n, 3))
    notify_ctx = 1 if variant.notify_from_exit else 2
    op_ns[:, 8] += arch.notify_ns
    ctx_ns[:, notify_ctx] += arch.notify_ns
    klock_ns[:, 2] = arch.notify_ns if notify_ctx == 2 else 0.0
    klock_ns[:, 1] = ctx_ns[:, 1]
    counts = w.resident_pages
    return TeardownCosts(
        op_ns=op_ns,
        ctx_ns=ctx_ns,
        klock_ns=klock_ns,
        pageq_ns=pageq_ns,
        page_lookups=np.where(op_ns[:, 2] > 0, steps, 0).astype(np.int64),
        tlb_invalidations=np.where(op_ns[:, 4] > 0, counts, 0).astype(np.int64),
        ptes_removed=counts.copy(),
        pages_freed=w.anon_pages.copy(),
        ptp_freed=ptp.astype(np.int64),
        resident_mb=res / 256.0,
        notify_from_exit=variant.notify_from_exit,
    )
