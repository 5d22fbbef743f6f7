"""A plain SimPy model of the machine of :mod:`exitcore.engine`, for differential tests.

Written for clarity, not speed: every process and reaper is a SimPy process, each lock a small
FIFO mutex object of its own (spin or sleep), the CPUs a small FIFO pool that hands a freed thread
to the oldest waiter. It takes the same inputs as :func:`exitcore.engine.run` and returns the
same timestamps and totals, computed its own way (a lock's hold from its own grant and release
times, a sleeper's thread given back and asked for again by the waiting process itself). It
follows the engine's documented ordering rules: a thread request, a lock hand-over or a reaper
wake-up is queued by the code that causes it, at that moment.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import numpy as np
import simpy

from exitcore import engine as E


def spin_expected(h: float, s: float) -> float:
    """A runner with real acquisitions ``s`` apart, at a random phase, behind one hold ``h``:
    it meets it with probability min(1, h / s) and waits for the rest of it."""
    return h - s / 2 if h >= s else h * h / (2 * s)


class CpuPool:
    """Hardware threads with one FIFO run queue and the engine's thread-choice rule."""

    def __init__(self, env: simpy.Environment, sibling: np.ndarray, smt_speed: float) -> None:
        self.env = env
        self.sibling = [int(s) for s in sibling]
        self.smt_speed = smt_speed
        self.busy = [False] * len(self.sibling)
        self.waiters: deque[tuple[Any, simpy.Event]] = deque()
        self.busy_ns = 0.0

    def request(self, who: Any) -> simpy.Event:
        ev = self.env.event()
        self.waiters.append((who, ev))
        self._dispatch()
        return ev

    def release(self, thread: int, since: float) -> None:
        self.busy[thread] = False
        self.busy_ns += self.env.now - since
        self._dispatch()

    def speed(self, thread: int) -> float:
        sib = self.sibling[thread]
        return self.smt_speed if sib >= 0 and self.busy[sib] else 1.0

    def _dispatch(self) -> None:
        while self.waiters and not all(self.busy):
            who, ev = self.waiters.popleft()
            free = [i for i, b in enumerate(self.busy) if not b]
            idle_sib = [i for i in free if self.sibling[i] < 0 or not self.busy[self.sibling[i]]]
            thread = (idle_sib or free)[0]
            self.busy[thread] = True
            if callable(who):
                who()  # a reaper takes its job the moment it gets a thread
            ev.succeed(thread)


class Waiter:
    """One queued request: who, the grant event, since when, whether it still spins, its
    hold, the hold of one of its real acquisitions, whether it stands for several and the
    speed its segment runs at. A sleeper woken by a wake-all release has asked for a thread
    (``cpu_req``) and re-checks (``rechecking``): its ``ev`` fires with ``("wake",)`` and is
    replaced by a fresh one."""

    def __init__(
        self,
        who: Any,
        ev: simpy.Event,
        since: float,
        spinning: bool,
        work: float,
        real: float,
        merged: bool,
        speed: float,
    ) -> None:
        self.who, self.ev, self.since, self.spinning = who, ev, since, spinning
        self.work, self.real, self.merged, self.speed = work, real, merged, speed
        self.count = work / real if real > 0.0 else 1.0  # the real acquisitions it stands for
        self.cpu_req: simpy.Event | None = None  # set while woken, until it has a thread
        self.rechecking = False
        self.check_ns = 0.0


