"""Operational laws (DESIGN.md section 6) checked on simulated runs.

Each law is computed from the run's own event log (per-process timestamps), independently of
the metric reductions in exitcore.simulate.
"""

from __future__ import annotations

import numpy as np
import pytest

from exitcore import engine as E
from exitcore import presets
from exitcore.machine import MachineProfile
from exitcore.mix import MixParams, generate
from exitcore.result import OPS
from exitcore.simulate import PointParams, build_segments, simulate, teardown_for
from exitcore.variant import VARIANTS

PRESET_MACHINES = presets.load_all("machine")
PRESET_MIXES = presets.load_all("mix")
PRESET_VARIANTS = presets.load_all("variant")

M2 = MachineProfile.from_dict(PRESET_MACHINES["arm64_m2"])
BUILD = {
    **PRESET_MIXES["kernel_build"],
    "processes": 300,
    "address_space_templates": 32,
    "serial_tail": 0,
}
FORK = {**PRESET_MIXES["fork_exit"], "processes_per_slot": 50}


def logged_run(mix: dict, variant: str, cores: int, seed: int = 0) -> tuple:
    w = generate(MixParams.from_dict(mix), cores, np.random.default_rng(seed))
    v = VARIANTS[variant]
    costs = teardown_for(w, v, M2, cores)
    segs = build_segments(w, costs)
    run = E.run(
        M2.siblings(cores), M2.smt_speed, segs.seg_ptr, segs.seg_kind, segs.seg_work_ns,
        segs.exit_first, segs.rseg_ptr, segs.rseg_kind, segs.rseg_work_ns,
        v.notify_from_exit, w.phase_ptr, w.phase_slots, 1,
    )  # fmt: skip
    return w, segs, run


def point(mix: dict, variant: str, cores: int, seed: int = 0):  # type: ignore[no-untyped-def]
    p = PointParams.from_dicts(PRESET_MACHINES["arm64_m2"], mix, PRESET_VARIANTS[variant], cores)
    return simulate(p, np.random.default_rng(seed))


@pytest.mark.parametrize("cores", [8, 64])
def test_throughput_bounded_by_reaper_demand(cores: int) -> None:
    _, segs, run = logged_run(FORK, "baseline", cores)
    n = run.times_ns.shape[0]
    d_reaper = segs.rseg_work_ns.sum() / n  # reaper work per exit, ns
    x = n / run.totals_ns[E.A_WALL]
    assert x <= 1.0 / d_reaper
    if cores == 64:
        # 64 chains of fork+exit: the single reaper is the bottleneck, the bound is nearly met
        assert x >= 0.8 / d_reaper


@pytest.mark.parametrize(("mix", "cores"), [(BUILD, 8), (FORK, 4), (BUILD, 32)])
def test_throughput_bounded_by_slots_over_cycle_demand(mix: dict, cores: int) -> None:
    w, segs, run = logged_run(mix, "baseline", cores)
    n = run.times_ns.shape[0]
    own = np.add.reduceat(segs.seg_work_ns, segs.seg_ptr[:-1])  # CPU work and blocked time
    reaper = np.zeros(n)
    has_job = np.diff(segs.rseg_ptr) > 0
    reaper[has_job] = np.add.reduceat(segs.rseg_work_ns, segs.rseg_ptr[:-1][has_job])
    cycle = own + reaper  # the parent waits for the reaper
    slots = int(w.phase_slots[0])
    x = n / run.totals_ns[E.A_WALL]
    assert x <= slots / cycle.mean() * (1 + 1e-12)


def time_average(starts: np.ndarray, ends: np.ndarray, horizon: float) -> float:
    """Mean number of intervals open over [0, horizon], by sweeping the sorted events."""
    t = np.concatenate([starts, ends])
    step = np.concatenate([np.ones_like(starts), -np.ones_like(ends)])
    order = np.argsort(t, kind="stable")
    t, step = t[order], step[order]
    level = np.cumsum(step)
    widths = np.diff(np.append(t, horizon))
    return float(np.sum(level * widths) / horizon)


