"""``sweep.sensitivity`` on toy point functions whose effects are known by construction, and the
bad input of both entry points that take a parameter list (one line, exit 2, nothing written).

The toy metric is ``wall_s = 1 + 3 k + 20 p + 1e4 s t`` of four fork_exit constants (k
klock_syscall_frac in [0.1, 0.6], p pageq_per_page in [0, 0.2], s sys_s_fixed in [3e-5, 1.2e-4], t
user_s_sigma in [0.05, 0.3]) plus a machine constant it ignores. Morris' elementary effect of a
linear term is its slope times its range whatever the trajectory, so mu* of k is 3 x 0.5 = 1.5
and of p 20 x 0.2 = 4.0, each with sigma 0; s and t interact (their effects vary, sigma > 0,
mu* at most 1e4 x 9e-5 x 0.3 = 0.27 and 1e4 x 1.2e-4 x 0.25 = 0.3); the ignored one has mu* 0.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import yaml

from exitcore import presets
from exitcore.result import METRIC_FIELDS
from sweep.sensitivity import SensitivitySpec, run_sensitivity


def _range(group: str, name: str, param: str, lo: float, hi: float) -> dict[str, Any]:
    return {"group": group, "name": name, "param": param, "lo": lo, "hi": hi, "source": "test"}


TOY_LIST = {
    "parameters": [
        _range("mix", "fork_exit", "klock_syscall_frac", 0.1, 0.6),
        _range("mix", "fork_exit", "pageq_per_page", 0.0, 0.2),
        _range("mix", "fork_exit", "sys_s_fixed", 3e-5, 1.2e-4),
        _range("mix", "fork_exit", "user_s_sigma", 0.05, 0.3),
        _range("machine", "arm64_m2", "cpu_speed", 0.5, 1.5),
    ]
}
GROUPS = {
    "machine": presets.load_all("machine"),
    "mix": presets.load_all("mix"),
    "variant": presets.load_all("variant"),
    "fit": {"toy": TOY_LIST},
}
LABELS = {
    "k": "mix.fork_exit.klock_syscall_frac",
    "p": "mix.fork_exit.pageq_per_page",
    "s": "mix.fork_exit.sys_s_fixed",
    "t": "mix.fork_exit.user_s_sigma",
    "cpu": "machine.arm64_m2.cpu_speed",
}


def toy_point(
    machine: Mapping[str, Any],
    mix: Mapping[str, Any],
    variant: Mapping[str, Any],
    cores: int,
    rng: np.random.Generator,
) -> dict[str, Any]:
    k, p = float(mix["klock_syscall_frac"]), float(mix["pageq_per_page"])
    s, t = float(mix["sys_s_fixed"]), float(mix["user_s_sigma"])
    wall = 1.0 + 3.0 * k + 20.0 * p + 1e4 * s * t
    metrics: dict[str, Any] = {name: kind(0) for name, kind in METRIC_FIELDS}
    metrics.update(exits=1000, wall_s=wall, exits_per_s=1000.0 / wall)
    return metrics


def make_spec(out: Path, **extra: Any) -> SensitivitySpec:
    config = {
        "study": {"name": "sens", "seed": 3},
        "out": str(out),
        "grid": {
            "machine": ["arm64_m2"],
            "mix": ["fork_exit"],
            "variant": ["baseline"],
            "cores": [1, 2],
            "seed": [0],
        },
        "progress": "off",
        "ray": {"inprocess_s": 1000.0},
        "uncertainty": {"params": "toy"},
        "metric": "wall_s",
        **extra,
    }
    return SensitivitySpec.from_dicts(
        config, lambda g, n: GROUPS[g][n], {g: sorted(d) for g, d in GROUPS.items()}
    )


def test_morris_ranks_the_toy_parameters_by_their_known_effects(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = make_spec(tmp_path, size=8)
    assert run_sensitivity(spec, point_fn=toy_point) == 0
    out = capsys.readouterr()
    results = pl.read_parquet(tmp_path / "sens" / "sensitivity.parquet")
    assert {"machine", "mix", "variant", "cores", "metric", "parameter", "mu_star", "sigma"} <= set(
        results.columns
    )
    for cores in (1, 2):
        rows = results.filter(pl.col("cores") == cores).sort("mu_star", descending=True)
        ranked = rows["parameter"].to_list()
        assert ranked[:2] == [LABELS["p"], LABELS["k"]]
        assert set(ranked[2:4]) == {LABELS["s"], LABELS["t"]}
        assert ranked[4] == LABELS["cpu"]
        by = {r["parameter"]: r for r in rows.iter_rows(named=True)}
        assert by[LABELS["p"]]["mu_star"] == pytest.approx(4.0, rel=1e-9)
        assert by[LABELS["k"]]["mu_star"] == pytest.approx(1.5, rel=1e-9)
        assert by[LABELS["p"]]["sigma"] == pytest.approx(0.0, abs=1e-9)
        assert by[LABELS["k"]]["sigma"] == pytest.approx(0.0, abs=1e-9)
        assert by[LABELS["cpu"]]["mu_star"] == 0.0
        assert 0.0 < by[LABELS["s"]]["mu_star"] <= 0.27 + 1e-12
        assert 0.0 < by[LABELS["t"]]["mu_star"] <= 0.3 + 1e-12
        assert by[LABELS["s"]]["sigma"] > 0.0 and by[LABELS["t"]]["sigma"] > 0.0
    printed = [line for line in out.out.splitlines() if line[:2] in ("1.", "2.")]
    assert printed[0].startswith(f"1. {LABELS['p']}: 4 s") and LABELS["k"] in printed[1]
    # four ranges in the parameter table, then one ranking (at 2 cores, the largest)
    assert (tmp_path / "sens" / "sensitivity.md").read_text().count("| mix.fork_exit.") == 8
    tornados = sorted((tmp_path / "sens" / "figures" / "sensitivity").glob("*__tornado.*"))
    assert [p.name for p in tornados] == [
        "arm64_m2__fork_exit__baseline__tornado.png",
        "arm64_m2__fork_exit__baseline__tornado.svg",
    ]

    # The points are stored and cached: the same command (any metric) computes nothing.
    assert run_sensitivity(make_spec(tmp_path, size=8, metric="exits_per_s"), toy_point) == 0
    n = 8 * (5 + 1) * 2
    assert f"{n} points, {n} already stored, 0 from the cache, 0 to compute" in (
        capsys.readouterr().err
    )


def test_sobol_first_order_indices_of_an_additive_toy_match_theory(tmp_path: Path) -> None:
    # Additive in k and p only: S1 = var share = (a^2 range^2) / sum, S1 = ST; 0 for the rest.
    spec = make_spec(
        tmp_path,
        method="sobol",
        size=256,
        grid={
            "machine": ["arm64_m2"],
            "mix": ["fork_exit"],
            "variant": ["baseline"],
            "cores": [1],
            "seed": [0],
        },
    )

    def additive(*args: Any) -> dict[str, Any]:
        metrics = toy_point(*args)
        mix = args[1]
        metrics["wall_s"] = (
            1.0 + 3.0 * float(mix["klock_syscall_frac"]) + 20.0 * float(mix["pageq_per_page"])
        )
        return metrics

    assert run_sensitivity(spec, point_fn=additive) == 0
    results = pl.read_parquet(tmp_path / "sens" / "sensitivity.parquet")
    by = {r["parameter"]: r for r in results.iter_rows(named=True)}
    var_k, var_p = (3.0 * 0.5) ** 2 / 12, (20.0 * 0.2) ** 2 / 12
    assert by[LABELS["p"]]["S1"] == pytest.approx(var_p / (var_k + var_p), abs=0.05)
    assert by[LABELS["k"]]["S1"] == pytest.approx(var_k / (var_k + var_p), abs=0.05)
    assert by[LABELS["p"]]["ST"] == pytest.approx(var_p / (var_k + var_p), abs=0.05)
    for name in ("s", "t", "cpu"):
        assert abs(by[LABELS[name]]["ST"]) < 0.01
    assert {"S1_conf", "ST_conf"} <= set(results.columns)


# --------------------------------------------------------------------------- bad input

BAD_LISTS = {
    "outside": [_range("machine", "arm64_m2", "klock_syscall_frac", 0.1, 0.6)],
    "backwards": [_range("mix", "fork_exit", "klock_syscall_frac", 0.6, 0.1)],
    "good": [_range("mix", "fork_exit", "klock_syscall_frac", 0.1, 0.6)],
}
SMALL = [
    "grid.machine=[arm64_m2]",
    "grid.mix=[fork_exit]",
    "grid.variant=[baseline]",
    "grid.cores=[1,2]",
]


@pytest.fixture(scope="module")
def conf_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("conf")
    (root / "fit").mkdir()
    for name, items in BAD_LISTS.items():
        (root / "fit" / f"{name}.yaml").write_text(yaml.safe_dump({"parameters": items}))
    return root


def _cli(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "HYDRA_FULL_ERROR")}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("module", "args", "message"),
    [
        ("sweep", ["uncertainty.samples=-1"], "uncertainty.samples: -1 is not an integer >= 0"),
        (
            "sweep",
            ["uncertainty.samples=2", "uncertainty.params=nosuch"],
            "uncertainty.params: unknown parameter list 'nosuch'",
        ),
        (
            "sweep",
            ["uncertainty.samples=2", "uncertainty.params=outside"],
            "machine 'arm64_m2' has no parameter 'klock_syscall_frac'",
        ),
        ("sweep", ["uncertainty.samples=2", "uncertainty.params=backwards"], "lo 0.6 > hi 0.1"),
        (
            "sweep.sensitivity",
            ["uncertainty.params=outside"],
            "machine 'arm64_m2' has no parameter 'klock_syscall_frac'",
        ),
        ("sweep.sensitivity", ["uncertainty.params=backwards"], "lo 0.6 > hi 0.1"),
        (
            "sweep.sensitivity",
            ["uncertainty.params=good", "metric=speed"],
            "metric: unknown metric 'speed'",
        ),
        (
            "sweep.sensitivity",
            ["uncertainty.params=good", "metric=gain:exits_per_s"],
            "needs baseline and another variant",
        ),
        ("sweep.sensitivity", ["uncertainty.params=good", "method=fast"], "method: 'fast'"),
        (
            "sweep.sensitivity",
            ["grid.machin=[arm64_m2]"],
            "unknown config key 'grid.machin'; keys under 'grid': cores, machine, mix, seed",
        ),
        (
            "sweep.sensitivity",
            ["uncertainty.params=good", "method=sobol", "size=10"],
            "size: 10 is not a power of two",
        ),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(
    tmp_path: Path, conf_dir: Path, module: str, args: list[str], message: str
) -> None:
    out = tmp_path / "results"
    run = _cli(
        module,
        *SMALL,
        *args,
        f"hydra.searchpath=[file://{conf_dir}]",
        f"out={out}",
        cwd=tmp_path,
    )
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{module}: error: "), run.stderr
    assert message in lines[0]
    assert not out.exists() and list(tmp_path.iterdir()) == []  # nothing written anywhere


# --------------------------------------------------------------------------- on Ray


@pytest.fixture(scope="module")
def ray_address(ray_local: Any) -> str:
    return ray_local.get_runtime_context().gcs_address


@pytest.mark.slow
@pytest.mark.parametrize("module", ["sweep", "sweep.sensitivity"])
def test_draws_and_samples_on_ray_equal_the_same_run_in_process(
    tmp_path: Path, conf_dir: Path, ray_address: str, module: str
) -> None:
    """The real model, every point on the session's Ray (ray.inprocess_s=0) against every
    point in the driver: the same rows, so the same curves and indices."""
    from sweep.store import read_points

    common = [
        *SMALL,
        "grid.variant=[baseline,pmap_purge]",
        "uncertainty.params=good",
        f"hydra.searchpath=[file://{conf_dir}]",
        "progress=off",
        "cache=false",
    ]
    if module == "sweep":
        common += ["uncertainty.samples=3", "report=false"]
    else:
        common += ["metric=exits_per_s", "size=2"]
    on_ray = _cli(
        module, *common, "out=ray", f"ray.address={ray_address}", "ray.inprocess_s=0", cwd=tmp_path
    )
    assert on_ray.returncode == 0, on_ray.stderr
    assert "Ray tasks" in on_ray.stderr and "in this process" not in on_ray.stderr
    local = _cli(module, *common, "out=local", "ray.inprocess_s=1000", cwd=tmp_path)
    assert local.returncode == 0, local.stderr
    assert "computed" in local.stderr and "Ray tasks" not in local.stderr
    sub = "default" if module == "sweep" else "default/sensitivity"
    a, b = (
        read_points(tmp_path / out / sub).drop_columns(["created_at"]).sort_by("point_id")
        for out in ("ray", "local")
    )
    # 2 variants x 2 cores at the presets and 3 draws, or at 2 x (1 + 1) Morris samples
    assert a.num_rows == 16
    assert a.equals(b)
    assert set(a.column("draw").to_pylist()) == (
        {None, 0, 1, 2} if module == "sweep" else {0, 1, 2, 3}
    )
    if module == "sweep.sensitivity":
        x, y = (
            pl.read_parquet(tmp_path / out / "default" / "sensitivity.parquet")
            for out in ("ray", "local")
        )
        assert x.equals(y)
