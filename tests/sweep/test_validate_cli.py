"""End to end: ``python -m sweep.validate`` in a subprocess, real Ray, real files.

A user's own measurement files come from a directory on ``hydra.searchpath``; the published
figures are written from an independent in-process simulation of the same point (exitcore
directly, no pipeline), so the table's model column has a known value.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import yaml

from exitcore import PointParams, presets, simulate
from sweep.plan import point_entropy

pytestmark = pytest.mark.slow
CONF = Path(__file__).resolve().parents[2] / "conf"


def run(module: str, *args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "HYDRA_FULL_ERROR")}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def preset(group: str, name: str) -> dict[str, Any]:
    return presets.load(group, name)


def direct(
    machine: dict[str, Any], mix: dict[str, Any], variant: str, cores: int, seed: int
) -> Any:
    """One point computed in this process, seeded as the pipeline seeds it (root seed 0)."""
    params = PointParams.from_dicts(machine, mix, preset("variant", variant), cores)
    entropy = point_entropy(mix["name"], cores, seed, 0)
    return simulate(params, np.random.default_rng(np.random.SeedSequence(list(entropy))))


def write_group(root: Path, group: str, name: str, content: dict[str, Any]) -> None:
    (root / group).mkdir(parents=True, exist_ok=True)
    (root / group / f"{name}.yaml").write_text(yaml.safe_dump(content, sort_keys=False))


@pytest.fixture(scope="module")
def ray_address(ray_local: Any) -> str:
    """CLI runs join the session's Ray (starting one per run costs 10-20 s here)."""
    return ray_local.get_runtime_context().gcs_address


def fork_measurement(name: str, role: str, scale: float, seeds: list[int]) -> dict[str, Any]:
    results = [
        direct(preset("machine", "arm64_m2"), preset("mix", "fork_exit"), "baseline", 4, s)
        for s in seeds
    ]
    return {
        "name": name,
        "source": "a test: the model's own output, scaled",
        "role": role,
        "point": {"machine": "arm64_m2", "mix": "fork_exit", "variant": "baseline", "cores": 4},
        "figures": {
            "wall_s": scale * float(np.mean([r.wall_s for r in results])),
            "sys_s": scale * float(np.mean([r.sys_s for r in results])),
        },
        "bounds": {"reaper_util": [0.0, 1.0]},
        "tolerance": 0.05,
    }


def test_users_own_measurement_is_validated_then_cached(tmp_path: Path, ray_address: str) -> None:
    mine = tmp_path / "myconf"
    write_group(
        mine, "measurement", "my_fork", fork_measurement("my_fork", "calibrate", 1.02, [0, 1])
    )
    write_group(mine, "measurement", "my_off", fork_measurement("my_off", "check", 2.0, [0, 1]))
    args = (
        "measurements=[my_fork,my_off]",
        f"hydra.searchpath=[file://{mine}]",
        "seeds=[0,1]",
        "out=out",
        f"ray.address={ray_address}",
        "ray.inprocess_s=0",  # every point on Ray
    )
    first = run("sweep.validate", *args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr  # the check measurement is off, but never gates
    table = pl.read_parquet(tmp_path / "out" / "validate" / "validation.parquet")
    assert table.columns == [
        "measurement",
        "role",
        "figure",
        "published",
        "model_mean",
        "model_ci95",
        "rel_error",
        "tolerance",
        "within",
    ]
    rows = {(r["measurement"], r["figure"]): r for r in table.iter_rows(named=True)}
    assert len(rows) == 6
    wall = rows[("my_fork", "wall_s")]
    assert wall["rel_error"] == pytest.approx(1 / 1.02 - 1, rel=1e-9)  # the pipeline's model
    assert wall["within"] is True and rows[("my_fork", "reaper_util")]["within"] is True
    assert rows[("my_off", "sys_s")]["rel_error"] == pytest.approx(-0.5, rel=1e-9)
    assert rows[("my_off", "sys_s")]["within"] is False
    assert "my_off" in first.stdout and "check: 1 of 3 rows within" in first.stdout
    for name in ("validation.md", "validation.png"):
        assert (tmp_path / "out" / "validate" / name).stat().st_size > 0
    # the same command again computes nothing (both files measure the same 2 points)
    again = run("sweep.validate", *args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "2 points, 2 already stored, 0 from the cache, 0 to compute" in again.stderr
    assert pl.read_parquet(tmp_path / "out" / "validate" / "validation.parquet").equals(table)


def test_a_calibrate_figure_outside_its_tolerance_exits_1(tmp_path: Path) -> None:
    mine = tmp_path / "myconf"
    write_group(mine, "measurement", "my_bad", fork_measurement("my_bad", "calibrate", 1.5, [0]))
    result = run(
        "sweep.validate",
        "measurements=[my_bad]",
        f"hydra.searchpath=[file://{mine}]",
        "seeds=[0]",
        "out=out",
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stderr
    assert "calibrate: 1 of 3 rows within; largest |error| -33.3 %" in result.stdout
    assert "Traceback" not in result.stderr


BAD = [
    (["measurements=[nope]"], "measurements: unknown measurement 'nope'; available: "),
    (["role=fitted"], "role: 'fitted'; allowed: all, calibrate, check"),
    (["seeds=[-1]"], "seeds: -1 is not a non-negative integer"),
    (["seeds=[]"], "seeds: empty"),
    (["ray.num_cpus=0"], "ray.num_cpus: 0 is not a positive integer"),
    (["colour=red"], "unknown config key 'colour'"),
    (["measurements=[broken]"], "measurement/broken.yaml: colour: unknown field"),
    (["measurements=[no_machine]"], "measurement/no_machine.yaml: point.machine: unknown machine"),
    (["measurements=[no_figure]"], "measurement/no_figure.yaml: figures: missing"),
    (["overrides=missing.yaml"], "overrides: cannot read missing.yaml: No such file"),
    (["overrides=myconf/fitted.yaml"], "overrides: myconf/fitted.yaml: machine.arm64_m2.speed"),
    (["overrides=myconf/nobody.yaml"], "overrides: myconf/nobody.yaml: no machine 'cray1'"),
    (["out=blocker/out", "measurements=kernel_build_m2_baseline"], "is not writable: "),
]


@pytest.mark.parametrize(("args", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    tmp_path: Path, args: list[str], message: str
) -> None:
    mine = tmp_path / "myconf"
    good = {
        "name": "x",
        "source": "a test",
        "role": "calibrate",
        "point": {"machine": "arm64_m2", "mix": "fork_exit", "variant": "baseline", "cores": 2},
        "figures": {"wall_s": 1.0},
        "tolerance": 0.1,
    }
    write_group(mine, "measurement", "broken", {**good, "name": "broken", "colour": "red"})
    no_machine = {**good, "name": "no_machine", "point": {**good["point"], "machine": "cray1"}}
    write_group(mine, "measurement", "no_machine", no_machine)
    no_figure = {k: v for k, v in good.items() if k not in ("figures", "tolerance")}
    write_group(mine, "measurement", "no_figure", {**no_figure, "name": "no_figure"})
    (mine / "fitted.yaml").write_text("machine: {arm64_m2: {speed: 2.0}}\n")
    (mine / "nobody.yaml").write_text("machine: {cray1: {cpu_speed: 2.0}}\n")
    (tmp_path / "blocker").write_text("a file where the output directory would go\n")
    result = run(
        "sweep.validate", "out=out", *args, f"hydra.searchpath=[file://{mine}]", cwd=tmp_path
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sweep.validate: error: "), result.stderr
    assert message in lines[0]
    assert not (tmp_path / "out").exists()
