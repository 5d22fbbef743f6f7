"""One simulated point: a machine, a mix, a variant and a core count -> :class:`PointResult`.

``simulate(params, rng)`` draws the workload (:func:`exitcore.mix.generate`), prices each drawn
address space's teardown once (:func:`exitcore.teardown.teardown_costs`, expected page-table
path; processes sharing a drawn space share its costs), lays each process out as a list of
segments and runs the event loop (:mod:`exitcore.engine`).

Segments of one process, in order: its blocked time (reading its inputs: the mix's ``io_ops``
times the machine's ``io_op_s``), then ``pieces`` times ``[user, sys, sys under KERNEL_LOCK,
sys under the page-queue lock]`` (the mix's non-exit times: user divided by the machine's
``cpu_speed``, system times by ``kernel_speed``), then the exit: the ``exit``
context's work without lock, its page-queue part, then the ``exit_klock`` context under
KERNEL_LOCK (when the variant notifies from exit, the parent is woken at the end of it). The
reaper job: the ``reaper`` context's unlocked work, its page-queue part, then its KERNEL_LOCK
part (the parent notification, last). Zero-length segments are dropped. Teardown costs are the
architecture's nanoseconds and are not scaled.

Accounting as time(1) sees it: ``user_s`` is user segments, ``sys_s`` everything else a process
holds a CPU for (non-exit and exit system time, and spinning on either lock); the reaper's CPU
time, its spinning included, is ``reaper_busy_s`` and charged to nobody. ``wall_s`` ends at the
last parent notification (what the parent, e.g. make, sees); utilisations divide by the
horizon, the last event (a reaper may still be freeing leftovers after the last notification).

``zombies_max`` counts processes between their exit (first exit segment) and the end of their
teardown (reaper job end, or exit end without a reaper job); ``unreclaimed_mb_max`` sums the
resident memory of the exited processes whose pages are not yet freed (freed at the reaper
job's end when the variant runs X6 in the reaper, else at the end of the exit).

Calibration: the constants marked (estimate, fitted) where they are defined come from
``python -m sweep.fit fit=calibration``; ``python -m sweep.validate`` holds the model against
every published measurement of DESIGN.md section 6 (README, "Is the model right?"). Target 5's
published user + sys exceeds 8 cores x real (497.06 > 495.12 CPU-seconds), which no simulation
of 8 CPUs can reproduce exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from exitcore import engine
from exitcore.machine import MachineProfile
from exitcore.mix import MixParams, Workload, generate
from exitcore.result import OPS, PointResult
from exitcore.teardown import teardown_costs
from exitcore.variant import Variant

_NS = 1e-9
_BLOCK_KIND = np.array([engine.BLOCK], np.int8)
_PIECE_KINDS = np.array([engine.USER, engine.SYS, engine.KL, engine.PQ], np.int8)
_EXIT_KINDS = np.array([engine.SYS, engine.PQ, engine.KL], np.int8)
_REAPER_KINDS = np.array([engine.SYS, engine.PQ, engine.KL], np.int8)


class CostsLike(Protocol):
    """The part of :class:`exitcore.teardown.TeardownCosts` the machine consumes."""

    @property
    def op_ns(self) -> npt.NDArray[Any]: ...

    @property
    def ctx_ns(self) -> npt.NDArray[Any]: ...

    @property
    def klock_ns(self) -> npt.NDArray[Any]: ...

    @property
    def pageq_ns(self) -> npt.NDArray[Any]: ...

    @property
    def page_lookups(self) -> npt.NDArray[Any]: ...

    @property
    def tlb_invalidations(self) -> npt.NDArray[Any]: ...

    @property
    def ptes_removed(self) -> npt.NDArray[Any]: ...

    @property
    def pages_freed(self) -> npt.NDArray[Any]: ...

    @property
    def ptp_freed(self) -> npt.NDArray[Any]: ...

    @property
    def resident_mb(self) -> npt.NDArray[Any]: ...


@dataclass(frozen=True, slots=True)
class PointParams:
    """Everything that defines one point except the seed."""

    machine: MachineProfile
    mix: MixParams
    variant: Variant
    cores: int

    def __post_init__(self) -> None:
        if isinstance(self.cores, bool) or not isinstance(self.cores, int | np.integer):
            raise ValueError(f"cores: expected an integer >= 1, got {self.cores!r}")
        if self.cores < 1:
            raise ValueError(f"cores: expected an integer >= 1, got {self.cores}")
        object.__setattr__(self, "cores", int(self.cores))

    @classmethod
    def from_dicts(
        cls,
        machine: Mapping[str, Any],
        mix: Mapping[str, Any],
        variant: Mapping[str, Any],
        cores: int,
    ) -> PointParams:
        return cls(
            machine=MachineProfile.from_dict(machine),
            mix=MixParams.from_dict(mix),
            variant=Variant.from_dict(variant),
            cores=cores,
        )


@dataclass(frozen=True, slots=True)
class Segments:
    """The engine's input for one workload (see :func:`exitcore.engine.run`)."""

    seg_ptr: npt.NDArray[np.int64]
    seg_kind: npt.NDArray[np.int8]
    seg_work_ns: npt.NDArray[np.float64]
    exit_first: npt.NDArray[np.int64]
    rseg_ptr: npt.NDArray[np.int64]
    rseg_kind: npt.NDArray[np.int8]
    rseg_work_ns: npt.NDArray[np.float64]


