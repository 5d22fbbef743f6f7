"""Joining an existing Ray cluster and checking that it runs the driver's Ray and Python.

A study's rows are only comparable if every node computed them with the same code: a node with
another Ray fails in obscure ways (pickling, protocol errors) and one with another Python may
compute different floats. :func:`join` therefore

1. calls ``ray.init(address=...)`` and turns Ray's own refusal (``RuntimeError: Version
   mismatch: ...``, raised when the driver differs from the head) into one line
   (:class:`~sweep.errors.StudyError`);
2. runs one tiny task on every alive node (pinned with a node-affinity strategy, zero CPUs so a
   busy node or a head started with ``--num-cpus=0`` still answers) that returns
   ``ray.__version__`` and ``sys.version_info[:3]``; Ray checks a worker node against the head
   when it joins, but not the Python a node's workers actually run;
3. :func:`check_versions` compares the reports with the driver and either returns a one-line
   summary or raises a one-line error naming the nodes that differ.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from sweep.errors import StudyError

PROBE_TIMEOUT_S = 60.0
"""How long every node has to report its versions (estimate: a cold worker start is 1-5 s on a
loaded node; 60 s leaves room for a node that is still pulling its runtime environment)."""

PyVersion = tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class NodeVersions:
    """What one node's worker reported."""

    node: str
    """``ip (node id prefix)``: the IP alone is ambiguous when several nodes share a host."""
    ray: str
    python: PyVersion


def driver_versions() -> tuple[str, PyVersion]:
    info = sys.version_info
    return ray.__version__, (info.major, info.minor, info.micro)


def _py(version: PyVersion) -> str:
    return ".".join(map(str, version))


def check_versions(
    reports: Sequence[NodeVersions],
    driver: tuple[str, PyVersion] | None = None,
    address: str = "the cluster",
) -> str:
    """One line saying the cluster matches ``driver``; StudyError (one line) if it does not.

    Ray versions must be equal; Python versions must be equal up to the patch level (Ray's own
    default, ``RAY_DEFAULT_PYTHON_VERSION_MATCH_LEVEL=patch``).
    """
    ray_version, python = driver if driver is not None else driver_versions()
    if not reports:
        raise StudyError(f"ray.address: {address} has no alive node to run the study on")
    odd = [r for r in reports if r.ray != ray_version or tuple(r.python) != tuple(python)]
    if odd:
        shown = "; ".join(f"{r.node} has Ray {r.ray}, Python {_py(r.python)}" for r in odd[:4])
        more = f" and {len(odd) - 4} more" if len(odd) > 4 else ""
        raise StudyError(
            f"ray.address: {len(odd)} of {len(reports)} nodes of {address} do not match the "
            f"driver (Ray {ray_version}, Python {_py(python)}): {shown}{more}; run the driver "
            "with the cluster's Ray and Python, or rebuild the nodes' environment"
        )
    nodes = "1 node" if len(reports) == 1 else f"{len(reports)} nodes"
    versions = f"Ray {ray_version} and Python {_py(python)}"
    return f"{address}: {nodes}, {versions} everywhere, as on the driver"


_RAY_MISMATCH = re.compile(r"Ray:\s*(\S+)\s+Python:\s*(\S+)")


def mismatch_line(message: str, address: str = "the cluster") -> str:
    """Ray's multi-line ``Version mismatch`` text from ``ray.init`` as one line."""
    found = _RAY_MISMATCH.findall(message)
    if len(found) < 2:
        return f"ray.address: {address}: " + " ".join(message.split())
    (cluster_ray, cluster_py), (own_ray, own_py) = found[0], found[1]
    return (
        f"ray.address: {address} runs Ray {cluster_ray} with Python {cluster_py}, this driver "
        f"Ray {own_ray} with Python {own_py}; run the driver with the cluster's Ray and Python"
    )


@ray.remote(num_cpus=0, max_retries=0)
def _versions_here() -> tuple[str, PyVersion]:
    return driver_versions()


def node_versions(timeout_s: float = PROBE_TIMEOUT_S) -> list[NodeVersions]:
    """Ask one worker on every alive node of the connected cluster for its versions."""
    refs: dict[Any, str] = {}
    for node in ray.nodes():
        if not node.get("Alive"):
            continue
        strategy = NodeAffinitySchedulingStrategy(node_id=node["NodeID"], soft=False)
        label = f"{node.get('NodeManagerAddress', '?')} ({node['NodeID'][:8]})"
        refs[_versions_here.options(scheduling_strategy=strategy).remote()] = label
    ready, missing = ray.wait(list(refs), num_returns=len(refs), timeout=timeout_s)
    if missing:
        late = ", ".join(refs[ref] for ref in missing[:4])
        raise StudyError(
            f"ray.address: {len(missing)} of {len(refs)} nodes did not report their Ray and "
            f"Python versions within {timeout_s:.0f} s ({late}); check that their workers start"
        )
    reports = []
    for ref in ready:
        try:
            ray_version, python = ray.get(ref)
        except ray.exceptions.RayError as exc:
            # A worker that cannot even start (broken environment) is a mismatch too.
            reason = " ".join(str(exc).split())[:160]
            raise StudyError(
                f"ray.address: node {refs[ref]} could not run a version probe: {reason}"
            ) from None
        reports.append(NodeVersions(refs[ref], ray_version, tuple(python)))  # type: ignore[arg-type]
    return sorted(reports, key=lambda r: r.node)


def join(address: str | None, **init_kwargs: Any) -> str:
    """``ray.init`` an existing cluster (``None``: ``RAY_ADDRESS``) and check its versions.

    Returns the one-line summary of :func:`check_versions`. A version mismatch is a
    StudyError; other failures of ``ray.init`` (no cluster at the address) propagate.
    """
    where = address or "RAY_ADDRESS"
    try:
        ray.init(address=address, **init_kwargs)
    except RuntimeError as exc:
        if "Version mismatch" not in str(exc):
            raise
        raise StudyError(mismatch_line(str(exc), where)) from None
    start = time.monotonic()
    summary = check_versions(node_versions(), address=ray.get_runtime_context().gcs_address)
    return f"{summary} (checked in {time.monotonic() - start:.1f} s)"


__all__ = [
    "NodeVersions",
    "check_versions",
    "driver_versions",
    "join",
    "mismatch_line",
    "node_versions",
]
