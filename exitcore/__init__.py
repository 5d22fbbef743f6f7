"""exitcore: a vectorized model of process-exit teardown on many-core machines.

Pure NumPy (with numba-compiled kernels) and the standard library: no Ray, Hydra, Arrow,
Polars or plotting here.
"""

from exitcore.addrspace import PLACEMENTS, AddressSpaces
from exitcore.arch import AMD64, ARCHS, ARM64, ArchProfile
from exitcore.locks import LOCKS
from exitcore.machine import MachineProfile
from exitcore.mix import MixParams, Workload, generate
from exitcore.pagetable import table_counts_exact, table_counts_expected
from exitcore.result import CONTEXTS, METRIC_FIELDS, OPS, PointResult
from exitcore.simulate import PointParams, simulate
from exitcore.teardown import TeardownCosts, teardown_costs
from exitcore.variant import VARIANTS, Variant

MODEL_VERSION = "0.8.0"
"""Bumped whenever a change can alter a simulated result; stored with every point."""

__all__ = [
    "AMD64",
    "ARCHS",
    "ARM64",
    "CONTEXTS",
    "METRIC_FIELDS",
    "MODEL_VERSION",
    "OPS",
    "PLACEMENTS",
    "AddressSpaces",
    "ArchProfile",
    "PointResult",
    "TeardownCosts",
    "Variant",
    "VARIANTS",
    "table_counts_exact",
    "table_counts_expected",
    "teardown_costs",
    "LOCKS",
    "MachineProfile",
    "MixParams",
    "PointParams",
    "Workload",
    "generate",
    "simulate",
]
