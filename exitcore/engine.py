"""The event loop of the machine: hardware threads, the reaper, KERNEL_LOCK and the page-queue lock.

Everything that makes a many-core exit slow is a queue here, never a formula keyed on the core
count (DESIGN.md section 2):

- **CPUs**: ``n_threads`` hardware threads and one FIFO run queue. Processes and reaper threads
  wait in it for a thread. A process keeps its thread across its segments and gives it up when
  it blocks, when it has exited, and at the end of each ``USER`` segment if somebody is waiting
  (a scheduling point: the end of a time slice or a system call). That is how the reaper, a
  kernel thread charged to nobody, still needs a core: with every thread busy it waits its turn.
- **SMT**: ``sibling[i]`` is the other hardware thread of thread ``i``'s physical core (or -1).
  A segment's speed is fixed when it begins (a locked segment: when it starts to spin): 1 if
  the sibling is idle, ``smt_speed`` if it is busy (a spinning sibling counts as busy).
  Segments are short, so fixing the speed at the start is a small approximation that keeps
  the event list exact and cheap.
- **KERNEL_LOCK** and the **page-queue lock**: FIFO mutexes. A ``KL`` (``PQ``) segment first
  takes the lock, spinning on its thread while it waits (the spinner's system time, or reaper
  time), then holds it for the segment's work.
- **Reapers**: ``n_reapers`` servers sharing one FIFO queue of exited processes (zombies). An
  idle reaper is woken when a job arrives and no awake reaper is left for it; it joins the run
  queue, takes the oldest job once it gets a thread, runs that job's segments, and gives its
  thread up after each job (re-joining the run queue at the tail if jobs are still pending).
- **Closed chains in phases**: processes are started phase by phase; phase ``f`` has
  ``phase_slots[f]`` slots (make -j), each slot starts the next process of the phase once the
  previous one's parent has been notified; the next phase starts when every process of the phase
  is notified (a barrier, or a serial step when the phase has one slot).

Tie-breaking (the reference in tests/exitcore/reference_sim.py follows it exactly): events are
processed in (time, insertion order). Within one event the order of effects is fixed:

- segment end: account the segment; release its lock and hand the lock to the head waiter (whose
  segment end is scheduled now); advance; if the ended segment was ``USER`` and the run queue is
  not empty, give the thread up (hand it to the head waiter) and join the tail; otherwise begin
  the next segment;
- a process's last segment ends: record its exit, queue its reaper job (waking a reaper: it joins
  the run queue and a free thread is dispatched at once), release its thread and dispatch,
  then notify the parent if the variant notifies from exit or there is no reaper job;
- a reaper job ends: release the thread, re-join the run queue if jobs are pending beyond the
  other awake reapers, dispatch, then notify the parent (unless already notified from exit);
- notify: the slot starts the next process of its phase, or the phase ends and the next phase
  starts its slots in process order; each start immediately requests a thread (or blocks);
- dispatch: while a thread is free and the run queue is not empty, the head waiter gets the
  thread chosen by: lowest-index free thread whose sibling is idle, else lowest-index free thread
  (without SMT any free thread is equivalent, a stack is used).

The loop is compiled with numba (``cache=True``; a pure-Python loop was far from the 500,000
exits/s target): the first call in a fresh checkout compiles for 10-30 s, later processes (a
test run, Ray workers on the same file system) load the cache in well under a second.
:func:`pack_segments` lays per-process times out as segments in the same compiled way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from numba import njit

USER: Final = 0
SYS: Final = 1
KL: Final = 2
PQ: Final = 3
BLOCK: Final = 4
SEGMENT_KINDS: Final[tuple[str, ...]] = ("user", "sys", "klock", "pageq", "blocked")
"""Segment kinds: user time, unlocked system time, system time under KERNEL_LOCK, under the
page-queue lock, and blocked time (no CPU, neither user nor sys)."""

# Per-process timestamps (columns of EngineRun.times_ns).
T_START, T_EXIT, T_EXIT_END, T_REAP_START, T_REAP_END, T_NOTIFY = range(6)
# Accumulators (EngineRun.totals_ns).
A_USER, A_SYS, A_REAPER, A_KL_HOLD, A_KL_WAIT, A_PQ_HOLD, A_PQ_WAIT, A_CPU, A_WALL, A_HORIZON = (
    range(10)
)

# Integer state slots.
_FREE, _RQ_HEAD, _RQ_LEN, _KL_HOLDER, _KLQ_HEAD, _KLQ_LEN = 0, 1, 2, 3, 4, 5
_PQ_HOLDER, _PQQ_HEAD, _PQQ_LEN, _ZQ_HEAD, _ZQ_LEN, _WAKING = 6, 7, 8, 9, 10, 11
_HEAP_N, _SEQ, _PHASE, _NEXT, _DONE, _STACK_TOP, _TODO_HEAD, _TODO_LEN = range(12, 20)
_N_STATE = 20


@dataclass(frozen=True, slots=True)
class EngineRun:
    """What one run of the event loop returns.

    Attributes
    ----------
    times_ns : float64[P, 6]
        Per process: start, exit (first exit segment begins), exit end (becomes a zombie), reaper
        job start, reaper job end, parent notified. Without a reaper job the two reaper columns
        equal the exit end.
    totals_ns : float64[10]
        user, sys, reaper busy, KERNEL_LOCK hold, KERNEL_LOCK wait (spin, every spinner),
        page-queue hold, page-queue wait, CPU busy (thread-held time), wall (last notification),
        horizon (last event).
    """

    times_ns: npt.NDArray[np.float64]
    totals_ns: npt.NDArray[np.float64]


@njit(cache=True)
def _heap_push(ht, hs, he, st, t, e):  # type: ignore[no-untyped-def]
    n = st[_HEAP_N]
    seq = st[_SEQ]
    st[_SEQ] = seq + 1
    i = n
    while i > 0:
        parent = (i - 1) >> 1
        if ht[parent] < t or (ht[parent] == t and hs[parent] < seq):
            break
        ht[i] = ht[parent]
        hs[i] = hs[parent]
        he[i] = he[parent]
        i = parent
    ht[i] = t
    hs[i] = seq
    he[i] = e
    st[_HEAP_N] = n + 1


@njit(cache=True)
def _heap_pop(ht, hs, he, st):  # type: ignore[no-untyped-def]
    t0 = ht[0]
    e0 = he[0]
    n = st[_HEAP_N] - 1
    st[_HEAP_N] = n
    if n > 0:
        t = ht[n]
        s = hs[n]
        e = he[n]
        i = 0
        while True:
            c = 2 * i + 1
            if c >= n:
                break
            if c + 1 < n and (ht[c + 1] < ht[c] or (ht[c + 1] == ht[c] and hs[c + 1] < hs[c])):
                c += 1
            if t < ht[c] or (t == ht[c] and s < hs[c]):
                break
            ht[i] = ht[c]
            hs[i] = hs[c]
            he[i] = he[c]
            i = c
        ht[i] = t
        hs[i] = s
        he[i] = e
    return t0, e0


@njit(cache=True, inline="always")
def _wrap(i, n):  # type: ignore[no-untyped-def]
    # ring-buffer index: head + length < 2 n, so one comparison replaces a division
    return i - n if i >= n else i


@njit(cache=True)
def _todo_append(todo, st, e):  # type: ignore[no-untyped-def]
    todo[_wrap(st[_TODO_HEAD] + st[_TODO_LEN], todo.shape[0])] = e
    st[_TODO_LEN] += 1


@njit(cache=True)
def _release_thread(e, t, st, busy, thread_of, granted_at, free_stack, acc, has_smt):  # type: ignore[no-untyped-def]
    th = thread_of[e]
    busy[th] = False
    thread_of[e] = -1
    acc[A_CPU] += t - granted_at[e]
    if not has_smt:
        free_stack[st[_STACK_TOP]] = th
        st[_STACK_TOP] += 1
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
    granted_at,
    zq,
    job_of,
    times,
    cur,
    rseg_ptr,
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
        granted_at[w] = t
        if w >= n_proc:
            # a reaper got a thread: it takes the oldest pending job
            st[_WAKING] -= 1
            job = zq[st[_ZQ_HEAD]]
            st[_ZQ_HEAD] = _wrap(st[_ZQ_HEAD] + 1, zq.shape[0])
            st[_ZQ_LEN] -= 1
            job_of[w - n_proc] = job
            times[job, T_REAP_START] = t
            cur[w] = rseg_ptr[job]
        _todo_append(todo, st, w)


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
    notify_from_exit,
    phase_ptr,
    phase_slots,
    n_reapers,
):
    n_threads = sibling.shape[0]
    has_smt = False
    for i in range(n_threads):
        if sibling[i] >= 0:
            has_smt = True
    n_proc = seg_ptr.shape[0] - 1
    n_ent = n_proc + n_reapers
    n_phase = phase_slots.shape[0]

    st = np.zeros(_N_STATE, np.int64)
    acc = np.zeros(10)
    times = np.zeros((n_proc, 6))
    times[:, T_EXIT] = -1.0

    cur = np.zeros(n_ent, np.int64)
    thread_of = np.full(n_ent, -1, np.int64)
    granted_at = np.zeros(n_ent)
    spin_since = np.zeros(n_ent)
    speed = np.ones(n_ent)
    job_of = np.full(n_reapers, -1, np.int64)
    awake = np.zeros(n_reapers, np.bool_)
    busy = np.zeros(n_threads, np.bool_)
    free_stack = np.empty(n_threads, np.int64)
    for i in range(n_threads):
        free_stack[i] = n_threads - 1 - i
    st[_STACK_TOP] = n_threads
    st[_FREE] = n_threads
    rq = np.empty(n_ent, np.int64)
    klq = np.empty(n_ent, np.int64)
    pqq = np.empty(n_ent, np.int64)
    zq = np.empty(max(n_proc, 1), np.int64)
    ht = np.empty(n_ent + 1)
    hs = np.empty(n_ent + 1, np.int64)
    he = np.empty(n_ent + 1, np.int64)
    todo = np.empty(2 * n_ent + 2, np.int64)
    starts = np.empty(n_proc + 1, np.int64)
    st[_KL_HOLDER] = -1
    st[_PQ_HOLDER] = -1

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
                    _release_thread(e, t, st, busy, thread_of, granted_at, free_stack, acc, has_smt)
                    _dispatch(
                        t,
                        st,
                        rq,
                        busy,
                        sibling,
                        has_smt,
                        free_stack,
                        thread_of,
                        granted_at,
                        zq,
                        job_of,
                        times,
                        cur,
                        rseg_ptr,
                        todo,
                        n_proc,
                    )
                _heap_push(ht, hs, he, st, t + work, e)
                continue
            th = thread_of[e]
            if th < 0:
                rq[_wrap(st[_RQ_HEAD] + st[_RQ_LEN], n_ent)] = e
                st[_RQ_LEN] += 1
                _dispatch(
                    t,
                    st,
                    rq,
                    busy,
                    sibling,
                    has_smt,
                    free_stack,
                    thread_of,
                    granted_at,
                    zq,
                    job_of,
                    times,
                    cur,
                    rseg_ptr,
                    todo,
                    n_proc,
                )
                continue
            sb = sibling[th]
            sp = smt_speed if (sb >= 0 and busy[sb]) else 1.0
            speed[e] = sp
            if kind == KL:
                if st[_KL_HOLDER] < 0:
                    st[_KL_HOLDER] = e
                    _heap_push(ht, hs, he, st, t + work / sp, e)
                else:
                    klq[_wrap(st[_KLQ_HEAD] + st[_KLQ_LEN], n_ent)] = e
                    st[_KLQ_LEN] += 1
                    spin_since[e] = t
            elif kind == PQ:
                if st[_PQ_HOLDER] < 0:
                    st[_PQ_HOLDER] = e
                    _heap_push(ht, hs, he, st, t + work / sp, e)
                else:
                    pqq[_wrap(st[_PQQ_HEAD] + st[_PQQ_LEN], n_ent)] = e
                    st[_PQQ_LEN] += 1
                    spin_since[e] = t
            else:
                _heap_push(ht, hs, he, st, t + work / sp, e)

        if st[_HEAP_N] == 0:
            break
        t, e = _heap_pop(ht, hs, he, st)
        last = t
        is_proc = e < n_proc
        s = cur[e]
        if is_proc:
            kind = seg_kind[s]
            work = seg_work[s]
        else:
            kind = rseg_kind[s]
            work = rseg_work[s]
        if kind == USER:
            acc[A_USER] += work / speed[e]
        elif kind == KL:
            acc[A_KL_HOLD] += work / speed[e]
            st[_KL_HOLDER] = -1
            if st[_KLQ_LEN] > 0:
                w = klq[st[_KLQ_HEAD]]
                st[_KLQ_HEAD] = _wrap(st[_KLQ_HEAD] + 1, n_ent)
                st[_KLQ_LEN] -= 1
                st[_KL_HOLDER] = w
                acc[A_KL_WAIT] += t - spin_since[w]
                wwork = seg_work[cur[w]] if w < n_proc else rseg_work[cur[w]]
                _heap_push(ht, hs, he, st, t + wwork / speed[w], w)
        elif kind == PQ:
            acc[A_PQ_HOLD] += work / speed[e]
            st[_PQ_HOLDER] = -1
            if st[_PQQ_LEN] > 0:
                w = pqq[st[_PQQ_HEAD]]
                st[_PQQ_HEAD] = _wrap(st[_PQQ_HEAD] + 1, n_ent)
                st[_PQQ_LEN] -= 1
                st[_PQ_HOLDER] = w
                acc[A_PQ_WAIT] += t - spin_since[w]
                wwork = seg_work[cur[w]] if w < n_proc else rseg_work[cur[w]]
                _heap_push(ht, hs, he, st, t + wwork / speed[w], w)
        s += 1
        cur[e] = s
        if is_proc and s == exit_first[e]:
            times[e, T_EXIT] = t
        end = seg_ptr[e + 1] if is_proc else rseg_ptr[job_of[e - n_proc] + 1]
        if s < end:
            if kind == USER and st[_RQ_LEN] > 0 and seg_kind[s] != BLOCK:
                # scheduling point: the thread goes to the head waiter, this process to the tail
                _release_thread(e, t, st, busy, thread_of, granted_at, free_stack, acc, has_smt)
                rq[_wrap(st[_RQ_HEAD] + st[_RQ_LEN], n_ent)] = e
                st[_RQ_LEN] += 1
                _dispatch(
                    t,
                    st,
                    rq,
                    busy,
                    sibling,
                    has_smt,
                    free_stack,
                    thread_of,
                    granted_at,
                    zq,
                    job_of,
                    times,
                    cur,
                    rseg_ptr,
                    todo,
                    n_proc,
                )
            else:
                _todo_append(todo, st, e)
            continue

        # the entity is done: a process finished exiting, or a reaper finished a job
        notify = -1
        if is_proc:
            times[e, T_EXIT_END] = t
            if times[e, T_EXIT] < 0.0:
                times[e, T_EXIT] = t
            has_job = rseg_ptr[e + 1] > rseg_ptr[e]
            if has_job:
                zq[_wrap(st[_ZQ_HEAD] + st[_ZQ_LEN], zq.shape[0])] = e
                st[_ZQ_LEN] += 1
                if st[_WAKING] < st[_ZQ_LEN]:
                    for r in range(n_reapers):
                        if not awake[r]:
                            awake[r] = True
                            st[_WAKING] += 1
                            rq[_wrap(st[_RQ_HEAD] + st[_RQ_LEN], n_ent)] = n_proc + r
                            st[_RQ_LEN] += 1
                            _dispatch(
                                t,
                                st,
                                rq,
                                busy,
                                sibling,
                                has_smt,
                                free_stack,
                                thread_of,
                                granted_at,
                                zq,
                                job_of,
                                times,
                                cur,
                                rseg_ptr,
                                todo,
                                n_proc,
                            )
                            break
            else:
                times[e, T_REAP_START] = t
                times[e, T_REAP_END] = t
            if notify_from_exit or not has_job:
                notify = e
            _release_thread(e, t, st, busy, thread_of, granted_at, free_stack, acc, has_smt)
        else:
            r = e - n_proc
            p = job_of[r]
            times[p, T_REAP_END] = t
            acc[A_REAPER] += t - granted_at[e]
            job_of[r] = -1
            if not notify_from_exit:
                notify = p
            _release_thread(e, t, st, busy, thread_of, granted_at, free_stack, acc, has_smt)
            if st[_ZQ_LEN] > st[_WAKING]:
                st[_WAKING] += 1
                rq[_wrap(st[_RQ_HEAD] + st[_RQ_LEN], n_ent)] = e
                st[_RQ_LEN] += 1
            else:
                awake[r] = False
        _dispatch(
            t,
            st,
            rq,
            busy,
            sibling,
            has_smt,
            free_stack,
            thread_of,
            granted_at,
            zq,
            job_of,
            times,
            cur,
            rseg_ptr,
            todo,
            n_proc,
        )
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

    acc[A_WALL] = wall
    acc[A_HORIZON] = last
    acc[A_SYS] = acc[A_CPU] - acc[A_REAPER] - acc[A_USER]
    return times, acc


def run(
    sibling: npt.NDArray[np.int64],
    smt_speed: float,
    seg_ptr: npt.NDArray[np.int64],
    seg_kind: npt.NDArray[np.int8],
    seg_work_ns: npt.NDArray[np.float64],
    exit_first: npt.NDArray[np.int64],
    rseg_ptr: npt.NDArray[np.int64],
    rseg_kind: npt.NDArray[np.int8],
    rseg_work_ns: npt.NDArray[np.float64],
    notify_from_exit: bool,
    phase_ptr: npt.NDArray[np.int64],
    phase_slots: npt.NDArray[np.int64],
    n_reapers: int,
) -> EngineRun:
    """Run the machine on one workload.

    Parameters
    ----------
    sibling : int64[N]
        SMT sibling of each hardware thread, -1 for none.
    smt_speed : float
        Speed of a thread whose sibling is busy, in (0, 1].
    seg_ptr, seg_kind, seg_work_ns : int64[P+1], int8[S], float64[S]
        Each process's segments (CSR, processes in start order): kind (``USER``..``BLOCK``)
        and work in nanoseconds at full speed. Every process has at least one segment.
    exit_first : int64[P]
        Index of each process's first exit segment (``seg_ptr[p+1]`` if none).
    rseg_ptr, rseg_kind, rseg_work_ns : int64[P+1], int8[R], float64[R]
        Each process's reaper job (``SYS``, ``KL`` or ``PQ`` segments; empty = no reaper job).
    notify_from_exit : bool
        The parent is notified when the process finishes exiting, not after its reaper job.
    phase_ptr, phase_slots : int64[F+1], int64[F]
        Processes of phase ``f`` are ``phase_ptr[f]:phase_ptr[f+1]``, run on ``phase_slots[f]``
        closed chains.
    n_reapers : int
        Reaper threads.
    """
    n_proc = seg_ptr.shape[0] - 1
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
        raise ValueError("rseg_kind: reaper segments must be sys, klock or pageq")
    if phase_ptr.shape[0] != phase_slots.shape[0] + 1 or phase_ptr[-1] != n_proc:
        raise ValueError("phase_ptr: expected F+1 offsets ending at the process count")
    if np.any(phase_slots < 1):
        raise ValueError("phase_slots: every phase needs at least one slot")
    times, totals = _simulate(
        np.ascontiguousarray(sibling, np.int64),
        float(smt_speed),
        np.ascontiguousarray(seg_ptr, np.int64),
        np.ascontiguousarray(seg_kind, np.int8),
        np.ascontiguousarray(seg_work_ns, np.float64),
        np.ascontiguousarray(exit_first, np.int64),
        np.ascontiguousarray(rseg_ptr, np.int64),
        np.ascontiguousarray(rseg_kind, np.int8),
        np.ascontiguousarray(rseg_work_ns, np.float64),
        bool(notify_from_exit),
        np.ascontiguousarray(phase_ptr, np.int64),
        np.ascontiguousarray(phase_slots, np.int64),
        int(n_reapers),
    )
    return EngineRun(times_ns=times, totals_ns=totals)


@njit(cache=True)
def _pack(head_ns, head_kinds, piece_ns, piece_kinds, pieces, tail_ns, tail_kinds):  # type: ignore[no-untyped-def]
    n = piece_ns.shape[0]
    ptr = np.zeros(n + 1, np.int64)
    tail_first = np.zeros(n, np.int64)
    for p in range(n):
        c = 0
        for j in range(head_ns.shape[1]):
            if head_ns[p, j] > 0.0:
                c += 1
        for j in range(piece_ns.shape[1]):
            if piece_ns[p, j] > 0.0:
                c += pieces
        for j in range(tail_ns.shape[1]):
            if tail_ns[p, j] > 0.0:
                c += 1
        ptr[p + 1] = ptr[p] + c
    kinds = np.empty(ptr[n], np.int8)
    work = np.empty(ptr[n])
    for p in range(n):
        i = ptr[p]
        for j in range(head_ns.shape[1]):
            if head_ns[p, j] > 0.0:
                kinds[i] = head_kinds[j]
                work[i] = head_ns[p, j]
                i += 1
        for _ in range(pieces):
            for j in range(piece_ns.shape[1]):
                if piece_ns[p, j] > 0.0:
                    kinds[i] = piece_kinds[j]
                    work[i] = piece_ns[p, j]
                    i += 1
        tail_first[p] = i
        for j in range(tail_ns.shape[1]):
            if tail_ns[p, j] > 0.0:
                kinds[i] = tail_kinds[j]
                work[i] = tail_ns[p, j]
                i += 1
    return ptr, kinds, work, tail_first


def pack_segments(
    head_ns: npt.NDArray[np.float64],
    head_kinds: npt.NDArray[np.int8],
    piece_ns: npt.NDArray[np.float64],
    piece_kinds: npt.NDArray[np.int8],
    pieces: int,
    tail_ns: npt.NDArray[np.float64],
    tail_kinds: npt.NDArray[np.int8],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int8], npt.NDArray[np.float64], Any]:
    """CSR segments, per process: the positive columns of ``head_ns[P, H]``, then ``pieces``
    repeats of the positive columns of ``piece_ns[P, K]``, then the positive columns of
    ``tail_ns[P, T]``; also the index of each process's first tail segment. Zero-length
    segments are dropped."""
    n = piece_ns.shape[0]
    return _pack(
        np.ascontiguousarray(head_ns, np.float64).reshape(n, -1),
        np.ascontiguousarray(head_kinds, np.int8),
        np.ascontiguousarray(piece_ns, np.float64).reshape(n, -1),
        np.ascontiguousarray(piece_kinds, np.int8),
        int(pieces),
        np.ascontiguousarray(tail_ns, np.float64).reshape(n, -1),
        np.ascontiguousarray(tail_kinds, np.int8),
    )
