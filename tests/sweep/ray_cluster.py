"""Real multi-node Ray clusters on this machine for cluster and fault tests.

:func:`cluster` starts a head and worker nodes with ``ray.cluster_utils.Cluster`` (each node its
own raylet, object store and workers, as on separate hosts) in a helper process: the test
process holds the session's own Ray, and starting another cluster's nodes from the same process
mixes their process-wide state. Studies run against the cluster in ``python -m sweep``
subprocesses with ``ray.address``.

The cluster lives in its own Ray temp directory (``RAY_TMPDIR``): a head records its address in
``<temp>/ray_current_cluster``, and a plain ``ray.init()`` anywhere on the machine would otherwise
join it. Teardown closes the helper's stdin and the helper removes only its own nodes (never
``ray stop``, which would kill every Ray on the machine, including other test runs').
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

NODE_ARGS = {"include_dashboard": False, "object_store_memory": 80 * 1024 * 1024}

_HELPER = """
import json, sys
from ray.cluster_utils import Cluster
cpus, node_args = json.loads(sys.argv[1])
nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": cpus[0], **node_args})
try:
    for n in cpus[1:]:
        nodes.add_node(num_cpus=n, **node_args)
    nodes.wait_for_nodes()
    raylets = [
        info.process.pid
        for node in nodes.list_all_nodes()
        for info in node.all_processes.get("raylet", [])
    ]
    print(json.dumps({"address": nodes.address, "raylets": raylets}), flush=True)
    sys.stdin.read()  # until the test closes it (or dies)
finally:
    nodes.shutdown()
"""


@dataclass(frozen=True)
class ClusterHandle:
    address: str
    raylets: list[int]


@contextmanager
def cluster(cpus_per_node: tuple[int, ...] = (1, 1)) -> Iterator[ClusterHandle]:
    """A head with ``cpus_per_node[0]`` CPUs and one worker node per further entry."""
    temp = tempfile.mkdtemp(prefix="rayc-", dir="/tmp")  # short: socket paths are <108 bytes
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["RAY_TMPDIR"] = temp
    helper = subprocess.Popen(
        [sys.executable, "-c", _HELPER, json.dumps([list(cpus_per_node), NODE_ARGS])],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert helper.stdout is not None
        line = helper.stdout.readline()
        if not line:
            raise RuntimeError(f"the Ray cluster helper exited with {helper.wait()}")
        info = json.loads(line)
        yield ClusterHandle(info["address"], info["raylets"])
    finally:
        if helper.stdin is not None:
            helper.stdin.close()
        try:
            helper.wait(timeout=60)
        except subprocess.TimeoutExpired:
            helper.kill()
            helper.wait()
        shutil.rmtree(temp, ignore_errors=True)


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
