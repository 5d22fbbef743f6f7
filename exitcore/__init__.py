"""exitcore: a vectorized model of process-exit teardown on many-core machines.

Pure NumPy and the standard library: no Ray, Hydra, Arrow, Polars or plotting here.
"""

from exitcore.result import CONTEXTS, METRIC_FIELDS, OPS, PointResult

MODEL_VERSION = "0.1.0"
"""Bumped whenever a change can alter a simulated result; stored with every point."""

__all__ = ["CONTEXTS", "METRIC_FIELDS", "MODEL_VERSION", "OPS", "PointResult"]
