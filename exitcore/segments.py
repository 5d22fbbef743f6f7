"""Laying each process out as engine segments: work between lock acquisitions.

A process's demand is its CPU time and, per lock, a number of acquisitions with a hold time
each (:mod:`exitcore.locks`). Acquisitions are placed at fixed positions of the process's
system time: acquisition ``j`` of ``n`` of one lock sits at fraction ``(j + 0.5) / n`` of it,
the locks merged in position order, and the unlocked system time is cut between them. User time
is cut at the same fractions: a process's faults and system calls are spread through its user
time, not bunched after a burst of it. ``pieces`` only says where the scheduling points are: each
piece's user time before its first acquisition is a ``USER`` segment (its end is the scheduling
point), the rest rides on the ``SYS`` segments of the gaps after it (their ``users`` part, user
time to the accounting). So the acquisitions, their count, their hold time and their spacing do
not depend on ``pieces``: doubling it only adds scheduling points (tests/exitcore/test_simulate.py
checks that wall, user and sys move less than 1 %).

Segments of one process: its blocked time, then ``pieces`` times ``[user, system time (with the
user time between the acquisitions) and the acquisitions that fall in this piece]``, then the
exit: the exit context's unlocked work with its acquisitions, then one acquisition of
``final_lock`` holding ``final_ns`` (the exit_klock context). A reaper job is laid out the same
way with no user time and no blocked time. Zero-length segments are dropped.

Demand is given dense: ``[rows, K]`` lock ids, acquisition counts (expected values, rounded
here) and holds per acquisition; short acquisitions are merged to ``resolution_ns``
(:func:`exitcore.locks.merge`, the same arithmetic). Exit and reaper demand is per drawn address
space (``space_of`` picks each process's row), so it is stored once per space.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from numba import njit

from exitcore.engine import BLOCK, LOCKED, SYS, USER


@njit(cache=True, inline="always")
def merged(n, h, resolution_ns):  # type: ignore[no-untyped-def]
    """(simulated count, hold each) for ``n`` acquisitions of ``h`` (exitcore.locks.merge)."""
    n = np.rint(n)
    if n <= 0.0 or h <= 0.0:
        return 0, 0.0
    total = n * h
    m = n
    if resolution_ns > 0.0:
        m = min(n, max(1.0, np.ceil(total / resolution_ns - 1e-9)))
    return int(m), total / m


@njit(cache=True)
def _merge_all(counts, holds, res):  # type: ignore[no-untyped-def]
    m = np.zeros(counts.shape, np.int64)
    h = np.zeros(counts.shape)
    for r in range(counts.shape[0]):
        for k in range(counts.shape[1]):
            m[r, k], h[r, k] = merged(counts[r, k], holds[r, k], res)
    return m, h


@njit(cache=True)
def _stream(  # type: ignore[no-untyped-def]
    kinds, works, users, reals, i, write, user, unlocked, pieces, locks, cnts, hlds, row, res,
    cnt, hld, nxt, pos, rk, pre_real,
):  # fmt: skip
    """Emit pieces x [user, unlocked work cut at the acquisitions]; returns the next index.
    Within a piece the user time is cut at the acquisitions too: the part before the first one
    is the piece's user segment, each later part rides on the system segment of its gap
    (``users``). ``res > 0``: the counts and holds of ``row`` are raw and merged here; else
    already merged, ``pre_real[row]`` holding the real acquisitions' hold. ``reals`` gets each
    acquisition's real hold (less than its work when it stands for several)."""
    k_n = locks.shape[1]
    for k in range(k_n):
        if res > 0.0:
            c, h = merged(cnts[row, k], hlds[row, k], res)
            rk[k] = hlds[row, k]
        else:
            c, h = int(cnts[row, k]), hlds[row, k]
            rk[k] = pre_real[row, k]
        cnt[k] = c
        hld[k] = h
        nxt[k] = 0
        pos[k] = 0.5 / c if c > 0 else 2.0  # position of the next acquisition of entry k
    for piece in range(pieces):
        p_prev = piece / pieces
        p_end = (piece + 1) / pieces
        first = p_end  # the piece's first acquisition
        for k in range(k_n):
            first = min(first, pos[k])
        if user > 0.0 and first > p_prev:
            if write:
                kinds[i] = USER
                works[i] = user * (first - p_prev)
            i += 1
        carried = 0.0  # user time of the gap so far: none before the first acquisition
        while True:
            best = -1
            best_p = p_end
            for k in range(k_n):
                if pos[k] < best_p:
                    best_p = pos[k]
                    best = k
            if best < 0:
                break
            gap = unlocked * (best_p - p_prev)
            u = carried * (best_p - p_prev)
            if gap + u > 0.0:
                if write:
                    kinds[i] = SYS
                    works[i] = gap + u
                    users[i] = u
                i += 1
            if write:
                kinds[i] = LOCKED + locks[row, best]
                works[i] = hld[best]
                reals[i] = rk[best]
            i += 1
            j = nxt[best] + 1
            nxt[best] = j
            pos[best] = (j + 0.5) / cnt[best] if j < cnt[best] else 2.0
            p_prev = best_p
            carried = user
        gap = unlocked * (p_end - p_prev)
        u = carried * (p_end - p_prev)
        if gap + u > 0.0:
            if write:
                kinds[i] = SYS
                works[i] = gap + u
                users[i] = u
            i += 1
    return i


