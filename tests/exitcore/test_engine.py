"""The event loop on hand-built workloads whose timings follow from first principles."""

from __future__ import annotations

import numpy as np
import pytest

from exitcore import engine as E

KL = E.locked(0)  # lock 0: a spin lock standing for KERNEL_LOCK
PQ = E.locked(1)  # lock 1: another spin lock
SL = E.locked(2)  # lock 2: a sleeping lock
KINDS = np.array([E.SPIN, E.SPIN, E.SLEEP], np.int8)


def run(
    procs: list[list[tuple[int, float]]],
    *,
    threads: int = 1,
    sibling: list[int] | None = None,
    smt_speed: float = 1.0,
    reaper: list[list[tuple[int, float]]] | None = None,
    exit_at: list[int] | None = None,
    notify_from_exit: bool = False,
    phases: list[tuple[int, int]] | None = None,
    reapers: int = 1,
    lock_kinds: np.ndarray = KINDS,
    rw_spin_ns: float = 0.0,
    rw_wake_ns: float = 0.0,
    real: list[list[float]] | None = None,
    gaps: list[dict[int, float]] | None = None,
) -> E.EngineRun:
    """procs[p] = [(kind, work_ns), ...]; phases = [(n_procs, slots), ...]; real[p]: the real
    hold of each of p's segments (below its work: merged); gaps[p]: lock -> p's spacing of its
    real acquisitions of that lock."""
    seg_ptr = np.concatenate(([0], np.cumsum([len(p) for p in procs])))
    kinds = np.array([k for p in procs for k, _ in p], np.int16)
    works = np.array([w for p in procs for _, w in p], float)
    exit_first = seg_ptr[1:] if exit_at is None else seg_ptr[:-1] + np.asarray(exit_at)
    reaper = reaper or [[] for _ in procs]
    rptr = np.concatenate(([0], np.cumsum([len(r) for r in reaper])))
    rkinds = np.array([k for r in reaper for k, _ in r], np.int16)
    rworks = np.array([w for r in reaper for _, w in r], float)
    phases = phases or [(len(procs), threads)]
    phase_ptr = np.concatenate(([0], np.cumsum([n for n, _ in phases])))
    sib = np.full(threads, -1) if sibling is None else np.asarray(sibling)
    merged: dict[str, np.ndarray | None] = dict.fromkeys(
        ("seg_real_ns", "rseg_real_ns", "gap_lock", "gap_ns")
    )
    if real is not None:
        merged["seg_real_ns"] = np.array([h for row in real for h in row], float)
        merged["rseg_real_ns"] = np.zeros(rkinds.size)
        n_locks = len(lock_kinds)
        merged["gap_lock"] = np.tile(np.arange(n_locks), (len(procs), 1))
        merged["gap_ns"] = np.array(
            [
                [(gaps[p] if gaps else {}).get(k, 0.0) for k in range(n_locks)]
                for p in range(len(procs))
            ]
        )
    return E.run(
        sib,
        smt_speed,
        seg_ptr,
        kinds,
        works,
        exit_first,
        rptr,
        rkinds,
        rworks,
        notify_from_exit,
        phase_ptr,
        np.array([s for _, s in phases]),
        reapers,
        lock_kinds,
        rw_spin_ns=rw_spin_ns,
        rw_wake_ns=rw_wake_ns,
        **merged,  # type: ignore[arg-type]
    )


def test_one_process_alone() -> None:
    r = run([[(E.USER, 100.0), (E.SYS, 30.0), (KL, 20.0)]], reaper=[[(E.SYS, 50.0)]])
    tot = r.totals_ns
    assert tot[E.A_USER] == 100.0 and tot[E.A_SYS] == 50.0
    assert tot[E.A_REAPER] == 50.0 and r.lock_hold_ns[0] == 20.0 and r.lock_wait_ns[0] == 0.0
    assert r.lock_acquisitions.tolist() == [1, 0, 0]
    # the parent hears of it once the reaper is done
    assert tot[E.A_WALL] == 200.0
    assert list(r.times_ns[0]) == [0.0, 150.0, 150.0, 150.0, 200.0, 200.0]


def test_notify_from_exit_does_not_wait_for_the_reaper() -> None:
    r = run([[(E.USER, 100.0)]], reaper=[[(E.SYS, 50.0)]], notify_from_exit=True)
    assert r.times_ns[0, E.T_NOTIFY] == 100.0
    assert r.totals_ns[E.A_WALL] == 100.0 and r.totals_ns[E.A_HORIZON] == 150.0


