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
from exitcore.simulate import PointParams, build_segments, run_engine, simulate, teardown_for
from exitcore.variant import VARIANTS

PRESET_MACHINES = presets.load_all("machine")
PRESET_MIXES = presets.load_all("mix")
PRESET_VARIANTS = presets.load_all("variant")

# without hold growth (a contended lock's stretched holds are work no segment states) and with
# sleeping-lock waiters that sleep at once (their spinning is no lock's spin-lock wait)
M2 = MachineProfile.from_dict(
    {**PRESET_MACHINES["arm64_m2"], "lock_hold_growth": 0.0, "rw_spin_us": 0.0}
)
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
    segs = build_segments(w, costs, v, M2)
    run = run_engine(w, segs, v, M2, cores)
    return w, segs, run


def reaper_work(segs) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Reaper work of each process (ns): its job's row of the reaper layout."""
    per_row = np.zeros(segs.rseg_ptr.shape[0] - 1)
    rows = np.repeat(np.arange(per_row.shape[0]), np.diff(segs.rseg_ptr))
    np.add.at(per_row, rows, segs.rseg_work_ns)
    return per_row[segs.reaper_rows]


def point(mix: dict, variant: str, cores: int, seed: int = 0):  # type: ignore[no-untyped-def]
    p = PointParams(M2, MixParams.from_dict(mix), VARIANTS[variant], cores)
    return simulate(p, np.random.default_rng(seed))


@pytest.mark.parametrize("cores", [8, 64])
def test_throughput_bounded_by_reaper_demand(cores: int) -> None:
    _, segs, run = logged_run(FORK, "baseline", cores)
    n = run.times_ns.shape[0]
    d_reaper = reaper_work(segs).sum() / n  # reaper work per exit, ns
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
    reaper = reaper_work(segs)
    cycle = own + reaper  # the parent waits for the reaper
    slots = int(w.phase_slots[0])
    x = n / run.totals_ns[E.A_WALL]
    assert x <= slots / cycle.mean() * (1 + 1e-12)


@pytest.mark.parametrize(("mix", "cores"), [(BUILD, 8), (FORK, 32)])
def test_reaper_busy_time_matches_its_jobs_event_times(mix: dict, cores: int) -> None:
    """The reaper's busy time is accumulated segment by segment; its jobs' start and end times
    are recorded separately. A reaper holds its thread through a job unless it sleeps on a lock,
    so the busy time is the jobs' span less the reaper's sleeping waits."""
    _, segs, run = logged_run(mix, "baseline", cores)
    t = run.times_ns
    span = float(np.sum(t[:, E.T_REAP_END] - t[:, E.T_REAP_START]))
    assert span > 0
    assert run.totals_ns[E.A_REAPER] <= span * (1 + 1e-12)
    # the work it did is at least the work it was given (no SMT on the M2: speed 1)
    assert run.totals_ns[E.A_REAPER] >= reaper_work(segs).sum() * (1 - 1e-12)


