"""The fast engine against the plain SimPy reference on small random workloads."""

from __future__ import annotations

import numpy as np
import pytest
from reference_sim import reference_run

from exitcore import engine as E
from exitcore import presets
from exitcore.machine import MachineProfile
from exitcore.mix import MixParams, generate
from exitcore.simulate import build_segments, engine_inputs, reduce_run, teardown_for
from exitcore.variant import VARIANTS


def random_workload(seed: int) -> dict:
    """Random segments with continuous durations (no exact ties between independent events):
    two to five locks of every kind (wake-all sleeping locks on half the seeds), SMT on half
    the seeds, one or two reapers."""
    rng = np.random.default_rng(seed)
    n_locks = int(rng.integers(2, 6))
    lock_kinds = rng.integers(0, 2, size=n_locks).astype(np.int8)
    lock_kinds[:2] = (E.SPIN, E.SLEEP)  # always at least one of each
    body_kinds = [E.USER, E.SYS, E.BLOCK, *(E.locked(k) for k in range(n_locks))]
    exit_kinds = [E.SYS, *(E.locked(k) for k in range(n_locks))]
    n_proc = int(rng.integers(5, 40))
    n_threads = int(rng.integers(1, 7))
    smt = (seed % 2 == 0 or bool(rng.integers(0, 2))) and n_threads >= 2
    sibling = np.full(n_threads, -1, np.int64)
    if smt:
        half = n_threads // 2
        sibling[:half] = np.arange(half) + half
        sibling[half : 2 * half] = np.arange(half)
    kinds, works, ptr, exit_first = [], [], [0], []
    for _ in range(n_proc):
        n_body = int(rng.integers(1, 8))
        body = rng.choice(body_kinds, size=n_body)
        ex = rng.choice(exit_kinds, size=int(rng.integers(1, 4)))
        seq = np.concatenate([body, ex]).astype(np.int16)
        kinds.append(seq)
        works.append(rng.exponential(1000.0, size=seq.size) + 1.0)
        exit_first.append(ptr[-1] + n_body)
        ptr.append(ptr[-1] + seq.size)
    rkinds, rworks, rptr = [], [], [0]
    for _ in range(n_proc):
        k = int(rng.integers(0, 4))
        rk = rng.choice(exit_kinds, size=k).astype(np.int16)
        rkinds.append(rk)
        rworks.append(rng.exponential(500.0, size=k) + 1.0)
        rptr.append(rptr[-1] + k)
    seg_kind, seg_work = np.concatenate(kinds), np.concatenate(works)
    # system segments carrying user time on half the seeds (as the layout's gaps do)
    users = np.where(seg_kind == E.SYS, seg_work * rng.uniform(0.0, 1.0, seg_work.size), 0.0)
    # merged acquisitions on three seeds of five: locked segments flagged merged at random, and
    # per process the locks it runs into between them at a spacing of about a segment
    merged = seed % 5 in (0, 2, 4)
    rseg_kind = np.concatenate(rkinds)
    rseg_work = np.concatenate(rworks)
    gap_lock = np.tile(np.arange(n_locks, dtype=np.int64), (n_proc, 1))
    gap_ns = np.where(
        rng.uniform(size=(n_proc, n_locks)) < 0.6, rng.exponential(800.0, (n_proc, n_locks)), 0.0
    )
    n_phase = int(rng.integers(1, 4))
    cuts = np.sort(rng.choice(np.arange(1, n_proc), size=n_phase - 1, replace=False))
    phase_ptr = np.concatenate(([0], cuts, [n_proc])).astype(np.int64)
    w = {
        "sibling": sibling,
        "smt_speed": float(rng.uniform(0.5, 1.0)),
        "seg_ptr": np.asarray(ptr, np.int64),
        "seg_kind": seg_kind,
        "seg_work_ns": seg_work,
        "exit_first": np.asarray(exit_first, np.int64),
        "rseg_ptr": np.asarray(rptr, np.int64),
        "rseg_kind": rseg_kind,
        "rseg_work_ns": rseg_work,
        "notify_from_exit": bool(rng.integers(0, 2)),
        "phase_ptr": phase_ptr,
        "phase_slots": rng.integers(1, 6, size=n_phase).astype(np.int64),
        "n_reapers": 2 if seed % 3 == 0 else int(rng.integers(1, 3)),
        "lock_kinds": lock_kinds,
        # hold growth per queued waiter on a third of the seeds (spin locks only, as simulate)
        "lock_growth": np.where(lock_kinds == E.SPIN, rng.uniform(0.0, 0.3), 0.0)
        if seed % 3 == 1
        else None,
        # processes sharing reaper-job rows (as processes sharing an address space do)
        "reaper_rows": rng.integers(0, n_proc, n_proc) if seed % 4 == 2 else None,
        "seg_user_ns": users if seed % 2 == 1 else None,
        # sleeping-lock waiters spin first on two seeds of five (about a mean hold), one of
        # them with merged acquisitions (their budget scales with the real ones they stand for)
        "rw_spin_ns": float(rng.uniform(200.0, 2000.0)) if seed % 5 in (1, 2) else 0.0,
        # the real hold of each acquisition: its work, or a fraction of it (merged)
        "seg_real_ns": seg_work
        * np.where(
            rng.uniform(size=seg_work.size) < 0.6, rng.uniform(0.01, 1.0, seg_work.size), 1.0
        )
        * (seg_kind >= E.LOCKED)
        if merged
        else None,
        "rseg_real_ns": rseg_work
        * np.where(
            rng.uniform(size=rseg_kind.size) < 0.5, rng.uniform(0.01, 1.0, rseg_kind.size), 1.0
        )
        * (rseg_kind >= E.LOCKED)
        if merged
        else None,
        "gap_lock": gap_lock if merged else None,
        "gap_ns": gap_ns if merged else None,
    }
    if seed % 4 in (1, 2):
        # wake-all releases: lock 1 on one seed of four, other sleeping locks at random (drawn
        # last, so the draws above do not depend on it)
        kinds = lock_kinds.copy()
        all_ = (kinds == E.SLEEP) & (rng.uniform(size=n_locks) < 0.5)
        all_[1] = seed % 4 == 1
        kinds[all_] = E.SLEEP_ALL
        w["lock_kinds"] = kinds
        w["rw_wake_ns"] = float(rng.uniform(100.0, 1500.0))
    return w