def test_kernel_lock_is_a_fifo_mutex_and_spinning_is_sys_time() -> None:
    # three processes take KERNEL_LOCK for 10 ns at t=0 on three CPUs: waits 0, 10, 20
    r = run([[(KL, 10.0)]] * 3, threads=3)
    tot = r.totals_ns
    assert r.lock_wait_ns[0] == 30.0
    assert tot[E.A_SYS] == 30.0 + 30.0  # held + spun
    assert sorted(r.times_ns[:, E.T_EXIT_END]) == [10.0, 20.0, 30.0]


def test_page_queue_lock_is_independent_of_kernel_lock() -> None:
    r = run([[(KL, 10.0)], [(PQ, 10.0)]], threads=2)
    assert r.lock_wait_ns.tolist() == [0.0, 0.0, 0.0]
    assert r.totals_ns[E.A_WALL] == 10.0


def test_a_sleeping_waiter_gives_its_cpu_to_the_next_runnable() -> None:
    # two CPUs, three processes. P0 holds the sleeping lock 0..100; P1 computes 10 (system
    # time: no scheduling point), asks for it and sleeps, so P2 (waiting since t=0) runs 10..90
    # on P1's CPU. At 100 P1 is granted the lock, finds P2's CPU free and holds it 100..150.
    procs = [[(SL, 100.0)], [(E.SYS, 10.0), (SL, 50.0)], [(E.USER, 80.0)]]
    r = run(procs, threads=2, phases=[(3, 3)])
    assert r.times_ns[:, E.T_EXIT_END].tolist() == [100.0, 150.0, 90.0]
    assert r.lock_wait_ns[2] == 90.0  # asleep 10..100: neither user nor sys
    assert r.totals_ns[E.A_USER] == 80.0 and r.totals_ns[E.A_SYS] == 160.0
    assert r.totals_ns[E.A_CPU] == 240.0 and r.lock_hold_ns[2] == 150.0
    # the same with a spin lock: P1 keeps its CPU, P2 waits for P0's
    spun = run(
        [[(KL, 100.0)], [(E.SYS, 10.0), (KL, 50.0)], [(E.USER, 80.0)]], threads=2, phases=[(3, 3)]
    )
    assert spun.times_ns[:, E.T_EXIT_END].tolist() == [100.0, 150.0, 180.0]
    assert spun.totals_ns[E.A_SYS] == 160.0 + 90.0  # held + spun
    assert spun.lock_wait_ns[0] == 90.0


def test_a_granted_sleeper_holds_the_lock_while_it_waits_for_a_cpu() -> None:
    # two CPUs; P2 and P3 wait in the run queue from t=0. P1 sleeps on the lock at 10 (P2
    # takes its CPU). At 50 P0 lets go: P1 is granted the lock and queues behind P3, which gets
    # P0's CPU and runs 50..150; P1 runs its 20 ns at 150..170 and holds the lock 50..170.
    procs = [[(SL, 50.0)], [(E.SYS, 10.0), (SL, 20.0)], [(E.USER, 200.0)], [(E.USER, 100.0)]]
    r = run(procs, threads=2, phases=[(4, 4)])
    assert r.times_ns[:, E.T_EXIT_END].tolist() == [50.0, 170.0, 210.0, 150.0]
    assert r.lock_wait_ns[2] == 40.0 and r.lock_hold_ns[2] == 50.0 + 120.0
    assert r.lock_acquisitions[2] == 2
    assert r.totals_ns[E.A_SYS] == 80.0 and r.totals_ns[E.A_USER] == 300.0
    assert r.totals_ns[E.A_CPU] == 380.0


