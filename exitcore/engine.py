"""The event loop of the machine: hardware threads, the reaper and a table of locks.

Everything that makes a many-core exit slow is a queue here, never a formula keyed on the core
count (DESIGN.md sections 2 and 9):

- **CPUs**: ``n_threads`` hardware threads and one FIFO run queue. Processes and reaper threads
  wait in it for a thread. A process keeps its thread across its segments and gives it up when
  it blocks, when it sleeps on a lock, when it has exited, and at the end of each ``USER``
  segment if somebody is waiting (a scheduling point: the end of a time slice or a system call).
  That is how the reaper, a kernel thread charged to nobody, still needs a core.
- **SMT**: ``sibling[i]`` is the other hardware thread of thread ``i``'s physical core (or -1).
  A segment's speed is fixed when it begins (a locked segment: when it first asks for the lock,
  or a sleeper when it has its thread back; the unlocked segment right after a locked one keeps
  its speed): 1 if the sibling is idle, ``smt_speed`` if it is busy (a spinning sibling counts
  as busy).
- **Locks**: one table indexed by lock id (holder, a FIFO of waiters, grant time, hold, wait and
  acquisition totals, kind), with one acquire and one release path, as SimPy's ``BaseResource``
  owns the queue of every resource. A segment of kind ``LOCKED + l`` is system work done
  holding lock ``l``: one acquisition. A ``SPIN`` waiter keeps its thread and is charged the
  spinning (system time, or reaper time). A ``SLEEP`` waiter gives its thread up (the next
  runnable entity takes it), its wait is neither user nor sys, and once granted the lock it joins
  the run queue to get a thread again; with ``rw_spin_ns`` it first spins that long (an
  OpenBSD rwlock's waiter spins ``RW_SPINS`` times before it sleeps), and granted within it goes
  on as a spinner. A lock is handed to the head waiter on release (FIFO), so
  a granted sleeper holds it while it waits for a thread: a lock's hold time is from grant to
  release. A ``SLEEP_ALL`` lock's release also wakes every other sleeper on it (OpenBSD's
  ``wakeup(rwl)`` before ``wakeup_one``): each joins the run queue, and once it has a thread it
  re-checks the lock for ``rw_wake_ns`` (system or reaper time; no second spin, the kernel's
  budget is per ``rw_enter``), then sleeps again, still queued in its place, unless the lock
  was handed to it meanwhile (then it goes on holding it). The release of a hold that stands
  for ``c`` merged real acquisitions stands for ``c`` wake-ups: the re-check lasts
  ``c * rw_wake_ns`` (a sleeper on its thread is not woken again, so a busy lock's sleepers
  re-check back to back, as the real ones would). A lock's ``lock_growth`` stretches an
  acquisition's hold by that fraction per waiter queued at its grant: a contended mutex's cache
  line bounces between the spinners, so each holder's critical section runs slower (DESIGN.md
  section 9).
- **Merged acquisitions** (:mod:`exitcore.segments` merges a process's short acquisitions
  to the mix's resolution, so the loop does not pay an event for each): a locked segment's
  ``seg_real_ns`` is the hold of one real acquisition of those it stands for, and a process's
  ``gap_ns`` the work between two of its real acquisitions of a merged lock. Two rules make
  the merged acquisitions meet what the real ones would (without them, long holds were met
  g times too rarely and waits behind merged holds were g times too long):

  - a request is queued where what it waits for comes nearest to what its real acquisitions
    would. Each of its ``c = work / real`` real acquisitions would wait for one real hold of
    every waiter (theirs are spread through their holders' work too) and for the rest of one
    real hold of the holder's: the first for what is left of the current one (all that is
    left of a hold that is one acquisition), each other for half of one (none for such a
    hold; a granted sleeper's hold counts once it has its thread). Queued, it waits for all
    that is left of the holder's hold and for the whole hold of each waiter ahead. So it
    goes ahead of waiters at the tail that stand for more acquisitions than it does while the
    holds left ahead of it, less half the passed one's, exceed what its real acquisitions
    would wait for less what is left of the holder's hold. Waiters standing for as many
    acquisitions or fewer are never passed: real acquisitions keep their order, and equal
    merged ones are FIFO. (The reaper's one short acquisition of the compilers' object
    lock, behind n merged compiler requests, waits for about n of their real holds, not n
    merged ones: tests/exitcore/test_simulate.py checks the saturated M2 at 128 cores);
  - when a hold of lock ``l`` begins (at ``t0``, released at ``t_r``), every process in an
    unlocked stretch (an unlocked segment, or a lazily released hold and the system segment
    after it, begun before ``t0`` and ending after it) with merged acquisitions of ``l`` at a
    spacing of at most twice the hold's real hold meets it at its next real acquisition, a
    fraction ``frac(n * phi)`` of a spacing after ``t0`` (its ``n``-th draw for that lock). If
    that comes before ``t_r``, it owes the spin from then to ``t_r``, scaled, for a hold
    standing for ``c`` real ones, by ``c`` expected spins behind one of them over the expected
    spin behind the whole; it spins it (system time, the lock's wait) at its stretch's end,
    keeping its thread, unless the stretch ends before the meeting and its next segment asks
    for that lock (it waits for the hold there). Of two holds it keeps the one it meets
    first (a tie: the lower lock id); draws are per lock, so holds beginning at one instant
    give the same result in any order.

  Unmerged (resolution 0) none of this happens; tests/exitcore/test_simulate.py checks that
  the shipped resolution gives what 4 us does.
- **Reapers**: ``n_reapers`` servers sharing one FIFO queue of exited processes (zombies). An
  idle reaper is woken when a job arrives and no awake reaper is left for it; it joins the run
  queue, takes the oldest job once it gets a thread, runs that job's segments, and gives its
  thread up after each job (re-joining the run queue at the tail if jobs are still pending).
- **Closed chains in phases**: phase ``f`` has ``phase_slots[f]`` slots (make -j), each slot
  starts the next process of the phase once the previous one's parent has been notified; the
  next phase starts when every process of the phase is notified.

Accounting is done where the time is spent, each total on its own: user and system seconds of
the processes (segments and spinning; a ``SYS`` segment may carry user time, ``seg_user_ns``,
the user time between two acquisitions), the reaper's busy seconds (its segments and spinning),
and, separately, the time threads are held (CPU busy). A correct run has
``user + sys + reaper == cpu`` (tests check it).

Tie-breaking (the reference in tests/exitcore/reference_sim.py follows it exactly): events are
processed in (time, insertion order). Within one event the order of effects is fixed:

- segment end: account the segment; if it held a lock, release it and hand it to the head
  waiter (a spinner's segment end is scheduled now; a sleeper joins the run queue and a free
  thread is dispatched); advance; if the ended segment was ``USER`` and the run queue is not
  empty, give the thread up (hand it to the head waiter) and join the tail; otherwise begin the
  next segment, before any entity this event dispatched begins its own;
- a process's last segment ends: record its exit, queue its reaper job (waking a reaper: it joins
  the run queue and a free thread is dispatched at once), release its thread and dispatch, then
  notify the parent if the variant notifies from exit or there is no reaper job;
- a reaper job ends: release the thread, re-join the run queue if jobs are pending beyond the
  other awake reapers, dispatch, then notify the parent (unless already notified from exit);
- a spin on a sleeping lock times out (an event of its own, queued when the spin began): if the
  waiter still waits, its spin is charged, it releases its thread (it stays queued for the lock)
  and a free thread is dispatched; a waiter granted within its budget ignores it;
- a release of a ``SLEEP_ALL`` lock: after the hand-over, the other sleepers join the run
  queue in queue order, then a free thread is dispatched; a woken sleeper's re-check is an event
  of its own, queued when it begins its segment on its new thread; at its end it goes on at
  once if it holds the lock, else releases its thread and a free thread is dispatched;
- notify: the slot starts the next process of its phase, or the phase ends and the next phase
  starts its slots in process order; each start immediately requests a thread (or blocks);
- dispatch: while a thread is free and the run queue is not empty, the head waiter gets the
  thread chosen by: lowest-index free thread whose sibling is idle, else lowest-index free thread
  (without SMT any free thread is equivalent, a stack is used).

One event covers a locked segment and the unlocked segment after it: the lock is released
lazily at the end of the hold, and only a request made before then queues a release event
(entity ``n_entities + lock``). The results are those of an event per segment.

The loop is compiled with numba (``cache=True``; a pure-Python loop was far from the 500,000
exits/s target): the first call in a fresh checkout compiles for 10-30 s, later processes load
the cache in well under a second.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from numba import njit

USER: Final = 0
SYS: Final = 1
BLOCK: Final = 2
LOCKED: Final = 3
"""Segment kinds: user time, unlocked system time, blocked time (no CPU, neither user nor sys),
and ``LOCKED + l``: system time holding lock ``l`` (one acquisition)."""

SPIN: Final = 0
SLEEP: Final = 1
SLEEP_ALL: Final = 2
"""Lock kinds: a spinning waiter keeps its CPU; a sleeping waiter gives it up; ``SLEEP_ALL`` is a
sleeping lock whose release wakes every sleeper, not only the one it is handed to."""

# Per-process timestamps (columns of EngineRun.times_ns).
T_START, T_EXIT, T_EXIT_END, T_REAP_START, T_REAP_END, T_NOTIFY = range(6)
# Accumulators (EngineRun.totals_ns).
A_USER, A_SYS, A_REAPER, A_CPU, A_WALL, A_HORIZON = range(6)
N_TOTALS: Final = 6

# Integer state slots.
_FREE, _RQ_HEAD, _RQ_LEN, _ZQ_HEAD, _ZQ_LEN, _WAKING = 0, 1, 2, 3, 4, 5
_HEAP_N, _SEQ, _PHASE, _NEXT, _DONE, _STACK_TOP, _TODO_HEAD, _TODO_LEN = range(6, 14)
_ID_SPAN, _SEQ_MAX = 14, 15
_N_STATE = 16


def locked(lock: int) -> int:
    """Segment kind of work holding lock ``lock``."""
    return LOCKED + int(lock)


@dataclass(frozen=True, slots=True)
class EngineRun:
    """What one run of the event loop returns.

    Attributes
    ----------
    times_ns : float64[P, 6]
        Per process: start, exit (first exit segment begins), exit end (becomes a zombie), reaper
        job start, reaper job end, parent notified. Without a reaper job the two reaper columns
        equal the exit end.
    totals_ns : float64[6]
        user, sys (segments and spinning of the processes), reaper busy (its segments and
        spinning), CPU busy (thread-held time, accounted separately), wall (last
        notification), horizon (last event).
    lock_hold_ns, lock_wait_ns : float64[L]
        Per lock: time held (grant to release) and time waited (request to grant, spinners and
        sleepers).
    lock_acquisitions : int64[L]
        Per lock: acquisitions granted.
    """

    times_ns: npt.NDArray[np.float64]
    totals_ns: npt.NDArray[np.float64]
    lock_hold_ns: npt.NDArray[np.float64]
    lock_wait_ns: npt.NDArray[np.float64]
    lock_acquisitions: npt.NDArray[np.int64]


@njit(cache=True)
def _heap_push(hp, st, t, e):  # type: ignore[no-untyped-def]
    """Queue event ``e`` at ``t``. A heap row is ``(t, seq * 2**shift + e)``: one 16-byte row
    per entry, ordered by time, then insertion (every key is an exact integer below 2**53)."""
    n = st[_HEAP_N]
    seq = st[_SEQ]
    st[_SEQ] = seq + 1
    if seq >= st[_SEQ_MAX]:
        raise OverflowError("engine: more events than the heap's keys can order")
    key = float(seq * st[_ID_SPAN] + e)
    i = n
    while i > 0:
        parent = (i - 1) >> 1
        pt = hp[parent, 0]
        if pt < t or (pt == t and hp[parent, 1] < key):
            break
        hp[i, 0] = pt
        hp[i, 1] = hp[parent, 1]
        i = parent
    hp[i, 0] = t
    hp[i, 1] = key
    st[_HEAP_N] = n + 1


@njit(cache=True)
def _heap_pop(hp, st):  # type: ignore[no-untyped-def]
    """Remove the first event: ``(t, e)``. Written without an early return for an emptied
    heap (the last row is then the first, put back where it was): with that branch, numba
    keeps a reference-count pair on ``hp`` for every call, which cost the event loop a
    quarter of its time."""
    t0 = hp[0, 0]
    e0 = int(hp[0, 1]) & (st[_ID_SPAN] - 1)  # the span is a power of two: no division
    n = st[_HEAP_N] - 1
    st[_HEAP_N] = n
    t = hp[n, 0]
    k = hp[n, 1]
    i = 0
    while True:
        c = 2 * i + 1
        if c >= n:
            break
        ct = hp[c, 0]
        if c + 1 < n:
            dt = hp[c + 1, 0]
            if dt < ct or (dt == ct and hp[c + 1, 1] < hp[c, 1]):
                c += 1
                ct = dt
        if t < ct or (t == ct and k < hp[c, 1]):
            break
        hp[i, 0] = ct
        hp[i, 1] = hp[c, 1]
        i = c
    hp[i, 0] = t
    hp[i, 1] = k
    return t0, e0


@njit(cache=True)
def _heap_grow(hp):  # type: ignore[no-untyped-def]
    """A heap of twice the rows holding the same events (spin timeouts left behind are the only
    events whose number has no bound)."""
    out = np.empty((2 * hp.shape[0], 2))
    out[: hp.shape[0]] = hp
    return out


@njit(cache=True, inline="always")
def _count(work, real):  # type: ignore[no-untyped-def]
    """How many real acquisitions a locked segment of ``work`` stands for (1: not merged)."""
    return work / real if real > 0.0 else 1.0


@njit(cache=True, inline="always")
def _wrap(i, n):  # type: ignore[no-untyped-def]
    # ring-buffer index: head + length < 2 n, so one comparison replaces a division
    return i - n if i >= n else i


@njit(cache=True)
def _todo_append(todo, st, e):  # type: ignore[no-untyped-def]
    todo[_wrap(st[_TODO_HEAD] + st[_TODO_LEN], todo.shape[0])] = e
    st[_TODO_LEN] += 1


@njit(cache=True, inline="always")
def _rq_append(rq, st, e):  # type: ignore[no-untyped-def]
    rq[_wrap(st[_RQ_HEAD] + st[_RQ_LEN], rq.shape[0])] = e
    st[_RQ_LEN] += 1


@njit(cache=True)
def _release_thread(e, t, st, busy, thread_of, ent_of, granted_at, free_stack, acc, has_smt):  # type: ignore[no-untyped-def]
    th = thread_of[e]
    busy[th] = False
    thread_of[e] = -1
    ent_of[th] = -1
    acc[A_CPU] += t - granted_at[e]
    # the thread goes on the free stack, which only dispatch without SMT pops: with SMT the
    # top stays at the spare last slot. No branch: with one, numba keeps reference counts of
    # ``st`` and ``free_stack`` on every call
    top = st[_STACK_TOP]
    free_stack[top] = th
    st[_STACK_TOP] = top + (0 if has_smt else 1)
    st[_FREE] += 1


@njit(cache=True)
def _dispatch(  # type: ignore[no-untyped-def]
    t,
    st,
    rq,
    busy,
    sibling,
    has_smt,
    free_stack,
    thread_of,
    ent_of,
    granted_at,
    zq,
    job_of,
    times,
    cur,
    rseg_ptr,
    rrow,
    todo,
    n_proc,
):
    n_ent = rq.shape[0]
    n_threads = busy.shape[0]
    while st[_FREE] > 0 and st[_RQ_LEN] > 0:
        w = rq[st[_RQ_HEAD]]
        st[_RQ_HEAD] = _wrap(st[_RQ_HEAD] + 1, n_ent)
        st[_RQ_LEN] -= 1
        if has_smt:
            pick = -1
            for i in range(n_threads):
                if not busy[i]:
                    sb = sibling[i]
                    if sb < 0 or not busy[sb]:
                        pick = i
                        break
            if pick < 0:
                for i in range(n_threads):
                    if not busy[i]:
                        pick = i
                        break
        else:
            st[_STACK_TOP] -= 1
            pick = free_stack[st[_STACK_TOP]]
        busy[pick] = True
        st[_FREE] -= 1
        thread_of[w] = pick
        ent_of[pick] = w
        granted_at[w] = t
        if w >= n_proc and job_of[w - n_proc] < 0:
            # a reaper got a thread: it takes the oldest pending job
            st[_WAKING] -= 1
            job = zq[st[_ZQ_HEAD]]
            st[_ZQ_HEAD] = _wrap(st[_ZQ_HEAD] + 1, zq.shape[0])
            st[_ZQ_LEN] -= 1
            job_of[w - n_proc] = job
            times[job, T_REAP_START] = t
            cur[w] = rseg_ptr[rrow[job]]
        _todo_append(todo, st, w)


@njit(cache=True, inline="always")
def _acquire(lk, e, t, lk_holder, lk_grant, lk_acq):  # type: ignore[no-untyped-def]
    """Ask for lock ``lk``: True if it was free and ``e`` holds it now (else the caller
    queues ``e``)."""
    if lk_holder[lk] >= 0:
        return False
    lk_holder[lk] = e
    lk_grant[lk] = t
    lk_acq[lk] += 1
    return True


_PHI: Final = 0.6180339887498949  # the golden ratio's fraction: a low-discrepancy sequence
_MERGED: Final = 1.0 - 1e-9  # a segment stands for several acquisitions: real < work x this


@njit(cache=True, inline="always")
def _spin_expected(h, s):  # type: ignore[no-untyped-def]
    """Expected spin of a runner whose real acquisitions are ``s`` apart, at a random phase,
    behind one hold of ``h``: it meets it with probability h / s (at most 1) and then waits
    for the rest."""
    return h - 0.5 * s if h >= s else 0.5 * h * h / s


@njit(cache=True)
def _any_merged(kinds, works, reals):  # type: ignore[no-untyped-def]
    """Whether a locked segment stands for several acquisitions (its real hold is shorter)."""
    if reals.shape[0] == 0:
        return False
    for s in range(kinds.shape[0]):
        if kinds[s] >= LOCKED and reals[s] < works[s] * _MERGED:
            return True
    return False


@njit(cache=True)
def _stall_runners(  # type: ignore[no-untyped-def]
    lk, t0, t_r, hold1, count, ent_of, n_proc, run_start, run_end, pend_len, pend_at, pend_lock,
    draws, speed, gap_lock, gap_ns,
):  # fmt: skip
    """A hold of ``lk`` runs from ``t0`` to ``t_r``, its real acquisitions ``hold1`` long each:
    every process in an unlocked stretch whose acquisitions of ``lk`` are merged, at a spacing
    ``gap_ns`` of at most twice ``hold1``, meets it at its next real acquisition, a fraction
    ``frac(n * phi)`` of a spacing away (its n-th draw for that lock), and owes the spin from
    then to ``t_r`` if that comes first (with shorter holds, the merged acquisitions meeting the
    merged hold stand for the real ones). A hold standing for
    ``count`` real ones spread through its holder's work is met as they would be: the spin is
    scaled by ``count`` expected spins behind one real hold over the expected spin behind
    the whole. Of two such holds it meets the one it reaches first (at a tie, the lower lock id):
    the outcome does not depend on the order of holds that begin at one instant."""
    for th in range(ent_of.shape[0]):
        q = ent_of[th]
        if q < 0 or q >= n_proc or not run_start[q] < t0 < run_end[q]:
            continue
        col = -1
        for k in range(gap_lock.shape[1]):
            if gap_lock[q, k] == lk and gap_ns[q, k] > 0.0:
                col = k
                break
        if col < 0 or hold1 < 0.5 * gap_ns[q, col]:
            continue
        c = draws[q, col] + 1
        draws[q, col] = c
        x = c * _PHI
        gap = gap_ns[q, col] / speed[q]
        t_hit = t0 + (x - np.floor(x)) * gap
        if t_hit < t_r:
            if pend_len[q] > 0.0:
                other = pend_at[q]
                if other < t_hit or (other == t_hit and pend_lock[q] < lk):
                    continue
            stall = t_r - t_hit
            if count > 1.0 + 1e-9:
                block = t_r - t0
                stall *= count * _spin_expected(block / count, gap) / _spin_expected(block, gap)
            pend_len[q] = stall
            pend_at[q] = t_hit
            pend_lock[q] = lk


@njit(cache=True)
def _simulate(  # type: ignore[no-untyped-def]  # noqa: C901
    sibling,
    smt_speed,
    seg_ptr,
    seg_kind,
    seg_work,
    exit_first,
    rseg_ptr,
    rseg_kind,
    rseg_work,
    rrow,
    notify_from_exit,
    phase_ptr,
    phase_slots,
    n_reapers,
    lk_kind,
    lk_growth,
    seg_user,
    rw_spin,
    seg_real,
    rseg_real,
    gap_lock,
    gap_ns,
    passing,
    rw_wake,
):
    n_threads = sibling.shape[0]
    has_user = seg_user.shape[0] > 0  # system segments carry user time
    has_smt = False
    for i in range(n_threads):
        if sibling[i] >= 0:
            has_smt = True
    n_proc = seg_ptr.shape[0] - 1
    n_ent = n_proc + n_reapers
    n_phase = phase_slots.shape[0]
    n_locks = lk_kind.shape[0]

    st = np.zeros(_N_STATE, np.int64)
    acc = np.zeros(N_TOTALS)
    times = np.zeros((n_proc, 6))
    times[:, T_EXIT] = -1.0

    cur = np.zeros(n_ent, np.int64)
    thread_of = np.full(n_ent, -1, np.int64)
    granted_at = np.zeros(n_ent)
    wait_since = np.zeros(n_ent)
    speed = np.ones(n_ent)
    job_of = np.full(n_reapers, -1, np.int64)
    awake = np.zeros(n_reapers, np.bool_)
    busy = np.zeros(n_threads, np.bool_)
    free_stack = np.empty(n_threads + 1, np.int64)  # a spare slot (_release_thread)
    for i in range(n_threads):
        free_stack[i] = n_threads - 1 - i
    st[_STACK_TOP] = n_threads
    st[_FREE] = n_threads
    rq = np.empty(n_ent, np.int64)
    zq = np.empty(max(n_proc, 1), np.int64)
    # events: one per entity, one release per lock, one re-check per entity, and spin timeouts:
    # room for one per entity, grown when more are left behind (_heap_grow)
    hp = np.empty((3 * n_ent + n_locks + 1, 2))
    span = 1
    while span <= 3 * n_ent + n_locks:
        span *= 2
    st[_ID_SPAN] = span
    st[_SEQ_MAX] = (1 << 53) // span
    todo = np.empty(2 * n_ent + 2, np.int64)
    starts = np.empty(n_proc + 1, np.int64)
    # the lock table
    lk_holder = np.full(n_locks, -1, np.int64)
    lk_head = np.zeros(n_locks, np.int64)
    lk_len = np.zeros(n_locks, np.int64)
    # at most every live entity waits on one lock: the largest phase's processes and the reapers
    cap = n_reapers
    for f in range(n_phase):
        cap = max(cap, min(phase_slots[f], phase_ptr[f + 1] - phase_ptr[f]) + n_reapers)
    lk_q = np.empty((n_locks, min(cap, n_ent)), np.int64)
    lk_grant = np.zeros(n_locks)
    lk_hold = np.zeros(n_locks)
    lk_wait = np.zeros(n_locks)
    lk_acq = np.zeros(n_locks, np.int64)
    lk_check = np.zeros(n_locks)  # SLEEP_ALL: the re-check its current hold's release costs
    lk_lazy = np.zeros(n_locks, np.bool_)  # the holder's release is not an event (yet)
    lk_until = np.zeros(n_locks)  # ... and happens at this time
    lk_event = np.zeros(n_locks, np.bool_)  # a release event (entity n_ent + lock) is queued
    stretch = np.ones(n_ent)  # hold-time factor of each entity's current locked segment
    spinning = np.zeros(n_ent, np.bool_)  # waits on a sleeping lock, still spinning
    spin_until = np.zeros(n_ent)  # ... until then
    # spin timeouts (events n_ev + e) queued for each entity, and the latest of them: a spin granted
    # in time leaves its timeout behind (dropped when it comes); one that comes before the current
    # spin's end, and is the last, is re-armed to it
    n_to = np.zeros(n_ent, np.int64)
    to_last = np.zeros(n_ent)
    reserve = 2 * n_ent + n_locks + 1  # the most events other than timeouts queued at once
    n_ev = n_ent + n_locks  # ids from here on are spin timeouts, then wake-up re-checks
    # a sleeper woken by a SLEEP_ALL release, in the run queue; then on its thread, re-checking
    # the lock (event n_ev + n_ent + e)
    woken = np.zeros(n_ent, np.bool_)
    rechecking = np.zeros(n_ent, np.bool_)
    check_ns = np.zeros(n_ent)  # ... for this long (at full speed)
    # what a queued request stands for (module docstring, "Merged acquisitions"): the hold of
    # one of its real acquisitions, its whole hold and how many real acquisitions it is; the
    # first two summed over each lock's waiters (kept as they come and go)
    q_real = np.zeros(n_ent)
    q_work = np.zeros(n_ent)
    q_count = np.zeros(n_ent)
    lk_rsum = np.zeros(n_locks)
    lk_wsum = np.zeros(n_locks)
    # the latest hold of each lock to begin: its end, and one of its real acquisitions' hold
    # in time (stretched, at its holder's speed), 0 if it stands for one; before it begins (a
    # granted sleeper waiting for a thread) the end is the last hold's: none is left
    lk_end = np.zeros(n_locks)
    lk_real = np.zeros(n_locks)
    # merged acquisitions (module docstring, "Merged acquisitions"): who is in an unlocked
    # segment from when to when, which lock a process runs into at what spacing, and the
    # stall it has been given
    has_real = seg_real.shape[0] > 0
    ent_of = np.full(n_threads, -1, np.int64)
    run_start = np.zeros(n_ent)
    run_end = np.zeros(n_ent)
    pend_len = np.zeros(n_ent)
    pend_at = np.zeros(n_ent)
    pend_lock = np.zeros(n_ent, np.int64)
    draws = np.zeros(gap_ns.shape, np.int64)
    # half the shortest spacing of merged acquisitions of each lock: a hold whose real
    # acquisitions are shorter stalls nobody (_stall_runners)
    lk_stalls = np.full(n_locks, np.inf)
    for q in range(gap_ns.shape[0]):
        for k in range(gap_ns.shape[1]):
            g = gap_ns[q, k]
            if g > 0.0 and 0.5 * g < lk_stalls[gap_lock[q, k]]:
                lk_stalls[gap_lock[q, k]] = 0.5 * g

    t = 0.0
    wall = 0.0
    last = 0.0

    # start the first non-empty phase
    n_starts = 0
    phase = 0
    while phase < n_phase and phase_ptr[phase + 1] == phase_ptr[phase]:
        phase += 1
    st[_PHASE] = phase
    if phase < n_phase:
        first = phase_ptr[phase]
        k = min(phase_slots[phase], phase_ptr[phase + 1] - first)
        for q in range(first, first + k):
            starts[n_starts] = q
            n_starts += 1
        st[_NEXT] = first + k

    while True:
        # processes started by the last notification begin, in process order
        for si in range(n_starts):
            q = starts[si]
            times[q, T_START] = t
            cur[q] = seg_ptr[q]
            if exit_first[q] == seg_ptr[q]:
                times[q, T_EXIT] = t
            _todo_append(todo, st, q)
        n_starts = 0

        # begin the current segment of every entity on the work list, FIFO
        while st[_TODO_LEN] > 0:
            e = todo[st[_TODO_HEAD]]
            st[_TODO_HEAD] = _wrap(st[_TODO_HEAD] + 1, todo.shape[0])
            st[_TODO_LEN] -= 1
            s = cur[e]
            if e < n_proc:
                kind = seg_kind[s]
                work = seg_work[s]
            else:
                kind = rseg_kind[s]
                work = rseg_work[s]
            if kind == BLOCK:
                if thread_of[e] >= 0:
                    _release_thread(
                        e, t, st, busy, thread_of, ent_of, granted_at, free_stack, acc, has_smt
                    )
                    if st[_FREE] > 0 and st[_RQ_LEN] > 0:  # else nothing to dispatch
                        _dispatch(
                            t, st, rq, busy, sibling, has_smt, free_stack, thread_of, ent_of,
                            granted_at, zq, job_of, times, cur, rseg_ptr, rrow, todo, n_proc,
                        )  # fmt: skip
                _heap_push(hp, st, t + work, e)
                continue
            th = thread_of[e]
            if th < 0:
                _rq_append(rq, st, e)
                if st[_FREE] > 0 and st[_RQ_LEN] > 0:  # else nothing to dispatch
                    _dispatch(
                        t, st, rq, busy, sibling, has_smt, free_stack, thread_of, ent_of,
                        granted_at, zq, job_of, times, cur, rseg_ptr, rrow, todo, n_proc,
                    )  # fmt: skip
                continue
            sb = sibling[th]
            sp = smt_speed if (sb >= 0 and busy[sb]) else 1.0
            speed[e] = sp
            if kind >= LOCKED:
                lk = kind - LOCKED
                if lk_lazy[lk] and lk_until[lk] <= t and lk_len[lk] == 0:
                    # the lazy holder has let go by now
                    lk_hold[lk] += lk_until[lk] - lk_grant[lk]
                    lk_holder[lk] = -1
                    lk_lazy[lk] = False
                if lk_holder[lk] == e or _acquire(lk, e, t, lk_holder, lk_grant, lk_acq):
                    # e holds lk from t: one event for it and the unlocked work after (lazy release)
                    rs = cur[e]
                    if e < n_proc:
                        rw = seg_work[rs]
                        rend = seg_ptr[e + 1]
                        rnk = seg_kind[rs + 1] if rs + 1 < rend else -1
                    else:
                        rw = rseg_work[rs]
                        rend = rseg_ptr[rrow[job_of[e - n_proc]] + 1]
                        rnk = rseg_kind[rs + 1] if rs + 1 < rend else -1
                    rf = 1.0 + lk_growth[lk] * lk_len[lk]  # cache-line contention: hold grows
                    stretch[e] = rf
                    rw = rw * rf
                    t_rel = t + rw / sp
                    h1 = (seg_real[rs] if e < n_proc else rseg_real[rs]) if has_real else 0.0
                    w1 = seg_work[rs] if e < n_proc else rseg_work[rs]
                    lk_end[lk] = t_rel
                    lk_real[lk] = h1 * rf / sp if h1 < w1 * _MERGED else 0.0
                    if lk_kind[lk] == SLEEP_ALL:
                        # its release stands for as many wake-ups as real acquisitions
                        lk_check[lk] = rw_wake * _count(w1, h1)
                    if h1 >= lk_stalls[lk]:
                        _stall_runners(
                            lk, t, t_rel, h1, w1 / h1,
                            ent_of, n_proc, run_start, run_end, pend_len,
                            pend_at, pend_lock, draws, speed, gap_lock, gap_ns,
                        )  # fmt: skip
                    if rnk == SYS:
                        acc[A_SYS if e < n_proc else A_REAPER] += rw / sp
                        lk_lazy[lk] = True
                        lk_until[lk] = t_rel
                        if (
                            lk_len[lk] > 0
                        ):  # somebody is already waiting (queued while a sleeper held it)
                            lk_event[lk] = True
                            _heap_push(hp, st, t_rel, n_ent + lk)
                        cur[e] = rs + 1
                        if e < n_proc:
                            if rs + 1 == exit_first[e]:
                                times[e, T_EXIT] = t_rel
                            run_start[e] = t
                            run_end[e] = t_rel + seg_work[rs + 1] / sp
                            _heap_push(hp, st, run_end[e], e)
                        else:
                            _heap_push(hp, st, t_rel + rseg_work[rs + 1] / sp, e)
                    else:
                        _heap_push(hp, st, t_rel, e)
                else:
                    # e joins the lock's FIFO, ahead of merged waiters at its tail while the
                    # work left ahead of it is more than its real acquisitions would wait for
                    # (module docstring, "Merged acquisitions"). Written here, not in a
                    # helper: inlined with its array arguments, the loop keeps numba from
                    # pruning their reference counts, which then cost the whole loop about
                    # half its time. ``passing`` is None when no segment is merged: the FIFO
                    # is plain and compiled so.
                    if woken[e]:
                        # a woken sleeper has its thread: it re-checks the lock (still queued),
                        # and sleeps again unless the lock has been handed to it by then
                        woken[e] = False
                        rechecking[e] = True
                        _heap_push(hp, st, t + check_ns[e] / sp, n_ev + n_ent + e)
                        continue
                    n_q = lk_q.shape[1]
                    pos = lk_len[lk]
                    if passing is not None:
                        real = seg_real[s] if e < n_proc else rseg_real[s]
                        rsum = lk_rsum[lk]
                        wsum = lk_wsum[lk]
                        # each of its real acquisitions would wait for one real hold of each
                        # waiter and for the rest of one of the holder's (what is left of the
                        # current one, then half of one each); in the queue it waits for the
                        # rest of the holder's whole hold and the whole hold of each waiter
                        # ahead, and passes only waiters standing for more acquisitions
                        c = _count(work, real)
                        target = rsum * c
                        left = lk_end[lk] - t
                        r1 = lk_real[lk]
                        if left > 0.0 and r1 > 0.0:
                            first = left if left < r1 else 0.5 * r1
                            target += first + (c - 1.0) * 0.5 * r1 - left
                        while pos > 0:
                            w = lk_q[lk, _wrap(lk_head[lk] + pos - 1, n_q)]
                            if q_count[w] <= c or wsum - 0.5 * q_work[w] <= target:
                                break
                            wsum -= q_work[w]
                            lk_q[lk, _wrap(lk_head[lk] + pos, n_q)] = w
                            pos -= 1
                        q_real[e] = real
                        q_work[e] = work
                        q_count[e] = c
                        lk_rsum[lk] += real
                        lk_wsum[lk] += work
                    lk_q[lk, _wrap(lk_head[lk] + pos, n_q)] = e
                    lk_len[lk] += 1
                    wait_since[e] = t
                    if lk_lazy[lk] and not lk_event[lk]:
                        lk_event[lk] = True
                        _heap_push(hp, st, lk_until[lk], n_ent + lk)
                    if lk_kind[lk] >= SLEEP:
                        if rw_spin > 0.0:  # it spins first, keeping its thread
                            # for as long as the real acquisitions it stands for would each
                            spinning[e] = True
                            d = t + rw_spin
                            if has_real:
                                d = t + rw_spin * _count(
                                    work, seg_real[s] if e < n_proc else rseg_real[s]
                                )
                            spin_until[e] = d
                            if n_to[e] == 0 or to_last[e] > d:
                                if st[_HEAP_N] + reserve >= hp.shape[0]:
                                    hp = _heap_grow(hp)
                                _heap_push(hp, st, d, n_ev + e)
                                if n_to[e] == 0:
                                    to_last[e] = d
                                n_to[e] += 1
                            continue
                        _release_thread(
                            e, t, st, busy, thread_of, ent_of, granted_at, free_stack, acc, has_smt
                        )
                        if st[_FREE] > 0 and st[_RQ_LEN] > 0:  # else nothing to dispatch
                            _dispatch(
                                t, st, rq, busy, sibling, has_smt, free_stack, thread_of,
                                ent_of, granted_at, zq, job_of, times, cur, rseg_ptr, rrow, todo,
                                n_proc,
                            )  # fmt: skip
                continue
            run_start[e] = t
            run_end[e] = t + work / sp
            _heap_push(hp, st, run_end[e], e)

        if st[_HEAP_N] == 0:
            break
        t, e = _heap_pop(hp, st)
        if e >= n_ev:
            # a waiter on a sleeping lock gives its thread up (it stays queued) ...
            if e >= n_ev + n_ent:
                # ... when its re-check after a wake-up ends, unless it holds the lock by then
                w = e - n_ev - n_ent
                rechecking[w] = False
                acc[A_SYS if w < n_proc else A_REAPER] += check_ns[w] / speed[w]
                kw = seg_kind[cur[w]] if w < n_proc else rseg_kind[cur[w]]
                if lk_holder[kw - LOCKED] == w:
                    last = t
                    _todo_append(todo, st, w)
                    continue
            else:
                # ... or when its spin times out
                w = e - n_ev
                n_to[w] -= 1
                if not spinning[w]:
                    continue  # granted in time
                if spin_until[w] > t:  # left behind by an earlier spin: re-armed if the last
                    if n_to[w] == 0:
                        n_to[w] = 1
                        to_last[w] = spin_until[w]
                        _heap_push(hp, st, spin_until[w], e)
                    continue
                spinning[w] = False
                acc[A_SYS if w < n_proc else A_REAPER] += t - wait_since[w]
            last = t
            _release_thread(w, t, st, busy, thread_of, ent_of, granted_at, free_stack, acc, has_smt)
            if st[_FREE] > 0 and st[_RQ_LEN] > 0:  # else nothing to dispatch
                _dispatch(
                    t, st, rq, busy, sibling, has_smt, free_stack, thread_of, ent_of,
                    granted_at, zq, job_of, times, cur, rseg_ptr, rrow, todo, n_proc,
                )  # fmt: skip
            continue
        last = t
        rel = -1  # the lock this event releases
        if e >= n_ent:
            # a lazily held lock is let go and handed to its head waiter
            rel = e - n_ent
            lk_event[rel] = False
            lk_lazy[rel] = False
        else:
            if pend_len[e] > 0.0:
                # e met a hold between its merged acquisitions: it spins that long first, unless
                # its stretch ends before the meeting and it asks for that lock itself next
                stall = pend_len[e]
                pend_len[e] = 0.0
                nx = cur[e] + 1
                if not (
                    t < pend_at[e] and nx < seg_ptr[e + 1] and seg_kind[nx] == LOCKED + pend_lock[e]
                ):
                    acc[A_SYS] += stall
                    lk_wait[pend_lock[e]] += stall
                    _heap_push(hp, st, t + stall, e)
                    continue
            is_proc = e < n_proc
            s = cur[e]
            if is_proc:
                kind = seg_kind[s]
                work = seg_work[s]
            else:
                kind = rseg_kind[s]
                work = rseg_work[s]
            if kind != BLOCK:
                dur = work / speed[e] if kind < LOCKED else work * stretch[e] / speed[e]
                if not is_proc:
                    acc[A_REAPER] += dur
                elif kind == USER:
                    acc[A_USER] += dur
                elif kind == SYS and has_user and seg_user[s] > 0.0:
                    u = seg_user[s] / speed[e]
                    acc[A_USER] += u
                    acc[A_SYS] += dur - u
                else:
                    acc[A_SYS] += dur
            if kind >= LOCKED:
                rel = kind - LOCKED
        if rel >= 0:
            # release ``rel`` and hand it to its head waiter (written here, once, not as an
            # inlined helper: numba then keeps no reference counts of the lock table)
            lk = rel
            lk_hold[lk] += t - lk_grant[lk]
            check = lk_check[lk]  # this release's wake-ups (the hand-over may set the next's)
            w = -1
            if lk_len[lk] > 0:
                w = lk_q[lk, lk_head[lk]]
                lk_head[lk] = _wrap(lk_head[lk] + 1, lk_q.shape[1])
                lk_len[lk] -= 1
                if passing is not None:
                    # the sums start from 0 again with every empty queue: no rounding drifts
                    lk_rsum[lk] = lk_rsum[lk] - q_real[w] if lk_len[lk] > 0 else 0.0
                    lk_wsum[lk] = lk_wsum[lk] - q_work[w] if lk_len[lk] > 0 else 0.0
                lk_grant[lk] = t
                lk_acq[lk] += 1
                lk_wait[lk] += t - wait_since[w]
            lk_holder[lk] = w
            if w >= 0:
                if lk_kind[lk] == SPIN or spinning[w]:
                    spinning[w] = False
                    acc[A_SYS if w < n_proc else A_REAPER] += t - wait_since[w]
                    # w holds lk from t: one event for it and the unlocked work after (lazy release)
                    rs = cur[w]
                    if w < n_proc:
                        rw = seg_work[rs]
                        rend = seg_ptr[w + 1]
                        rnk = seg_kind[rs + 1] if rs + 1 < rend else -1
                    else:
                        rw = rseg_work[rs]
                        rend = rseg_ptr[rrow[job_of[w - n_proc]] + 1]
                        rnk = rseg_kind[rs + 1] if rs + 1 < rend else -1
                    rf = 1.0 + lk_growth[lk] * lk_len[lk]  # cache-line contention: hold grows
                    stretch[w] = rf
                    rw = rw * rf
                    t_rel = t + rw / speed[w]
                    h1 = (seg_real[rs] if w < n_proc else rseg_real[rs]) if has_real else 0.0
                    w1 = seg_work[rs] if w < n_proc else rseg_work[rs]
                    lk_end[lk] = t_rel
                    lk_real[lk] = h1 * rf / speed[w] if h1 < w1 * _MERGED else 0.0
                    if lk_kind[lk] == SLEEP_ALL:
                        # its release stands for as many wake-ups as real acquisitions
                        lk_check[lk] = rw_wake * _count(w1, h1)
                    if h1 >= lk_stalls[lk]:
                        _stall_runners(
                            lk, t, t_rel, h1, w1 / h1,
                            ent_of, n_proc, run_start, run_end, pend_len,
                            pend_at, pend_lock, draws, speed, gap_lock, gap_ns,
                        )  # fmt: skip
                    if rnk == SYS:
                        acc[A_SYS if w < n_proc else A_REAPER] += rw / speed[w]
                        lk_lazy[lk] = True
                        lk_until[lk] = t_rel
                        if (
                            lk_len[lk] > 0
                        ):  # somebody is already waiting (queued while a sleeper held it)
                            lk_event[lk] = True
                            _heap_push(hp, st, t_rel, n_ent + lk)
                        cur[w] = rs + 1
                        if w < n_proc:
                            if rs + 1 == exit_first[w]:
                                times[w, T_EXIT] = t_rel
                            run_start[w] = t
                            run_end[w] = t_rel + seg_work[rs + 1] / speed[w]
                            _heap_push(hp, st, run_end[w], w)
                        else:
                            _heap_push(hp, st, t_rel + rseg_work[rs + 1] / speed[w], w)
                    else:
                        _heap_push(hp, st, t_rel, w)
                elif woken[w]:
                    woken[w] = False  # already in the run queue
                elif not rechecking[w]:  # (a re-checking one finds it held at the check's end)
                    _rq_append(rq, st, w)
            if lk_kind[lk] == SLEEP_ALL:
                # the release wakes every other sleeper: each joins the run queue to re-check
                n_q = lk_q.shape[1]
                for i in range(lk_len[lk]):
                    v = lk_q[lk, _wrap(lk_head[lk] + i, n_q)]
                    if not (spinning[v] or woken[v] or rechecking[v]):
                        woken[v] = True
                        check_ns[v] = check
                        _rq_append(rq, st, v)
            if st[_FREE] > 0 and st[_RQ_LEN] > 0:  # else nothing to dispatch
                _dispatch(
                    t, st, rq, busy, sibling, has_smt, free_stack, thread_of, ent_of,
                    granted_at, zq, job_of, times, cur, rseg_ptr, rrow, todo, n_proc,
                )  # fmt: skip
        if e >= n_ent:
            continue
        s += 1
        cur[e] = s
        if is_proc and s == exit_first[e]:
            times[e, T_EXIT] = t
        end = seg_ptr[e + 1] if is_proc else rseg_ptr[rrow[job_of[e - n_proc]] + 1]
        if s < end:
            if kind == USER and st[_RQ_LEN] > 0 and seg_kind[s] != BLOCK:
                # scheduling point: the thread goes to the head waiter, this process to the tail
                _release_thread(
                    e, t, st, busy, thread_of, ent_of, granted_at, free_stack, acc, has_smt
                )
                _rq_append(rq, st, e)
                if st[_FREE] > 0 and st[_RQ_LEN] > 0:  # else nothing to dispatch
                    _dispatch(
                        t, st, rq, busy, sibling, has_smt, free_stack, thread_of, ent_of,
                        granted_at, zq, job_of, times, cur, rseg_ptr, rrow, todo, n_proc,
                    )  # fmt: skip
            else:
                nk = seg_kind[s] if is_proc else rseg_kind[s]
                th = thread_of[e]
                if (nk == USER or nk == SYS) and th >= 0:
                    # the common case, begun here: what the work list would do first
                    sb = sibling[th]
                    sp = smt_speed if (sb >= 0 and busy[sb]) else 1.0
                    speed[e] = sp
                    nw = seg_work[s] if is_proc else rseg_work[s]
                    run_start[e] = t
                    run_end[e] = t + nw / sp
                    _heap_push(hp, st, run_end[e], e)
                    continue
                # it goes on at once: before the entities this event dispatched
                h = st[_TODO_HEAD] - 1
                if h < 0:
                    h += todo.shape[0]
                st[_TODO_HEAD] = h
                todo[h] = e
                st[_TODO_LEN] += 1
            continue

        # the entity is done: a process finished exiting, or a reaper finished a job
        notify = -1
        if is_proc:
            times[e, T_EXIT_END] = t
            if times[e, T_EXIT] < 0.0:
                times[e, T_EXIT] = t
            has_job = rseg_ptr[rrow[e] + 1] > rseg_ptr[rrow[e]]
            if has_job:
                zq[_wrap(st[_ZQ_HEAD] + st[_ZQ_LEN], zq.shape[0])] = e
                st[_ZQ_LEN] += 1
                if st[_WAKING] < st[_ZQ_LEN]:
                    for r in range(n_reapers):
                        if not awake[r]:
                            awake[r] = True
                            st[_WAKING] += 1
                            _rq_append(rq, st, n_proc + r)
                            if st[_FREE] > 0 and st[_RQ_LEN] > 0:  # else nothing to dispatch
                                _dispatch(
                                    t, st, rq, busy, sibling, has_smt, free_stack, thread_of,
                                    ent_of, granted_at, zq, job_of, times, cur, rseg_ptr, rrow,
                                    todo, n_proc,
                                )  # fmt: skip
                            break
            else:
                times[e, T_REAP_START] = t
                times[e, T_REAP_END] = t
            if notify_from_exit or not has_job:
                notify = e
            _release_thread(e, t, st, busy, thread_of, ent_of, granted_at, free_stack, acc, has_smt)
        else:
            r = e - n_proc
            p = job_of[r]
            times[p, T_REAP_END] = t
            job_of[r] = -1
            if not notify_from_exit:
                notify = p
            _release_thread(e, t, st, busy, thread_of, ent_of, granted_at, free_stack, acc, has_smt)
            if st[_ZQ_LEN] > st[_WAKING]:
                st[_WAKING] += 1
                _rq_append(rq, st, e)
            else:
                awake[r] = False
        if st[_FREE] > 0 and st[_RQ_LEN] > 0:  # else nothing to dispatch
            _dispatch(
                t, st, rq, busy, sibling, has_smt, free_stack, thread_of, ent_of,
                granted_at, zq, job_of, times, cur, rseg_ptr, rrow, todo, n_proc,
            )  # fmt: skip
        if notify >= 0:
            times[notify, T_NOTIFY] = t
            wall = t
            phase = st[_PHASE]
            if st[_NEXT] < phase_ptr[phase + 1]:
                starts[n_starts] = st[_NEXT]
                n_starts += 1
                st[_NEXT] += 1
            st[_DONE] += 1
            if st[_DONE] == phase_ptr[phase + 1] - phase_ptr[phase]:
                st[_DONE] = 0
                phase += 1
                while phase < n_phase and phase_ptr[phase + 1] == phase_ptr[phase]:
                    phase += 1
                st[_PHASE] = phase
                if phase < n_phase:
                    first = phase_ptr[phase]
                    k = min(phase_slots[phase], phase_ptr[phase + 1] - first)
                    for q in range(first, first + k):
                        starts[n_starts] = q
                        n_starts += 1
                    st[_NEXT] = first + k

    for lk in range(n_locks):
        if lk_lazy[lk]:
            lk_hold[lk] += lk_until[lk] - lk_grant[lk]
    acc[A_WALL] = wall
    acc[A_HORIZON] = last
    return times, acc, lk_hold, lk_wait, lk_acq


def run(
    sibling: npt.NDArray[np.int64],
    smt_speed: float,
    seg_ptr: npt.NDArray[np.int64],
    seg_kind: npt.NDArray[np.int16],
    seg_work_ns: npt.NDArray[np.float64],
    exit_first: npt.NDArray[np.int64],
    rseg_ptr: npt.NDArray[np.int64],
    rseg_kind: npt.NDArray[np.int16],
    rseg_work_ns: npt.NDArray[np.float64],
    notify_from_exit: bool,
    phase_ptr: npt.NDArray[np.int64],
    phase_slots: npt.NDArray[np.int64],
    n_reapers: int,
    lock_kinds: npt.NDArray[np.int8],
    lock_growth: npt.NDArray[np.float64] | None = None,
    reaper_rows: npt.NDArray[np.int64] | None = None,
    seg_user_ns: npt.NDArray[np.float64] | None = None,
    rw_spin_ns: float = 0.0,
    seg_real_ns: npt.NDArray[np.float64] | None = None,
    rseg_real_ns: npt.NDArray[np.float64] | None = None,
    gap_lock: npt.NDArray[np.int64] | None = None,
    gap_ns: npt.NDArray[np.float64] | None = None,
    rw_wake_ns: float = 0.0,
) -> EngineRun:
    """Run the machine on one workload.

    Parameters
    ----------
    sibling : int64[N]
        SMT sibling of each hardware thread, -1 for none.
    smt_speed : float
        Speed of a thread whose sibling is busy, in (0, 1].
    seg_ptr, seg_kind, seg_work_ns : int64[P+1], int16[S], float64[S]
        Each process's segments (CSR, processes in start order): kind (``USER``, ``SYS``,
        ``BLOCK`` or ``LOCKED + l``) and work in nanoseconds at full speed. Every process has at
        least one segment.
    exit_first : int64[P]
        Index of each process's first exit segment (``seg_ptr[p+1]`` if none).
    rseg_ptr, rseg_kind, rseg_work_ns : int64[J+1], int16[R], float64[R]
        Reaper jobs (``SYS`` or ``LOCKED + l`` segments; empty = no reaper job), one row per
        process unless ``reaper_rows`` says which row each process's job is.
    notify_from_exit : bool
        The parent is notified when the process finishes exiting, not after its reaper job.
    phase_ptr, phase_slots : int64[F+1], int64[F]
        Processes of phase ``f`` are ``phase_ptr[f]:phase_ptr[f+1]``, run on ``phase_slots[f]``
        closed chains.
    n_reapers : int
        Reaper threads.
    lock_kinds : int8[L]
        ``SPIN``, ``SLEEP`` or ``SLEEP_ALL`` for each lock id.
    reaper_rows : int64[P], optional
        Row of ``rseg_ptr`` holding each process's reaper job (processes sharing an address
        space share a job layout); default one row per process.
    lock_growth : float64[L], optional
        Per lock, the fraction by which an acquisition's hold grows for each waiter queued when
        it is granted (the lock's cache line bouncing between spinners); default 0.
    seg_user_ns : float64[S], optional
        User time a ``SYS`` segment of a process carries: part of its work, accounted as user
        time (the user time between two acquisitions, with no scheduling point in it); 0
        elsewhere, and the default.
    rw_spin_ns : float, optional
        How long a waiter on a ``SLEEP`` lock spins (keeping its thread, charged as system or
        reaper time) before it gives its thread up and sleeps; granted within it, it goes on as a
        spinner would. A request that stands for ``c`` merged acquisitions spins ``c`` times as
        long, as they would each. 0 (the default): it sleeps at once.
    seg_real_ns, rseg_real_ns : float64[S], float64[R], optional
        The hold of one real acquisition of each locked segment (its work when it is one;
        less when it stands for several merged ones: module docstring, "Merged acquisitions");
        0 on unlocked segments. Default: every acquisition is real.
    gap_lock, gap_ns : int64[P, K], float64[P, K], optional
        Per process, the locks whose acquisitions are merged and the work between two of its real
        acquisitions of each (0: not merged); default none.
    rw_wake_ns : float, optional
        A sleeper's trip through its thread when a ``SLEEP_ALL`` release wakes it but hands the
        lock to another (the switch in, the failed re-check, the switch out): system or reaper
        time; it then sleeps again, still queued, unless the lock was handed to it meanwhile.
        Must be > 0 when a lock is ``SLEEP_ALL``.
    """
    n_proc = seg_ptr.shape[0] - 1
    lock_kinds = np.ascontiguousarray(lock_kinds, np.int8)
    n_locks = lock_kinds.shape[0]
    if sibling.ndim != 1 or sibling.shape[0] < 1:
        raise ValueError("sibling: expected a non-empty 1-d array of thread indices")
    if not 0.0 < smt_speed <= 1.0:
        raise ValueError(f"smt_speed: expected a value in (0, 1], got {smt_speed}")
    if n_reapers < 1:
        raise ValueError(f"n_reapers: expected >= 1, got {n_reapers}")
    if np.any(np.diff(seg_ptr) < 1):
        raise ValueError("seg_ptr: every process needs at least one segment")
    if n_proc > 0 and np.any(seg_kind[seg_ptr[1:] - 1] == BLOCK):
        raise ValueError("seg_kind: a process cannot end blocked (it exits on a CPU)")
    if np.any(np.isin(rseg_kind, (USER, BLOCK))):
        raise ValueError("rseg_kind: reaper segments must be sys or locked")
    if np.any(lock_kinds > SLEEP_ALL) or np.any(lock_kinds < SPIN):
        raise ValueError("lock_kinds: expected SPIN (0), SLEEP (1) or SLEEP_ALL (2) per lock")
    if not 0.0 <= rw_wake_ns < float("inf"):
        raise ValueError(f"rw_wake_ns: expected a finite value >= 0, got {rw_wake_ns!r}")
    if np.any(lock_kinds == SLEEP_ALL) and rw_wake_ns <= 0.0:
        raise ValueError("rw_wake_ns: a SLEEP_ALL lock needs a re-check time > 0")
    rows = np.arange(n_proc) if reaper_rows is None else np.ascontiguousarray(reaper_rows, np.int64)
    if rows.shape != (n_proc,) or (
        n_proc and (rows.min() < 0 or rows.max() >= rseg_ptr.shape[0] - 1)
    ):
        raise ValueError("reaper_rows: expected one row of rseg_ptr per process")
    growth = (
        np.zeros(n_locks) if lock_growth is None else np.ascontiguousarray(lock_growth, np.float64)
    )
    if growth.shape != (n_locks,) or np.any(growth < 0) or not np.all(np.isfinite(growth)):
        raise ValueError("lock_growth: expected one finite value >= 0 per lock")
    if not 0.0 <= rw_spin_ns < float("inf"):
        raise ValueError(f"rw_spin_ns: expected a finite value >= 0, got {rw_spin_ns!r}")
    users = np.zeros(0) if seg_user_ns is None else np.ascontiguousarray(seg_user_ns, np.float64)
    if users.size and (
        users.shape != seg_work_ns.shape
        or np.any(users < 0)
        or np.any(users > seg_work_ns)
        or np.any((users > 0) & (seg_kind != SYS))
    ):
        raise ValueError("seg_user_ns: expected 0 <= user <= work per segment, on SYS segments")
    real = np.zeros(0) if seg_real_ns is None else np.ascontiguousarray(seg_real_ns, np.float64)
    rreal = np.zeros(0) if rseg_real_ns is None else np.ascontiguousarray(rseg_real_ns, np.float64)
    if (real.size or rreal.size) and (
        real.shape != seg_kind.shape or rreal.shape != rseg_kind.shape
    ):
        raise ValueError("seg_real_ns, rseg_real_ns: expected one hold per segment, or neither")
    g_lock = np.zeros((n_proc, 0), np.int64) if gap_lock is None else np.asarray(gap_lock)
    g_ns = np.zeros((n_proc, 0)) if gap_ns is None else np.asarray(gap_ns, np.float64)
    if (
        g_lock.shape != g_ns.shape
        or g_ns.shape[0] != n_proc
        or np.any(g_ns < 0)
        or not np.all(np.isfinite(g_ns))
        or (g_lock.size and (g_lock.min() < 0 or g_lock.max() >= n_locks))
    ):
        raise ValueError("gap_lock, gap_ns: expected [P, K] lock ids and spacings >= 0")
    if np.any(g_ns > 0) and not real.size:
        raise ValueError("gap_ns: merged spacings need seg_real_ns and rseg_real_ns")
    for name, kinds in (("seg_kind", seg_kind), ("rseg_kind", rseg_kind)):
        if kinds.size and (kinds.min() < 0 or kinds.max() >= LOCKED + n_locks):
            raise ValueError(f"{name}: a locked segment names a lock id >= {n_locks}")
    if phase_ptr.shape[0] != phase_slots.shape[0] + 1 or phase_ptr[-1] != n_proc:
        raise ValueError("phase_ptr: expected F+1 offsets ending at the process count")
    if np.any(phase_slots < 1):
        raise ValueError("phase_slots: every phase needs at least one slot")
    times, totals, hold, wait, acq = _simulate(
        np.ascontiguousarray(sibling, np.int64),
        float(smt_speed),
        np.ascontiguousarray(seg_ptr, np.int64),
        np.ascontiguousarray(seg_kind, np.int16),
        np.ascontiguousarray(seg_work_ns, np.float64),
        np.ascontiguousarray(exit_first, np.int64),
        np.ascontiguousarray(rseg_ptr, np.int64),
        np.ascontiguousarray(rseg_kind, np.int16),
        np.ascontiguousarray(rseg_work_ns, np.float64),
        rows,
        bool(notify_from_exit),
        np.ascontiguousarray(phase_ptr, np.int64),
        np.ascontiguousarray(phase_slots, np.int64),
        int(n_reapers),
        lock_kinds,
        growth,
        users,
        float(rw_spin_ns),
        real,
        rreal,
        np.ascontiguousarray(g_lock, np.int64),
        np.ascontiguousarray(g_ns),
        True
        if _any_merged(seg_kind, seg_work_ns, real) or _any_merged(rseg_kind, rseg_work_ns, rreal)
        else None,
        float(rw_wake_ns),
    )
    return EngineRun(
        times_ns=times, totals_ns=totals, lock_hold_ns=hold, lock_wait_ns=wait,
        lock_acquisitions=acq,
    )  # fmt: skip
