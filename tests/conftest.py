"""Shared fixtures: one real local Ray per test session (2 CPUs), started only if a test asks."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def ray_local() -> Iterator[Any]:
    """A real local Ray with ``num_cpus=2``, shared by every test of the session."""
    import ray

    os.environ.pop("RAY_ADDRESS", None)
    if not ray.is_initialized():
        ray.init(
            num_cpus=2,
            log_to_driver=False,
            include_dashboard=False,
            logging_level=logging.WARNING,
        )
    yield ray
    ray.shutdown()


@pytest.fixture(autouse=True)
def _session_ray_kv_restored() -> Iterator[None]:
    """After each test, point Ray's process-global KV client back at the session's own Ray.

    ``ray.cluster_utils.Cluster`` (used to build multi-node clusters inside this process)
    re-points that client at its own head; once that head is removed, the next remote function
    this process defines would wait 60 s for the dead GCS and then end the whole test process.
    """
    yield
    import sys

    if "ray" not in sys.modules:
        return
    import ray

    if ray.is_initialized():
        from ray.experimental import internal_kv

        internal_kv._initialize_internal_kv(ray._private.worker.global_worker.gcs_client)
