"""A study on a real two-node Ray cluster, the cluster version check and the reachability probe.

The cluster (``ray.cluster_utils.Cluster``: a head and a worker node, one CPU each, separate
raylets and object stores) is started once for the module; studies run against it in
``python -m sweep`` subprocesses with ``ray.address`` (this process holds the session's Ray).
"""

from __future__ import annotations

import http.server
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import psutil
import pyarrow as pa
import pytest
import ray
from ray._private.utils import check_version_info

from sweep.cluster import NodeVersions, check_versions, driver_versions, mismatch_line, probe
from sweep.errors import StudyError
from sweep.store import read_points

try:
    from ray_cluster import ClusterHandle, cluster, sweep_env, sweep_popen, task_workers
    from test_cli import comparable, grid_args, reference
except ImportError:  # run as a package (python -m pytest from elsewhere)
    from tests.sweep.ray_cluster import (
        ClusterHandle,
        cluster,
        sweep_env,
        sweep_popen,
        task_workers,
    )
    from tests.sweep.test_cli import comparable, grid_args, reference

# Four points of about a second each (kernel_build is the model's heaviest mix): long enough to
# see which node runs each task, short enough for a test.
GRID = {
    "machine": ["arm64_m2"],
    "mix": ["kernel_build"],
    "variant": ["baseline", "pmap_deactivate"],
    "cores": [2, 8],
    "seed": [0],
}


@pytest.fixture(scope="module")
def two_nodes() -> Iterator[ClusterHandle]:
    with cluster((1, 1)) as nodes:
        yield nodes


@pytest.mark.slow
def test_study_on_two_nodes_equals_the_local_run(
    tmp_path: Path, two_nodes: ClusterHandle, ray_local: Any
) -> None:
    out = tmp_path / "results"
    common = [*grid_args(GRID), f"out={out}", "ray.chunk_points=1"]
    driver = sweep_popen(
        *common, "study.name=remote", f"ray.address={two_nodes.address}", cwd=tmp_path
    )
    # Watch which node's workers run the study's tasks while it runs.
    raylets = two_nodes.raylets
    seen: set[int] = set()
    deadline = time.monotonic() + 120
    while driver.poll() is None and time.monotonic() < deadline:
        seen.update(raylet for raylet, _ in task_workers(raylets, "_compute_chunk_task"))
        time.sleep(0.05)
    _, stderr = driver.communicate(timeout=60)
    assert driver.returncode == 0, stderr
    assert "2 nodes, Ray" in stderr and "as on the driver" in stderr, stderr
    assert seen == set(raylets), "the study's tasks did not run on both nodes"

    local = sweep_popen(
        *common,
        "study.name=local",
        f"ray.address={ray_local.get_runtime_context().gcs_address}",
        cwd=tmp_path,
    )
    _, local_err = local.communicate(timeout=120)
    assert local.returncode == 0, local_err

    remote_rows = read_points(out / "remote")
    local_rows = read_points(out / "local")
    assert remote_rows.num_rows == 4
    # Same layout, same point ids, same metrics bit for bit; only the study name differs.
    assert (
        partitions(out / "remote")
        == partitions(out / "local")
        == {"machine=arm64_m2/mix=kernel_build"}
    )
    assert (out / "remote" / "study.yaml").is_file()
    assert without_study(remote_rows).equals(without_study(local_rows))
    assert comparable(remote_rows).equals(reference(GRID, name="remote"))


def partitions(study: Path) -> set[str]:
    return {
        str(p.parent.relative_to(study / "points")) for p in study.rglob("points/*/*/*.parquet")
    }


def without_study(table: pa.Table) -> pa.Table:
    return comparable(table).drop_columns(["study"])


# ---- version check: fabricated node reports (no mismatched cluster exists on this machine) ----

DRIVER = ("2.60.0", (3, 11, 7))


def test_matching_nodes_give_one_summary_line() -> None:
    reports = [NodeVersions(f"10.0.0.{i} (node{i})", "2.60.0", (3, 11, 7)) for i in range(3)]
    line = check_versions(reports, DRIVER, "head:6379")
    assert line == "head:6379: 3 nodes, Ray 2.60.0 and Python 3.11.7 everywhere, as on the driver"


