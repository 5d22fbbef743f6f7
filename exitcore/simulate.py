"""One simulated point: a machine, a mix, a variant and a core count -> :class:`PointResult`.

``simulate(params, rng)`` draws the workload (:func:`exitcore.mix.generate`), prices each drawn
address space's teardown once (:func:`exitcore.teardown.teardown_costs`, expected page-table
path; processes sharing a drawn space share its costs), lays each process out as segments
(:mod:`exitcore.segments`) and runs the event loop (:mod:`exitcore.engine`) on the lock table of
:mod:`exitcore.locks`.

A process: its blocked time (the mix's ``io_ops`` times the machine's ``io_op_s``), then its
user time (divided by the machine's ``cpu_speed``) in ``pieces`` bursts and its non-exit system
time (divided by ``kernel_speed``) cut at its lock acquisitions (the mix's counts and holds; its
page allocations take the free-page lock once per page, or once per ``percpu_page_cache`` pages,
priced by the architecture), then the exit: the ``exit`` context's work cut at its acquisitions
(the variant's ``locks``), then the ``exit_klock`` context as one KERNEL_LOCK section (when the
variant notifies from exit, the parent is woken at the end of it). The reaper job: the
``reaper`` context's work cut at its acquisitions, then its KERNEL_LOCK section (the parent
notification, last). Short acquisitions are merged to the mix's ``lock_resolution_us``
(:func:`exitcore.locks.merge`). Teardown costs are the architecture's nanoseconds, not scaled.

Accounting as time(1) sees it: ``user_s`` is user segments (and the user time system segments
carry), ``sys_s`` every other segment of the processes and their spinning (sleeping on a lock is
neither); the reaper's segments and
spinning are ``reaper_busy_s``, charged to nobody. ``wall_s`` ends at the last parent
notification (what the parent, e.g. make, sees); utilisations divide by the horizon, the last
event (a reaper may still be freeing leftovers after the last notification).

``zombies_max`` counts processes between their exit (first exit segment) and the end of their
teardown (reaper job end, or exit end without a reaper job); ``unreclaimed_mb_max`` sums the
resident memory of the exited processes whose pages are not yet freed (freed at the reaper
job's end when the variant runs X6 in the reaper, else at the end of the exit).

Calibration: the constants marked (estimate, fitted) where they are defined come from
``python -m sweep.fit`` (conf/fit/); ``python -m sweep.validate`` holds the model against
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
from exitcore.locks import FPAGEQ, KLOCK, LOCKS, VNODE, lock_kinds
from exitcore.machine import MachineProfile
from exitcore.mix import MixParams, Workload, generate
from exitcore.result import OPS, PointResult
from exitcore.segments import layout
from exitcore.teardown import teardown_costs
from exitcore.variant import Variant

_NS = 1e-9


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
    def lock_acq(self) -> npt.NDArray[Any]: ...

    @property
    def lock_ns(self) -> npt.NDArray[Any]: ...

    @property
    def final_ns(self) -> npt.NDArray[Any]: ...

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
    seg_kind: npt.NDArray[np.int16]
    seg_work_ns: npt.NDArray[np.float64]
    seg_user_ns: npt.NDArray[np.float64]
    """User time each process segment carries (part of its work; system segments only)."""
    exit_first: npt.NDArray[np.int64]
    rseg_ptr: npt.NDArray[np.int64]
    rseg_kind: npt.NDArray[np.int16]
    rseg_work_ns: npt.NDArray[np.float64]
    lock_kinds: npt.NDArray[np.int8]
    lock_growth: npt.NDArray[np.float64]
    reaper_rows: npt.NDArray[np.int64]
    """Row of the reaper CSR of each process (reaper jobs are laid out once per space)."""
    seg_real_ns: npt.NDArray[np.float64]
    rseg_real_ns: npt.NDArray[np.float64]
    """Per locked segment, the hold of one real acquisition of those it stands for."""
    gap_lock: npt.NDArray[np.int64]
    gap_ns: npt.NDArray[np.float64]
    """``[P, K]``: each process's body locks and the work between two of its real
    acquisitions of each merged one (0: not merged)."""


Demand = tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64]]


def body_demand(workload: Workload, variant: Variant, machine: MachineProfile) -> Demand:
    """Lock demand of each process's non-exit work: ``(lock ids, counts, holds_ns)``, each
    ``[P, 7]``: the five named locks, the shared object's lock, the process's own object."""
    n = workload.processes
    kscale = 1e9 / machine.kernel_speed
    locks = np.empty((n, 7), np.int64)
    locks[:, :6] = np.arange(6)
    locks[:, 6] = VNODE + workload.vnode_own
    counts = np.zeros((n, 7))
    holds = np.zeros((n, 7))
    counts[:, :5] = workload.lock_counts[:, :5]
    holds[:, :5] = workload.lock_hold_s[:5] * kscale
    arch = machine.arch_profile()
    pages = workload.lock_counts[:, FPAGEQ]
    per = variant.percpu_page_cache
    fp_count = pages if per == 0 else np.ceil(pages / per)
    counts[:, FPAGEQ] = fp_count
    holds[:, FPAGEQ] = np.divide(
        fp_count * arch.fpageq_acq_ns + pages * arch.fpageq_page_ns,
        fp_count,
        out=np.zeros(n),
        where=fp_count > 0,
    )
    vn = workload.lock_counts[:, VNODE]
    shared = vn * workload.vnode_shared_frac if workload.vnode_pool > 1 else vn
    counts[:, VNODE] = shared
    counts[:, 6] = vn - shared
    holds[:, VNODE:] = workload.lock_hold_s[VNODE] * kscale
    return locks, counts, holds


def _context_demand(acq: npt.NDArray[Any], hold: npt.NDArray[Any]) -> Demand:
    """Demand of one teardown context per space (``[S, 6]``, vnode = the shared object)."""
    locks = np.broadcast_to(np.arange(len(LOCKS), dtype=np.int64), acq.shape)
    return locks, acq, np.divide(hold, acq, out=np.zeros_like(hold), where=acq > 0)


def build_segments(
    workload: Workload, costs: CostsLike, variant: Variant, machine: MachineProfile
) -> Segments:
    """Lay every process out as segments (module docstring), vectorized over processes."""
    res = workload.lock_resolution_s * 1e9
    if isinstance(costs, ProcessCosts):
        per_space: Any = costs.per_space
        space_of = costs.space_of
    else:
        per_space, space_of = costs, np.arange(workload.processes)
    ctx = np.asarray(per_space.ctx_ns)
    lock_acq = np.asarray(per_space.lock_acq)
    lock_ns = np.asarray(per_space.lock_ns)
    final = np.asarray(per_space.final_ns)
    # work conservation: the locked holds are carved out of each context's work
    exit_unlocked = np.maximum(ctx[:, 0] - lock_ns[:, 0].sum(axis=1), 0.0)
    reaper_unlocked = np.maximum(ctx[:, 2] - lock_ns[:, 2].sum(axis=1) - final[:, 2], 0.0)
    body = body_demand(workload, variant, machine)
    procs = layout(
        block_ns=workload.io_ops * (1e9 * machine.io_op_s),
        user_ns=workload.user_s * (1e9 / machine.cpu_speed),
        sys_ns=workload.sys_s * (1e9 / machine.kernel_speed),
        pieces=workload.pieces,
        body=body,
        space_of=space_of,
        exit_ns=exit_unlocked,
        exit_demand=_context_demand(lock_acq[:, 0], lock_ns[:, 0]),
        final_lock=KLOCK,
        final_ns=final[:, 1],
        resolution_ns=res,
    )
    # a reaper job of less than a picosecond is no job (a variant without reaper work)
    reaper_final = np.where(final[:, 2] > 1e-3, final[:, 2], 0.0)
    reaper_unlocked = np.where(reaper_unlocked > 1e-3, reaper_unlocked, 0.0)
    n_spaces = ctx.shape[0]
    reaper = layout(
        user_ns=np.zeros(n_spaces),
        sys_ns=np.zeros(n_spaces),
        pieces=1,
        body=None,
        space_of=np.arange(n_spaces),
        exit_ns=reaper_unlocked,
        exit_demand=_context_demand(lock_acq[:, 2], lock_ns[:, 2]),
        final_lock=KLOCK,
        final_ns=reaper_final,
        resolution_ns=res,
    )
    kinds = lock_kinds(workload.vnode_pool, wake_all=variant.rw_wakeup == "all")
    growth = np.where(kinds == engine.SPIN, machine.lock_hold_growth, 0.0)
    return Segments(
        procs.ptr, procs.kinds, procs.works, procs.users, procs.exit_first, reaper.ptr,
        reaper.kinds, reaper.works, kinds, growth, np.asarray(space_of, np.int64), procs.real_ns,
        reaper.real_ns, body[0], procs.gap_ns,
    )  # fmt: skip


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
    def lock_acq(self) -> npt.NDArray[Any]:
        return self._rows("lock_acq")

    @property
    def lock_ns(self) -> npt.NDArray[Any]:
        return self._rows("lock_ns")

    @property
    def final_ns(self) -> npt.NDArray[Any]:
        return self._rows("final_ns")

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
    segs = build_segments(workload, costs, variant, machine)
    return reduce_run(
        run_engine(workload, segs, variant, machine, cores), costs, variant, machine, cores
    )


def engine_inputs(
    workload: Workload, segs: Segments, variant: Variant, machine: MachineProfile, cores: int
) -> dict[str, Any]:
    """The keyword arguments of :func:`exitcore.engine.run` for a workload's segments: the one
    place that says which field feeds which input (the benchmarks and the SimPy reference's
    differential test take them from here)."""
    return {
        "sibling": machine.siblings(cores),
        "smt_speed": machine.smt_speed,
        "seg_ptr": segs.seg_ptr,
        "seg_kind": segs.seg_kind,
        "seg_work_ns": segs.seg_work_ns,
        "exit_first": segs.exit_first,
        "rseg_ptr": segs.rseg_ptr,
        "rseg_kind": segs.rseg_kind,
        "rseg_work_ns": segs.rseg_work_ns,
        "notify_from_exit": variant.notify_from_exit,
        "phase_ptr": workload.phase_ptr,
        "phase_slots": workload.phase_slots,
        "n_reapers": machine.reapers,
        "lock_kinds": segs.lock_kinds,
        "lock_growth": segs.lock_growth,
        "reaper_rows": segs.reaper_rows,
        "seg_user_ns": segs.seg_user_ns,
        "rw_spin_ns": machine.rw_spin_us * 1e3,
        "seg_real_ns": segs.seg_real_ns,
        "rseg_real_ns": segs.rseg_real_ns,
        "gap_lock": segs.gap_lock,
        "gap_ns": segs.gap_ns,
        "rw_wake_ns": machine.rw_wake_us * 1e3,
    }


def run_engine(
    workload: Workload, segs: Segments, variant: Variant, machine: MachineProfile, cores: int
) -> engine.EngineRun:
    """The event loop on a workload's segments (what :func:`run_point` reduces)."""
    return engine.run(**engine_inputs(workload, segs, variant, machine, cores))


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
        return busy_s / (horizon * servers) if horizon > 0 else 0.0

    op_s = _total(costs, "op_ns") * _NS
    ctx_s = _total(costs, "ctx_ns") * _NS
    reaper_busy = tot[engine.A_REAPER] * _NS
    cpu_busy = tot[engine.A_CPU] * _NS
    hold = run.lock_hold_ns * _NS
    wait = run.lock_wait_ns * _NS
    fields: dict[str, Any] = {
        "wall_s": wall,
        "user_s": tot[engine.A_USER] * _NS,
        "sys_s": tot[engine.A_SYS] * _NS,
        "reaper_busy_s": reaper_busy,
        "reaper_util": util(reaper_busy, machine.reapers),
    }
    for lk, name in enumerate(LOCKS):
        sl = slice(lk, None) if name == "vnode" else slice(lk, lk + 1)
        fields[f"{name}_hold_s"] = float(hold[sl].sum())
        fields[f"{name}_wait_s"] = float(wait[sl].sum())
        fields[f"{name}_util"] = util(float(hold[sl].max(initial=0.0)), 1)
    fields.update(
        {
            "cpu_util": util(cpu_busy, cores),
            "cpu_idle_s": max(cores * horizon - cpu_busy, 0.0),
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
    )
    for i, op in enumerate(OPS):
        fields[f"op_{op.lower()}_s"] = float(op_s[i])
    clean: dict[str, Any] = {
        k: (float(v) if isinstance(v, np.floating) else v) for k, v in fields.items()
    }
    return PointResult(**clean)
