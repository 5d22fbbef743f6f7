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
        # "local" starts a fresh Ray even when another one runs on the machine (a plain
        # ray.init() would join the cluster recorded in Ray's temp directory).
        ray.init(
            address="local",
            num_cpus=2,
            log_to_driver=False,
            include_dashboard=False,
            logging_level=logging.WARNING,
        )
    yield ray
    ray.shutdown()
