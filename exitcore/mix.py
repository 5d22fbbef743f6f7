"""Process mixes: what a workload's processes do before they exit, and how their parents wait.

A mix is a plain mapping of parameters (a preset: ``exitcore/presets/mix/*.yaml``, read by
:mod:`exitcore.presets`) turned into a frozen :class:`MixParams`; :func:`generate` draws one
:class:`Workload` from it.

Shape of a workload (DESIGN.md section 5):

- **Closed chains in phases.** The parallel processes are split evenly into ``phases`` phases
  run one after the other on ``slots`` chains (make -j; ``slots: null`` means one per core).
  Between two phases ``serial_per_barrier`` processes run on one chain (a directory's archive
  step, genassym), and ``serial_tail`` processes end the run on one chain (the link).
- **Each process** has user time (lognormal, median ``user_s_median``), system time outside the
  listed locks ``sys_s_fixed + sys_per_user * user`` (fork, exec, system calls, faults), and I/O
  operations (files opened, read, written), done first (reading its inputs): ``io_ops`` for a
  process of the mix's mean user time, in proportion to user time for the others (a compile
  runs longer because it parses more headers). What one I/O costs in blocked time (neither user
  nor sys) is the machine's ``io_op_s``. User time is cut into ``pieces`` bursts (scheduling
  points).
- **Its lock demand** is a count of acquisitions and a hold per acquisition for each lock
  (:mod:`exitcore.locks`), added to its system time; counts follow the work. ``syscalls`` system
  calls for a process of the mean user time (in proportion to user time otherwise), of which
  ``klock_syscall_frac`` take KERNEL_LOCK for ``klock_hold_us`` each; ``schedlock_per_syscall``
  SCHED_LOCK acquisitions per system call; ``pageq_per_page`` page-queue lock acquisitions per
  resident page; ``faults_per_page`` page allocations per anonymous page resident at exit, all
  but the last freed again during the process's life (the free-page lock: its acquisitions
  depend on the variant's ``percpu_page_cache`` and are priced by the architecture);
  ``kmmap_acq`` kernel-map acquisitions (fork's uarea, exec); ``vnode_acq``
  object/vnode lock acquisitions at the mean user time, ``vnode_shared_frac`` of them on the one
  object every job shares (the compiler binary and common headers, pool lock 0), the rest on a
  pool lock of the process's own (``vnode_pool`` locks in all). ``lock_resolution_us`` is the
  model's resolution for short acquisitions (:func:`exitcore.locks.merge`).
- **Its address space** at exit: resident MB, anonymous share, virtual MB, map entries,
  threads, drawn uniformly from the given ranges, with a resident-page placement pattern.
  File-backed pages are shared by as many processes as run at once (``sharers``: ``slots``).

Times are seconds on the reference machine (the M2 of calibration targets 4 and 5); the machine
profile scales them (:mod:`exitcore.machine`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from exitcore.addrspace import AddressSpaces

PLACEMENT_WEIGHTS: Final[dict[str, tuple[float, float, float]]] = {
    "dense": (1.0, 0.0, 0.0),
    "uniform": (0.0, 1.0, 0.0),
    "clustered": (0.0, 0.0, 1.0),
    # (estimate) the default mix of exitcore.addrspace: heaps and stacks dense, file maps
    # touched here and there, a few clustered arenas
    "mixed": (0.3, 0.5, 0.2),
}
"""Per-entry placement probabilities (dense, uniform, clustered) for each ``placement`` name."""
PLACEMENTS: Final[tuple[str, ...]] = tuple(PLACEMENT_WEIGHTS)

_INT_FIELDS: Final = (
    "processes",
    "processes_per_slot",
    "pieces",
    "phases",
    "serial_per_barrier",
    "serial_tail",
    "map_entries_min",
    "map_entries_max",
    "threads",
    "address_space_templates",
    "vnode_pool",
)


@dataclass(frozen=True, slots=True)
class MixParams:
    """Parameters of one process mix (see the module docstring for their meaning).

    ``processes`` is the number of parallel processes; with ``processes_per_slot > 0`` it is
    ``processes_per_slot * slots`` instead. ``slots=None`` means one chain per core.
    ``address_space_templates`` (0: one per process) draws that many address spaces and gives
    each process one of them at random, so the teardown model prices a few hundred spaces
    rather than thousands of near-identical ones.
    """

    name: str
    processes: int
    processes_per_slot: int
    slots: int | None
    user_s_median: float
    user_s_sigma: float
    sys_s_fixed: float
    sys_per_user: float
    syscalls: float
    klock_syscall_frac: float
    klock_hold_us: float
    schedlock_per_syscall: float
    schedlock_hold_us: float
    faults_per_page: float
    pageq_per_page: float
    pageq_hold_us: float
    kmmap_acq: float
    kmmap_hold_us: float
    vnode_acq: float
    vnode_hold_us: float
    vnode_pool: int
    vnode_shared_frac: float
    lock_resolution_us: float
    io_ops: float
    pieces: int
    phases: int
    serial_per_barrier: int
    serial_tail: int
    serial_user_s: float
    rss_mb_min: float
    rss_mb_max: float
    anon_frac_min: float
    anon_frac_max: float
    va_mb_min: float
    va_mb_max: float
    map_entries_min: int
    map_entries_max: int
    threads: int
    placement: str
    address_space_templates: int

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in ("name", "placement") or (f.name == "slots" and value is None):
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{f.name}: expected a number, got {value!r}")
            if f.name in _INT_FIELDS or f.name == "slots":
                if int(value) != value:
                    raise ValueError(f"{f.name}: expected an integer, got {value!r}")
                object.__setattr__(self, f.name, int(value))
            else:
                object.__setattr__(self, f.name, float(value))
            if not value >= 0:
                raise ValueError(f"{f.name}: must be >= 0, got {value!r}")
        if self.slots is not None and self.slots < 1:
            raise ValueError(f"slots: expected null (one per core) or >= 1, got {self.slots}")
        if self.processes_per_slot == 0 and self.processes == 0:
            raise ValueError("processes: the mix is empty (processes and processes_per_slot are 0)")
        for name in ("pieces", "phases", "threads", "map_entries_min"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected >= 1, got {getattr(self, name)}")
        if not self.user_s_median > 0:
            raise ValueError(f"user_s_median: expected > 0, got {self.user_s_median}")
        for name in ("klock_syscall_frac", "vnode_shared_frac"):
            if getattr(self, name) > 1.0:
                raise ValueError(
                    f"{name}: expected a fraction in [0, 1], got {getattr(self, name)}"
                )
        if self.vnode_pool < 1:
            raise ValueError(f"vnode_pool: expected >= 1, got {self.vnode_pool}")
        if self.faults_per_page < 1.0:
            raise ValueError(f"faults_per_page: expected >= 1, got {self.faults_per_page}")
        for lo, hi in (
            ("rss_mb_min", "rss_mb_max"),
            ("anon_frac_min", "anon_frac_max"),
            ("va_mb_min", "va_mb_max"),
            ("map_entries_min", "map_entries_max"),
        ):
            if getattr(self, lo) > getattr(self, hi):
                raise ValueError(f"{lo}: must be <= {hi}")
        if self.anon_frac_max > 1.0:
            raise ValueError(f"anon_frac_max: expected <= 1, got {self.anon_frac_max}")
        if self.rss_mb_max > self.va_mb_min:
            raise ValueError(
                "rss_mb_max: resident memory cannot exceed the mapping "
                f"(va_mb_min {self.va_mb_min})"
            )
        if self.placement not in PLACEMENTS:
            raise ValueError(f"placement: {self.placement!r} is not one of {list(PLACEMENTS)}")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MixParams:
        """Build from a plain mapping; unknown or missing keys raise ``ValueError``."""
        allowed = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - set(allowed))
        if unknown:
            raise ValueError(f"{unknown[0]}: unknown mix parameter; allowed: {allowed}")
        missing = [n for n in allowed if n not in d]
        if missing:
            raise ValueError(f"{missing[0]}: missing mix parameter; allowed: {allowed}")
        return cls(**dict(d))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def slots_for(self, cores: int) -> int:
        """Closed chains at ``cores`` CPUs."""
        if cores < 1:
            raise ValueError(f"cores: expected an integer >= 1, got {cores}")
        return cores if self.slots is None else self.slots


@dataclass(frozen=True, slots=True)
class Workload:
    """One drawn workload: ``P`` processes in start order, grouped into phases.

    Attributes
    ----------
    user_s, sys_s : float64[P]
        Non-exit times on the reference machine: user, and system time outside the locks.
    lock_counts : float64[P, 6]
        Acquisitions of each built-in lock (:data:`exitcore.locks.LOCKS` order; ``vnode`` all
        pool locks together), except the ``fpageq`` column: pages allocated and freed before the
        exit (the variant's per-CPU cache decides how many acquisitions they take).
    lock_hold_s : float64[6]
        Hold per acquisition on the reference machine (``fpageq``: 0, priced by the arch).
    vnode_own : int64[P]
        Pool lock of each process's own objects (0 when ``vnode_pool`` is 1).
    vnode_pool, vnode_shared_frac, lock_resolution_s :
        The mix's pool size, shared share and resolution.
    io_ops : float64[P]
        I/O operations of each process (an expected count, so not an integer); the machine
        prices them in blocked time.
    pieces : int
        Bursts each process's user time is cut into.
    resident_pages, anon_pages, virtual_pages, map_entries, threads, sharers : int64[P]
        The address space at exit (4 KiB pages).
    placement : str
    spaces : AddressSpaces
        The drawn address spaces (``S <= P`` of them, what the teardown model prices).
    space_of : int64[P]
        Index into ``spaces`` of each process's address space.
    phase_ptr, phase_slots : int64[F+1], int64[F]
        Processes ``phase_ptr[f]:phase_ptr[f+1]`` run on ``phase_slots[f]`` chains.
    """

    user_s: npt.NDArray[np.float64]
    sys_s: npt.NDArray[np.float64]
    lock_counts: npt.NDArray[np.float64]
    lock_hold_s: npt.NDArray[np.float64]
    vnode_own: npt.NDArray[np.int64]
    vnode_pool: int
    vnode_shared_frac: float
    lock_resolution_s: float
    io_ops: npt.NDArray[np.float64]
    pieces: int
    resident_pages: npt.NDArray[np.int64]
    anon_pages: npt.NDArray[np.int64]
    virtual_pages: npt.NDArray[np.int64]
    map_entries: npt.NDArray[np.int64]
    threads: npt.NDArray[np.int64]
    sharers: npt.NDArray[np.int64]
    placement: str
    phase_ptr: npt.NDArray[np.int64]
    phase_slots: npt.NDArray[np.int64]
    spaces: AddressSpaces
    space_of: npt.NDArray[np.int64]

    @property
    def processes(self) -> int:
        return int(self.user_s.shape[0])


_PAGES_PER_MB: Final = 256  # (derived) 4 KiB pages


def _phase_layout(mix: MixParams, slots: int) -> tuple[npt.NDArray[np.int64], ...]:
    """Phase sizes and slots: parallel phases, serial steps between them, a serial tail."""
    n_par = mix.processes_per_slot * slots if mix.processes_per_slot > 0 else mix.processes
    par_sizes = np.full(mix.phases, n_par // mix.phases, np.int64)
    par_sizes[: n_par % mix.phases] += 1
    sizes: list[int] = []
    slot_list: list[int] = []
    is_serial: list[bool] = []
    for f in range(mix.phases):
        sizes.append(int(par_sizes[f]))
        slot_list.append(slots)
        is_serial.append(False)
        n_serial = mix.serial_tail if f == mix.phases - 1 else mix.serial_per_barrier
        if n_serial:
            sizes.append(n_serial)
            slot_list.append(1)
            is_serial.append(True)
    size_arr = np.asarray(sizes, np.int64)
    phase_ptr = np.concatenate(([0], np.cumsum(size_arr))).astype(np.int64)
    serial = np.repeat(np.asarray(is_serial), size_arr)
    return phase_ptr, np.asarray(slot_list, np.int64), serial


def generate(mix: MixParams, cores: int, rng: np.random.Generator) -> Workload:
    """Draw one workload of ``mix`` for a machine simulated with ``cores`` CPUs.

    Parameters
    ----------
    mix : MixParams
    cores : int
        Simulated CPUs, >= 1 (sets the chain count when ``mix.slots`` is null).
    rng : numpy.random.Generator

    Returns
    -------
    Workload
    """
    if isinstance(cores, bool) or not isinstance(cores, int | np.integer) or cores < 1:
        raise ValueError(f"cores: expected an integer >= 1, got {cores!r}")
    slots = mix.slots_for(int(cores))
    phase_ptr, phase_slots, serial = _phase_layout(mix, slots)
    n = int(phase_ptr[-1])
    if n == 0:
        raise ValueError("processes: the mix is empty at this core count")

    # user time: lognormal around the median; serial steps have their own median
    median = np.where(serial, mix.serial_user_s, mix.user_s_median)
    # moment-matched normal draws: the sample has mean 0 and deviation 1 exactly, so a build's
    # total user time does not wander from seed to seed (variance reduction, not a new law)
    z = rng.standard_normal(n)
    if n > 1 and z.std() > 0:
        z = (z - z.mean()) / z.std()
    user = median * np.exp(mix.user_s_sigma * z)
    sys_unlocked = mix.sys_s_fixed + mix.sys_per_user * user
    # a process's I/O and system calls grow with its work (a compile's time is mostly parsing
    # what it includes): io_ops, syscalls and vnode_acq are counts of a process of the mean
    # user time
    mean_user = mix.user_s_median * np.exp(mix.user_s_sigma**2 / 2)
    work = user / mean_user
    io_ops = mix.io_ops * work
    syscalls = mix.syscalls * work

    rss_pages = np.maximum(
        1, np.rint(rng.uniform(mix.rss_mb_min, mix.rss_mb_max, n) * _PAGES_PER_MB)
    ).astype(np.int64)
    anon = np.rint(rss_pages * rng.uniform(mix.anon_frac_min, mix.anon_frac_max, n)).astype(
        np.int64
    )
    va_pages = np.rint(rng.uniform(mix.va_mb_min, mix.va_mb_max, n) * _PAGES_PER_MB).astype(
        np.int64
    )
    va_pages = np.maximum(va_pages, rss_pages)
    entries = rng.integers(mix.map_entries_min, mix.map_entries_max + 1, n).astype(np.int64)
    entries = np.minimum(entries, va_pages)
    n_spaces = n if mix.address_space_templates == 0 else min(n, mix.address_space_templates)
    if n_spaces < n:
        space_of = rng.integers(0, n_spaces, n).astype(np.int64)
    else:
        space_of = np.arange(n, dtype=np.int64)
    rss_pages, anon, va_pages, entries = (
        a[:n_spaces] for a in (rss_pages, anon, va_pages, entries)
    )
    spaces = AddressSpaces.from_processes(
        rng,
        entries=entries,
        virtual_pages=va_pages,
        resident_pages=rss_pages,
        anon_fraction=anon / rss_pages,
        file_sharers=slots,
        threads=mix.threads,
        placement_weights=PLACEMENT_WEIGHTS[mix.placement],
    )
    rss_pages, anon, va_pages, entries = (a[space_of] for a in (rss_pages, anon, va_pages, entries))
    lock_counts = np.stack(
        [
            syscalls * mix.klock_syscall_frac,
            syscalls * mix.schedlock_per_syscall,
            (2.0 * mix.faults_per_page - 1.0) * anon,
            rss_pages * mix.pageq_per_page,
            np.full(n, mix.kmmap_acq),
            mix.vnode_acq * work,
        ],
        axis=1,
    )
    us = 1e-6
    lock_hold = np.array(
        [
            mix.klock_hold_us * us,
            mix.schedlock_hold_us * us,
            0.0,
            mix.pageq_hold_us * us,
            mix.kmmap_hold_us * us,
            mix.vnode_hold_us * us,
        ]
    )
    vnode_own = (
        rng.integers(1, mix.vnode_pool, n).astype(np.int64)
        if mix.vnode_pool > 1
        else np.zeros(n, np.int64)
    )
    return Workload(
        user_s=user,
        sys_s=sys_unlocked,
        lock_counts=lock_counts,
        lock_hold_s=lock_hold,
        vnode_own=vnode_own,
        vnode_pool=mix.vnode_pool,
        vnode_shared_frac=mix.vnode_shared_frac,
        lock_resolution_s=mix.lock_resolution_us * us,
        io_ops=io_ops,
        pieces=mix.pieces,
        resident_pages=rss_pages,
        anon_pages=anon,
        virtual_pages=va_pages,
        map_entries=entries,
        threads=np.full(n, mix.threads, np.int64),
        sharers=np.full(n, slots, np.int64),
        placement=mix.placement,
        phase_ptr=phase_ptr,
        phase_slots=phase_slots,
        spaces=spaces,
        space_of=space_of,
    )
