"""Page-table occupancy per level: how many page-table pages each process has at exit.

Four levels of 512-entry tables over 4 KiB pages. Column ``0`` counts leaf tables (each maps
512 pages, 2 MiB), ``1`` the next level (1 GiB each), ``2`` the next (512 GiB each), ``3`` the
root (1 for a process with any resident page). A table exists when at least one resident page
lies in its range (tables are allocated on fault and not reclaimed before exit).

Two ways to the same numbers:

* :func:`table_counts_exact` materializes the resident pages (:meth:`AddressSpaces.resident_vpns`)
  and counts distinct tables: the oracle of the tests, O(R).
* :func:`table_counts_expected` gives the expectation in closed form over the placement's
  randomness: O(E), no per-page arrays; what large studies use.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import numpy.typing as npt
from numba import njit

from exitcore.addrspace import (
    PLACEMENT_CLUSTERED,
    PLACEMENT_DENSE,
    AddressSpaces,
)

LEVELS: Final = 4
TABLE_BITS: Final = 9
"""log2(512): entries per table."""
_CERTAIN: Final = 40.0
"""-log of a probability treated as 0 (exp(-40) < 1e-17)."""
_PROC_SHIFT: Final = 36
"""Virtual page numbers are < 2**36; a process index above them makes keys unique per process."""


def table_counts_exact(spaces: AddressSpaces, rng: np.random.Generator) -> npt.NDArray[np.int64]:
    """Distinct page-table pages per level of materialized resident pages.

    Parameters
    ----------
    spaces : AddressSpaces
    rng : numpy.random.Generator
        Draws the uniform and clustered placements.

    Returns
    -------
    int64[P, 4]
        Leaf, next, next, root table counts per process.
    """
    procs, vpns = spaces.resident_vpns(rng)
    counts = np.zeros((spaces.n_procs, LEVELS), dtype=np.int64)
    # Pages come sorted by (process, address), so equal tables are adjacent at every level.
    keys = (procs << _PROC_SHIFT) | vpns
    for level in range(LEVELS - 1):
        keys = keys >> TABLE_BITS
        if keys.size:
            is_new = np.empty(keys.size, dtype=bool)
            is_new[0] = True
            np.not_equal(keys[1:], keys[:-1], out=is_new[1:])
            keys = keys[is_new]
        shift = _PROC_SHIFT - TABLE_BITS * (level + 1)
        counts[:, level] = np.bincount(keys >> shift, minlength=spaces.n_procs)
    counts[:, 3] = spaces.resident_pages_per_proc > 0
    return counts


def table_counts_expected(spaces: AddressSpaces) -> npt.NDArray[np.float64]:
    """Expected page-table pages per level, in closed form.

    Returns
    -------
    float64[P, 4]
        Same columns as :func:`table_counts_exact`.

    Notes
    -----
    At each level an entry's range splits into a first and a last (partial) table segment and
    ``M`` whole tables between them. A segment whose ``w`` pages (or ``w`` run slots, for
    ``clustered``) hold none of the entry's ``k`` resident pages (runs) out of ``N`` is empty
    with probability

    .. math:: P_0 = \\binom{N - w}{k} / \\binom{N}{k}
              = \\prod_{i=0}^{k'-1} \\frac{N - o - i}{N - i}
              \\approx \\left(1 - \\frac{o}{N - (k' - 1)/2}\\right)^{k'},

    with ``k' = min(k, w)``, ``o = max(k, w)`` (midpoint rule; exactly 0 when ``k + w > N``,
    taken as 0 below ``exp(-40)``). Dense entries are deterministic, and so is an entry lying
    inside one table. Whole tables belong to one entry alone; a boundary table can be shared
    by neighbouring entries of the same process (entries are sorted and disjoint, so sharers
    are adjacent) and is empty only if every sharer leaves it empty: their ``P_0`` multiply.
    Placements of different entries are independent.

    One compiled pass over the entries for all levels; no per-page arrays.

    Examples
    --------
    A 4 GiB mapping with its first 7 pages resident: one table per level.

    >>> spaces = AddressSpaces(entry_proc=[0], start_vpn=[0], virtual_pages=[1 << 20],
    ...     resident_pages=[7], is_anon=[True], sharers=[1], placement=[0], threads=[1],
    ...     user_va_pages=[1 << 27])
    >>> table_counts_expected(spaces).tolist()
    [[1.0, 1.0, 1.0, 1.0]]
    """
    counts = np.zeros((spaces.n_procs, LEVELS), dtype=np.float64)
    counts[:, : LEVELS - 1] = _expected_kernel(
        spaces.entry_proc,
        spaces.start_vpn,
        spaces.virtual_pages,
        spaces.resident_pages,
        spaces.placement,
        np.asarray(spaces.cluster_pages, dtype=np.int64),
        spaces.n_procs,
    )
    counts[:, 3] = spaces.resident_pages_per_proc > 0
    return counts


@njit(cache=True)
def _p_empty(population: Any, picks: Any, window: Any) -> Any:  # pragma: no cover - compiled
    """P(a window of ``window`` of ``population`` holds none of ``picks`` distinct picks)."""
    if picks + window > population:
        return 0.0
    small = min(picks, window)
    if small == 0:
        return 1.0
    large = max(picks, window)
    if small * large > _CERTAIN * population:
        return 0.0  # below (1 - x)**k <= exp(-k x) < exp(-_CERTAIN)
    fraction = large / (population - (small - 1) / 2)
    if small > 64:
        return np.exp(small * np.log1p(-fraction))
    # Small integer power by squaring: a few multiplications instead of a log and an exp.
    base = 1.0 - fraction
    result = 1.0
    k = small
    while k > 0:
        if k & 1:
            result *= base
        base *= base
        k >>= 1
    return result


@njit(cache=True)
def _expected_kernel(
    entry_proc: npt.NDArray[np.int64],
    start_vpn: npt.NDArray[np.int64],
    virtual_pages: npt.NDArray[np.int64],
    resident_pages: npt.NDArray[np.int64],
    placement: npt.NDArray[np.int8],
    cluster_pages: npt.NDArray[np.int64],
    n_procs: int,
) -> npt.NDArray[np.float64]:  # pragma: no cover - compiled
    counts = np.zeros((n_procs, LEVELS - 1), dtype=np.float64)
    # Per level, the table being accumulated: its process, index and P(all sharers empty).
    open_proc = np.full(LEVELS - 1, -1, dtype=np.int64)
    open_table = np.full(LEVELS - 1, -1, dtype=np.int64)
    open_empty = np.ones(LEVELS - 1, dtype=np.float64)
    for i in range(entry_proc.shape[0]):
        r = resident_pages[i]
        if r == 0:
            continue
        p = entry_proc[i]
        s = start_vpn[i]
        v = virtual_pages[i]
        c = np.int64(1)
        if placement[i] == PLACEMENT_CLUSTERED:
            c = cluster_pages[i]
        n_slots = v
        runs = r
        if c > 1:
            n_slots = v // c
            runs = (r + c - 1) // c
        dense = placement[i] == PLACEMENT_DENSE or r == v or n_slots < runs
        for level in range(LEVELS - 1):
            shift = TABLE_BITS * (level + 1)
            first_table = s >> shift
            last_table = (s + v - 1) >> shift
            head_empty = 0.0
            tail_empty = 1.0
            if last_table > first_table:
                table_pages = np.int64(1) << shift
                head = ((first_table + 1) << shift) - s
                tail = s + v - (last_table << shift)
                between = last_table - first_table - 1
                whole = 0.0
                if dense:
                    if v - tail < r:
                        tail_empty = 0.0
                    reach = (r - head + table_pages - 1) >> shift
                    whole = float(min(max(reach, 0), between))
                elif c == 1:
                    head_empty = _p_empty(v, r, head)
                    tail_empty = _p_empty(v, r, tail)
                    if between > 0:
                        whole = between * (1.0 - _p_empty(v, r, table_pages))
                else:
                    head_slots = min((head + c - 1) // c, n_slots)
                    tail_slots = max(n_slots - (v - tail) // c, 0)
                    head_empty = _p_empty(n_slots, runs, head_slots)
                    tail_empty = _p_empty(n_slots, runs, tail_slots)
                    if between > 0:
                        whole_slots = min((head + table_pages + c - 1) // c - head // c, n_slots)
                        whole = between * (1.0 - _p_empty(n_slots, runs, whole_slots))
                counts[p, level] += whole
            # The entry's first table, then its last (the same one when it does not span).
            if p == open_proc[level] and first_table == open_table[level]:
                open_empty[level] *= head_empty
            else:
                if open_proc[level] >= 0:
                    counts[open_proc[level], level] += 1.0 - open_empty[level]
                open_proc[level] = p
                open_table[level] = first_table
                open_empty[level] = head_empty
            if last_table == first_table:
                continue
            counts[p, level] += 1.0 - open_empty[level]
            open_table[level] = last_table
            open_empty[level] = tail_empty
    for level in range(LEVELS - 1):
        if open_proc[level] >= 0:
            counts[open_proc[level], level] += 1.0 - open_empty[level]
    return counts
