"""End to end: ``python -m sweep.fit`` in a subprocess, real Ray, real files.

Recovery: measurement figures are the model's own output (exitcore called directly) on a machine
whose speeds are known; the fit starts from a preset with other speeds and must find them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

try:
    from test_validate_cli import direct, preset, ray_address, run, write_group
except ImportError:  # run from the project root as a package
    from tests.sweep.test_validate_cli import direct, preset, ray_address, run, write_group

pytestmark = pytest.mark.slow
__all__ = ["ray_address"]  # the fixture, shared

TRUTH = {"cpu_speed": 1.0, "kernel_speed": 1.0}
START = {"cpu_speed": 1.3, "kernel_speed": 0.75}
SEEDS = [0, 1]


def recovery_conf(root: Path) -> Path:
    mine = root / "myconf"
    box = {**preset("machine", "arm64_m2"), "name": "test_box"}
    write_group(mine, "machine", "test_box", {**box, **START})  # where the fit starts
    # named as the pipeline will know it: a workload's random stream is keyed on its mix name
    mix = {**preset("mix", "fork_exit"), "processes_per_slot": 300, "name": "small_fork"}
    write_group(mine, "mix", "small_fork", mix)
    for cores in (2, 4):
        results = [direct({**box, **TRUTH}, mix, "baseline", cores, s) for s in SEEDS]
        name = f"box_{cores}"
        write_group(
            mine,
            "measurement",
            name,
            {
                "name": name,
                "source": "a test: the model's own output at the true speeds",
                "role": "calibrate",
                "point": {
                    "machine": "test_box",
                    "mix": "small_fork",
                    "variant": "baseline",
                    "cores": cores,
                },
                "figures": {
                    f: float(np.mean([getattr(r, f) for r in results]))
                    for f in ("wall_s", "user_s", "sys_s")
                },
                # wall time of a few hundred exits jumps with event order: 5 %
                "tolerance": {"wall_s": 0.05, "user_s": 0.01, "sys_s": 0.01},
            },
        )
    parameters = [
        {
            "group": "machine",
            "name": "test_box",
            "param": param,
            "lo": 0.5,
            "hi": 2.0,
            "source": "a test range around the truth",
        }
        for param in TRUTH
    ]
    write_group(
        mine,
        "fit",
        "recover",
        {"measurements": ["box_2", "box_4"], "seeds": SEEDS, "parameters": parameters},
    )
    return mine


def test_fit_started_away_recovers_the_known_speeds(tmp_path: Path, ray_address: str) -> None:
    mine = recovery_conf(tmp_path)
    result = run(
        "sweep.fit",
        "fit=recover",
        f"hydra.searchpath=[file://{mine}]",
        "out=out",
        f"ray.address={ray_address}",
        "ray.inprocess_s=0",  # every batch on Ray
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    out = tmp_path / "out" / "fit" / "recover"
    fitted = yaml.safe_load((out / "fitted.yaml").read_text())
    assert set(fitted) == {"machine"} and set(fitted["machine"]) == {"test_box"}
    for param, truth in TRUTH.items():
        value = fitted["machine"]["test_box"][param]
        assert abs(value / truth - 1) < 0.02, (param, value, START[param])
    report = (out / "fit.md").read_text()
    assert "## Parameters" in report and "## Objective against iteration" in report
    assert "machine.test_box.cpu_speed" in report
    assert "Residuals at the fitted values: fitted measurements" in report
    assert (out / "fit.png").stat().st_size > 0
    assert "evaluations/min" in result.stderr and "left" in result.stderr  # rate and ETA
    # seeds the optimiser never saw: the truth explains them too, the start does not
    held = re.search(r"on held-out seeds \[3, 4, 5\]: objective (\S+) \(start (\S+)\)", report)
    assert held, report
    fitted_cost, start_cost = float(held[1]), float(held[2])
    assert fitted_cost < 0.01 * start_cost and fitted_cost < 1e-3, (fitted_cost, start_cost)
    assert held[0] in result.stderr and held[0] in (out / "fitted.yaml").read_text()
    # fitted.yaml is loadable as overrides: with it the measurements validate, without it not
    validate = (
        "sweep.validate",
        "measurements=[box_2,box_4]",
        f"hydra.searchpath=[file://{mine}]",
        "seeds=[0,1]",
        "out=out",
    )
    fitted_run = run(*validate, f"overrides={out / 'fitted.yaml'}", cwd=tmp_path)
    assert fitted_run.returncode == 0, fitted_run.stdout + fitted_run.stderr
    assert run(*validate, cwd=tmp_path).returncode == 1  # the start values are far off


def fit_spec(**changes: Any) -> dict[str, Any]:
    parameter = {
        "group": "machine",
        "name": "test_box",
        "param": "cpu_speed",
        "lo": 0.5,
        "hi": 2.0,
        "source": "a test",
    }
    parameter.update(changes.pop("parameter", {}))
    spec = {"measurements": ["box_2", "box_4"], "seeds": [0], "parameters": [parameter]}
    spec.update(changes)
    return spec


BAD = [
    (
        [],
        None,
        "fit: give a fit spec, fit=<name>; available: "
        "bad, calibration, contention, estimates, recover",
    ),
    (["fit=nope"], None, "Could not find 'fit/nope'"),
    (["fit=bad"], fit_spec(parameter={"lo": 3.0}), "fit/bad.yaml: parameters[0]: lo 3 > hi 2"),
    (["fit=bad"], fit_spec(parameter={"param": "speed"}), "has no parameter 'speed'"),
    (["fit=bad"], fit_spec(parameter={"source": ""}), "parameters[0].source: missing"),
    (["fit=bad"], fit_spec(colour=1), "fit/bad.yaml: colour: unknown key"),
    (["fit=bad"], fit_spec(measurements=["nope"]), "unknown measurement 'nope'"),
    (
        ["fit=bad"],
        fit_spec(parameter={"name": "amd64_ryzen8845"}),
        "parameters[0]: no fitted figure depends on machine.amd64_ryzen8845.cpu_speed",
    ),
    (
        ["fit=bad"],
        fit_spec(parameter={"param": "smt_gain", "lo": 0.0, "hi": 1.5}),
        "at every hi (machine.test_box.smt_gain=1.5) box_2 is not a valid point: smt_gain",
    ),
    (["fit=bad"], fit_spec(seeds=[-2]), "seeds: -2 is not a non-negative integer"),
    (["fit=bad", "max_evaluations=2"], fit_spec(), "max_evaluations: 2 leaves no room"),
    (["fit=bad", "diff_step=0"], fit_spec(), "diff_step: 0;"),
    (["fit=bad", "holdout_seeds=[3,0]"], fit_spec(), "holdout_seeds: seed 0 is one of the fit's"),
    (["fit=bad", "holdout_seeds=[x]"], fit_spec(), "holdout_seeds: 'x' is not a non-negative"),
]


@pytest.mark.parametrize(("args", "spec", "message"), BAD, ids=[m for _, _, m in BAD])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    tmp_path: Path, args: list[str], spec: dict[str, Any] | None, message: str
) -> None:
    mine = recovery_conf(tmp_path)
    if spec is not None:
        write_group(mine, "fit", "bad", spec)
    else:
        write_group(mine, "fit", "bad", fit_spec())
    result = run("sweep.fit", *args, f"hydra.searchpath=[file://{mine}]", "out=out", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sweep.fit: error: "), result.stderr
    assert message in lines[0]
    assert not (tmp_path / "out").exists()


def test_a_check_measurement_is_never_fitted(tmp_path: Path) -> None:
    mine = recovery_conf(tmp_path)
    check = yaml.safe_load((mine / "measurement" / "box_4.yaml").read_text())
    write_group(mine, "measurement", "box_4", {**check, "role": "check"})
    write_group(mine, "fit", "bad", fit_spec())
    result = run("sweep.fit", "fit=bad", f"hydra.searchpath=[file://{mine}]", cwd=tmp_path)
    assert result.returncode == 2
    assert "measurements: 'box_4' has role check: compared, never fitted" in result.stderr
    assert not (tmp_path / "results").exists()