class Lock:
    """A FIFO mutex; on release the head waiter is granted at once (the engine's rule). A
    sleeping lock's waiter spins ``spin_ns`` first, then sleeps."""

    def __init__(
        self,
        env: simpy.Environment,
        kind: int,
        cpu: CpuPool,
        growth: float,
        spin_ns: float,
        rw_wake_ns: float = 0.0,
    ) -> None:
        self.env, self.kind, self.cpu, self.growth = env, kind, cpu, growth
        self.spin_ns = spin_ns if kind != E.SPIN else 0.0
        self.rw_wake_ns = rw_wake_ns
        self.holder: Any = None
        self.waiters: deque[Waiter] = deque()
        # the latest hold to begin: its end and one real acquisition's hold (0: it is one)
        self.hold_end = 0.0
        self.hold_real = 0.0
        # the waiters' real holds and holds, summed as they come and go (from 0 when empty)
        self.reals = 0.0
        self.works = 0.0
        self.granted_at = 0.0
        self.hold = 0.0
        self.wait = 0.0
        self.acquisitions = 0

    def request(
        self, who: Any, work: float, real: float, merged: bool, speed: float
    ) -> Waiter | None:
        """None when granted now, else the queued request (its ``ev`` fires on the grant).

        A request of ``work`` standing for ``count`` real acquisitions of ``real`` each is
        queued where what it waits for comes nearest to what those would: each would wait for
        one real hold of every waiter, and for the rest of one real hold of the holder's (the
        first for what is left of the current one, the others for half of one); queued, it
        waits for the rest of the holder's whole hold and the whole holds ahead of it. It
        passes waiters at the tail standing for more acquisitions than it does while the holds
        left ahead of it, less half the passed one's, exceed that."""
        if self.holder is None:
            self.holder, self.granted_at = who, self.env.now
            self.acquisitions += 1
            return None
        ev = self.env.event()
        spins = self.kind == E.SPIN or self.spin_ns > 0.0
        waiter = Waiter(who, ev, self.env.now, spins, work, real, merged, speed)
        count = waiter.count
        would_wait = self.reals * count
        left = self.hold_end - self.env.now
        if left > 0.0 and self.hold_real > 0.0:
            r1 = self.hold_real
            first = left if left < r1 else 0.5 * r1
            would_wait += first + (count - 1.0) * 0.5 * r1 - left
        ahead = self.works
        at = len(self.waiters)
        while at > 0:
            last = self.waiters[at - 1]
            if last.count <= count or ahead - 0.5 * last.work <= would_wait:
                break
            ahead -= last.work
            at -= 1
        self.waiters.insert(at, waiter)
        self.reals += real
        self.works += work
        return waiter

    def release(self, wakes: float = 1.0) -> None:
        """Hand the lock to the head waiter. ``wakes``: how many real releases this one stands
        for (a merged hold's real acquisitions), each waking a wake-all lock's sleepers."""
        now = self.env.now
        self.hold += now - self.granted_at
        self.holder = None
        if self.waiters:
            w = self.waiters.popleft()
            self.reals = self.reals - w.real if self.waiters else 0.0
            self.works = self.works - w.work if self.waiters else 0.0
            self.holder, self.granted_at = w.who, now
            self.acquisitions += 1
            self.wait += now - w.since
            # a granted sleeper asks for a thread now, before the releaser goes on (unless a
            # wake-up already did, or it is on its thread re-checking); a granted spinner's hold
            # grows with the spinners still queued behind it
            if w.spinning:
                # its hold begins now
                self.begin(w.work, w.real, w.merged, self.stretch(), w.speed)
                w.ev.succeed((w.since, None, self.stretch()))
            elif w.cpu_req is not None or w.rechecking:
                w.ev.succeed((w.since, w.cpu_req, None))
            else:
                w.ev.succeed((w.since, self.cpu.request(("woken", w.who)), None))
        if self.kind == E.SLEEP_ALL:
            # wakeup(rwl): every other sleeper asks for a thread, in queue order
            for v in self.waiters:
                if not (v.spinning or v.rechecking or v.cpu_req is not None):
                    v.cpu_req = self.cpu.request(("woken", v.who))
                    v.check_ns = wakes * self.rw_wake_ns
                    old, v.ev = v.ev, self.env.event()
                    old.succeed(("wake",))

    def stretch(self) -> float:
        return 1.0 + self.growth * len(self.waiters)

    def begin(self, work: float, real: float, merged: bool, stretch: float, speed: float) -> None:
        """The holder's hold begins now."""
        self.hold_end = self.env.now + work * stretch / speed
        self.hold_real = real * stretch / speed if merged else 0.0