def build_segments(
    workload: Workload,
    costs: CostsLike,
    cpu_speed: float = 1.0,
    io_op_s: float = 0.0,
    kernel_speed: float = 1.0,
) -> Segments:
    """Lay every process out as segments (module docstring), vectorized over processes.

    The defaults are the reference machine (an M2 building from the page cache).
    """
    k = workload.pieces
    scale = 1e9 / cpu_speed / k
    kscale = 1e9 / kernel_speed / k
    blocked = (workload.io_ops * (1e9 * io_op_s))[:, None]
    piece = np.stack(
        [
            workload.user_s * scale,
            workload.sys_s * kscale,
            workload.klock_s * kscale,
            workload.pageq_s * kscale,
        ],
        axis=1,
    )
    ctx, pageq, klock = costs.ctx_ns, costs.pageq_ns, costs.klock_ns
    pq_exit = pageq[:, 0]
    exit_part = np.stack([ctx[:, 0] - pq_exit, pq_exit, ctx[:, 1]], axis=1)
    seg_ptr, seg_kind, seg_work, exit_first = engine.pack_segments(
        blocked, _BLOCK_KIND, piece, _PIECE_KINDS, k, exit_part, _EXIT_KINDS
    )
    pq_r = pageq[:, 2]
    kl_r = klock[:, 2]
    reaper_part = np.stack([ctx[:, 2] - pq_r - kl_r, pq_r, kl_r], axis=1)
    reaper_part = np.where(reaper_part > 1e-9, reaper_part, 0.0)
    none = np.zeros((reaper_part.shape[0], 0))
    rseg_ptr, rseg_kind, rseg_work, _ = engine.pack_segments(
        none, _PIECE_KINDS[:0], none, _PIECE_KINDS[:0], 0, reaper_part, _REAPER_KINDS
    )
    return Segments(seg_ptr, seg_kind, seg_work, exit_first, rseg_ptr, rseg_kind, rseg_work)


def _max_overlap(
    starts: npt.NDArray[np.float64],
    ends: npt.NDArray[np.float64],
    weights: npt.NDArray[np.float64],
) -> float:
    """Largest total weight of intervals ``[start, end)`` open at once (ends before starts)."""
    t = np.concatenate([ends, starts])
    w = np.concatenate([-weights, weights])
    order = np.argsort(t, kind="stable")  # at equal times the ends, listed first, come first
    running = np.cumsum(w[order])
    return float(max(running.max(initial=0.0), 0.0))


class ProcessCosts:
    """Teardown costs per process, stored per drawn address space.

    Rows are gathered (``space_of``) only for the columns the segments need; totals over the
    workload weight each space by how many processes use it, so no ``[P, 9]`` copy is made.
    """

    def __init__(self, per_space: Any, space_of: npt.NDArray[np.int64]) -> None:
        self.per_space = per_space
        self.space_of = space_of
        self.space_counts = np.bincount(space_of, minlength=per_space.op_ns.shape[0])

    def _rows(self, name: str) -> npt.NDArray[Any]:
        return np.asarray(getattr(self.per_space, name))[self.space_of]

    @property
    def op_ns(self) -> npt.NDArray[Any]:
        return self._rows("op_ns")

    @property
    def ctx_ns(self) -> npt.NDArray[Any]:
        return self._rows("ctx_ns")

    @property
    def klock_ns(self) -> npt.NDArray[Any]:
        return self._rows("klock_ns")

    @property
    def pageq_ns(self) -> npt.NDArray[Any]:
        return self._rows("pageq_ns")

    @property
    def page_lookups(self) -> npt.NDArray[Any]:
        return self._rows("page_lookups")

    @property
    def tlb_invalidations(self) -> npt.NDArray[Any]:
        return self._rows("tlb_invalidations")

    @property
    def ptes_removed(self) -> npt.NDArray[Any]:
        return self._rows("ptes_removed")

    @property
    def pages_freed(self) -> npt.NDArray[Any]:
        return self._rows("pages_freed")

    @property
    def ptp_freed(self) -> npt.NDArray[Any]:
        return self._rows("ptp_freed")

    @property
    def resident_mb(self) -> npt.NDArray[Any]:
        return self._rows("resident_mb")

    def total(self, name: str) -> Any:
        """Sum over processes of a per-process field (exact for integer counts)."""
        values = np.asarray(getattr(self.per_space, name))
        if values.dtype.kind in "iu":
            return np.tensordot(self.space_counts.astype(values.dtype), values, axes=(0, 0))
        return np.tensordot(self.space_counts.astype(np.float64), values, axes=(0, 0))


def teardown_for(
    workload: Workload, variant: Variant, machine: MachineProfile, cores: int
) -> ProcessCosts:
    """Price each drawn address space (:func:`exitcore.teardown.teardown_costs`, expected
    page-table path) and give every process the costs of its own space."""
    per_space = teardown_costs(workload.spaces, variant, machine.arch_profile(), cores)
    return ProcessCosts(per_space, workload.space_of)