@pytest.mark.parametrize(
    ("odd", "shown"),
    [
        (NodeVersions("10.0.0.2 (beef0002)", "2.9.3", (3, 11, 7)), "Ray 2.9.3, Python 3.11.7"),
        (NodeVersions("10.0.0.2 (beef0002)", "2.60.0", (3, 12, 1)), "Ray 2.60.0, Python 3.12.1"),
        # Ray's default match level is the patch: pickled floats and bytecode may differ.
        (NodeVersions("10.0.0.2 (beef0002)", "2.60.0", (3, 11, 4)), "Ray 2.60.0, Python 3.11.4"),
    ],
)
def test_a_mismatched_node_is_named_in_one_line(odd: NodeVersions, shown: str) -> None:
    good = NodeVersions("10.0.0.1 (beef0001)", "2.60.0", (3, 11, 7))
    with pytest.raises(StudyError) as caught:
        check_versions([good, odd], DRIVER, "head:6379")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("ray.address: 1 of 2 nodes of head:6379 do not match the driver")
    assert "(Ray 2.60.0, Python 3.11.7)" in message
    assert f"10.0.0.2 (beef0002) has {shown}" in message and "10.0.0.1" not in message


def test_many_mismatched_nodes_are_summarised() -> None:
    odd = [NodeVersions(f"10.0.1.{i}", "2.9.3", (3, 10, 0)) for i in range(10)]
    message = str(pytest.raises(StudyError, check_versions, odd, DRIVER).value)
    assert "10 of 10 nodes" in message and "and 6 more" in message and "10.0.1.4" not in message


def test_a_cluster_without_alive_nodes_is_an_error() -> None:
    with pytest.raises(StudyError, match="no alive node"):
        check_versions([], DRIVER, "head:6379")


def test_driver_versions_are_this_process() -> None:
    import sys

    assert driver_versions() == (ray.__version__, tuple(sys.version_info[:3]))


def test_rays_own_mismatch_error_becomes_one_line() -> None:
    # The text ray.init raises when the head runs another Ray or Python, made by Ray itself.
    with pytest.raises(RuntimeError, match="Version mismatch") as caught:
        check_version_info({"ray_version": "2.9.3", "python_version": "3.10.12"}, "node x")
    line = mismatch_line(str(caught.value), "head:6379")
    assert "\n" not in line
    assert line.startswith("ray.address: head:6379 runs Ray 2.9.3 with Python 3.10.12, ")
    assert f"this driver Ray {ray.__version__} with Python " in line


# ---- an address where no Ray cluster answers: one line, exit 2, nothing written, bounded ----

SHORT_TIMEOUT_S = 3
TINY_GRID = [
    "grid.machine=[arm64_m2]",
    "grid.mix=[fork_exit]",
    "grid.variant=[baseline]",
    "grid.cores=[1]",
]


def unused_port() -> int:
    """A loopback port nothing listens on (the kernel's pick, released at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def failed_study(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """Run ``python -m sweep`` that must fail fast and write nothing; its one error line."""
    out = tmp_path / "results"
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "sweep", *TINY_GRID, f"out={out}", "report=false", *args],
        cwd=tmp_path,
        env=sweep_env() if env is None else env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    elapsed = time.monotonic() - start
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert elapsed < SHORT_TIMEOUT_S + 22, f"took {elapsed:.1f} s"
    assert not out.exists(), sorted(str(p) for p in out.rglob("*"))
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("sweep: error: "), done.stderr
    return lines[-1]


@pytest.mark.slow
def test_an_address_nobody_listens_on_fails_within_the_timeout(tmp_path: Path) -> None:
    port = unused_port()
    line = failed_study(
        tmp_path, f"ray.address=127.0.0.1:{port}", f"ray.connect_timeout_s={SHORT_TIMEOUT_S}"
    )
    assert line == (
        f"sweep: error: ray.address: no Ray cluster answers at 127.0.0.1:{port} "
        f"within {SHORT_TIMEOUT_S} s"
    )


@pytest.mark.slow
def test_ray_address_in_the_environment_is_probed_too(tmp_path: Path) -> None:
    port = unused_port()
    line = failed_study(
        tmp_path,
        f"ray.connect_timeout_s={SHORT_TIMEOUT_S}",
        env={**sweep_env(), "RAY_ADDRESS": f"127.0.0.1:{port}"},
    )
    assert line == (
        f"sweep: error: RAY_ADDRESS: no Ray cluster answers at 127.0.0.1:{port} "
        f"within {SHORT_TIMEOUT_S} s"
    )


@pytest.mark.slow
def test_a_port_that_accepts_but_never_answers_fails_within_the_timeout(tmp_path: Path) -> None:
    # The kernel completes the handshake from the listen backlog; nobody ever reads or replies.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        line = failed_study(
            tmp_path, f"ray.address={address}", f"ray.connect_timeout_s={SHORT_TIMEOUT_S}"
        )
    assert line == (
        f"sweep: error: ray.address: no Ray cluster answers at {address} within {SHORT_TIMEOUT_S} s"
    )


class _Dashboardish(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (the name http.server dispatches to)
        body = b'{"result": true, "msg": "dashboard"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[str]:
    """``127.0.0.1:PORT`` of an HTTP server answering every GET, as a Ray dashboard does."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Dashboardish)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.mark.slow
