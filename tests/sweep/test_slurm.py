"""``scripts/cluster/slurm_sweep.sbatch`` on a real two-node Slurm cluster.

The module starts its own cluster under a temp directory: ``munged`` with its own key, socket and
pid file, one ``slurmctld`` and two ``slurmd`` (node names ``n1`` and ``n2``, one host, ports of
their own, ``NodeAddr=127.0.0.1``, ``proctrack/linuxproc``, ``task/none``), every daemon in the
foreground so that it is stopped by the pid this module started, never by name. Jobs submit the
unchanged sbatch script with ``--nodes=2`` and ``--export=ALL`` (this interpreter's virtualenv and
``PYTHONPATH``, so the job runs this checkout's code).

Every process of the test carries a marker variable in its environment (daemons, batch scripts,
``srun`` steps, Ray nodes and workers inherit it): after each job and after teardown no process
with the marker may be left. The module is skipped only when the Slurm or munge binaries are
missing (``apt-get install slurm-wlm munge``), and fails then under ``CI=true``: ``.ci/run``
installs them.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import psutil
import pyarrow.dataset as ds
import pytest

from sweep.store import read_points

try:
    from test_cli import comparable, grid_args, reference
except ImportError:  # run as a package (python -m pytest from elsewhere)
    from tests.sweep.test_cli import comparable, grid_args, reference

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "cluster" / "slurm_sweep.sbatch"
BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "scancel", "scontrol", "sinfo", "srun")
MARKER = "EXITSWEEP_SLURM_TEST"
JOB_TIMEOUT_S = 240.0
"""A job on this 2-core machine takes 25-60 s (two Ray nodes start, then the study); generous."""

GRID = {
    "machine": ["arm64_m2"],
    "mix": ["fork_exit"],
    "variant": ["baseline", "pmap_purge"],
    "cores": [1, 8],
    "seed": [0],
}
# Long enough to cancel in the middle: kernel_build points take about a second each and run one
# at a time (one task in flight), one row per task and one Parquet file per row, so that the
# job is cancelled with most points still to compute and some already stored.
CANCEL_GRID = {
    "machine": ["arm64_m2"],
    "mix": ["kernel_build"],
    "variant": ["baseline", "pmap_purge", "pmap_deactivate"],
    "cores": [1, 2, 4, 8],
    "seed": [0],
}
CANCEL_ARGS = ["ray.chunk_points=1", "ray.max_tasks_in_flight=1", "store.flush_points=1"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def marked(marker: str) -> list[psutil.Process]:
    """Every process on the machine whose environment carries ``MARKER=marker``."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(MARKER) == marker:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def describe(procs: list[psutil.Process]) -> list[str]:
    shown = []
    for proc in procs:
        try:
            shown.append(f"{proc.pid} {' '.join(proc.cmdline())[:120]}")
        except psutil.Error:
            shown.append(f"{proc.pid} (gone)")
    return shown


def stop(proc: subprocess.Popen[bytes], timeout_s: float = 20.0) -> None:
    """SIGTERM the daemon this module started, SIGKILL if it does not exit in time."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout_s)


@dataclass
class SlurmCluster:
    root: Path
    env: dict[str, str]
    marker: str
    daemons: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def run(self, *args: str, check: bool = True) -> str:
        done = subprocess.run(args, env=self.env, capture_output=True, text=True, timeout=60)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)}: {done.stderr.strip() or done.stdout.strip()}")
        return done.stdout

    def daemon_pids(self) -> set[int]:
        return {proc.pid for proc in self.daemons.values()}

    def job_processes(self) -> list[psutil.Process]:
        """Marked processes that are not the daemons: what a job started."""
        return [p for p in marked(self.marker) if p.pid not in self.daemon_pids()]


@dataclass
class Job:
    job_id: str
    state: str
    output: str
    raylets: set[int]


@pytest.fixture(scope="module")
def slurm() -> Iterator[SlurmCluster]:
    missing = [name for name in BINARIES if shutil.which(name) is None]
    if missing:
        reason = f"Slurm binaries absent ({', '.join(missing)}): apt-get install slurm-wlm munge"
        if os.environ.get("CI") == "true":  # .ci/run installs them: absent there is a failure
            pytest.fail(reason)
        pytest.skip(reason)
    root = Path(tempfile.mkdtemp(prefix="slurm-", dir="/tmp"))  # short: socket paths
    root.chmod(0o711)  # munged wants its socket's directory searchable by clients
    for sub in ("state", "spool", "log", "ray"):
        (root / sub).mkdir()
    key = root / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    user = pwd.getpwuid(os.getuid()).pw_name
    host = socket.gethostname().split(".")[0]
    ctld_port, n1_port, n2_port = free_port(), free_port(), free_port()
    cpus = os.cpu_count() or 1
    conf = root / "slurm.conf"
    conf.write_text(
        f"""ClusterName=exitsweep-test
