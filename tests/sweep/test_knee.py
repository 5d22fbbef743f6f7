"""Knee and bottleneck on synthetic curves whose knee is known from theory."""

from __future__ import annotations

import pytest

try:
    import synthetic as syn
except ImportError:  # tests/ laid out as a package
    from tests.sweep import synthetic as syn

from sweep.curves import (
    KNEE_MARGINAL_EFFICIENCY,
    UTIL_SATURATED,
    compute_curves,
    knee_of,
    summarize,
)

DOUBLING = [1, 2, 4, 8, 16, 32, 64, 128]
ALTRA = [1, 8, 16, 32, 64, 80]


def _summary(tmp_path, rows):
    study = syn.write_result_set(tmp_path / "study", rows)
    return summarize(compute_curves(study / "points"))


@pytest.mark.parametrize(
    ("serial", "expected"),
    # Doubling grid: m(c -> 2c) = (1 - s) / (2 c s + 1 - s) < 0.1  <=>  c > 4.5 (1 - s) / s.
    [(0.1, 64), (0.2, 32), (0.5, 8), (0.9, 1), (0.03, None), (0.01, None)],
)
def test_amdahl_knee_on_doubling_grid_matches_closed_form(serial, expected):
    threshold = 4.5 * (1 - serial) / serial
    assert expected == next((c for c in DOUBLING[:-1] if c > threshold), None)
    knee, bottleneck = knee_of(DOUBLING, syn.amdahl_throughput(DOUBLING, serial))
    assert knee == expected
    assert bottleneck == "none"  # no utilisation given: latency-bound, nothing saturated


@pytest.mark.parametrize("serial", [0.005, 0.02, 0.05, 0.08, 0.15])
def test_amdahl_knee_on_irregular_grid(serial):
    expected = syn.amdahl_knee(ALTRA, serial, KNEE_MARGINAL_EFFICIENCY)
    assert knee_of(ALTRA, syn.amdahl_throughput(ALTRA, serial))[0] == expected


def test_amdahl_knee_from_a_result_set_with_seed_noise(tmp_path):
    rows = []
    for variant, serial in [("baseline", 0.1), ("combined", 0.02)]:
        rows += syn.curve_rows(
            "m", "mix", variant, DOUBLING, syn.amdahl_throughput(DOUBLING, serial)
        )
    summary = _summary(tmp_path, rows)
    knees = dict(zip(summary["variant"], summary["knee_cores"], strict=True))
    assert knees == {"baseline": 64, "combined": None}


def test_saturating_reaper_knee_and_bottleneck(tmp_path):
    # X = min(c, 20) exits/s: the reaper (50 ms per exit) saturates at 20 cores. 16 -> 32 still
    # gains 25 % for 100 % more cores (m = 0.25); 32 -> 64 gains nothing: knee at 32.
    reaper_s = 0.05
    xs = syn.saturating_throughput(DOUBLING, 1.0, reaper_s)
    utils = [
        {"reaper_util": x * reaper_s, "klock_util": 0.2, "cpu_util": min(1.0, x / c)}
        for c, x in zip(DOUBLING, xs, strict=True)
    ]
    rows = syn.curve_rows("m", "mix", "baseline", DOUBLING, xs, per_cores=utils)
    summary = _summary(tmp_path, rows)
    assert summary["knee_cores"].to_list() == [32]
    assert summary["bottleneck"].to_list() == ["reaper"]


def test_saturation_at_a_grid_point_is_the_knee():
    # X = min(c, 16): flat from 16 on, so 16 -> 32 has m = 0.
    assert knee_of(DOUBLING, [min(c, 16.0) for c in DOUBLING])[0] == 16


def test_throughput_collapse_knee_is_the_peak():
    xs = [1.0, 2.0, 4.0, 8.0, 12.0, 9.0, 5.0, 3.0]
    assert knee_of(DOUBLING, xs)[0] == 16


def test_linear_scaling_has_no_knee():
    assert knee_of(DOUBLING, [3.0 * c for c in DOUBLING]) == (None, "none")