def test_a_reaper_sleeping_on_a_lock_gives_its_cpu_up_and_is_not_busy() -> None:
    # two CPUs. P0 holds the sleeping lock 0..100; P1 exits at 20, and its reaper job queues
    # behind P2 (waiting since 0), which runs 20..70 on P1's CPU. The reaper then asks for the
    # lock, sleeps 70..100 (its CPU idle), is granted and runs 100..105.
    procs = [[(SL, 100.0)], [(E.SYS, 20.0)], [(E.USER, 50.0)]]
    reaper = [[], [(SL, 5.0)], []]
    r = run(procs, threads=2, reaper=reaper, phases=[(3, 3)])
    assert r.times_ns[1, E.T_REAP_START] == 70.0 and r.times_ns[1, E.T_REAP_END] == 105.0
    assert r.times_ns[2, E.T_EXIT_END] == 70.0
    assert r.totals_ns[E.A_REAPER] == 5.0  # asleep is not busy
    assert r.lock_wait_ns[2] == 30.0
    assert r.totals_ns[E.A_CPU] == 100.0 + 20.0 + 50.0 + 5.0


def test_reaper_needs_a_core() -> None:
    # one CPU: process 0 exits at 100 and queues a 50 ns reaper job, but process 1 has been
    # waiting in the run queue since t=0, so the reaper runs only after process 1 exits at 300
    r = run(
        [[(E.USER, 100.0)], [(E.USER, 200.0)]],
        reaper=[[(E.SYS, 50.0)], [(E.SYS, 50.0)]],
        phases=[(2, 2)],
    )
    t = r.times_ns
    assert t[0, E.T_EXIT_END] == 100.0 and t[1, E.T_EXIT_END] == 300.0
    assert t[0, E.T_REAP_START] == 300.0 and t[0, E.T_REAP_END] == 350.0
    assert t[1, E.T_REAP_END] == 400.0
    assert r.totals_ns[E.A_REAPER] == 100.0
    assert r.totals_ns[E.A_CPU] == 400.0  # busy all along: work is conserved


def test_user_segment_end_is_a_scheduling_point() -> None:
    # one CPU, two processes of two 10 ns user bursts: they alternate A B A B
    r = run([[(E.USER, 10.0), (E.USER, 10.0)]] * 2, phases=[(2, 2)])
    assert list(r.times_ns[:, E.T_EXIT_END]) == [30.0, 40.0]


def test_blocked_time_holds_no_cpu() -> None:
    # one CPU: A blocks 100 then computes 10; B computes 50 meanwhile
    r = run([[(E.BLOCK, 100.0), (E.USER, 10.0)], [(E.USER, 50.0)]], phases=[(2, 2)])
    assert r.times_ns[0, E.T_EXIT_END] == 110.0 and r.times_ns[1, E.T_EXIT_END] == 50.0
    assert r.totals_ns[E.A_CPU] == 60.0 and r.totals_ns[E.A_USER] == 60.0


def test_closed_chains_start_the_next_process_on_notification() -> None:
    # two slots, four 10 ns processes on two CPUs: two waves
    r = run([[(E.USER, 10.0)]] * 4, threads=2, phases=[(4, 2)])
    assert list(r.times_ns[:, E.T_START]) == [0.0, 0.0, 10.0, 10.0]
    assert r.totals_ns[E.A_WALL] == 20.0


def test_phase_barrier_then_serial_step() -> None:
    r = run(
        [[(E.USER, 10.0)], [(E.USER, 30.0)], [(E.USER, 5.0)]],
        threads=2,
        phases=[(2, 2), (1, 1)],
    )
    assert r.times_ns[2, E.T_START] == 30.0 and r.totals_ns[E.A_WALL] == 35.0


def test_smt_siblings_both_busy_run_at_smt_speed() -> None:
    procs = [[(E.USER, 100.0)]] * 2
    both = run(procs, threads=2, sibling=[1, 0], smt_speed=0.625, phases=[(2, 2)])
    assert both.totals_ns[E.A_WALL] == pytest.approx(160.0)
    assert both.totals_ns[E.A_USER] == pytest.approx(320.0)  # time(1) charges stretched time
    # four threads on two cores: the scheduler puts the two processes on different cores
    spread = run(procs, threads=4, sibling=[2, 3, 0, 1], smt_speed=0.625, phases=[(2, 2)])
    assert spread.totals_ns[E.A_WALL] == 100.0


def test_exit_time_is_when_the_first_exit_segment_is_reached() -> None:
    r = run([[(E.USER, 10.0), (E.SYS, 5.0), (KL, 2.0)]], exit_at=[1])
    assert r.times_ns[0, E.T_EXIT] == 10.0 and r.times_ns[0, E.T_EXIT_END] == 17.0


