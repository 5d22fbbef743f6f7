"""The record of one simulated point: what a kernel developer reads off a run.

Declared once. The sweep's Arrow schema is derived from :data:`METRIC_FIELDS`, so a field added
here becomes a Parquet column without any other change. Units live in the names.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Final

OPS: Final[tuple[str, ...]] = tuple(f"X{i}" for i in range(9))
"""Teardown operations of DESIGN.md section 2, in table order."""

CONTEXTS: Final[tuple[str, ...]] = ("exit", "exit_klock", "reaper")
"""Who runs an operation: the exiting process, the same holding KERNEL_LOCK, the reaper thread."""


@dataclass(frozen=True, slots=True)
class PointResult:
    """Metrics of one (machine, mix, variant, cores, seed) point.

    Times are seconds of simulated time; counts are totals over every exit of the workload.
    ``user_s`` and ``sys_s`` are what time(1) charges to the processes: exit-context work and
    lock spinning are the spinner's system time; reaper work is charged to nobody (a reaper
    spinning on a lock is busy: it holds a CPU). Per lock of :data:`exitcore.locks.LOCKS`:
    ``<lock>_hold_s`` (grant to release), ``<lock>_wait_s`` (request to grant, spinning or
    asleep) and ``<lock>_util`` (hold over the horizon; ``vnode``: sums over the pool, the
    utilisation of its busiest lock). ``cpu_idle_s`` is CPU-seconds no entity held a thread
    until the horizon.
    """

    wall_s: float
    user_s: float
    sys_s: float
    reaper_busy_s: float
    reaper_util: float
    klock_hold_s: float
    klock_wait_s: float
    klock_util: float
    schedlock_hold_s: float
    schedlock_wait_s: float
    schedlock_util: float
    fpageq_hold_s: float
    fpageq_wait_s: float
    fpageq_util: float
    pageq_hold_s: float
    pageq_wait_s: float
    pageq_util: float
    kmmap_hold_s: float
    kmmap_wait_s: float
    kmmap_util: float
    vnode_hold_s: float
    vnode_wait_s: float
    vnode_util: float
    cpu_util: float
    cpu_idle_s: float
    exits: int
    exits_per_s: float
    notify_latency_mean_s: float
    notify_latency_p99_s: float
    notify_latency_max_s: float
    zombies_max: int
    unreclaimed_mb_max: float
    page_lookups: int
    tlb_invalidations: int
    ptes_removed: int
    pages_freed: int
    ptp_freed: int
    op_x0_s: float
    op_x1_s: float
    op_x2_s: float
    op_x3_s: float
    op_x4_s: float
    op_x5_s: float
    op_x6_s: float
    op_x7_s: float
    op_x8_s: float
    ctx_exit_s: float
    ctx_exit_klock_s: float
    ctx_reaper_s: float
    is_what_if: bool
    """True when the simulated core count exceeds the machine's hardware threads."""

    def as_dict(self) -> dict[str, float | int | bool]:
        return dataclasses.asdict(self)


METRIC_FIELDS: Final[tuple[tuple[str, type], ...]] = tuple(
    (f.name, {"float": float, "int": int, "bool": bool}[str(f.type)])
    for f in dataclasses.fields(PointResult)
)
"""(name, python type) of every metric, in declaration order."""
