"""The layout of a process's work as engine segments, laid out by hand."""

from __future__ import annotations

import numpy as np

from exitcore.engine import LOCKED, SYS, USER
from exitcore.segments import layout


def lay_out(pieces: int) -> tuple[list[int], list[float], list[float]]:
    """One process: 1,000 ns of user time, 200 ns of system time, 4 acquisitions of lock 0
    holding 10 ns each, no exit work."""
    ptr, kinds, works, users, exit_first, _, _ = layout(
        user_ns=np.array([1000.0]),
        sys_ns=np.array([200.0]),
        pieces=pieces,
        body=(np.array([[0]]), np.array([[4.0]]), np.array([[10.0]])),
        space_of=np.array([0]),
        exit_ns=np.array([0.0]),
        exit_demand=(np.zeros((1, 0), np.int64), np.zeros((1, 0)), np.zeros((1, 0))),
        final_lock=0,
        final_ns=np.array([0.0]),
        resolution_ns=0.0,
    )
    assert ptr.tolist() == [0, kinds.size] and exit_first.tolist() == [kinds.size]
    return kinds.tolist(), works.tolist(), users.tolist()


def test_user_time_is_cut_at_the_acquisitions_and_pieces_only_place_scheduling_points() -> None:
    # The acquisitions sit at 1/8, 3/8, 5/8 and 7/8 of the system time, and of the user time:
    # 125 ns of user before the first, 250 between two, 125 after the last. Each piece's user
    # before its first acquisition is its USER segment (a scheduling point); the rest rides on
    # the SYS segment of its gap.
    L = LOCKED
    kinds, works, users = lay_out(pieces=2)
    assert kinds == [USER, SYS, L, SYS, L, SYS] * 2
    assert works == [125.0, 25.0, 10.0, 300.0, 10.0, 150.0] * 2
    assert users == [0.0, 0.0, 0.0, 250.0, 0.0, 125.0] * 2
    # one piece: the same spacing, one scheduling point
    kinds, works, users = lay_out(pieces=1)
    assert kinds == [USER, SYS, L, SYS, L, SYS, L, SYS, L, SYS]
    assert works == [125.0, 25.0, 10.0, 300.0, 10.0, 300.0, 10.0, 300.0, 10.0, 150.0]
    assert users == [0.0, 0.0, 0.0, 250.0, 0.0, 250.0, 0.0, 250.0, 0.0, 125.0]
    # the user time between the acquisitions is the same for any cut
    for pieces in (1, 2, 4, 8):
        kinds, works, users = lay_out(pieces)
        user = sum(w for k, w in zip(kinds, works, strict=True) if k == USER) + sum(users)
        assert user == 1000.0


def test_merged_acquisitions_keep_their_real_hold_and_spacing() -> None:
    """Lock 0: 10 acquisitions of 10 ns at a 50 ns resolution merge into 2 of 50 ns; lock 1: 2
    of 100 ns stay as they are. The process's body work is 1,000 + 1,000 + 100 + 200 ns, so
    its real acquisitions of lock 0 are 2,300 / 10 = 230 ns of work apart. The exit's 6
    acquisitions of lock 1 holding 5 ns merge into one of 30; the final acquisition is real."""
    out = layout(
        user_ns=np.array([1000.0]),
        sys_ns=np.array([1000.0]),
        pieces=1,
        body=(np.array([[0, 1]]), np.array([[10.0, 2.0]]), np.array([[10.0, 100.0]])),
        space_of=np.array([0]),
        exit_ns=np.array([10.0]),
        exit_demand=(np.array([[1]]), np.array([[6.0]]), np.array([[5.0]])),
        final_lock=0,
        final_ns=np.array([40.0]),
        resolution_ns=50.0,
    )
    locked = out.kinds >= LOCKED
    got = [
        (int(k) - LOCKED, float(w), float(h))
        for k, w, h in zip(out.kinds[locked], out.works[locked], out.real_ns[locked], strict=True)
    ]
    body = [(0, 50.0, 10.0), (0, 50.0, 10.0), (1, 100.0, 100.0), (1, 100.0, 100.0)]
    assert sorted(got[:4]) == body
    assert got[4:] == [(1, 30.0, 5.0), (0, 40.0, 40.0)]
    assert not out.real_ns[~locked].any()
    assert out.gap_ns.tolist() == [[2300.0 / 10, 0.0]]