def test_two_reapers_serve_in_parallel() -> None:
    procs = [[(E.USER, 10.0)]] * 2
    reaper = [[(E.SYS, 100.0)]] * 2
    one = run(procs, threads=4, reaper=reaper, phases=[(2, 2)])
    two = run(procs, threads=4, reaper=reaper, phases=[(2, 2)], reapers=2)
    assert one.totals_ns[E.A_WALL] == 210.0 and two.totals_ns[E.A_WALL] == 110.0


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"smt_speed": 0.0}, "smt_speed"),
        ({"n_reapers": 0}, "n_reapers"),
        ({"phase_slots": np.array([0])}, "phase_slots"),
        ({"seg_kind": np.array([E.BLOCK], np.int16)}, "seg_kind"),
        ({"rseg_kind": np.array([E.USER], np.int16)}, "rseg_kind"),
        ({"seg_kind": np.array([E.locked(3)], np.int16)}, "seg_kind"),
        ({"lock_kinds": np.array([3, 0, 0], np.int8)}, "lock_kinds"),
        ({"seg_ptr": np.array([0, 0, 1])}, "seg_ptr"),
    ],
)
def test_bad_engine_input(kw: dict, field: str) -> None:
    args = {
        "sibling": np.array([-1]),
        "smt_speed": 1.0,
        "seg_ptr": np.array([0, 1]),
        "seg_kind": np.array([E.USER], np.int16),
        "seg_work_ns": np.array([1.0]),
        "exit_first": np.array([1]),
        "rseg_ptr": np.array([0, 1]),
        "rseg_kind": np.array([E.SYS], np.int16),
        "rseg_work_ns": np.array([1.0]),
        "notify_from_exit": False,
        "phase_ptr": np.array([0, 1]),
        "phase_slots": np.array([1]),
        "n_reapers": 1,
        "lock_kinds": KINDS,
    }
    args.update(kw)
    if field == "seg_ptr":
        args["phase_ptr"] = np.array([0, 2])
        args["exit_first"] = np.array([0, 1])
    with pytest.raises(ValueError, match=field):
        E.run(**args)


@pytest.mark.parametrize(
    ("budget", "sys_b", "cpu"),
    [
        (0.0, 100.0 + 50.0, 1010.0 + 150.0),  # sleeps at once
        (300.0, 100.0 + 300.0 + 50.0, 1010.0 + 450.0),  # spins 300 ns, then sleeps
        (2000.0, 100.0 + 900.0 + 50.0, 1010.0 + 1050.0),  # granted while it spins
    ],
)
def test_a_sleeping_lock_waiter_spins_its_budget_first(
    budget: float, sys_b: float, cpu: float
) -> None:
    # A holds the sleeping lock from 0 to 1000; B asks for it at 100. With a budget B spins
    # (system time, on its thread) until the lock comes or the budget runs out; then it sleeps
    # (neither user nor sys) and takes a thread again at the grant, 1000. Either way it holds
    # the lock from 1000 to 1050.
    a = [(SL, 1000.0), (E.SYS, 10.0)]
    b = [(E.SYS, 100.0), (SL, 50.0)]
    r = run([a, b], threads=2, notify_from_exit=True, rw_spin_ns=budget)
    assert r.totals_ns[E.A_SYS] == pytest.approx(1010.0 + sys_b)
    assert r.totals_ns[E.A_CPU] == pytest.approx(cpu)
    assert r.lock_wait_ns[2] == pytest.approx(900.0)
    assert r.times_ns[1, E.T_EXIT_END] == pytest.approx(1050.0)
    assert r.totals_ns[E.A_HORIZON] == pytest.approx(1050.0)  # a timeout left behind is no event