def _total(costs: CostsLike, name: str) -> Any:
    if isinstance(costs, ProcessCosts):
        return costs.total(name)
    return np.sum(getattr(costs, name), axis=0)


def simulate(params: PointParams, rng: np.random.Generator) -> PointResult:
    """Simulate one point.

    Parameters
    ----------
    params : PointParams
    rng : numpy.random.Generator
        The only source of randomness; the same seed gives a bit-identical result.

    Returns
    -------
    PointResult
    """
    machine, cores = params.machine, params.cores
    workload = generate(params.mix, cores, rng)
    costs = teardown_for(workload, params.variant, machine, cores)
    return run_point(workload, costs, params.variant, machine, cores)


def run_point(
    workload: Workload,
    costs: CostsLike,
    variant: Variant,
    machine: MachineProfile,
    cores: int,
) -> PointResult:
    """Run the engine on a priced workload and reduce it to a :class:`PointResult`."""
    segs = build_segments(workload, costs, machine.cpu_speed, machine.io_op_s, machine.kernel_speed)
    run = engine.run(
        machine.siblings(cores),
        machine.smt_speed,
        segs.seg_ptr,
        segs.seg_kind,
        segs.seg_work_ns,
        segs.exit_first,
        segs.rseg_ptr,
        segs.rseg_kind,
        segs.rseg_work_ns,
        variant.notify_from_exit,
        workload.phase_ptr,
        workload.phase_slots,
        machine.reapers,
    )
    return reduce_run(run, costs, variant, machine, cores)


def reduce_run(
    run: engine.EngineRun,
    costs: CostsLike,
    variant: Variant,
    machine: MachineProfile,
    cores: int,
) -> PointResult:
    """Metrics of one engine run (module docstring)."""
    tot = run.totals_ns
    times = run.times_ns
    n = times.shape[0]
    wall = tot[engine.A_WALL] * _NS
    horizon = tot[engine.A_HORIZON] * _NS
    latency = (times[:, engine.T_NOTIFY] - times[:, engine.T_EXIT]) * _NS
    t_exit = times[:, engine.T_EXIT]
    t_done = times[:, engine.T_REAP_END]
    freed_by_reaper = "reaper" in variant.contexts_of("X6")
    t_freed = t_done if freed_by_reaper else times[:, engine.T_EXIT_END]
    zombies = _max_overlap(t_exit, t_done, np.ones(n))
    unreclaimed = _max_overlap(t_exit, t_freed, np.asarray(costs.resident_mb, np.float64))

    def util(busy_s: float, servers: int) -> float:
        return min(1.0, busy_s / (horizon * servers)) if horizon > 0 else 0.0

    op_s = _total(costs, "op_ns") * _NS
    ctx_s = _total(costs, "ctx_ns") * _NS
    reaper_busy = tot[engine.A_REAPER] * _NS
    klock_hold = tot[engine.A_KL_HOLD] * _NS
    fields: dict[str, Any] = {
        "wall_s": wall,
        "user_s": tot[engine.A_USER] * _NS,
        "sys_s": tot[engine.A_SYS] * _NS,
        "reaper_busy_s": reaper_busy,
        "reaper_util": util(reaper_busy, machine.reapers),
        "klock_hold_s": klock_hold,
        "klock_wait_s": tot[engine.A_KL_WAIT] * _NS,
        "klock_util": util(klock_hold, 1),
        "pageq_hold_s": tot[engine.A_PQ_HOLD] * _NS,
        "pageq_wait_s": tot[engine.A_PQ_WAIT] * _NS,
        "cpu_util": util(tot[engine.A_CPU] * _NS, cores),
        "exits": int(n),
        "exits_per_s": n / wall if wall > 0 else 0.0,
        "notify_latency_mean_s": float(latency.mean()) if n else 0.0,
        "notify_latency_p99_s": float(np.quantile(latency, 0.99)) if n else 0.0,
        "notify_latency_max_s": float(latency.max()) if n else 0.0,
        "zombies_max": int(round(zombies)),
        "unreclaimed_mb_max": unreclaimed,
        "page_lookups": int(_total(costs, "page_lookups")),
        "tlb_invalidations": int(_total(costs, "tlb_invalidations")),
        "ptes_removed": int(_total(costs, "ptes_removed")),
        "pages_freed": int(_total(costs, "pages_freed")),
        "ptp_freed": int(_total(costs, "ptp_freed")),
        "ctx_exit_s": float(ctx_s[0]),
        "ctx_exit_klock_s": float(ctx_s[1]),
        "ctx_reaper_s": float(ctx_s[2]),
        "is_what_if": machine.is_what_if(cores),
    }
    for i, op in enumerate(OPS):
        fields[f"op_{op.lower()}_s"] = float(op_s[i])
    clean: dict[str, Any] = {
        k: (float(v) if isinstance(v, np.floating) else v) for k, v in fields.items()
    }
    return PointResult(**clean)
