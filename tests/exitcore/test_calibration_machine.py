"""Calibration targets 4-7 of DESIGN.md section 6: the real kernel_build mix through simulate().

The published figures are written here as published; the model's estimate-grade constants
(exitcore.mix.PRESET_MIXES["kernel_build"], exitcore.machine.PRESET_MACHINES) were fitted to
them. Two seeds, so a fit that only works for one draw fails.
"""

from __future__ import annotations

import numpy as np
import pytest

from exitcore import PointParams, PointResult, presets, simulate

PRESET_MACHINES = presets.load_all("machine")
PRESET_MIXES = presets.load_all("mix")
PRESET_VARIANTS = presets.load_all("variant")

TOLERANCE = 0.03

# (published) DESIGN.md section 6, targets 4, 5 and 6: (real, user, sys) seconds
TARGET_4 = ("arm64_m2", "baseline", 8, (61.85, 324.67, 156.90))
TARGET_5 = ("arm64_m2", "pmap_deactivate", 8, (61.89, 323.25, 173.81))
TARGET_6 = ("amd64_ryzen8845", "baseline", 16, (136.93, 544.57, 280.55))


def kernel_build(machine: str, variant: str, cores: int, seed: int) -> PointResult:
    params = PointParams.from_dicts(
        PRESET_MACHINES[machine], PRESET_MIXES["kernel_build"], PRESET_VARIANTS[variant], cores
    )
    return simulate(params, np.random.default_rng(seed))


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("target", [TARGET_4, TARGET_5, TARGET_6], ids=["4", "5", "6"])
def test_kernel_build_real_user_sys_within_3_percent(target: tuple, seed: int) -> None:
    machine, variant, cores, published = target
    r = kernel_build(machine, variant, cores, seed)
    got_all = (r.wall_s, r.user_s, r.sys_s)
    for name, got, want in zip(("real", "user", "sys"), got_all, published, strict=True):
        assert abs(got / want - 1) <= TOLERANCE, f"{name}: {got:.2f} s vs published {want} s"


@pytest.mark.parametrize("seed", [0, 1])
def test_target_5_sys_grows_while_real_does_not_move(seed: int) -> None:
    base = kernel_build(*TARGET_4[:3], seed)
    moved = kernel_build(*TARGET_5[:3], seed)
    # (published) sys +16.9 s, real +0.04 s: the model must at least show the direction and
    # keep real within 1 %
    assert moved.sys_s - base.sys_s > 5.0
    assert abs(moved.wall_s / base.wall_s - 1) < 0.01
    # the reaper was not the bottleneck on 8 cores
    assert base.reaper_util < 0.5


@pytest.mark.parametrize("seed", [0, 1])
def test_target_7_pmap_purge_reaper_nearly_idle_at_16_cores(seed: int) -> None:
    # (published) DESIGN.md target 7: under 5 % reaper utilisation in a 16-core kernel build
    ryzen = kernel_build("amd64_ryzen8845", "pmap_purge", 16, seed)
    assert ryzen.reaper_util < 0.05
    # and the baseline reaper at the same point is clearly busier
    assert kernel_build("amd64_ryzen8845", "baseline", 16, seed).reaper_util > 2 * ryzen.reaper_util