@pytest.mark.parametrize(
    ("kind", "check", "sys_c", "cpu_c", "end_c", "hold"),
    [
        (E.SLEEP, 30.0, 250.0, 250.0, 1100.0, 1100.0),  # wake-one: C sleeps until it is granted
        (E.SLEEP_ALL, 30.0, 280.0, 280.0, 1100.0, 1100.0),  # woken at 1000, re-checks, sleeps
        (E.SLEEP_ALL, 80.0, 330.0, 330.0, 1130.0, 1130.0),  # handed the lock while re-checking
    ],
)
def test_a_wake_all_release_makes_every_sleeper_recheck(
    kind: int, check: float, sys_c: float, cpu_c: float, end_c: float, hold: float
) -> None:
    # A holds the sleeping lock from 0 to 1000; B asks at 100 and C at 200, and both sleep.
    # At 1000 the lock goes to B (the head) for 50 ns. A wake-all release also wakes C: it
    # takes a free thread at 1000 and spends ``check`` ns re-checking (system time). With 30 ns
    # it finds the lock held and sleeps again until B hands it over at 1050; with 80 ns, B's
    # release at 1050 hands it to C during the check, and C holds it from 1050 (a hold of 80 ns
    # to 1130: the check's rest and its own 50 ns).
    a = [(SL, 1000.0), (E.SYS, 10.0)]
    b = [(E.SYS, 100.0), (SL, 50.0)]
    c = [(E.SYS, 200.0), (SL, 50.0)]
    kinds = np.array([E.SPIN, E.SPIN, kind], np.int8)
    r = run([a, b, c], threads=3, notify_from_exit=True, lock_kinds=kinds, rw_wake_ns=check)
    assert r.totals_ns[E.A_SYS] == pytest.approx(1010.0 + 150.0 + sys_c)
    assert r.totals_ns[E.A_CPU] == pytest.approx(1010.0 + 150.0 + cpu_c)
    assert r.lock_wait_ns[2] == pytest.approx(900.0 + 850.0)
    assert r.lock_hold_ns[2] == pytest.approx(hold)
    assert r.times_ns[2, E.T_EXIT_END] == pytest.approx(end_c)
    assert r.lock_acquisitions[2] == 3


def test_a_wake_all_lock_needs_a_recheck_time() -> None:
    kinds = np.array([E.SPIN, E.SPIN, E.SLEEP_ALL], np.int8)
    with pytest.raises(ValueError, match="rw_wake_ns"):
        run([[(SL, 1.0)]], lock_kinds=kinds)


def test_rw_spin_budget_is_validated() -> None:
    with pytest.raises(ValueError, match="rw_spin_ns"):
        run([[(E.SYS, 1.0)]], rw_spin_ns=-1.0)


def test_a_merged_runner_meets_a_long_hold_at_its_next_real_acquisition() -> None:
    """B runs 5,000 ns of user time whose KERNEL_LOCK acquisitions are merged (one real one
    every 300 ns of its work); A holds KERNEL_LOCK for 1,000 ns of real hold from 100 to 1,100.
    B's first draw puts its next real acquisition frac(phi) = 0.618... of a spacing after 100:
    it spins from there to 1,100 and is that much later."""
    phi = (5**0.5 - 1) / 2
    hit = 100.0 + phi * 300.0
    procs = [[(E.SYS, 100.0), (KL, 1000.0)], [(E.USER, 5000.0)]]
    gaps = [{}, {0: 300.0}]
    r = run(procs, threads=2, real=[[0.0, 1000.0], [0.0]], gaps=gaps)
    assert r.times_ns[1, E.T_EXIT_END] == pytest.approx(5000.0 + 1100.0 - hit, rel=1e-12)
    assert r.totals_ns[E.A_SYS] == pytest.approx(100.0 + 1000.0 + 1100.0 - hit, rel=1e-12)
    assert r.lock_wait_ns[0] == pytest.approx(1100.0 - hit, rel=1e-12)
    # not met: a hold ending before the draw's point; real holds under half B's spacing (the
    # merged acquisitions meeting each other stand for those)
    short = run([[(E.SYS, 100.0), (KL, 150.0)], [(E.USER, 5000.0)]], threads=2,
                real=[[0.0, 150.0], [0.0]], gaps=gaps)  # fmt: skip
    merged = run(procs, threads=2, real=[[0.0, 149.0], [0.0]], gaps=gaps)
    for quiet in (short, merged):
        assert quiet.times_ns[1, E.T_EXIT_END] == 5000.0 and quiet.lock_wait_ns[0] == 0.0


