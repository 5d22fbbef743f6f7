"""Real multi-node Ray clusters on this machine for cluster and fault tests.

:func:`cluster` starts a head and worker nodes with ``ray.cluster_utils.Cluster`` (each node its
own raylet, object store and workers, as on separate hosts) without connecting this process to
it: the test session already holds its own local Ray, and a process joins one Ray at a time, so
studies run against the cluster in ``python -m sweep`` subprocesses.

Teardown removes only this cluster's nodes (never ``ray stop``, which would kill every Ray on
the machine, including the session's and other test runs').
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
from ray.cluster_utils import Cluster

NODE_ARGS = {"include_dashboard": False, "object_store_memory": 80 * 1024 * 1024}


@contextmanager
def cluster(cpus_per_node: tuple[int, ...] = (1, 1)) -> Iterator[Cluster]:
    """A head with ``cpus_per_node[0]`` CPUs and one worker node per further entry.

    The cluster lives in its own Ray temp directory (``RAY_TMPDIR``): a head records its address
    in ``<temp>/ray_current_cluster``, and a plain ``ray.init()`` anywhere on the machine would
    otherwise join this cluster instead of starting its own Ray.
    """
    head, *workers = cpus_per_node
    temp = tempfile.mkdtemp(prefix="rayc-", dir="/tmp")  # short: socket paths are <108 bytes
    saved = os.environ.get("RAY_TMPDIR")
    os.environ["RAY_TMPDIR"] = temp
    nodes = None
    try:
        nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": head, **NODE_ARGS})
        for cpus in workers:
            nodes.add_node(num_cpus=cpus, **NODE_ARGS)
        nodes.wait_for_nodes()
    except BaseException:
        if nodes is not None:
            _remove(nodes)
        raise
    finally:
        if saved is None:
            os.environ.pop("RAY_TMPDIR", None)
        else:
            os.environ["RAY_TMPDIR"] = saved
    try:
        yield nodes
    finally:
        _remove(nodes)
        shutil.rmtree(temp, ignore_errors=True)


def _remove(nodes: Cluster) -> None:
    # Not Cluster.shutdown(): it also resets this process's internal KV client, which belongs to
    # the session's own Ray, and deletes the machine's default ray_current_cluster file.
    for node in list(nodes.worker_nodes):
        nodes.remove_node(node, allow_graceful=False)
    if nodes.head_node is not None:
        nodes.remove_node(nodes.head_node, allow_graceful=False)


def raylet_pids(nodes: Cluster) -> list[int]:
    return [
        info.process.pid
        for node in nodes.list_all_nodes()
        for info in node.all_processes.get("raylet", [])
    ]


def task_workers(raylets: list[int], task_name: str) -> list[tuple[int, psutil.Process]]:
    """``(raylet pid, worker)`` for every worker now running ``task_name`` under ``raylets``.

    Ray titles a worker ``ray::NAME`` while it runs task NAME. Only descendants of the given
    raylets are considered, so workers of other Rays on the machine are never touched.
    """
    found = []
    for pid in raylets:
        try:
            children = psutil.Process(pid).children(recursive=True)
        except psutil.NoSuchProcess:
            continue
        for child in children:
            try:
                title = " ".join(child.cmdline())
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            if title.startswith(f"ray::{task_name}"):
                found.append((pid, child))
    return found


def session_raylet() -> int:
    """The raylet of the Ray this process started (the session's ``ray_local``)."""
    import ray._private.worker

    node = ray._private.worker._global_node
    assert node is not None and node.head, "this process did not start its Ray"
    return node.all_processes["raylet"][0].process.pid


def sweep_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "HYDRA_FULL_ERROR")}


def sweep_popen(*args: str, cwd: Path) -> subprocess.Popen[str]:
    """``python -m sweep ARGS`` in the background, stderr captured."""
    return subprocess.Popen(
        [sys.executable, "-m", "sweep", *args],
        cwd=cwd,
        env=sweep_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
