"""The locks of the model: names, kinds, engine ids, and how demand becomes acquisitions.

Built-in locks (DESIGN.md section 9), their names the prefixes of the result columns:

========== ====== ==================================================================
name       kind   what it is
========== ====== ==================================================================
klock      spin   KERNEL_LOCK: locked system calls and faults, exit1, the reaper's notify
schedlock  spin   SCHED_LOCK: wakeups, sleeps, context switches
fpageq     spin   the free-page lock (``uvm.fpageqlock``, pmemrange): page allocation and free,
                  one refill or drain per ``percpu_page_cache`` pages with the per-CPU cache
pageq      spin   the page-queue lock: ``uvm_pageclean`` and page-queue moves
kmmap      sleep  the kernel map rwlock (``kmmaplk``): uarea allocation and free
vnode      sleep  object and vnode rwlocks (``uobjlk``): a pool of ``vnode_pool`` locks, one per
                  object, so jobs sharing the compiler binary contend and others do not
========== ====== ==================================================================

Engine ids: the named locks in this order, then the vnode pool (``VNODE + i``).

**Resolution.** A compile makes thousands of short acquisitions; simulating each one costs an
event. Acquisitions of one lock by one process in one context are simulated one by one unless
their hold is shorter than the mix's ``lock_resolution_us``: then consecutive ones are merged
into acquisitions of about that hold (the count and the total hold are kept). Merging keeps the
lock's busy time and, for short holds, the queueing delay per unit of hold (an M/D/1 wait grows
with the hold while the number of waits shrinks with it); it lowers the rate at which CPUs run
into a *long* hold, so spinning behind long holds is under-estimated at coarse resolution. The
resolution is a stated model parameter, never ``pieces``; tests report its convergence.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from exitcore.engine import SLEEP, SLEEP_ALL, SPIN

LOCKS: Final[tuple[str, ...]] = ("klock", "schedlock", "fpageq", "pageq", "kmmap", "vnode")
"""Built-in locks in engine-id order (``vnode`` is the first lock of the pool)."""

LOCK_KINDS: Final[dict[str, int]] = {
    "klock": SPIN,  # (derived) __mp_lock: waiters spin
    "schedlock": SPIN,  # (derived) SCHED_LOCK is a mutex
    "fpageq": SPIN,  # (derived) uvm.fpageqlock is a mutex
    "pageq": SPIN,  # (derived) uvm.pageqlock is a mutex
    "kmmap": SLEEP,  # (derived) kernel_map's vm_map lock is an rwlock
    "vnode": SLEEP,  # (derived) vmobjlock / vnode locks are rwlocks
}
KLOCK, SCHEDLOCK, FPAGEQ, PAGEQ, KMMAP, VNODE = range(6)


def lock_kinds(vnode_pool: int, wake_all: bool = False) -> npt.NDArray[np.int8]:
    """int8[6 + vnode_pool - 1]: the kind of every engine lock id; ``wake_all``: the sleeping
    locks (rwlocks) are ``SLEEP_ALL``, a release wakes every sleeper (variant ``rw_wakeup``)."""
    if vnode_pool < 1:
        raise ValueError(f"vnode_pool: expected >= 1, got {vnode_pool}")
    kinds = [LOCK_KINDS[name] for name in LOCKS] + [LOCK_KINDS["vnode"]] * (vnode_pool - 1)
    out = np.asarray(kinds, np.int8)
    if wake_all:
        out[out == SLEEP] = SLEEP_ALL
    return out


def merge(
    counts: npt.ArrayLike, holds_ns: npt.ArrayLike, resolution_ns: float
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Simulated acquisitions for ``counts`` acquisitions of ``holds_ns`` each (module docstring).

    Counts are rounded to integers; ``m = min(n, max(1, ceil(n h / resolution)))`` simulated
    acquisitions hold ``n h / m`` each, so the total hold is kept. Returns ``(m, hold)``.

    Examples
    --------
    >>> c, h = merge([1000, 3, 0], [2000.0, 50_000.0, 10.0], 20_000.0)
    >>> c.tolist(), h.tolist()
    ([100, 3, 0], [20000.0, 50000.0, 0.0])
    """
    from exitcore.segments import merged  # the arithmetic the layout uses

    n, h = np.broadcast_arrays(np.asarray(counts, np.float64), np.asarray(holds_ns, np.float64))
    pairs = [
        merged.py_func(float(a), float(b), float(resolution_ns))
        for a, b in zip(n.ravel(), h.ravel(), strict=True)
    ]
    m = np.array([c for c, _ in pairs], np.int64).reshape(n.shape)
    hold = np.array([x for _, x in pairs], np.float64).reshape(n.shape)
    return m, hold
