"""Computing points without Ray: the task body that every executor runs.

:func:`compute_chunk` is what a Ray task runs on a worker, and what the driver runs itself for
a study too small to be worth starting Ray (:mod:`sweep.pipeline`): the same function, so rows
are identical whichever way a point is computed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from sweep.plan import Point
from sweep.store import METRIC_NAMES, rows_table

PointFn = Callable[
    [Mapping[str, Any], Mapping[str, Any], Mapping[str, Any], int, np.random.Generator],
    Mapping[str, Any],
]
"""``(machine, mix, variant, cores, rng) -> metrics`` with every name of ``METRIC_FIELDS``."""


def exitcore_point(
    machine: Mapping[str, Any],
    mix: Mapping[str, Any],
    variant: Mapping[str, Any],
    cores: int,
    rng: np.random.Generator,
) -> Mapping[str, Any]:
    """The real model: ``exitcore.simulate`` of one point."""
    from exitcore.simulate import PointParams, simulate

    params = PointParams.from_dicts(
        machine=dict(machine), mix=dict(mix), variant=dict(variant), cores=cores
    )
    return simulate(params, rng).as_dict()


@dataclass(frozen=True)
class Shared:
    """What every task needs, put in the object store once per study."""

    study: str
    config_hash: str
    params: Mapping[str, Mapping[str, Mapping[str, Any]]]
    point_fn: PointFn = exitcore_point


def compute_chunk(shared: Shared, chunk: Sequence[Point]) -> tuple[pa.Table, float]:
    """Rows of ``chunk`` and the seconds spent in the point function. No Ray here."""
    metrics: list[Mapping[str, Any] | None] = []
    errors: list[str | None] = []
    compute_s = 0.0
    for point in chunk:
        start = time.perf_counter()
        try:
            machine, mix, variant = point.param_keys
            result = shared.point_fn(
                shared.params["machine"][machine],
                shared.params["mix"][mix],
                shared.params["variant"][variant],
                point.cores,
                point.rng(),
            )
            metrics.append({name: result[name] for name in METRIC_NAMES})
            errors.append(None)
        except Exception as exc:  # a failing point must not take its chunk down
            metrics.append(None)
            errors.append(f"{type(exc).__name__}: {exc}")
        compute_s += time.perf_counter() - start
    return rows_table(chunk, metrics, errors, shared.study, shared.config_hash), compute_s
