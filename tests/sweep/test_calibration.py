"""Calibration targets 4-7 of DESIGN.md section 6, through ``python -m sweep.validate``.

One implementation of "model against published": the shipped measurement files
(conf/measurement/) run through the validate path, three seeds, and every ``calibrate`` figure
must be within its tolerance. The shipped constants must also be what their fit spec
(conf/fit/calibration.yaml) finds when it is rerun.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

from exitcore.presets import load as load_preset

try:
    from test_validate_cli import ray_address, run
except ImportError:  # run from the project root as a package
    from tests.sweep.test_validate_cli import ray_address, run

pytestmark = pytest.mark.slow
__all__ = ["ray_address"]  # the fixture, shared
CONF = Path(__file__).resolve().parents[2] / "conf"
CALIBRATE = sorted(
    p.stem
    for p in (CONF / "measurement").glob("*.yaml")
    if yaml.safe_load(p.read_text())["role"] == "calibrate"
)
# Target 7 on the 80-CPU machine, missed by the first contention model (its reaper spun ~20 % on
# KERNEL_LOCK), holds since locks are acquisitions (1.7 %).
KNOWN_MISSES: set[str] = set()


@pytest.fixture(scope="module")
def validation(tmp_path_factory: pytest.TempPathFactory, ray_address: str) -> pl.DataFrame:
    out = tmp_path_factory.mktemp("calibration")
    result = run(
        "sweep.validate", "role=calibrate", "out=out", f"ray.address={ray_address}", cwd=out
    )
    assert result.returncode == (1 if KNOWN_MISSES else 0), result.stdout + result.stderr
    return pl.read_parquet(out / "out" / "validate" / "validation.parquet")


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.xfail(strict=True, reason="reaper spins on KERNEL_LOCK"))
        if n in KNOWN_MISSES
        else n
        for n in CALIBRATE
    ],
)
def test_every_calibrate_figure_is_within_its_tolerance(
    validation: pl.DataFrame, name: str
) -> None:
    rows = validation.filter(pl.col("measurement") == name)
    assert rows.height >= 1
    outside = rows.filter(~pl.col("within"))
    assert outside.height == 0, outside.select("figure", "published", "model_mean", "rel_error")


def test_target_5_is_judged_on_its_ratios_too(validation: pl.DataFrame) -> None:
    ratios = validation.filter(
        (pl.col("measurement") == "kernel_build_m2_pmap_deactivate")
        & pl.col("figure").str.ends_with("/kernel_build_m2_baseline")
    )
    assert sorted(ratios.get_column("figure")) == [
        "sys_s/kernel_build_m2_baseline",
        "user_s/kernel_build_m2_baseline",
        "wall_s/kernel_build_m2_baseline",
    ]
    sys_ratio = ratios.filter(pl.col("figure").str.starts_with("sys_s")).row(0, named=True)
    assert sys_ratio["published"] == pytest.approx(173.81 / 156.90)
    assert sys_ratio["model_mean"] > 1.05  # the teardown work moved into the exiting processes


def test_rerunning_the_shipped_fit_gives_the_shipped_constants(
    tmp_path: Path, ray_address: str
) -> None:
    result = run(
        "sweep.fit", "fit=calibration", "out=out", f"ray.address={ray_address}", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    fitted: dict[str, Any] = yaml.safe_load(
        (tmp_path / "out" / "fit" / "calibration" / "fitted.yaml").read_text()
    )
    for group, presets in fitted.items():
        for name, params in presets.items():
            shipped = load_preset(group, name)
            for param, value in params.items():
                assert value == pytest.approx(shipped[param], rel=0.02), (group, name, param)