@njit(cache=True)
def _layout(  # type: ignore[no-untyped-def]
    write, kinds, works, users, reals, ptr, exit_first, block_ns, user_ns, sys_ns, pieces,
    b_lock, b_count, b_hold, space_of, x_ns, x_lock, x_count, x_hold, final_lock, final_ns, res,
):  # fmt: skip
    n = user_ns.shape[0]
    # per space, merged once; per process, merged as it is laid out (no [P, K] copies)
    x_real = x_hold  # the hold of one real acquisition
    x_cnt, x_hld = _merge_all(x_count, x_hold, res)
    x_count = x_cnt.astype(np.float64)
    x_hold = x_hld
    no_real = np.zeros((1, 1))
    # the work between two real acquisitions of each merged body entry (0: not merged)
    gap = np.zeros(b_count.shape)
    if write:  # an upper bound of the segment count: gaps at most one per acquisition
        x_tot = x_cnt.sum(axis=1)
        total = 0
        for p in range(n):
            work = user_ns[p] + sys_ns[p]
            for k in range(b_count.shape[1]):
                work += np.rint(b_count[p, k]) * b_hold[p, k]
            a = 0
            for k in range(b_count.shape[1]):
                c, _ = merged(b_count[p, k], b_hold[p, k], res)
                a += c
                raw = np.rint(b_count[p, k])
                if c < raw:
                    gap[p, k] = work / raw
            total += 3 + 2 * pieces + 2 * a + 2 * x_tot[space_of[p]]
        kinds = np.empty(total, np.int16)
        works = np.empty(total)
        users = np.zeros(total)
        reals = np.zeros(total)
    width = max(b_lock.shape[1], x_lock.shape[1], 1)
    cnt = np.zeros(width, np.int64)
    hld = np.zeros(width)
    nxt = np.zeros(width, np.int64)
    pos = np.zeros(width)
    rk = np.zeros(width)
    i = 0
    for p in range(n):
        ptr[p] = i
        if block_ns[p] > 0.0:
            if write:
                kinds[i] = BLOCK
                works[i] = block_ns[p]
            i += 1
        i = _stream(
            kinds, works, users, reals, i, write, user_ns[p], sys_ns[p], pieces, b_lock, b_count,
            b_hold, p, res, cnt, hld, nxt, pos, rk, no_real,
        )  # fmt: skip
        exit_first[p] = i
        sp = space_of[p]
        i = _stream(
            kinds, works, users, reals, i, write, 0.0, x_ns[sp], 1, x_lock, x_count, x_hold, sp,
            -1.0, cnt, hld, nxt, pos, rk, x_real,
        )  # fmt: skip
        if final_ns[sp] > 0.0:
            if write:
                kinds[i] = LOCKED + final_lock
                works[i] = final_ns[sp]
                reals[i] = final_ns[sp]
            i += 1
    ptr[n] = i
    return kinds[:i], works[:i], users[:i], reals[:i], gap


class Layout(NamedTuple):
    """What :func:`layout` returns: CSR segments and what the engine needs about merging."""

    ptr: npt.NDArray[np.int64]
    kinds: npt.NDArray[np.int16]
    works: npt.NDArray[np.float64]
    users: npt.NDArray[np.float64]
    """The user time a system segment carries (part of its work), 0 elsewhere."""
    exit_first: npt.NDArray[np.int64]
    real_ns: npt.NDArray[np.float64]
    """Per locked segment, the hold of one of the real acquisitions it stands for (its work
    when it is one); 0 on unlocked segments."""
    gap_ns: npt.NDArray[np.float64]
    """``[P, K]``: the work between two real acquisitions of each merged body entry, 0 for
    an entry not merged (``body``'s lock ids say which lock)."""


def layout(
    *,
    user_ns: npt.NDArray[np.float64],
    sys_ns: npt.NDArray[np.float64],
    pieces: int,
    body: tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64]] | None,
    space_of: npt.NDArray[np.int64],
    exit_ns: npt.NDArray[np.float64],
    exit_demand: tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64]],
    final_lock: int,
    final_ns: npt.NDArray[np.float64],
    resolution_ns: float,
    block_ns: npt.NDArray[np.float64] | None = None,
) -> Layout:
    """CSR segments of ``P`` processes (module docstring); also each process's first exit segment.

    ``body`` is ``(lock ids int64[P, K], counts float64[P, K], holds_ns float64[P, K])`` or None;
    ``exit_demand`` the same per space ``[S, K2]``, with ``exit_ns`` and ``final_ns`` per space.
    """
    n = int(np.asarray(user_ns).shape[0])
    f64 = np.float64
    if body is None:
        body = (np.zeros((n, 0), np.int64), np.zeros((n, 0)), np.zeros((n, 0)))
    blocks = np.zeros(n) if block_ns is None else np.ascontiguousarray(block_ns, f64)
    ptr = np.zeros(n + 1, np.int64)
    exit_first = np.zeros(n, np.int64)
    args = (
        blocks, np.ascontiguousarray(user_ns, f64), np.ascontiguousarray(sys_ns, f64),
        int(pieces), *(np.ascontiguousarray(a) for a in body),
        np.ascontiguousarray(space_of, np.int64), np.ascontiguousarray(exit_ns, f64),
        *(np.ascontiguousarray(a) for a in exit_demand), int(final_lock),
        np.ascontiguousarray(final_ns, f64), float(resolution_ns),
    )  # fmt: skip
    kinds, works, users, reals, gap = _layout(
        True, np.zeros(0, np.int16), np.zeros(0), np.zeros(0), np.zeros(0), ptr,
        exit_first, *args,
    )  # fmt: skip
    return Layout(ptr, kinds, works, users, exit_first, reals, gap)
