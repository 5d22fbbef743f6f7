"""The fit's outputs without running it: fitted.yaml's shape, bound flags, reading it back."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sweep.errors import StudyError
from sweep.fit import FitResult, FitSpec, _parameter_rows, fitted_overrides, overlay, read_fitted
from sweep.measurement import load_measurements
from sweep.pipeline import RunOptions
from sweep.ranges import load_ranges

try:
    from measurement_files import shipped
except ImportError:  # run from the project root as a package
    from tests.sweep.measurement_files import shipped


def fit_spec(parameters: list[dict]) -> FitSpec:
    load, available = shipped()
    ms = load_measurements(
        ["kernel_build_m2_baseline", "kernel_build_ryzen_baseline"], "all", load, available
    )
    return FitSpec(
        name="t",
        measurements=ms,
        ranges=load_ranges(parameters, ms.presets),
        seeds=(0,),
        out=Path("out"),
        options=RunOptions(),
    )


def entry(group: str, name: str, param: str, lo: float, hi: float) -> dict:
    return {"group": group, "name": name, "param": param, "lo": lo, "hi": hi, "source": "test"}


def test_fitted_yaml_nests_dotted_params_and_expands_the_wildcard() -> None:
    fit = fit_spec(
        [
            entry("machine", "*", "reapers", 1, 4),
            entry("machine", "arm64_m2", "arch_overrides.tlbi_ns", 30, 120),
            entry("mix", "kernel_build", "klock_hold_us", 2.0, 30.0),
        ]
    )
    out = fitted_overrides(fit, [2.4, 61.23456789, 6.54321])
    assert out == {
        "machine": {
            "amd64_ryzen8845": {"reapers": 2},
            "arm64_m2": {"reapers": 2, "arch_overrides": {"tlbi_ns": 61.2346}},
        },
        "mix": {"kernel_build": {"klock_hold_us": 6.54321}},
    }
    assert isinstance(out["machine"]["arm64_m2"]["reapers"], int)


def test_parameters_at_a_bound_are_flagged() -> None:
    fit = fit_spec(
        [
            entry("mix", "kernel_build", "klock_hold_us", 2.0, 30.0),
            entry("mix", "kernel_build", "sys_per_user", 0.1, 0.5),
            entry("machine", "amd64_ryzen8845", "io_op_s", 0.0, 0.01),
        ]
    )
    result = FitResult(
        start=[20.0, 0.3, 0.003],
        values=[30.0, 0.3, 0.0],
        objective=0.0,
        start_objective=1.0,
        evaluations=1,
    )
    flags = [row[-1] for row in _parameter_rows(fit, result)]
    assert flags == ["at hi", "", "at lo"]
    assert _parameter_rows(fit, result)[0][5] == "+50.0 %"


def test_fitted_yaml_reads_back_as_preset_overrides(tmp_path: Path) -> None:
    path = tmp_path / "fitted.yaml"
    path.write_text(yaml.safe_dump({"machine": {"arm64_m2": {"cpu_speed": 0.9}}}))
    load, _ = shipped()
    loaded = overlay(load, read_fitted(path), str(path))
    assert loaded("machine", "arm64_m2") == {**load("machine", "arm64_m2"), "cpu_speed": 0.9}
    assert loaded("machine", "amd64_ryzen8845") == load("machine", "amd64_ryzen8845")
    path.write_text(yaml.safe_dump({"machine": {"arm64_m2": {"cpu": 0.9}}}))
    with pytest.raises(StudyError, match="machine.arm64_m2.cpu: unknown machine parameter"):
        overlay(load, read_fitted(path), str(path))("machine", "arm64_m2")
    path.write_text(yaml.safe_dump({"cpu": {}}))
    with pytest.raises(StudyError, match="cpu: unknown group"):
        read_fitted(path)


def test_root_configs_compose_with_the_shipped_fit_spec() -> None:
    from hydra import compose, initialize_config_dir

    conf = Path(__file__).resolve().parents[2] / "conf"
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        fit = compose("fit", overrides=["fit=calibration", "fit.seeds=[4]"])
        validate = compose("validate", overrides=["seeds=[1]", "role=check"])
    assert fit.fit.seeds == [4] and len(fit.fit.parameters) == 7
    assert fit.max_evaluations == 300 and fit.diff_step == 0.02 and fit.out == "results"
    load, available = shipped()
    spec_ranges = load_ranges(
        list(fit.fit.parameters), {g: {n: load(g, n) for n in available[g]} for g in available}
    )
    assert {r.group for r in spec_ranges} == {"mix", "machine"}
    assert validate.measurements is None and validate.seeds == [1] and validate.role == "check"
    assert set(validate.ray) >= {"address", "num_cpus", "inprocess_s"}
