"""Address spaces of a batch of exiting processes, as a structure of arrays over map entries.

One row per map entry (``E`` rows), grouped by owning process (``P`` processes, rows sorted by
process, then by address, entries of one process never overlapping). Resident pages of an entry
sit in it according to its placement:

``dense`` (:data:`PLACEMENT_DENSE`)
    the first ``resident_pages`` pages of the entry (heap, stack, a read-in file).
``uniform`` (:data:`PLACEMENT_UNIFORM`)
    ``resident_pages`` distinct pages spread at random over the entry.
``clustered`` (:data:`PLACEMENT_CLUSTERED`)
    runs of ``cluster_pages`` pages, each run in its own slot of ``cluster_pages`` pages counted
    from the entry start, slots chosen at random; the last run holds the remainder. An entry
    with fewer whole slots than runs is treated as dense.

Pages are 4 KiB (:data:`PAGE_BYTES`); virtual page numbers (vpn) are below
:data:`MAX_USER_VA_PAGES` (a 48-bit user address space).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from numba import njit

PAGE_BYTES: Final = 4096
MAX_USER_VA_PAGES: Final = 1 << 36
"""48-bit user VA in 4 KiB pages: the reach of one 4-level root table."""

PLACEMENT_DENSE: Final = 0
PLACEMENT_UNIFORM: Final = 1
PLACEMENT_CLUSTERED: Final = 2
PLACEMENTS: Final[tuple[str, ...]] = ("dense", "uniform", "clustered")
"""Placement names, indexed by code."""

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, eq=False)  # arrays: compare fields explicitly
class AddressSpaces:
    """Map entries of ``n_procs`` processes (structure of arrays, ``E`` entries).

    Attributes
    ----------
    entry_proc : int64[E]
        Owning process index in ``[0, n_procs)``, non-decreasing.
    start_vpn : int64[E]
        First virtual page of the entry; entries of a process are sorted and disjoint.
    virtual_pages : int64[E]
        Pages mapped by the entry, >= 1.
    resident_pages : int64[E]
        Pages with a valid PTE at exit, ``0 <= resident_pages <= virtual_pages``.
    is_anon : bool[E]
        Anonymous memory (freed at exit, X6) or file-backed (stays in the page cache).
    sharers : int64[E]
        Processes mapping the entry's pages (``m`` of DESIGN.md), >= 1.
    placement : int8[E]
        Placement code of the resident pages (:data:`PLACEMENTS`).
    threads : int64[P]
        Threads of each process, >= 1.
    user_va_pages : int64[P]
        Size of the whole user address space of each process (what ``zap_first`` walks);
        every entry ends at or below it, at most :data:`MAX_USER_VA_PAGES`.
    cluster_pages : int64[E] (or an int broadcast to it)
        Run length of the ``clustered`` placement, >= 1; default 16.
    n_procs : int
        Number of processes ``P``; default ``len(threads)``. Processes without entries are
        allowed (they cost only their fixed parts).

    Raises
    ------
    ValueError
        Naming the offending field (and the first offending entry) on any violation.
    """

    entry_proc: IntArray
    start_vpn: IntArray
    virtual_pages: IntArray
    resident_pages: IntArray
    is_anon: npt.NDArray[np.bool_]
    sharers: IntArray
    placement: npt.NDArray[np.int8]
    threads: IntArray
    user_va_pages: IntArray
    cluster_pages: IntArray | int = 16
    n_procs: int = -1

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        names_e = ("entry_proc", "start_vpn", "virtual_pages", "resident_pages", "sharers")
        for name in names_e:
            set_(self, name, _int_array(name, getattr(self, name)))
        n_entries = self.entry_proc.shape[0]
        for name in names_e:
            if getattr(self, name).shape != (n_entries,):
                raise ValueError(f"{name}: expected shape ({n_entries},) like entry_proc")
        set_(self, "is_anon", _shaped("is_anon", self.is_anon, np.bool_, n_entries))
        set_(self, "placement", _shaped("placement", self.placement, np.int8, n_entries))
        clusters = _int_array("cluster_pages", self.cluster_pages)
        if clusters.ndim == 0:
            clusters = np.full(n_entries, int(clusters), dtype=np.int64)
        set_(self, "cluster_pages", _shaped("cluster_pages", clusters, np.int64, n_entries))
        set_(self, "threads", _int_array("threads", self.threads))
        set_(self, "user_va_pages", _int_array("user_va_pages", self.user_va_pages))
        if self.n_procs == -1 and self.threads.shape != self.user_va_pages.shape:
            raise ValueError(
                f"threads: expected the shape of user_va_pages {self.user_va_pages.shape}, "
                f"got {self.threads.shape}"
            )
        n_procs = self.threads.shape[0] if self.n_procs == -1 else self.n_procs
        if not isinstance(n_procs, int | np.integer) or n_procs < 0:
            raise ValueError(f"n_procs: expected an int >= 0, got {self.n_procs!r}")
        set_(self, "n_procs", int(n_procs))
        for name in ("threads", "user_va_pages"):
            if getattr(self, name).shape != (self.n_procs,):
                raise ValueError(f"{name}: expected shape ({self.n_procs},) (n_procs)")
        self._validate()

    def _validate(self) -> None:
        _check(self.threads >= 1, "threads", "must be >= 1")
        _check(self.user_va_pages >= 1, "user_va_pages", "must be >= 1")
        _check(
            self.user_va_pages <= MAX_USER_VA_PAGES,
            "user_va_pages",
            f"must be <= {MAX_USER_VA_PAGES} (48-bit VA)",
        )
        if self.entry_proc.size == 0:
            return
        _check(
            (self.entry_proc >= 0) & (self.entry_proc < self.n_procs),
            "entry_proc",
            f"must be in [0, {self.n_procs})",
        )
        _check(np.diff(self.entry_proc) >= 0, "entry_proc", "must be non-decreasing")
        _check(self.virtual_pages >= 1, "virtual_pages", "must be >= 1")
        _check(self.resident_pages >= 0, "resident_pages", "must be >= 0")
        _check(
            self.resident_pages <= self.virtual_pages,
            "resident_pages",
            "must be <= virtual_pages",
        )
        _check(self.sharers >= 1, "sharers", "must be >= 1")
        _check(
            (self.placement >= 0) & (self.placement < len(PLACEMENTS)),
            "placement",
            f"must be a code of {dict(enumerate(PLACEMENTS))}",
        )
        _check(np.asarray(self.cluster_pages) >= 1, "cluster_pages", "must be >= 1")
        _check(self.start_vpn >= 0, "start_vpn", "must be >= 0")
        ends = self.start_vpn + self.virtual_pages
        _check(
            ends <= self.user_va_pages[self.entry_proc],
            "start_vpn",
            "entry must end at or below user_va_pages of its process",
        )
        same_proc = self.entry_proc[1:] == self.entry_proc[:-1]
        _check(
            ~same_proc | (self.start_vpn[1:] >= ends[:-1]),
            "start_vpn",
            "entries of a process must be sorted by address and disjoint",
        )

    # ----- per-process views ---------------------------------------------------------------

    @property
    def n_entries(self) -> int:
        return int(self.entry_proc.shape[0])

    @cached_property
    def proc_offsets(self) -> IntArray:
        """int64[P+1]: entries of process ``p`` are rows ``proc_offsets[p]:proc_offsets[p+1]``."""
        return _read_only(np.searchsorted(self.entry_proc, np.arange(self.n_procs + 1)))

    @cached_property
    def entries_per_proc(self) -> IntArray:
        """int64[P]: map entries of each process."""
        return _read_only(np.diff(self.proc_offsets))

    @cached_property
    def _page_totals(self) -> IntArray:
        """int64[3, P]: virtual, resident and anonymous resident pages, in one pass."""
        return _read_only(
            _page_totals(
                self.entry_proc, self.virtual_pages, self.resident_pages, self.is_anon, self.n_procs
            )
        )

    @property
    def virtual_pages_per_proc(self) -> IntArray:
        """int64[P]: virtual pages mapped by each process (``V``)."""
        return self._page_totals[0]

    @property
    def resident_pages_per_proc(self) -> IntArray:
        """int64[P]: resident pages of each process (``R``)."""
        return self._page_totals[1]

    @property
    def anon_resident_pages_per_proc(self) -> IntArray:
        """int64[P]: anonymous resident pages of each process (``Ra``)."""
        return self._page_totals[2]

    def per_proc_sum(self, values: npt.ArrayLike) -> Any:
        """Sum an ``[E]`` array per process: ``[P]``, same dtype, 0 where a process has no entry."""
        values = np.asarray(values)
        if values.shape != (self.n_entries,):
            raise ValueError(f"values: expected shape ({self.n_entries},), got {values.shape}")
        out = np.zeros(self.n_procs, dtype=values.dtype)
        counts = self.entries_per_proc
        has_entries = counts > 0
        if values.size:
            out[has_entries] = np.add.reduceat(values, self.proc_offsets[:-1][has_entries])
        return out

    # ----- construction ---------------------------------------------------------------------

    @classmethod
    def from_processes(
        cls,
        rng: np.random.Generator,
        *,
        entries: npt.ArrayLike,
        virtual_pages: npt.ArrayLike,
        resident_pages: npt.ArrayLike,
        anon_fraction: npt.ArrayLike = 0.65,
        file_sharers: npt.ArrayLike = 1,
        threads: npt.ArrayLike = 1,
        user_va_pages: npt.ArrayLike = 1 << 27,
        size_sigma: float = 1.0,
        density_sigma: float = 0.5,
        anon_entry_fraction: float = 0.5,
        placement_weights: tuple[float, float, float] = (0.3, 0.5, 0.2),
        cluster_pages: int = 16,
        mean_gap_pages: float = 16.0,
        base_vpn: int = 1024,
    ) -> AddressSpaces:
        """Split per-process totals into map entries, vectorized over the whole batch.

        The caller draws per-process totals from its workload's distributions (lognormal RSS,
        uniform entry counts, ...); this spreads them over entries. Every per-process argument
        is a scalar or an array broadcast to ``[P]``; ``P`` is the broadcast length.

        Parameters
        ----------
        rng : numpy.random.Generator
        entries : int[P]
            Map entries per process, >= 1.
        virtual_pages : int[P]
            Virtual pages per process, >= ``entries`` (each entry maps at least one page).
        resident_pages : int[P]
            Resident pages per process, <= ``virtual_pages``.
        anon_fraction : float[P]
            Share of resident pages that are anonymous (the rest are file pages).
        file_sharers : int[P]
            ``m`` of the file-backed entries (anonymous entries get 1).
        threads, user_va_pages : int[P]
            Copied to the result. The default user VA, 512 GiB (``1 << 27`` pages), is OpenBSD
            arm64's (USER_SPACE_BITS 39); OpenBSD amd64's is about 128 TiB (``1 << 35``).
        size_sigma : float
            Entry sizes are ``virtual_pages`` split in proportion to lognormal(0, size_sigma)
            weights (a few big entries, many small ones); every entry gets >= 1 page.
        density_sigma : float
            Resident pages of each kind (anon, file) are split over that kind's entries in
            proportion to ``virtual pages x lognormal(0, density_sigma)``, capped at the entry
            size. Totals can fall short of the request by less than one page per entry, and by
            more only when a kind's entries are too small to hold its pages.
        anon_entry_fraction : float
            Probability an entry is anonymous. The first entry of every process is anonymous
            and the second file-backed, so both kinds exist whenever ``entries >= 2``.
        placement_weights : (dense, uniform, clustered)
            Probabilities of each placement per entry.
        cluster_pages : int
            Run length of clustered entries.
        mean_gap_pages : float
            Entries are laid out in order from ``base_vpn`` with uniform random gaps of mean
            ``mean_gap_pages`` between them.

        Returns
        -------
        AddressSpaces

        Examples
        --------
        Two compiler-like processes and one ``sparse_mmap`` process (4 GiB, 7 pages touched):

        >>> rng = np.random.default_rng(1)
        >>> spaces = AddressSpaces.from_processes(
        ...     rng, entries=[900, 900, 1], virtual_pages=[314_572, 262_144, 1 << 20],
        ...     resident_pages=[24_320, 20_000, 7], anon_fraction=[0.65, 0.65, 1.0])
        >>> spaces.n_procs, int(spaces.virtual_pages_per_proc[2])
        (3, 1048576)
        """
        p_entries, p_virtual, p_resident, p_anon, p_sharers, p_threads, p_user_va = (
            np.broadcast_arrays(
                np.asarray(entries, dtype=np.int64),
                np.asarray(virtual_pages, dtype=np.int64),
                np.asarray(resident_pages, dtype=np.int64),
                np.asarray(anon_fraction, dtype=np.float64),
                np.asarray(file_sharers, dtype=np.int64),
                np.asarray(threads, dtype=np.int64),
                np.asarray(user_va_pages, dtype=np.int64),
                np.zeros(1, dtype=np.int64),  # all scalars: one process
            )[:-1]
        )
        if p_entries.ndim != 1:
            raise ValueError("entries: per-process arguments must broadcast to one dimension")
        _check(p_entries >= 1, "entries", "must be >= 1")
        _check(p_virtual >= p_entries, "virtual_pages", "must be >= entries")
        _check(p_resident >= 0, "resident_pages", "must be >= 0")
        _check(p_resident <= p_virtual, "resident_pages", "must be <= virtual_pages")
        _check((p_anon >= 0) & (p_anon <= 1), "anon_fraction", "must be in [0, 1]")
        weights = np.asarray(placement_weights, dtype=np.float64)
        if weights.shape != (3,) or np.any(weights < 0) or weights.sum() <= 0:
            raise ValueError(f"placement_weights: expected 3 weights >= 0 for {list(PLACEMENTS)}")
        if not 0 <= anon_entry_fraction <= 1:
            raise ValueError("anon_entry_fraction: must be in [0, 1]")
        if mean_gap_pages < 0 or base_vpn < 0 or cluster_pages < 1:
            raise ValueError("mean_gap_pages, base_vpn: must be >= 0; cluster_pages: >= 1")

        n_procs = p_entries.shape[0]
        offsets = np.concatenate(([0], np.cumsum(p_entries)))
        n_entries = int(offsets[-1])
        entry_proc = np.repeat(np.arange(n_procs, dtype=np.int64), p_entries)
        rank = np.arange(n_entries, dtype=np.int64) - offsets[:-1][entry_proc]

        # Entry sizes: >= 1 page each, the rest split by lognormal weights, rounding to entry 0.
        size_weights = rng.lognormal(0.0, size_sigma, n_entries)
        weight_sums = np.add.reduceat(size_weights, offsets[:-1])
        spare = (p_virtual - p_entries)[entry_proc]
        sizes = 1 + np.floor(spare * size_weights / weight_sums[entry_proc]).astype(np.int64)
        sizes[offsets[:-1]] += p_virtual - np.add.reduceat(sizes, offsets[:-1])

        is_anon = rng.random(n_entries) < anon_entry_fraction
        is_anon[rank == 0] = True
        is_anon[rank == 1] = False

        # Resident pages per kind, split by size x lognormal density, capped at the entry size.
        group = 2 * entry_proc + is_anon
        p_anon_resident = np.rint(p_resident * p_anon).astype(np.int64)
        wanted = np.stack([p_resident - p_anon_resident, p_anon_resident], axis=1).ravel()
        capacity = sizes * rng.lognormal(0.0, density_sigma, n_entries)
        capacity_sums = np.bincount(group, weights=capacity, minlength=2 * n_procs)
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(capacity_sums[group] > 0, capacity / capacity_sums[group], 0.0)
        resident = np.minimum(sizes, np.floor(wanted[group] * share).astype(np.int64))
        missing = wanted - np.bincount(group, weights=resident, minlength=2 * n_procs)
        room = (sizes - resident).astype(np.float64)
        room_sums = np.bincount(group, weights=room, minlength=2 * n_procs)
        with np.errstate(invalid="ignore", divide="ignore"):
            top_up = np.where(room_sums[group] > 0, missing[group] * room / room_sums[group], 0.0)
        resident += np.minimum(sizes - resident, np.floor(np.maximum(top_up, 0)).astype(np.int64))
        # The last few pages (fewer than the group's entries): one more to each of the first
        # entries of the group that still have room.
        missing = wanted - np.bincount(group, weights=resident, minlength=2 * n_procs)
        for kind in (False, True):
            has_room = (is_anon == kind) & (resident < sizes)
            running = np.cumsum(has_room)
            before_proc = np.concatenate(([0], running))[offsets[:-1]]
            order = running - before_proc[entry_proc]
            resident += has_room & (order <= missing[2 * entry_proc + kind])

        placement = rng.choice(len(PLACEMENTS), size=n_entries, p=weights / weights.sum())
        sharers = np.where(is_anon, 1, p_sharers[entry_proc])

        gaps = rng.integers(0, int(2 * mean_gap_pages) + 1, n_entries)
        footprint = np.cumsum(sizes + gaps)
        before_proc = np.concatenate(([0], footprint))[offsets[:-1]]
        start_vpn = base_vpn + footprint - sizes - before_proc[entry_proc]
        ends = start_vpn + sizes
        too_big = ends > p_user_va[entry_proc]
        if np.any(too_big):
            proc = int(entry_proc[np.argmax(too_big)])
            raise ValueError(
                f"user_va_pages: process {proc} needs more than {int(p_user_va[proc])} pages "
                "for its entries and gaps"
            )
        return cls(
            entry_proc=entry_proc,
            start_vpn=start_vpn,
            virtual_pages=sizes,
            resident_pages=resident,
            is_anon=is_anon,
            sharers=sharers,
            placement=placement.astype(np.int8),
            threads=p_threads.copy(),
            user_va_pages=p_user_va.copy(),
            cluster_pages=cluster_pages,
        )

    # ----- materialization (exact path) ---------------------------------------------------

    def resident_vpns(self, rng: np.random.Generator) -> tuple[IntArray, IntArray]:
        """Materialize every resident page: ``(proc int64[R], vpn int64[R])``.

        Pages come out sorted by process, then by address. A uniform entry's pages are the
        order statistics of uniforms (from exponential spacings), floored onto
        ``virtual_pages - resident_pages + 1`` values and shifted by their rank so they are
        distinct; clustered entries pick their run slots the same way. O(R) time, no
        per-virtual-page work.
        """
        vpns = _materialize(
            rng,
            self.start_vpn,
            self.virtual_pages,
            self.resident_pages,
            self.placement,
            np.asarray(self.cluster_pages, dtype=np.int64),
        )
        return np.repeat(self.entry_proc, self.resident_pages), vpns


@njit(cache=True)
def _page_totals(
    entry_proc: IntArray,
    virtual_pages: IntArray,
    resident_pages: IntArray,
    is_anon: npt.NDArray[np.bool_],
    n_procs: int,
) -> IntArray:  # pragma: no cover - compiled
    totals = np.zeros((3, n_procs), dtype=np.int64)
    for i in range(entry_proc.shape[0]):
        p = entry_proc[i]
        totals[0, p] += virtual_pages[i]
        totals[1, p] += resident_pages[i]
        if is_anon[i]:
            totals[2, p] += resident_pages[i]
    return totals


@njit(cache=True)
def _sorted_distinct_into(
    rng: np.random.Generator, population: Any, picks: Any, out: IntArray, scratch: FloatArray
) -> None:  # pragma: no cover - compiled
    """Write ``picks`` sorted distinct integers of ``[0, population)`` into ``out[:picks]``."""
    total = 0.0
    for j in range(picks):
        total += rng.standard_exponential()
        scratch[j] = total
    total += rng.standard_exponential()
    span = population - picks + 1
    for j in range(picks):
        x = int(scratch[j] / total * span)
        out[j] = (x if x < span else span - 1) + j


@njit(cache=True)
def _materialize(
    rng: np.random.Generator,
    start_vpn: IntArray,
    virtual_pages: IntArray,
    resident_pages: IntArray,
    placement: npt.NDArray[np.int8],
    cluster_pages: IntArray,
) -> IntArray:  # pragma: no cover - compiled
    """Resident vpns of every entry, in entry order (see :meth:`AddressSpaces.resident_vpns`)."""
    n_pages = 0
    largest = 0
    for i in range(resident_pages.shape[0]):
        n_pages += resident_pages[i]
        largest = max(largest, resident_pages[i])
    vpns = np.empty(n_pages, dtype=np.int64)
    scratch = np.empty(largest + 1, dtype=np.float64)
    picks = np.empty(largest + 1, dtype=np.int64)
    pos = 0
    for i in range(resident_pages.shape[0]):
        r = resident_pages[i]
        if r == 0:
            continue
        s = start_vpn[i]
        v = virtual_pages[i]
        c = cluster_pages[i]
        kind = placement[i]
        if kind == PLACEMENT_CLUSTERED and v // c < (r + c - 1) // c:
            kind = PLACEMENT_DENSE
        if r == v or kind == PLACEMENT_DENSE:
            for j in range(r):
                vpns[pos + j] = s + j
        elif kind == PLACEMENT_UNIFORM:
            _sorted_distinct_into(rng, v, r, picks, scratch)
            for j in range(r):
                vpns[pos + j] = s + picks[j]
        else:
            runs = (r + c - 1) // c
            _sorted_distinct_into(rng, v // c, runs, picks, scratch)
            j = 0
            for run in range(runs):
                first = s + picks[run] * c
                for q in range(min(c, r - j)):
                    vpns[pos + j] = first + q
                    j += 1
        pos += r
    return vpns


def _read_only(array: Any) -> Any:
    """Cached per-process arrays are shared: nobody may write into them."""
    array = np.asarray(array, dtype=np.int64)
    array.setflags(write=False)
    return array


def _int_array(name: str, value: Any) -> Any:
    array = np.asarray(value)
    if array.dtype == np.bool_ or not (np.issubdtype(array.dtype, np.integer) or array.size == 0):
        if np.issubdtype(array.dtype, np.floating) and np.all(np.mod(array, 1) == 0):
            return array.astype(np.int64)  # whole floats, as YAML or arithmetic may give
        raise ValueError(f"{name}: expected integers, got dtype {array.dtype}")
    return np.asarray(array, dtype=np.int64)


def _shaped(name: str, value: Any, dtype: Any, n: int) -> Any:
    array = np.ascontiguousarray(value, dtype=dtype)
    if array.shape != (n,):
        raise ValueError(f"{name}: expected shape ({n},) like entry_proc, got {array.shape}")
    return array


def _check(ok: npt.NDArray[np.bool_], field: str, rule: str) -> None:
    if not np.all(ok):
        first = int(np.argmin(ok))
        raise ValueError(f"{field}: {rule} (first violation at index {first})")