def test_a_request_goes_ahead_of_merged_waiters_with_shorter_real_holds() -> None:
    """A holds lock 0 from 0 to 1,000; B asks for it at 10 with an acquisition standing for
    merged ones of 10 ns real hold each, C at 20 with one real acquisition of 100 ns: C would
    wait for one of B's short real holds, not for all of them, so it is granted first
    (1,000-1,100), then B (1,100-1,200)."""
    procs = [[(KL, 1000.0)], [(E.SYS, 10.0), (KL, 100.0)], [(E.SYS, 20.0), (KL, 100.0)]]
    r = run(procs, threads=3, real=[[1000.0], [0.0, 10.0], [0.0, 100.0]])
    assert r.times_ns[:, E.T_EXIT_END].tolist() == [1000.0, 1200.0, 1100.0]
    assert r.lock_wait_ns[0] == (1100.0 - 10.0) + (1000.0 - 20.0)
    # FIFO: B not merged; C's real hold no longer than B's; no real holds given
    for real in ([[1000.0], [0.0, 100.0], [0.0, 100.0]], [[1000.0], [0.0, 10.0], [0.0, 10.0]]):
        fifo = run(procs, threads=3, real=real)
        assert fifo.times_ns[:, E.T_EXIT_END].tolist() == [1000.0, 1100.0, 1200.0]
    assert run(procs, threads=3).times_ns[:, E.T_EXIT_END].tolist() == [1000.0, 1100.0, 1200.0]


@pytest.mark.parametrize(
    ("a_real", "work", "hold", "order"),
    [
        # A's hold is one acquisition: E waits for the rest of it either way
        (1000.0, 5.0, 5.0, "EBCD"),  # one short acquisition: would wait 30, queued at 0 ahead
        (1000.0, 40.0, 10.0, "BECD"),  # 4 acquisitions: would wait 120, queued at 100 ahead
        (1000.0, 60.0, 10.0, "BCED"),  # 6: would wait 180, queued at 200 ahead
        (1000.0, 100.0, 10.0, "BCDE"),  # 10, as many as each waiter: FIFO
        # A's hold stands for 10 acquisitions of 100: E's would each wait for 30 and the rest
        # of one of A's (50 on average), not for the 960 left of A's whole hold
        (100.0, 40.0, 10.0, "EBCD"),  # would wait 4 x 80, queued behind 960 of A
        (100.0, 100.0, 10.0, "BCDE"),  # as many as each waiter: never passes them
    ],
)
def test_a_request_is_queued_where_its_real_acquisitions_would_wait(
    a_real: float, work: float, hold: float, order: str
) -> None:
    """A holds lock 0 from 0 to 1,000 (acquisitions of ``a_real`` each). B, C and D ask for it
    at 10, 20 and 30, each with a hold of 100 standing for 10 real acquisitions of 10: they
    keep their order (none stands for more than another). E asks at 40 with ``work`` standing
    for ``work / hold`` real ones: each would wait for one real hold of B, C and D, 30 in all,
    so E is queued where the merged holds ahead of it come nearest to ``30 * work / hold``,
    less what A's whole hold makes it wait beyond the rests of A's real acquisitions."""
    procs = [[(KL, 1000.0)]] + [[(E.SYS, t), (KL, 100.0)] for t in (10.0, 20.0, 30.0)]
    procs.append([(E.SYS, 40.0), (KL, work)])
    real = [[a_real], [0.0, 10.0], [0.0, 10.0], [0.0, 10.0], [0.0, hold]]
    r = run(procs, threads=5, real=real)
    expected, t = {}, 1000.0
    for name in order:
        t += work if name == "E" else 100.0
        expected[name] = t
    assert r.times_ns[:, E.T_EXIT_END].tolist() == [1000.0] + [expected[n] for n in "BCDE"]


def test_a_merged_hold_is_met_as_its_real_holds_would_be() -> None:
    """A's hold of 1,000 ns stands for 4 real ones of 250 ns; B's real acquisitions are 300
    ns apart. One real hold of 250 is met with probability 250/300 and then waited for half
    of it on average: 250^2 / 600 each, 4 x that in all, against 1,000 - 150 for the whole
    hold as one. B's spin is the drawn one scaled by that ratio."""
    phi = (5**0.5 - 1) / 2
    hit = 100.0 + phi * 300.0
    ratio = 4 * 250.0**2 / 600.0 / (1000.0 - 150.0)
    procs = [[(E.SYS, 100.0), (KL, 1000.0)], [(E.USER, 5000.0)]]
    r = run(procs, threads=2, real=[[0.0, 250.0], [0.0]], gaps=[{}, {0: 300.0}])
    assert r.lock_wait_ns[0] == pytest.approx((1100.0 - hit) * ratio, rel=1e-12)
    assert r.times_ns[1, E.T_EXIT_END] == pytest.approx(5000.0 + (1100.0 - hit) * ratio)