SlurmctldHost={host}(127.0.0.1)
SlurmUser={user}
SlurmdUser={user}
AuthType=auth/munge
AuthInfo=socket={root}/munge.sock
CredType=cred/munge
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool/slurmd-%n
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd-%n.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
SlurmctldPort={ctld_port}
NodeName=n1 NodeHostname={host} NodeAddr=127.0.0.1 CPUs={cpus} Port={n1_port} State=UNKNOWN
NodeName=n2 NodeHostname={host} NodeAddr=127.0.0.1 CPUs={cpus} Port={n2_port} State=UNKNOWN
PartitionName=p Nodes=n1,n2 Default=YES MaxTime=INFINITE State=UP
"""
    )
    marker = uuid.uuid4().hex
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "RAY_"))}
    env.update({"SLURM_CONF": str(conf), MARKER: marker})
    env.pop("HYDRA_FULL_ERROR", None)
    cluster = SlurmCluster(root, env, marker)

    def start(name: str, *argv: str) -> None:
        log = open(root / "log" / f"{name}.out", "wb")  # noqa: SIM115 (the daemon keeps it)
        cluster.daemons[name] = subprocess.Popen(argv, env=env, stdout=log, stderr=log)
        log.close()

    try:
        start(
            "munged",
            "munged",
            "--foreground",
            "--force",
            f"--socket={root}/munge.sock",
            f"--key-file={key}",
            f"--pid-file={root}/munged.pid",
            f"--log-file={root}/log/munged.log",
            f"--seed-file={root}/munged.seed",
        )
        wait_for(lambda: (root / "munge.sock").exists(), 30, "munged did not create its socket")
        start("slurmctld", "slurmctld", "-D")
        start("slurmd-n1", "slurmd", "-D", "-N", "n1")
        start("slurmd-n2", "slurmd", "-D", "-N", "n2")
        wait_for(
            lambda: cluster.run("sinfo", "-h", "-o", "%D %t", check=False).split() == ["2", "idle"],
            60,
            "the two slurmd nodes did not come up idle",
        )
        yield cluster
    finally:
        for job_id in cluster.run("squeue", "-h", "-o", "%i", check=False).split():
            cluster.run("scancel", job_id, check=False)
        wait_for(lambda: not cluster.job_processes(), 60, None)
        for name in ("slurmd-n2", "slurmd-n1", "slurmctld", "munged"):
            if name in cluster.daemons:
                stop(cluster.daemons[name])
        left = wait_for(lambda: not marked(marker), 30, None)
        shutil.rmtree(root, ignore_errors=True)
        # (c) no Slurm, munge or Ray process of the test outlives it
        assert left, f"processes outlived the test: {describe(marked(marker))}"


def wait_for(condition: object, timeout_s: float, message: str | None) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.2)
    if message is not None:
        raise RuntimeError(message)
    return False


def submit(slurm: SlurmCluster, workdir: Path, out: Path, *args: str) -> str:
    """Submit the unchanged sbatch script on both nodes; the job id."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = {
        **slurm.env,
        "EXITSWEEP_VENV": sys.prefix,
        "EXITSWEEP_OUT": str(out),
        "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]),
        "RAY_PORT": str(free_port()),  # the default 6379 may be taken on a shared machine
        # The nodes' Ray temp dirs (kept by the script after a cancelled job) go with the cluster.
        "RAY_TMPDIR": str(slurm.root / "ray"),
    }
    done = subprocess.run(
        ["sbatch", "--parsable", "--nodes=2", "--export=ALL", str(SCRIPT), *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().split(";")[0]


def job_state(slurm: SlurmCluster, job_id: str) -> str:
    text = slurm.run("scontrol", "-o", "show", "job", job_id, check=False)
    found = re.search(r"\bJobState=(\S+)", text)
    return found.group(1) if found else "UNKNOWN"


def wait_job(slurm: SlurmCluster, workdir: Path, job_id: str, until: object = None) -> Job:
    """Wait (bounded) for the job to end or ``until()`` to hold, noting the raylets it ran."""
    raylets: set[int] = set()
    deadline = time.monotonic() + JOB_TIMEOUT_S
    state = job_state(slurm, job_id)
    scanned = 0.0
    while state in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING"):
        if until is not None and until():  # type: ignore[operator]
            break
        if time.monotonic() - scanned > 1.0:  # a scan of every process takes a while
            scanned = time.monotonic()
            for proc in slurm.job_processes():
                try:
                    if proc.name() == "raylet":
                        raylets.add(proc.pid)
                except psutil.Error:
                    continue
        assert time.monotonic() < deadline, f"job {job_id} still {state} after {JOB_TIMEOUT_S} s"
        time.sleep(0.2)
        state = job_state(slurm, job_id)
    output_file = workdir / f"exitsweep-{job_id}.out"
    return Job(job_id, state, output_file.read_text() if output_file.exists() else "", raylets)


def assert_job_left_nothing(slurm: SlurmCluster, job: Job) -> None:
    # (c) per job: its batch script, sruns, Ray nodes and workers are all gone
    gone = wait_for(lambda: not slurm.job_processes() and not running(job.raylets), 30, None)
    assert gone, f"job {job.job_id} left processes: {describe(slurm.job_processes())}"
    assert not running(job.raylets)


def running(pids: set[int]) -> list[int]:
    """The pids still running (a zombie has exited, only its parent has not reaped it yet)."""
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            continue
    return alive


def test_a_study_on_two_slurm_nodes_equals_the_local_run(
    slurm: SlurmCluster, tmp_path: Path
) -> None:
    out = tmp_path / "results"
    job_id = submit(slurm, tmp_path, out, *grid_args(GRID), "study.name=slurm", "report=false")
    job = wait_job(slurm, tmp_path, job_id)
    assert job.state == "COMPLETED", job.output
    # (b) the driver saw a Ray cluster of two nodes, one per Slurm node (two raylets ran)
    assert re.search(r"^sweep: cluster \S+: 2 nodes, ", job.output, re.MULTILINE), job.output
    assert "exitsweep: 2 of 2 Ray node(s) up" in job.output, job.output
    assert len(job.raylets) == 2, job.raylets
    # (a) the same points and metrics as the study computed locally, point by point
    rows = read_points(out / "slurm")
    assert rows.num_rows == 4
    assert comparable(rows).equals(reference(GRID, name="slurm"))
    assert_job_left_nothing(slurm, job)


def test_a_cancelled_job_leaves_a_readable_set_that_a_resubmission_completes(
    slurm: SlurmCluster, tmp_path: Path
) -> None:
    out = tmp_path / "results"
    points = out / "cancel" / "points"
    args = [*grid_args(CANCEL_GRID), "study.name=cancel", "report=false", *CANCEL_ARGS]
    total = 3 * 4

    def some_rows_stored() -> bool:
        return any(points.glob("*/*/*.parquet"))

    first = submit(slurm, tmp_path, out, *args)
    started = wait_job(slurm, tmp_path, first, until=some_rows_stored)
    assert started.state == "RUNNING", f"job ended ({started.state}) before it was cancelled"
    slurm.run("scancel", first)
    cancelled = wait_job(slurm, tmp_path, first)
    assert cancelled.state == "CANCELLED", cancelled.output
    assert_job_left_nothing(slurm, cancelled)

    # (d) what the cancelled job left is a readable dataset of finished points
    stored = read_points(out / "cancel")
    frame = pl.read_parquet(points / "**" / "*.parquet", hive_partitioning=True)
    assert frame.height == stored.num_rows == ds.dataset(points, format="parquet").count_rows()
    assert 0 < stored.num_rows < total, f"{stored.num_rows} rows: not cancelled mid-study"
    ok = stored.column("status").to_pylist().count("ok")

    second = submit(slurm, tmp_path, out, *args)
    resumed = wait_job(slurm, tmp_path, second)
    assert resumed.state == "COMPLETED", resumed.output
    assert (
        f"{total} points, {ok} already stored, 0 from the cache, {total - ok} to compute"
        in resumed.output
    )
    rows = read_points(out / "cancel")
    ids = rows.column("point_id").to_pylist()
    assert len(ids) == len(set(ids)) == total
    assert comparable(rows).equals(reference(CANCEL_GRID, name="cancel"))
    assert_job_left_nothing(slurm, resumed)
