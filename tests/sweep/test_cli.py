"""End to end: ``python -m sweep`` in a subprocess with a real Ray and real files.

The first study starts its own local Ray (the default path); the others join the session's Ray
with ``ray.address`` (Ray takes 10-20 s to start on this shared machine, joining 0.1 s).

Every run is compared with an independent in-process computation of the same points (no Ray, no
store): the CLI's dataset must hold exactly those rows, once each, with the same bits.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml

from exitcore import MODEL_VERSION, presets
from sweep.compute import Shared, compute_chunk
from sweep.plan import plan
from sweep.spec import StudySpec
from sweep.store import read_points

PRESET_MACHINES = presets.load_all("machine")
PRESET_MIXES = presets.load_all("mix")
PRESET_VARIANTS = presets.load_all("variant")

pytestmark = pytest.mark.slow
BUILTIN = {"machine": PRESET_MACHINES, "mix": PRESET_MIXES, "variant": PRESET_VARIANTS}
TINY = {
    "machine": ["arm64_m2"],
    "mix": ["fork_exit"],
    "variant": ["baseline", "pmap_deactivate"],
    "cores": "1..4",
    "seed": [0, 1],
}


def grid_args(grid: dict) -> list[str]:
    def text(value: object) -> str:
        return "[" + ",".join(map(str, value)) + "]" if isinstance(value, list) else str(value)

    return [f"grid.{axis}={text(value)}" for axis, value in grid.items()]


def sweep(*args: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "HYDRA_FULL_ERROR")}
    return subprocess.run(
        [sys.executable, "-m", "sweep", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def reference(
    grid: dict, variants: dict | None = None, name: str = "default", mixes: dict | None = None
) -> pa.Table:
    """The rows of an uninterrupted run, computed point by point in this process."""
    groups = {
        **BUILTIN,
        "variant": {**PRESET_VARIANTS, **(variants or {})},
        "mix": {**PRESET_MIXES, **(mixes or {})},
    }
    spec = StudySpec.from_dicts(
        {"study": {"name": name, "seed": 0}, "grid": grid},
        lambda g, n: groups[g][n],
        {g: sorted(d) for g, d in groups.items()},
    )
    table, _ = compute_chunk(Shared(name, "", spec.params), plan(spec))
    return comparable(table)


def comparable(table: pa.Table) -> pa.Table:
    # created_at says when, config_hash which command: provenance, not results.
    return table.drop_columns(["created_at", "config_hash"]).sort_by("point_id")


def test_tiny_study_then_rerun_adds_nothing(tmp_path: Path) -> None:
    out = tmp_path / "results"
    args = [*grid_args(TINY), f"out={out}", "ray.num_cpus=2"]
    first = sweep(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "Traceback" not in first.stderr
    # The run ends with the study report: its table on stdout, its files on disk.
    assert "pmap_deactivate" in first.stdout and "bottleneck" in first.stdout
    assert (out / "default" / "report.md").is_file()
    study = out / "default"
    stored = read_points(study)
    assert stored.num_rows == 1 * 1 * 2 * 3 * 2
    assert comparable(stored).equals(reference(TINY))
    recorded = yaml.safe_load((study / "study.yaml").read_text())
    assert recorded["versions"]["model_version"] == MODEL_VERSION
    assert recorded["config"]["grid"]["variant"] == TINY["variant"]
    files = {p: p.stat().st_mtime_ns for p in (study / "points").rglob("*.parquet")}

    second = sweep(*args, "report=false", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "12 already stored, 0 from the cache, 0 to compute" in second.stderr
    assert {p: p.stat().st_mtime_ns for p in (study / "points").rglob("*.parquet")} == files


@pytest.fixture(scope="module")
def ray_address(ray_local: Any) -> str:
    """Address of the session's Ray: CLI runs join it (``ray.address``) instead of starting one."""
    return ray_local.get_runtime_context().gcs_address