@pytest.mark.parametrize(("mix", "cores"), [(BUILD, 8), (BUILD, 32), (FORK, 32)])
def test_cpu_time_is_conserved(mix: dict, cores: int) -> None:
    """user, sys and reaper seconds are accumulated where they are spent; thread-held time is
    accumulated on its own. Every held CPU-second is one of the three, and it is the input work
    plus the spinning (no SMT on the M2)."""
    _, segs, run = logged_run(mix, "baseline", cores)
    tot = run.totals_ns
    assert tot[E.A_USER] + tot[E.A_SYS] + tot[E.A_REAPER] == pytest.approx(tot[E.A_CPU], rel=1e-9)
    spin = run.lock_wait_ns[segs.lock_kinds == E.SPIN].sum()
    cpu_work = segs.seg_work_ns[segs.seg_kind != E.BLOCK].sum() + reaper_work(segs).sum()
    assert tot[E.A_CPU] == pytest.approx(cpu_work + spin, rel=1e-9)
    assert spin > 0  # the build contends: the check covers spinning too
    # with hold growth the stretched holds come on top, and only then
    grown = MachineProfile.from_dict({**PRESET_MACHINES["arm64_m2"], "lock_hold_growth": 0.05})
    w = generate(MixParams.from_dict(mix), cores, np.random.default_rng(0))
    v = VARIANTS["baseline"]
    gsegs = build_segments(w, teardown_for(w, v, grown, cores), v, grown)
    grun = run_engine(w, gsegs, v, grown, cores)
    gspin = grun.lock_wait_ns[gsegs.lock_kinds == E.SPIN].sum()
    assert grun.totals_ns[E.A_CPU] > (cpu_work + gspin) * (1 + 1e-9)
    # a sleeping lock's waiter that spins first adds at most its wait, and some of it
    spinner = MachineProfile.from_dict({**M2.to_dict(), "rw_spin_us": 3.0})
    ssegs = build_segments(w, teardown_for(w, v, spinner, cores), v, spinner)
    srun = run_engine(w, ssegs, v, spinner, cores)
    scpu = srun.totals_ns[E.A_CPU]
    extra = scpu - cpu_work - srun.lock_wait_ns[ssegs.lock_kinds == E.SPIN].sum()
    slept = srun.lock_wait_ns[ssegs.lock_kinds == E.SLEEP].sum()
    assert -1e-9 * scpu <= extra <= slept + 1e-9 * scpu
    assert extra > 1e-9 * scpu or slept == 0.0
    # and no CPU is held longer than the run lasts
    assert tot[E.A_CPU] <= cores * tot[E.A_HORIZON]


@pytest.mark.parametrize("variant", sorted(PRESET_VARIANTS))
@pytest.mark.parametrize(("mix", "cores"), [(BUILD, 4), (BUILD, 16), (FORK, 32)])
def test_utilisations_within_capacity(variant: str, mix: dict, cores: int) -> None:
    """Utilisations are not clamped: a busy time beyond the horizon shows up here."""
    r = point(mix, variant, cores)
    for name in ("reaper", "klock", "schedlock", "fpageq", "pageq", "kmmap", "vnode", "cpu"):
        assert 0.0 <= getattr(r, f"{name}_util") <= 1.0 + 1e-12, name
    assert r.cpu_idle_s >= 0.0


def op_seconds(r) -> np.ndarray:  # type: ignore[no-untyped-def]
    return np.array([getattr(r, f"op_{op.lower()}_s") for op in OPS])


def event_loop_work(mix: dict, variant: str, cores: int) -> float:
    """CPU-seconds the event loop spent, less its spinning: the work it was given."""
    _, segs, run = logged_run(mix, variant, cores)
    tot = run.totals_ns
    spin = run.lock_wait_ns[segs.lock_kinds == E.SPIN].sum()
    return float(tot[E.A_USER] + tot[E.A_SYS] + tot[E.A_REAPER] - spin)


def test_moving_ops_between_contexts_conserves_work_in_the_event_loop() -> None:
    """uvm_purge runs the same ops as baseline, in other contexts: the event loop does the same
    work (its CPU-seconds less spinning), however differently it queues."""
    base = event_loop_work(BUILD, "baseline", 8)
    uvm = event_loop_work(BUILD, "uvm_purge", 8)
    assert uvm == pytest.approx(base, rel=1e-9)


def test_removed_ops_are_the_only_difference_in_the_event_loop() -> None:
    """pmap_deactivate drops X2 and X4 (and moves X3, X5, X7): the event loop's work differs
    from baseline's by exactly those two ops."""
    base = point(BUILD, "baseline", 8)
    deact = point(BUILD, "pmap_deactivate", 8)
    removed_s = base.op_x2_s + base.op_x4_s - deact.op_x2_s - deact.op_x4_s
    assert removed_s > 0 and deact.op_x2_s == 0 and deact.op_x4_s == 0
    diff_s = event_loop_work(BUILD, "baseline", 8) - event_loop_work(BUILD, "pmap_deactivate", 8)
    assert diff_s * 1e-9 == pytest.approx(removed_s, rel=1e-9)