@pytest.mark.parametrize("form", ["http://{}", "{}", "http://{}/"])
def test_a_dashboard_address_is_refused(tmp_path: Path, http_server: str, form: str) -> None:
    address = form.format(http_server)
    line = failed_study(tmp_path, f"ray.address={address}")
    assert line.startswith(
        f"sweep: error: ray.address: {address} answers HTTP, so it is a Ray dashboard, "
        "not a cluster's GCS address"
    ), line
    assert f"`ray job submit --address http://{http_server}" in line


def test_the_sessions_gcs_passes_the_probe(ray_local: Any) -> None:
    # The health check must accept a real GCS, or every cluster run would be refused.
    start = time.monotonic()
    probe(ray_local.get_runtime_context().gcs_address, 5)
    assert time.monotonic() - start < 5


def gcs_health(target: str) -> bytes | None:
    """The reply of the standard gRPC health check, written here independently of sweep."""
    with grpc.insecure_channel(target) as channel:
        check = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=lambda message: message,
            response_deserializer=lambda message: message,
        )
        try:
            return bytes(check(b"", timeout=2))
        except grpc.RpcError:
            return None


@pytest.fixture
def token_head(tmp_path: Path) -> Iterator[str]:
    """``127.0.0.1:PORT`` of a ``ray start --head`` with token authentication, own temp dir.

    Stopped by the pid of its ``ray start --block`` (SIGTERM stops the node's processes);
    any of its processes still running after that are killed by pid.
    """
    temp = tempfile.mkdtemp(prefix="rayt-", dir="/tmp")  # short: socket paths are <108 bytes
    port = unused_port()
    env = {**sweep_env(), "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": uuid.uuid4().hex}
    head = subprocess.Popen(
        [
            *(sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block"),
            *(f"--port={port}", "--num-cpus=0", "--include-dashboard=false"),
            *(f"--temp-dir={temp}", "--disable-usage-stats"),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and head.poll() is None:
            if gcs_health(f"127.0.0.1:{port}") == b"\x08\x01":  # SERVING
                break
            time.sleep(0.5)
        else:
            raise RuntimeError("ray start --head did not answer within 90 s")
        yield f"127.0.0.1:{port}"
    finally:
        children = psutil.Process(head.pid).children(recursive=True) if head.poll() is None else []
        head.terminate()
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            head.kill()
            head.wait()
        _, left = psutil.wait_procs(children, timeout=10)
        for proc in left:
            proc.kill()
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.slow
def test_a_cluster_wanting_a_token_the_driver_lacks_is_one_line(
    tmp_path: Path, token_head: str
) -> None:
    env = {k: v for k, v in sweep_env().items() if not k.startswith("RAY_AUTH")}
    line = failed_study(tmp_path, f"ray.address={token_head}", env=env)
    assert line == (
        f"sweep: error: ray.address: the Ray cluster at {token_head} requires token "
        "authentication (as clusters started with `ray start` do since Ray 2.59): set "
        "RAY_AUTH_MODE=token and give the driver the cluster's token (RAY_AUTH_TOKEN, or "
        "~/.ray/auth_token)"
    )
