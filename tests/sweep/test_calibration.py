"""Calibration targets of DESIGN.md section 6, through ``python -m sweep.validate``.

One implementation of "model against published": the shipped measurement files
(conf/measurement/) run through the validate path, three seeds, and every ``calibrate`` figure
must be within its tolerance or be a recorded gap (a finding, listed with its size). The
shipped constants must also give the objective of the fit that produced them
(conf/fit/contention.yaml).
"""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import pytest
import yaml

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
# Findings: calibrate rows the fitted contention model misses (README "Is the model right?"),
# each with the relative error measured at this commit (`python -m sweep.validate`, seeds 0-2).
# A listed row must stay outside its tolerance (an improvement updates this table and the README)
# and must not drift further from the published figure than a third more than its recorded gap.
KNOWN_GAPS: dict[tuple[str, str], float] = {
    # Model 0.7.0 (wake-all rwlocks in the 2024 kernel, conf/fit/wakeup.yaml): the 80-CPU
    # machine's real is now set by the compilers' shared object lock, flat at 119 s for every
    # -j (published 108-122 s), and sys rises with -j, but by +57 % and +170 % from -j16 to -j32
    # and -j64 where the published rises +98 % and +136 %: too slowly to -j32, too fast beyond.
    # The model's wake-up cost is linear in the sleepers on the shared object lock; the
    # published one stops growing past -j32. Charging each re-check SCHED_LOCK makes it grow
    # faster, not slower (README "The model"). User time is one figure for every -j.
    ("kernel_build_altra_j16_2024", "wall_s"): 0.1067,
    ("kernel_build_altra_j16_2024", "user_s"): 0.0548,
    ("kernel_build_altra_j32_2024", "sys_s"): -0.1961,
    ("kernel_build_altra_j64_2024", "sys_s"): 0.1643,
    # target 5 (long KERNEL_LOCK sections in the exiting processes): its real 1.6 % over target
    # 4's (tolerance 1 %), its sys growth +21.9 s (published +16.9; the ratio 2.9 % over, 2.4 %)
    ("kernel_build_m2_pmap_deactivate", "wall_s/kernel_build_m2_baseline"): 0.0156,
    ("kernel_build_m2_pmap_deactivate", "sys_s/kernel_build_m2_baseline"): 0.0289,
}
"""(measurement, figure) -> recorded rel_error (model / published - 1)."""


@pytest.fixture(scope="module")
def validation(tmp_path_factory: pytest.TempPathFactory, ray_address: str) -> pl.DataFrame:
    out = tmp_path_factory.mktemp("calibration")
    result = run(
        "sweep.validate", "role=calibrate", "out=out", f"ray.address={ray_address}", cwd=out
    )
    assert result.returncode == (1 if KNOWN_GAPS else 0), result.stdout + result.stderr
    return pl.read_parquet(out / "out" / "validate" / "validation.parquet")


@pytest.mark.parametrize("name", CALIBRATE)
def test_every_calibrate_figure_is_within_its_tolerance_or_a_recorded_gap(
    validation: pl.DataFrame, name: str
) -> None:
    rows = validation.filter(pl.col("measurement") == name)
    assert rows.height >= 1
    for row in rows.iter_rows(named=True):
        gap = KNOWN_GAPS.get((name, row["figure"]))
        what = f"{row['figure']}: model {row['model_mean']:.4g}, published {row['published']}"
        if gap is None:
            assert row["within"], f"{what} ({row['rel_error']:+.1%}) outside its tolerance"
            continue
        assert not row["within"], f"{what}: the recorded gap {gap:+.1%} closed; update KNOWN_GAPS"
        assert row["rel_error"] * gap > 0, f"{what}: {row['rel_error']:+.1%}, recorded {gap:+.1%}"
        assert abs(row["rel_error"]) <= abs(gap) * 4 / 3, (
            f"{what}: {row['rel_error']:+.1%}, worse than the recorded gap {gap:+.1%}"
        )


def test_known_gaps_name_calibrate_rows(validation: pl.DataFrame) -> None:
    rows = set(validation.select("measurement", "figure").iter_rows())
    assert set(KNOWN_GAPS) <= rows


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
    # The teardown work moved into the exiting processes: sys grows, and by the published
    # +16.9 s within about 25 % (DESIGN.md section 6: the file's ratio tolerance, 2.4 %, is a
    # quarter of the published growth of the ratio, 10.8 %).
    assert sys_ratio["tolerance"] == pytest.approx(0.024)
    gap = ("kernel_build_m2_pmap_deactivate", "sys_s/kernel_build_m2_baseline") in KNOWN_GAPS
    assert sys_ratio["model_mean"] > 1.0 and (sys_ratio["within"] or gap)


SHIPPED_OBJECTIVE = 0.0924
"""The objective of every fit over all calibrate measurements evaluated at the shipped constants
(model 0.8.0, seeds 0-2; 0.0922 under model 0.7.0's queueing of merged requests, 0.0917 with the
Altra's lock_hold_growth at the wake-all fit's 0.0528): its first evaluation, the ``start`` of
its fitted.yaml header."""


def test_the_shipped_constants_give_the_shipped_fit_objective(
    tmp_path: Path, ray_address: str
) -> None:
    # The fit's first evaluation is at the shipped constants: its objective is the one recorded
    # for them, unless a constant was changed by hand since (common random numbers make the
    # objective a deterministic function of the constants).
    result = run(
        "sweep.fit",
        "fit=wakeup",
        "max_evaluations=12",  # one Jacobian of the 10 parameters and a step
        "out=out",
        f"ray.address={ray_address}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    header = (tmp_path / "out" / "fit" / "wakeup" / "fitted.yaml").read_text().splitlines()[0]
    match = re.search(r"\(start ([0-9.e+-]+)\)", header)
    assert match, header
    assert float(match.group(1)) == pytest.approx(SHIPPED_OBJECTIVE, rel=0.02)