class Reference:
    def __init__(self, **kw: Any) -> None:
        self.kw = kw
        self.env = simpy.Environment()
        self.cpu = CpuPool(self.env, kw["sibling"], kw["smt_speed"])
        growth = kw.get("lock_growth")
        growth = np.zeros(len(kw["lock_kinds"])) if growth is None else growth
        spin_ns = float(kw.get("rw_spin_ns") or 0.0)
        wake_ns = float(kw.get("rw_wake_ns") or 0.0)
        self.locks = [
            Lock(self.env, int(k), self.cpu, float(g), spin_ns, wake_ns)
            for k, g in zip(kw["lock_kinds"], growth, strict=True)
        ]
        n = len(kw["seg_ptr"]) - 1
        rows = kw.get("reaper_rows")
        self.rrow = list(range(n)) if rows is None else [int(r) for r in rows]
        self.times = np.zeros((n, 6))
        self.totals = np.zeros(E.N_TOTALS)
        self.zombies: deque[int] = deque()
        self.n_reapers = int(kw["n_reapers"])
        self.asleep = [True] * self.n_reapers
        self.waking = 0
        phase_ptr = kw["phase_ptr"]
        self.phases = [
            (int(phase_ptr[f]), int(phase_ptr[f + 1]), int(kw["phase_slots"][f]))
            for f in range(len(kw["phase_slots"]))
            if phase_ptr[f + 1] > phase_ptr[f]
        ]
        self.phase = 0
        self.next_proc = 0
        self.done_in_phase = 0
        self.reaper_events = [self.env.event() for _ in range(self.n_reapers)]
        self.reaper_req: list[simpy.Event | None] = [None] * self.n_reapers
        self.reaper_job = [-1] * self.n_reapers
        for r in range(self.n_reapers):
            self.env.process(self.reaper(r))
        # merged acquisitions: each process's unlocked stretch (start, end, speed), its merged
        # locks' spacings, its draws and the stall it owes (length, lock)
        self.real = kw.get("seg_real_ns")
        self.rreal = kw.get("rseg_real_ns")
        self.gaps: list[dict[int, float]] = [{} for _ in range(n)]
        if kw.get("gap_ns") is not None:
            for q in range(n):
                for lk, g in zip(kw["gap_lock"][q], kw["gap_ns"][q], strict=True):
                    if g > 0 and int(lk) not in self.gaps[q]:
                        self.gaps[q][int(lk)] = float(g)
        self.stretch_of: list[tuple[float, float, float]] = [(0.0, 0.0, 1.0)] * n
        self.draws: dict[tuple[int, int], int] = {}
        self.owed: list[tuple[float, int, float] | None] = [None] * n

    # -- segments -------------------------------------------------------------------------
    def run_segment(
        self,
        kind: int,
        work: float,
        thread: int,
        since: float,
        who: Any,
        sp: float | None,
        user: float = 0.0,
        real: float | None = None,
        then_sys: float | None = None,
        next_kind: int = -1,
    ) -> Any:
        """Run one segment; returns (thread, since, speed): a sleeper may come back on another
        thread. ``sp`` given: the speed of the locked segment this unlocked one follows.
        ``user``: the part of a system segment's work that is user time. ``real``: the hold of
        one real acquisition of those a locked segment stands for (None: it is one);
        ``then_sys``: the work of the system segment right after this locked one, if any;
        ``next_kind``: the kind of the segment after this one (-1: none)."""
        is_reaper = not isinstance(who, int)
        follows_lock = sp is not None
        sp = self.cpu.speed(thread) if sp is None else sp
        if kind >= E.LOCKED:
            lock = self.locks[kind - E.LOCKED]
            hold1 = work if real is None else real
            merged = hold1 < work * E._MERGED
            waiter = lock.request(who, work, hold1, merged, sp)
            stretch = lock.stretch()
            if waiter is not None:
                ev = waiter.ev
                if waiter.spinning and lock.kind != E.SPIN:
                    # spin for the budget (the real acquisitions it stands for each spin one);
                    # the lock may come first
                    yield ev | self.env.timeout(lock.spin_ns * (work / real if real else 1.0))
                    spun = self.env.now - waiter.since
                    self.totals[E.A_REAPER if is_reaper else E.A_SYS] += spun
                    if ev.triggered:
                        _, _, stretch = ev.value
                    else:
                        waiter.spinning = False  # it sleeps from now
                if not waiter.spinning:
                    thread, since = yield from self.sleep_on(waiter, thread, since, is_reaper)
                    sp = self.cpu.speed(thread)
                    stretch = lock.stretch()
                elif lock.kind == E.SPIN:
                    waited_since, _, stretch = yield ev
                    spin = self.env.now - waited_since
                    self.totals[E.A_REAPER if is_reaper else E.A_SYS] += spin
            dur = work * stretch / sp
            now = self.env.now
            lock.begin(work, hold1, merged, stretch, sp)
            if real is not None and real > 0:
                self.stall_runners(kind - E.LOCKED, now, now + dur, real, work / real)
            if then_sys is not None and not is_reaper:
                self.stretch_of[who] = (now, now + dur + then_sys / sp, sp)
            yield self.env.timeout(dur)
            lock.release(work / real if real else 1.0)
        else:
            dur = work / sp
            if not is_reaper and not follows_lock:
                self.stretch_of[who] = (self.env.now, self.env.now + dur, sp)
            yield self.env.timeout(dur)
            owed = None if is_reaper else self.owed[who]
            if owed is not None:
                # it met a hold between its merged acquisitions: it spins that long, unless it
                # gets to its next segment first and that asks for the lock
                self.owed[who] = None
                stall, lk, t_hit = owed
                if not (self.env.now < t_hit and next_kind == E.LOCKED + lk):
                    yield self.env.timeout(stall)
                    self.totals[E.A_SYS] += stall
                    self.locks[lk].wait += stall
        if is_reaper:
            self.totals[E.A_REAPER] += dur
        elif kind == E.USER:
            self.totals[E.A_USER] += dur
        else:
            self.totals[E.A_USER] += user / sp
            self.totals[E.A_SYS] += dur - user / sp
        return thread, since, sp

    def sleep_on(self, waiter: Waiter, thread: int, since: float, is_reaper: bool) -> Any:
        """A queued waiter gives its thread up and sleeps until it is granted the lock and
        has a thread again; each wake-all release that does not hand it the lock costs it a
        re-check on a thread of its own. Returns (thread, since)."""
        self.cpu.release(thread, since)
        while True:
            got = yield waiter.ev
            if got[0] != "wake":  # granted while asleep
                thread = yield got[1]
                return thread, self.env.now
            assert waiter.cpu_req is not None
            thread = yield waiter.cpu_req
            waiter.cpu_req = None
            since = self.env.now
            if waiter.ev.triggered:  # granted while it waited for the thread
                return thread, since
            waiter.rechecking = True
            check = waiter.check_ns / self.cpu.speed(thread)
            yield self.env.timeout(check)
            waiter.rechecking = False
            self.totals[E.A_REAPER if is_reaper else E.A_SYS] += check
            if waiter.ev.triggered:
                return thread, since
            self.cpu.release(thread, since)

    def stall_runners(self, lk: int, t0: float, t_r: float, real: float, count: float) -> None:
        """A hold of ``lk`` from ``t0`` to ``t_r`` whose real acquisitions hold ``real`` each:
        each process in an unlocked stretch with merged acquisitions of ``lk`` no more than
        ``2 real`` apart meets it at its next real one; a hold standing for ``count`` real ones
        is met as those would be."""
        for q, gaps in enumerate(self.gaps):
            start, end, speed = self.stretch_of[q]
            if lk not in gaps or not start < t0 < end or real < 0.5 * gaps[lk]:
                continue
            n = self.draws[q, lk] = self.draws.get((q, lk), 0) + 1
            x = n * E._PHI
            gap = gaps[lk] / speed
            t_hit = t0 + (x - math.floor(x)) * gap
            owed = self.owed[q]
            if t_hit < t_r and (owed is None or (t_hit, lk) < (owed[2], owed[1])):
                stall = t_r - t_hit
                if count > 1.0 + 1e-9:
                    block = t_r - t0
                    stall *= count * spin_expected(block / count, gap) / spin_expected(block, gap)
                self.owed[q] = (stall, lk, t_hit)

    # -- a process --------------------------------------------------------------------------
    def process(self, p: int) -> Any:
        kw = self.kw
        # SimPy runs a new process's first step before other events of the same instant; the
        # engine starts processes after the effects already queued, so wait one zero-length turn.
        yield self.env.timeout(0)
        self.times[p, E.T_START] = self.env.now
        lo, hi = int(kw["seg_ptr"][p]), int(kw["seg_ptr"][p + 1])
        exit_first = int(kw["exit_first"][p])
        users = kw.get("seg_user_ns")
        self.times[p, E.T_EXIT] = -1.0
        thread, since = -1, 0.0
        pending: simpy.Event | None = None
        carry: float | None = None
        for s in range(lo, hi):
            kind, work = int(kw["seg_kind"][s]), float(kw["seg_work_ns"][s])
            if s == exit_first:
                self.times[p, E.T_EXIT] = self.env.now
            if kind == E.BLOCK:
                if thread >= 0:
                    self.cpu.release(thread, since)
                    thread = -1
                yield self.env.timeout(work)
                carry = None
                continue
            if thread < 0:
                if pending is None:
                    pending = self.cpu.request(p)
                thread = yield pending
                pending = None
                since = self.env.now
            user = float(users[s]) if users is not None else 0.0
            real = None if self.real is None else float(self.real[s])
            nxt = int(kw["seg_kind"][s + 1]) if s + 1 < hi else -1
            then_sys = (
                float(kw["seg_work_ns"][s + 1]) if kind >= E.LOCKED and nxt == E.SYS else None
            )
            thread, since, sp = yield from self.run_segment(
                kind, work, thread, since, p, carry if kind == E.SYS else None, user, real,
                then_sys, nxt,
            )  # fmt: skip
            carry = sp if kind >= E.LOCKED else None
            if kind == E.USER and nxt not in (-1, E.BLOCK) and self.cpu.waiters:
                self.cpu.release(thread, since)
                thread = -1
                pending = self.cpu.request(p)
        now = self.env.now
        self.times[p, E.T_EXIT_END] = now
        if self.times[p, E.T_EXIT] < 0:
            self.times[p, E.T_EXIT] = now
        row = self.rrow[p]
        has_job = kw["rseg_ptr"][row + 1] > kw["rseg_ptr"][row]
        if has_job:
            self.zombies.append(p)
            if self.waking < len(self.zombies) and True in self.asleep:
                self.wake(self.asleep.index(True))
        else:
            self.times[p, E.T_REAP_START] = now
            self.times[p, E.T_REAP_END] = now
        self.cpu.release(thread, since)
        if kw["notify_from_exit"] or not has_job:
            self.notify(p)

    # -- reapers ----------------------------------------------------------------------------
    def wake(self, r: int) -> None:
        """A sleeping reaper is woken: it joins the run queue now."""
        self.wake_again(r)
        self.reaper_events[r].succeed()
        self.reaper_events[r] = self.env.event()

    def reaper(self, r: int) -> Any:
        kw = self.kw
        while True:
            if self.reaper_req[r] is None:
                yield self.reaper_events[r]
            req = self.reaper_req[r]
            assert req is not None
            thread = yield req
            self.reaper_req[r] = None
            since = self.env.now
            job = self.reaper_job[r]
            carry: float | None = None
            row = self.rrow[job]
            for s in range(int(kw["rseg_ptr"][row]), int(kw["rseg_ptr"][row + 1])):
                kind = int(kw["rseg_kind"][s])
                thread, since, sp = yield from self.run_segment(
                    kind, float(kw["rseg_work_ns"][s]), thread, since, ("r", r),
                    carry if kind == E.SYS else None, 0.0,
                    None if self.rreal is None else float(self.rreal[s]),
                )  # fmt: skip
                carry = sp if kind >= E.LOCKED else None
            self.times[job, E.T_REAP_END] = self.env.now
            self.cpu.release(thread, since)
            if len(self.zombies) > self.waking:
                self.wake_again(r)
            else:
                self.asleep[r] = True
            if not kw["notify_from_exit"]:
                self.notify(job)

    def wake_again(self, r: int) -> None:
        """Queue reaper ``r`` for a thread; it takes the oldest zombie when it gets one."""
        self.asleep[r] = False
        self.waking += 1

        def take_job() -> None:
            self.waking -= 1
            job = self.zombies.popleft()
            self.reaper_job[r] = job
            self.times[job, E.T_REAP_START] = self.env.now

        self.reaper_req[r] = self.cpu.request(take_job)

    # -- closed chains ----------------------------------------------------------------------
    def start_phase(self) -> None:
        if self.phase < len(self.phases):
            lo, hi, slots = self.phases[self.phase]
            k = min(slots, hi - lo)
            self.next_proc = lo + k
            self.done_in_phase = 0
            for q in range(lo, lo + k):
                self.env.process(self.process(q))

    def notify(self, p: int) -> None:
        now = self.env.now
        self.times[p, E.T_NOTIFY] = now
        self.totals[E.A_WALL] = now
        lo, hi, _ = self.phases[self.phase]
        if self.next_proc < hi:
            self.env.process(self.process(self.next_proc))
            self.next_proc += 1
        self.done_in_phase += 1
        if self.done_in_phase == hi - lo:
            self.phase += 1
            self.start_phase()

    def run(self) -> E.EngineRun:
        self.start_phase()
        self.env.run()
        # the last segment's end (a spin that was granted in time leaves a timeout behind)
        self.totals[E.A_HORIZON] = float(self.times.max())
        self.totals[E.A_CPU] = self.cpu.busy_ns
        return E.EngineRun(
            times_ns=self.times,
            totals_ns=self.totals,
            lock_hold_ns=np.array([lk.hold for lk in self.locks]),
            lock_wait_ns=np.array([lk.wait for lk in self.locks]),
            lock_acquisitions=np.array([lk.acquisitions for lk in self.locks], np.int64),
        )


def reference_run(**kw: Any) -> E.EngineRun:
    """The keyword inputs of :func:`exitcore.engine.run`."""
    return Reference(**kw).run()