def run_engine(w: dict) -> E.EngineRun:
    return E.run(**w)


@pytest.mark.parametrize("seed", range(80))
def test_engine_matches_reference(seed: int) -> None:
    w = random_workload(seed)
    fast = run_engine(w)
    ref = reference_run(**w)
    for field in ("times_ns", "totals_ns", "lock_hold_ns", "lock_wait_ns", "lock_acquisitions"):
        np.testing.assert_allclose(
            getattr(fast, field), getattr(ref, field), rtol=1e-9, atol=1e-6, err_msg=field
        )


def test_random_workloads_exercise_sleeping_and_spinning_waits() -> None:
    """The differential test is only as good as its inputs: every kind of lock is contended,
    and wake-all releases cost re-checks (the system time they add over wake-one)."""
    waits = dict.fromkeys((E.SPIN, E.SLEEP, E.SLEEP_ALL), 0.0)
    rechecked = 0
    for seed in range(80):
        w = random_workload(seed)
        run = run_engine(w)
        for kind in waits:
            waits[kind] += run.lock_wait_ns[w["lock_kinds"] == kind].sum()
        if (w["lock_kinds"] == E.SLEEP_ALL).any():
            one = run_engine({**w, "lock_kinds": np.minimum(w["lock_kinds"], E.SLEEP)})
            rechecked += run.totals_ns[E.A_SYS] != one.totals_ns[E.A_SYS]
    assert all(v > 0 for v in waits.values()), waits
    assert rechecked >= 5


