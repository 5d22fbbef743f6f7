"""Process mixes: what a workload's processes do before they exit, and how their parents wait.

A mix is a plain mapping of parameters (``BUILTIN_MIXES`` mirrors ``conf/mix/*.yaml``) turned into
a frozen :class:`MixParams`; :func:`generate` draws one :class:`Workload` from it.

Shape of a workload (DESIGN.md section 5):

- **Closed chains in phases.** The parallel processes are split evenly into ``phases`` phases
  run one after the other on ``slots`` chains (make -j; ``slots: null`` means one per core).
  Between two phases ``serial_per_barrier`` processes run on one chain (a directory's archive
  step, genassym), and ``serial_tail`` processes end the run on one chain (the link).
- **Each process** has user time (lognormal, median ``user_s_median``), non-exit system time
  ``sys_s_fixed + sys_per_user * user`` (fork, exec, system calls, faults) of which
  ``klock_frac`` runs under KERNEL_LOCK and ``pageq_frac`` under the page-queue lock, and
  I/O operations (files opened, read, written), done first (reading its inputs): ``io_ops`` for
  a process of the mix's mean user time, in proportion to user time for the others (a compile
  runs longer because it parses more headers). The mix only counts them: what one costs in
  blocked time (neither user nor sys) is the machine's ``io_op_s`` (0 when the files sit in the
  page cache), so the same mix blocks long on a machine with slow storage and not at all on one
  that builds from memory. The CPU time is cut into ``pieces`` bursts, each ``user, sys,
  KERNEL_LOCK sys, page-queue sys``, so locked sections are interleaved with computation as
  system calls are.
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

BUILTIN_MIXES: Final[dict[str, dict[str, Any]]] = {
    "kernel_build": {
        "name": "kernel_build",
        "processes": 2000,  # (estimate) DESIGN.md section 5: ~2,000 compiler processes
        "processes_per_slot": 0,
        "slots": None,  # (derived) make -j<cores>
        # "fitted": the output of `python -m sweep.fit fit=calibration` (conf/fit/calibration.yaml:
        # targets 4-7 of DESIGN.md section 6, seeds 0-2), rounded to 4 digits; the fit spec gives
        # each one's plausible range and its source.
        "user_s_median": 0.1501,  # (estimate, fitted) ~324 s of user time over 2,000 compilers
        "user_s_sigma": 0.35,  # (estimate) lognormal spread of compile times
        "sys_s_fixed": 0.001,  # (estimate) fork + exec + wait
        "sys_per_user": 0.3096,  # (estimate, fitted) non-exit system time per user second
        # (estimate, fitted) share of that system time under KERNEL_LOCK: high enough that the
        # lock is busy most of the build, as the 2021 make -j17 profile (18 % of CPU spinning)
        # suggests, so the work pmap_deactivate moves under it makes the others spin (target 5)
        "klock_frac": 0.4949,
        "pageq_frac": 0.05,  # (estimate) fault path under the page-queue lock
        # (estimate) files one compile opens, reads or writes: the ~100-150 headers an OpenBSD
        # kernel .c includes, include-path lookups, its .o and .d
        "io_ops": 200.0,
        "pieces": 32,  # (estimate) bursts per process: how often it takes the locks
        "phases": 1,  # (estimate) the kernel's objects build in one make invocation
        "serial_per_barrier": 0,
        "serial_tail": 1,  # (estimate) the final link
        "serial_user_s": 0.1,  # (estimate) the link's user time
        # (estimate) DESIGN.md gives 40-150 MB; the minimum lowered by hand and the maximum
        # (fitted) so the reaper's share of the M2's CPU stays inside the ~13 CPU-seconds
        # target 4 leaves free
        "rss_mb_min": 38.5,
        "rss_mb_max": 114.6,
        "anon_frac_min": 0.6,  # (estimate) DESIGN.md section 5
        "anon_frac_max": 0.7,  # (estimate) DESIGN.md section 5
        "va_mb_min": 512.0,  # (estimate) DESIGN.md section 5
        "va_mb_max": 2048.0,  # (estimate) DESIGN.md section 5
        "map_entries_min": 300,  # (estimate) DESIGN.md section 5
        "map_entries_max": 1500,  # (estimate) DESIGN.md section 5
        "threads": 1,
        "placement": "mixed",
        # (estimate) 64 drawn spaces: ~4 % sampling error on a build's teardown totals, under
        # 0.3 % on its real/user/sys (checked on seeds 0-5), 4x cheaper than 256
        "address_space_templates": 64,
    },
    "fork_exit": {
        "name": "fork_exit",
        "processes": 0,
        "processes_per_slot": 200,  # (estimate) enough exits per slot for a steady state
        "slots": None,  # (derived) one lmbench loop per core
        "user_s_median": 20e-6,  # (estimate) the child exits at once
        "user_s_sigma": 0.1,
        "sys_s_fixed": 60e-6,  # (estimate) lmbench fork+exit+wait on a small process
        "sys_per_user": 0.0,
        "klock_frac": 0.2,  # (estimate) fork and wait4 still take KERNEL_LOCK
        "pageq_frac": 0.05,  # (estimate)
        "io_ops": 0.0,  # (derived) the child exits at once, it reads nothing
        "pieces": 1,
        "phases": 1,
        "serial_per_barrier": 0,
        "serial_tail": 0,
        "serial_user_s": 0.0,
        "rss_mb_min": 0.5,  # (estimate) a tiny static child
        "rss_mb_max": 1.0,
        "anon_frac_min": 0.3,
        "anon_frac_max": 0.5,
        "va_mb_min": 8.0,
        "va_mb_max": 16.0,
        "map_entries_min": 20,
        "map_entries_max": 40,
        "threads": 1,
        "placement": "dense",
        "address_space_templates": 64,
    },
    "configure": {
        "name": "configure",
        "processes": 3000,  # (estimate) a configure script's shells, seds and cc -E
        "processes_per_slot": 0,
        "slots": 1,  # (derived) one serial chain: pure latency
        "user_s_median": 0.002,  # (estimate)
        "user_s_sigma": 1.0,
        "sys_s_fixed": 0.0005,  # (estimate) fork + exec + wait
        "sys_per_user": 0.5,
        "klock_frac": 0.2,
        "pageq_frac": 0.05,
        # (estimate) a shell, sed or cc -E opens a few files: conftest.c, a header, config.log
        "io_ops": 4.0,
        "pieces": 2,
        "phases": 1,
        "serial_per_barrier": 0,
        "serial_tail": 0,
        "serial_user_s": 0.0,
        "rss_mb_min": 2.0,
        "rss_mb_max": 12.0,
        "anon_frac_min": 0.3,
        "anon_frac_max": 0.6,
        "va_mb_min": 16.0,
        "va_mb_max": 64.0,
        "map_entries_min": 30,
        "map_entries_max": 120,
        "threads": 1,
        "placement": "dense",
        "address_space_templates": 64,
    },
    "sparse_mmap": {
        "name": "sparse_mmap",
        "processes": 0,
        "processes_per_slot": 20,  # (estimate)
        "slots": None,
        "user_s_median": 0.001,  # (estimate) map 4 GB, touch a handful of pages, exit
        "user_s_sigma": 0.2,
        "sys_s_fixed": 0.0002,
        "sys_per_user": 0.2,
        "klock_frac": 0.2,
        "pageq_frac": 0.05,
        "io_ops": 0.0,  # (derived) it maps anonymous memory, touches it and exits
        "pieces": 1,
        "phases": 1,
        "serial_per_barrier": 0,
        "serial_tail": 0,
        "serial_user_s": 0.0,
        "rss_mb_min": 0.028,  # (derived) 7 pages of 4 KiB, calibration target 1
        "rss_mb_max": 0.028,
        "anon_frac_min": 1.0,
        "anon_frac_max": 1.0,
        "va_mb_min": 4096.0,  # (derived) a 4 GB mapping, calibration target 1
        "va_mb_max": 4096.0,
        "map_entries_min": 10,
        "map_entries_max": 20,
        "threads": 1,
        "placement": "uniform",
        "address_space_templates": 64,
    },
    "big_rss": {
        "name": "big_rss",
        "processes": 0,
        "processes_per_slot": 1,  # (estimate) one worker per core exits at shutdown
        "slots": None,
        "user_s_median": 1.0,  # (estimate)
        "user_s_sigma": 0.1,
        "sys_s_fixed": 0.001,
        "sys_per_user": 0.05,
        "klock_frac": 0.1,
        "pageq_frac": 0.05,
        "io_ops": 0.0,  # (estimate) workers shut down from memory; the mix studies teardown
        "pieces": 4,
        "phases": 1,
        "serial_per_barrier": 0,
        "serial_tail": 0,
        "serial_user_s": 0.0,
        "rss_mb_min": 4096.0,  # (estimate) DESIGN.md section 5: 4-16 GB resident
        "rss_mb_max": 16384.0,
        "anon_frac_min": 0.9,
        "anon_frac_max": 1.0,
        "va_mb_min": 16384.0,  # (estimate) the largest resident set fits its mapping
        "va_mb_max": 24576.0,
        "map_entries_min": 200,
        "map_entries_max": 800,
        "threads": 8,
        "placement": "dense",
        "address_space_templates": 64,
    },
}
"""Built-in mixes as plain dicts (the same content as ``conf/mix/*.yaml``)."""

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
    klock_frac: float
    pageq_frac: float
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
        if self.klock_frac + self.pageq_frac > 1.0:
            raise ValueError(
                "klock_frac: klock_frac + pageq_frac must be <= 1, got "
                f"{self.klock_frac} + {self.pageq_frac}"
            )
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
    user_s, sys_s, klock_s, pageq_s : float64[P]
        Non-exit times on the reference machine: user, unlocked system, system under
        KERNEL_LOCK, system under the page-queue lock.
    io_ops : float64[P]
        I/O operations of each process (an expected count, so not an integer); the machine
        prices them in blocked time.
    pieces : int
        Bursts each process's time is cut into.
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
    klock_s: npt.NDArray[np.float64]
    pageq_s: npt.NDArray[np.float64]
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
    non_exit_sys = mix.sys_s_fixed + mix.sys_per_user * user
    klock = mix.klock_frac * non_exit_sys
    pageq = mix.pageq_frac * non_exit_sys
    sys_unlocked = non_exit_sys - klock - pageq
    # a process's I/O grows with its work (a compile's time is mostly parsing what it
    # includes): io_ops is the count of a process of the mix's mean user time
    mean_user = mix.user_s_median * np.exp(mix.user_s_sigma**2 / 2)
    io_ops = mix.io_ops * user / mean_user

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
    return Workload(
        user_s=user,
        sys_s=sys_unlocked,
        klock_s=klock,
        pageq_s=pageq,
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