@pytest.mark.parametrize(("mix", "cores"), [(BUILD, 8), (FORK, 32)])
def test_littles_law_on_the_reaper_queue(mix: dict, cores: int) -> None:
    _, _, run = logged_run(mix, "baseline", cores)
    t = run.times_ns
    horizon = run.totals_ns[E.A_HORIZON]
    arrive, start = t[:, E.T_EXIT_END], t[:, E.T_REAP_START]
    queue_len = time_average(arrive, start, horizon)
    throughput = t.shape[0] / horizon
    wait = float(np.mean(start - arrive))
    assert wait > 0  # the queue is not trivially empty
    assert queue_len == pytest.approx(throughput * wait, rel=1e-9)
    # and for the whole system of zombies (queue + service)
    in_system = time_average(arrive, t[:, E.T_REAP_END], horizon)
    assert in_system == pytest.approx(throughput * np.mean(t[:, E.T_REAP_END] - arrive))


@pytest.mark.parametrize("variant", sorted(PRESET_VARIANTS))
@pytest.mark.parametrize(("mix", "cores"), [(BUILD, 4), (BUILD, 16), (FORK, 32)])
def test_utilisations_in_unit_interval_and_busy_within_capacity(
    variant: str, mix: dict, cores: int
) -> None:
    r = point(mix, variant, cores)
    for name in ("reaper_util", "klock_util", "cpu_util"):
        assert 0.0 <= getattr(r, name) <= 1.0, name
    # busy time <= horizon x servers; charged CPU time <= wall x cores (parents wait for the
    # last notification, the reaper may finish after it)
    horizon = r.reaper_busy_s / r.reaper_util if r.reaper_util > 0 else r.wall_s
    assert r.user_s + r.sys_s + r.reaper_busy_s <= cores * max(horizon, r.wall_s) * (1 + 1e-12)
    assert r.klock_hold_s <= max(horizon, r.wall_s)


def test_cpu_time_is_conserved() -> None:
    _, segs, run = logged_run(BUILD, "baseline", 8)
    tot = run.totals_ns
    # every CPU-second is user, sys (work or spin) or reaper, and no work is lost
    assert tot[E.A_USER] + tot[E.A_SYS] + tot[E.A_REAPER] == pytest.approx(tot[E.A_CPU])
    cpu_work = segs.seg_work_ns[segs.seg_kind != E.BLOCK].sum() + segs.rseg_work_ns.sum()
    spin = tot[E.A_KL_WAIT] + tot[E.A_PQ_WAIT]
    assert tot[E.A_CPU] == pytest.approx(cpu_work + spin, rel=1e-9)


def op_seconds(r) -> np.ndarray:  # type: ignore[no-untyped-def]
    return np.array([getattr(r, f"op_{op.lower()}_s") for op in OPS])


def test_moving_ops_between_contexts_conserves_work() -> None:
    base = point(BUILD, "baseline", 8)
    uvm = point(BUILD, "uvm_purge", 8)  # same ops, X1-X4 and X6 moved into exit
    np.testing.assert_allclose(op_seconds(uvm), op_seconds(base), rtol=1e-12)
    assert uvm.ctx_exit_s > 0 and uvm.ctx_reaper_s < base.ctx_reaper_s
    total = base.ctx_exit_s + base.ctx_exit_klock_s + base.ctx_reaper_s
    assert uvm.ctx_exit_s + uvm.ctx_exit_klock_s + uvm.ctx_reaper_s == pytest.approx(total)
    # no SMT on the M2: the same user work (summed in a different event order)
    assert uvm.user_s == pytest.approx(base.user_s, rel=1e-12)


def test_removed_ops_are_the_only_difference() -> None:
    base = op_seconds(point(BUILD, "baseline", 8))
    deact = op_seconds(point(BUILD, "pmap_deactivate", 8))
    removed = [OPS.index("X2"), OPS.index("X4")]
    kept = [i for i in range(len(OPS)) if i not in removed]
    np.testing.assert_allclose(deact[kept], base[kept], rtol=1e-12)
    assert np.all(deact[removed] == 0) and np.all(base[removed] > 0)