def test_spin_timeouts_left_behind_beyond_the_heap_s_room() -> None:
    """B's first spin stands for 100 real acquisitions (a budget of 100 spins) and is granted at
    once; each of its next 40 single spins ends before that one's timeout and queues its own:
    up to 41 timeouts at once, more than the heap's room for one per entity, so it grows. Every
    eighth of A's holds is longer than a spin budget: B's spin behind it times out on time, not
    at the long budget's timeout left behind."""
    sl = E.locked(1)
    a = [(sl, 5000.0 if i % 8 == 7 else 50.0) for i in range(40)]
    a = [seg for hold in a for seg in (hold, (E.SYS, 10.0))]
    b = [(E.SYS, 5.0), (sl, 500.0)] + [(E.SYS, 3.0), (sl, 5.0)] * 40
    kinds = np.array([k for k, _ in a + b], np.int16)
    works = np.array([w for _, w in a + b])
    real = np.where(kinds >= E.LOCKED, works, 0.0)
    real[len(a) + 1] = 5.0  # B's first hold stands for 100 acquisitions
    w = {
        "sibling": np.full(2, -1, np.int64), "smt_speed": 1.0,
        "seg_ptr": np.array([0, len(a), len(a) + len(b)]), "seg_kind": kinds, "seg_work_ns": works,
        "exit_first": np.array([len(a), len(a) + len(b)]), "rseg_ptr": np.zeros(3, np.int64),
        "rseg_kind": np.zeros(0, np.int16), "rseg_work_ns": np.zeros(0),
        "notify_from_exit": True, "phase_ptr": np.array([0, 2]), "phase_slots": np.array([2]),
        "n_reapers": 1, "lock_kinds": np.array([E.SPIN, E.SLEEP], np.int8),
        "rw_spin_ns": 1000.0, "seg_real_ns": real, "rseg_real_ns": np.zeros(0),
        "gap_lock": np.zeros((2, 2), np.int64), "gap_ns": np.zeros((2, 2)),
    }  # fmt: skip
    fast, ref = run_engine(w), reference_run(**w)
    assert fast.lock_wait_ns[1] > 0  # B did wait
    assert 0 < fast.totals_ns[E.A_CPU] - fast.totals_ns[E.A_USER] - works.sum() < 5 * 1000.0
    for field in ("times_ns", "totals_ns", "lock_hold_ns", "lock_wait_ns", "lock_acquisitions"):
        np.testing.assert_allclose(
            getattr(fast, field), getattr(ref, field), rtol=1e-9, atol=1e-6, err_msg=field
        )


@pytest.mark.parametrize(
    ("machine", "mix", "variant", "cores", "seed"),
    [
        ("arm64_m2", "kernel_build", "baseline", 4, 0),
        ("arm64_altra80", "kernel_build", "baseline_2024", 16, 4),
        ("amd64_ryzen8845", "kernel_build", "pmap_deactivate", 12, 1),
        ("arm64_m2", "fork_exit", "rip_reaper", 6, 2),
        ("amd64_ryzen8845", "configure", "linux_fullmm", 3, 3),
    ],
)
def test_point_metrics_match_reference(
    machine: str, mix: str, variant: str, cores: int, seed: int
) -> None:
    """Real mixes through both loops, reduced to PointResult metrics."""
    small = {**presets.load("mix", mix), "address_space_templates": 8}
    if small["processes_per_slot"] == 0:
        small["processes"] = 60
    else:
        small["processes_per_slot"] = 5
    m = MachineProfile.from_dict(presets.load("machine", machine))
    v = VARIANTS[variant]
    w = generate(MixParams.from_dict(small), cores, np.random.default_rng(seed))
    costs = teardown_for(w, v, m, cores)
    s = build_segments(w, costs, v, m)
    inputs = engine_inputs(w, s, v, m, cores)
    fast = reduce_run(run_engine(inputs), costs, v, m, cores).as_dict()
    ref = reduce_run(reference_run(**inputs), costs, v, m, cores).as_dict()
    assert fast.keys() == ref.keys()
    for key, value in fast.items():
        assert value == pytest.approx(ref[key], rel=1e-9, abs=1e-12), key
