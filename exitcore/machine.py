"""Machine profiles: how many CPUs, how SMT siblings share a core, how many reapers.

A profile is data (a preset: ``exitcore/presets/machine/*.yaml``). Besides the counts it
carries the few estimate-grade constants that make one machine differ from the reference machine
the mixes are written for (the Apple M2 of calibration targets 4 and 5):

- ``cpu_speed``: throughput of one hardware thread with an idle sibling, relative to an M2 core,
  on this workload. A mix's user and non-exit system times are M2 seconds and are divided by it.
  Teardown costs come from the architecture profile and are not scaled (they are already that
  architecture's nanoseconds).
- ``kernel_speed``: the same for a mix's non-exit system time (system calls, faults); kernel
  entry and exit costs differ between architectures and mitigations more than user code does.
- ``io_op_s``: seconds one of a mix's I/O operations (``io_ops`` per process: files opened,
  read, written) keeps the process blocked, neither user nor sys. 0 where the files sit in the
  page cache (a cached open or read costs CPU, already in the mix's system time, and does not
  block); storage latency, synchronous metadata writes and the like otherwise.
- ``smt_gain``: extra throughput a busy sibling adds to a core: two busy siblings each run at
  ``(1 + smt_gain) / 2`` of full speed.
- ``lock_hold_growth``: how much a spin lock's critical section slows down per CPU spinning on
  it (its cache line bouncing between them): an acquisition granted with ``k`` waiters queued
  holds the lock ``1 + lock_hold_growth * k`` times as long. A property of the machine's
  coherence fabric (0 on a small die, larger across a big mesh).
- ``rw_spin_us``: how long a waiter on a sleeping lock (an rwlock) spins before it sleeps:
  OpenBSD's ``rw_enter`` tries ``RW_SPINS`` (1000) times, one ``CPU_BUSY_CYCLE`` and a load of
  the lock word each, when the lock is write-held and the waiter holds no KERNEL_LOCK
  (kern_rwlock.c since 1.39 of 2019-05-11). The spinning is system time; granted within it, the
  waiter goes on without sleeping. The model's lock sections do not nest, so every sleeping-lock
  waiter spins first.
- ``rw_wake_us``: what a sleeper woken by a wake-all rwlock release (variant ``rw_wakeup:
  all``) costs when the lock went to another: it is made runnable, switched to, fails its
  re-check of the lock word (its spin budget is spent: ``rw_enter`` of kern_rwlock.c 1.50 counts
  ``RW_SPINS`` once per call), sets up its sleep and switches away. System time on a CPU of its
  own; > 0 and finite.

Hardware-thread numbering follows the common convention: thread ``i`` and ``i + physical_cores``
are siblings. A point simulates ``cores`` threads ``0..cores-1``; threads beyond the machine's
hardware threads (what-if points) are whole cores without a sibling.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt

from exitcore.arch import ARCHS, ArchProfile


@dataclass(frozen=True, slots=True)
class MachineProfile:
    """One machine: CPU counts, SMT, reapers, and the architecture's cost profile.

    Attributes
    ----------
    name : str
    arch : str
        ``"arm64"`` or ``"amd64"``, the base :class:`~exitcore.arch.ArchProfile`.
    physical_cores, hardware_threads : int
        ``hardware_threads`` is ``physical_cores`` (no SMT) or ``2 * physical_cores``.
    smt_gain : float
        Extra throughput a busy sibling adds, in [0, 1].
    reapers : int
        Reaper threads (1 on OpenBSD; more for what-if studies).
    cpu_speed : float
        Relative speed of one thread running user code against the reference machine, > 0.
    kernel_speed : float
        The same for non-exit system time, > 0.
    io_op_s : float
        Blocked seconds per I/O operation of a mix, >= 0 and finite.
    lock_hold_growth : float
        Fractional growth of a spin lock's hold per queued waiter, >= 0.
    rw_spin_us : float
        Microseconds a sleeping lock's waiter spins before it sleeps, >= 0 and finite.
    rw_wake_us : float
        Microseconds a woken sleeper spends on its CPU re-checking a lock it did not get, > 0.
    arch_overrides : Mapping[str, float]
        Constants merged onto the base architecture profile.
    """

    name: str
    arch: str
    physical_cores: int
    hardware_threads: int
    smt_gain: float = 0.0
    reapers: int = 1
    cpu_speed: float = 1.0
    kernel_speed: float = 1.0
    io_op_s: float = 0.0
    lock_hold_growth: float = 0.0
    rw_spin_us: float = 0.0
    rw_wake_us: float = 5.0
    arch_overrides: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ValueError(f"arch: {self.arch!r} is not one of {sorted(ARCHS)}")
        for name in ("physical_cores", "hardware_threads", "reapers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")
        if self.hardware_threads not in (self.physical_cores, 2 * self.physical_cores):
            raise ValueError(
                "hardware_threads: expected physical_cores or 2 * physical_cores, "
                f"got {self.hardware_threads} for {self.physical_cores} cores"
            )
        if not 0.0 <= self.smt_gain <= 1.0:
            raise ValueError(f"smt_gain: expected a value in [0, 1], got {self.smt_gain!r}")
        if not self.cpu_speed > 0.0:
            raise ValueError(f"cpu_speed: expected a value > 0, got {self.cpu_speed!r}")
        if not self.kernel_speed > 0.0:
            raise ValueError(f"kernel_speed: expected a value > 0, got {self.kernel_speed!r}")
        for name in ("io_op_s", "lock_hold_growth", "rw_spin_us"):
            value = getattr(self, name)
            if not 0.0 <= value < float("inf"):
                raise ValueError(f"{name}: expected a finite value >= 0, got {value!r}")
        if not 0.0 < self.rw_wake_us < float("inf"):
            raise ValueError(f"rw_wake_us: expected a finite value > 0, got {self.rw_wake_us!r}")
        object.__setattr__(self, "arch_overrides", MappingProxyType(dict(self.arch_overrides)))
        self.arch_profile()  # unknown override names fail here, naming the field

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MachineProfile:
        """Build a profile from a plain mapping; unknown keys raise ``ValueError``."""
        allowed = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - set(allowed))
        if unknown:
            raise ValueError(f"{unknown[0]}: unknown machine field; allowed: {allowed}")
        missing = [n for n in ("name", "arch", "physical_cores", "hardware_threads") if n not in d]
        if missing:
            raise ValueError(f"{missing[0]}: missing machine field; allowed: {allowed}")
        data = dict(d)
        data["arch_overrides"] = dict(data.get("arch_overrides") or {})
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["arch_overrides"] = dict(self.arch_overrides)
        return out

    @property
    def smt_speed(self) -> float:
        """Speed of a thread whose sibling is busy."""
        return (1.0 + self.smt_gain) / 2.0

    def arch_profile(self) -> ArchProfile:
        """The base architecture's cost profile with this machine's overrides."""
        return ARCHS[self.arch].with_overrides(**dict(self.arch_overrides))

    def siblings(self, cores: int) -> npt.NDArray[np.int64]:
        """SMT sibling of each of ``cores`` simulated threads (-1: none), shape ``[cores]``."""
        if cores < 1:
            raise ValueError(f"cores: expected an integer >= 1, got {cores}")
        sibling = np.full(cores, -1, np.int64)
        if self.hardware_threads > self.physical_cores:
            c = self.physical_cores
            paired = np.arange(max(0, min(cores, self.hardware_threads) - c))
            sibling[paired] = paired + c
            sibling[paired + c] = paired
        return sibling

    def is_what_if(self, cores: int) -> bool:
        return cores > self.hardware_threads