def test_knee_threshold_is_strict():
    # 10 -> 11 exits/s for doubling cores: m = 0.1 exactly, not below the threshold.
    assert knee_of([1, 2], [10.0, 11.0])[0] is None
    assert knee_of([1, 2, 4], [10.0, 10.99, 11.0])[0] == 1


FLAT = [1.0, 2.0, 4.0, 4.0]  # knee at 4


@pytest.mark.parametrize(
    ("at_knee", "expected"),
    [
        ((0.95, 0.30, 1.00), "reaper"),
        ((0.30, 0.92, 1.00), "kernel_lock"),
        ((0.91, 0.97, 1.00), "kernel_lock"),  # both saturated: the more utilised
        ((0.97, 0.91, 0.50), "reaper"),
        ((0.97, 0.97, 0.50), "reaper"),  # a tie goes to the reaper
        ((0.20, 0.30, 0.95), "cpu"),
        ((0.50, 0.92, 0.95), "kernel_lock"),  # a saturated lock explains the busy CPUs
        ((UTIL_SATURATED - 0.01,) * 3, "none"),
        ((UTIL_SATURATED, 0.10, 0.10), "reaper"),  # threshold inclusive
        ((0.10, UTIL_SATURATED, 0.10), "kernel_lock"),
        ((0.10, 0.10, UTIL_SATURATED), "cpu"),
    ],
)
def test_bottleneck_attribution_at_the_knee(tmp_path, at_knee, expected):
    cores = [1, 2, 4, 8]
    # Every other point is saturated elsewhere: only the knee point may decide.
    decoy = (0.0, 0.0, 0.0) if expected != "none" else (0.99, 0.0, 0.0)
    utils = [decoy, decoy, at_knee, (0.0, 0.99, 0.0)]
    per_cores = [{"reaper_util": r, "klock_util": k, "cpu_util": u} for r, k, u in utils]
    rows = syn.curve_rows("m", "mix", "v", cores, FLAT, per_cores=per_cores)
    summary = _summary(tmp_path, rows)
    assert summary["knee_cores"].to_list() == [4]
    assert summary["bottleneck"].to_list() == [expected]


@pytest.mark.parametrize(
    ("at_knee", "expected"),
    [
        ({"vnode_util": 0.93, "klock_util": 0.85}, "vnode"),  # a sleeping lock, most utilised
        ({"fpageq_util": 0.90, "reaper_util": 0.50, "cpu_util": 0.99}, "fpageq"),
        ({"kmmap_util": 0.70, "schedlock_util": 0.81}, "schedlock"),
        ({"pageq_util": 0.95, "reaper_util": 0.95}, "reaper"),  # a tie: listed first
    ],
)
def test_any_lock_can_be_the_bottleneck(tmp_path, at_knee, expected):
    cores = [1, 2, 4, 8]
    per_cores = [{}, {}, at_knee, {"klock_util": 0.99}]
    rows = syn.curve_rows("m", "mix", "v", cores, FLAT, per_cores=per_cores)
    summary = _summary(tmp_path, rows)
    assert summary["knee_cores"].to_list() == [4]
    assert summary["bottleneck"].to_list() == [expected]


def test_no_knee_means_no_bottleneck_even_if_saturated(tmp_path):
    cores = [1, 2, 4]
    per_cores = [{"reaper_util": 0.99, "cpu_util": 1.0}] * 3
    rows = syn.curve_rows("m", "mix", "v", cores, [1.0, 2.0, 4.0], per_cores=per_cores)
    summary = _summary(tmp_path, rows)
    assert summary["knee_cores"].to_list() == [None]
    assert summary["bottleneck"].to_list() == ["none"]


def test_knee_of_rejects_bad_input():
    with pytest.raises(ValueError, match="same length"):
        knee_of([1, 2], [1.0])
    with pytest.raises(ValueError, match="increasing"):
        knee_of([2, 1], [1.0, 2.0])