def test_sigkill_mid_study_then_rerun_equals_an_uninterrupted_run(
    tmp_path: Path, ray_address: str
) -> None:
    grid = {
        "machine": ["arm64_m2"],
        "mix": ["fork_exit", "configure"],
        "variant": ["baseline", "uvm_purge", "pmap_deactivate", "combined"],
        "cores": "1..16",
        "seed": [0, 1, 2],
    }
    total = 2 * 4 * 5 * 3
    out = tmp_path / "results"
    study = out / "default"
    args = [
        *grid_args(grid),
        f"out={out}",
        f"ray.address={ray_address}",
        "ray.chunk_points=1",
        "report=false",
    ]
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "HYDRA_FULL_ERROR")}
    driver = subprocess.Popen(
        [sys.executable, "-m", "sweep", *args, "ray.max_tasks_in_flight=2", "store.flush_s=0.2"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while not list(study.glob("points/*/*/*.parquet")) and time.monotonic() < deadline:
        time.sleep(0.05)
    still_running = driver.poll() is None
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    assert still_running, "the study finished before it could be killed"
    partial = read_points(study)
    assert 0 < partial.num_rows < total

    # Corrupt one stored file as well: it must be quarantined and its points recomputed.
    victim = sorted(study.glob("points/*/*/*.parquet"))[0]
    victim.write_bytes(b"PAR1 this is not parquet")

    rerun = sweep(*args, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert "corrupt Parquet file" in rerun.stderr and "Traceback" not in rerun.stderr
    assert len(list((study / "quarantine").iterdir())) == 1
    final = read_points(study)
    assert final.num_rows == total
    assert len(set(final.column("point_id").to_pylist())) == total
    assert comparable(final).equals(reference(grid))


BAD_INPUTS = [
    (["grid.machine=[arm64_m2,nope]"], "unknown machine 'nope'; valid machines: amd64_epyc192"),
    (["grid.mix=[nope]"], "valid mixes: big_rss, configure, fork_exit"),
    (["grid.variant=[nope]"], "valid variants: baseline, baseline_2024, combined"),
    (["grid.cores=[1,0]"], "grid.cores: 0 is not a valid core count"),
    (["grid.cores=[-2]"], "grid.cores: -2 is not a valid core count"),
    (["grid.cores=[1.5]"], "grid.cores: 1.5 is not an integer"),
    (["grid.variant=[]"], "grid.variant is empty"),
    (["gird.cores=[1]"], "unknown config key 'gird.cores'"),
    (["ray.adress=auto"], "unknown config key 'ray.adress'; keys under 'ray': address"),
    (["set.machine.reaper=2"], "set.machine.reaper: unknown machine parameter; allowed:"),
    (["ray.num_cpus=0"], "ray.num_cpus: 0 is not a positive integer"),
    (["set.mix.processes=-5"], "mix 'kernel_build': processes: must be >= 0"),
]


def test_bad_inputs_are_one_line_and_write_nothing(tmp_path: Path) -> None:
    # The cases run concurrently: each is a Python start-up, not a study.
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "HYDRA_FULL_ERROR")}
    runs = []
    for i, (args, message) in enumerate(BAD_INPUTS):
        workdir = tmp_path / f"case{i}"
        workdir.mkdir()
        command = [sys.executable, "-m", "sweep", *args, f"out={workdir / 'results'}"]
        process = subprocess.Popen(
            command, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        runs.append((args, message, workdir, process))
    problems = []
    for args, message, workdir, process in runs:
        _, stderr = process.communicate(timeout=180)
        lines = stderr.strip().splitlines()
        if process.returncode != 2:
            problems.append(f"{args}: exit status {process.returncode}")
        if len(lines) != 1 or not lines[0].startswith("sweep: error: ") or message not in lines[0]:
            problems.append(f"{args}: stderr {stderr!r}")
        if list(workdir.iterdir()):
            problems.append(f"{args}: wrote {list(workdir.iterdir())}")
    assert not problems, "\n".join(problems)


def test_unwritable_output_directory(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    result = sweep(*grid_args(TINY), f"out={tmp_path / 'file' / 'results'}", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "is not writable" in result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


def test_result_set_of_another_model_version_is_refused(tmp_path: Path) -> None:
    study = tmp_path / "results" / "old"
    study.mkdir(parents=True)
    old_yaml = yaml.safe_dump({"versions": {"model_version": "0.0.0-old"}})
    (study / "study.yaml").write_text(old_yaml)
    result = sweep(*grid_args(TINY), f"out={tmp_path / 'results'}", "study.name=old", cwd=tmp_path)
    assert result.returncode == 2
    line = result.stderr.strip()
    assert "\n" not in line and "model version 0.0.0-old" in line
    assert "force=true" in line and "study.name" in line
    assert [p.name for p in study.iterdir()] == ["study.yaml"]
    assert (study / "study.yaml").read_text() == old_yaml


def test_hydra_help_and_cfg_keep_working(tmp_path: Path) -> None:
    shown = sweep("--cfg", "job", "grid.cores=1..8", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    config = yaml.safe_load(shown.stdout)
    assert config["grid"]["cores"] == "1..8" and config["study"]["name"] == "default"
    assert list(tmp_path.iterdir()) == []


def test_help_names_the_app_its_keys_layout_and_examples(tmp_path: Path) -> None:
    helped = sweep("--help", cwd=tmp_path)
    assert helped.returncode == 0, helped.stderr
    text = helped.stdout
    assert text.startswith("sweep: ") and "__main__" not in text and "powered by" not in text
    for key in ("grid.machine=", "grid.mix=", "grid.variant=", "grid.cores=", "grid.seed="):
        assert key in text
    for written in ("1..128", "1..81x3", "8..64+8", "[1..64,80]"):  # the core range grammar
        assert f"\n      {written} " in text
    for key in ("set.<group>.<param>=", "study.name=", "out=", "force=true", "ray.address="):
        assert key in text
    assert "OUT/NAME/points/machine=<m>/mix=<x>/part-<uuid>.parquet" in text
    examples = [ln for ln in text.splitlines() if ln.startswith("  python -m sweep study.name=")]
    assert len(examples) == 2
    # The names a grid can use are listed by Hydra from the presets, not from a copy of them.
    for group in ("machine", "mix", "variant"):
        names = presets.names(group)
        assert f"\n{group}: {', '.join(names)}\n" in text
    assert list(tmp_path.iterdir()) == []


def test_multirun_with_a_variant_defined_only_in_yaml(tmp_path: Path, ray_address: str) -> None:
    extra = tmp_path / "extra_conf"
    (extra / "variant").mkdir(parents=True)
    early_notify = {
        **PRESET_VARIANTS["baseline"],
        "name": "early_notify",
        "description": "baseline, but the parent is woken from exit",
        "notify": "exit",
    }
    (extra / "variant" / "early_notify.yaml").write_text(yaml.safe_dump(early_notify))
    grid = {**TINY, "cores": "1..2", "seed": [0]}
    grid_no_variant = {k: v for k, v in grid.items() if k != "variant"}
    result = sweep(
        "-m",
        f"hydra.searchpath=[file://{extra}]",
        *grid_args(grid_no_variant),
        "grid.variant=[baseline],[early_notify]",
        f"out={tmp_path / 'results'}",
        f"ray.address={ray_address}",
        "report=false",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == [
        ".point-cache",
        "default-0",
        "default-1",
    ]
    for job, variant in enumerate(["baseline", "early_notify"]):
        stored = read_points(tmp_path / "results" / f"default-{job}")
        assert set(stored.column("variant").to_pylist()) == {variant}
        expected = reference(
            {**grid, "variant": [variant]}, {"early_notify": early_notify}, f"default-{job}"
        )
        assert comparable(stored).equals(expected)


def test_changing_a_parameter_recomputes_exactly_the_affected_points(
    tmp_path: Path, ray_address: str
) -> None:
    extra = tmp_path / "extra_conf"
    (extra / "variant").mkdir(parents=True)
    mine = {**PRESET_VARIANTS["baseline"], "name": "mine", "description": "a user's variant"}
    variant_file = extra / "variant" / "mine.yaml"
    variant_file.write_text(yaml.safe_dump(mine))
    grid = {**TINY, "variant": ["baseline", "mine"], "cores": "1..2", "seed": [0]}
    args = [
        f"hydra.searchpath=[file://{extra}]",
        *grid_args(grid),
        "set.mix.processes_per_slot=50",  # a study-wide override, through Hydra's command line
        f"out={tmp_path / 'results'}",
        f"ray.address={ray_address}",
        "report=false",
    ]
    study = tmp_path / "results" / "default"
    small_mix = {"fork_exit": {**PRESET_MIXES["fork_exit"], "processes_per_slot": 50}}

    first = sweep(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "0 already stored, 0 from the cache, 4 to compute" in first.stderr
    assert comparable(read_points(study)).equals(reference(grid, {"mine": mine}, mixes=small_mix))

    mine = {**mine, "notify": "exit"}  # edit the user's variant only
    variant_file.write_text(yaml.safe_dump(mine))
    second = sweep(*args, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "2 already stored, 0 from the cache, 2 to compute" in second.stderr
    final = read_points(study)
    assert final.num_rows == 4  # the superseded rows are gone
    assert comparable(final).equals(reference(grid, {"mine": mine}, mixes=small_mix))
