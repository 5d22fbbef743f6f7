"""Measurement files: the shipped ones load, every malformed field is one line naming it."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from sweep.errors import StudyError
from sweep.measurement import (
    FIELDS,
    Measurement,
    load_measurements,
    ratio_figure,
)
from sweep.store import METRIC_NAMES

try:
    from measurement_files import GOOD, shipped, with_files
except ImportError:  # run from the project root as a package
    from tests.sweep.measurement_files import GOOD, shipped, with_files


def test_every_design_target_ships_with_its_source_and_role() -> None:
    load, available = shipped()
    ms = load_measurements(None, "all", load, available)
    by_name = ms.by_name
    assert len(by_name) == 8
    # targets 9-11 name the 2024 kernel (baseline_2024, no per-CPU cache): modelled, calibrated
    assert {m.role for m in ms.all} == {"calibrate"}
    assert all(m.modelled for m in ms.all)
    for j in (16, 32, 64):
        point = by_name[f"kernel_build_altra_j{j}_2024"].point
        assert point.variant == "baseline_2024"
        assert point.overrides["variant"]["percpu_page_cache"] == 0
    five = by_name["kernel_build_m2_pmap_deactivate"]
    assert five.versus == "kernel_build_m2_baseline"
    assert five.ratio_figures == ("wall_s", "user_s", "sys_s")
    assert by_name["kernel_build_m2_baseline"].figures == {
        "wall_s": 61.85,
        "user_s": 324.67,
        "sys_s": 156.90,
    }
    assert by_name["kernel_build_ryzen_pmap_purge_reaper"].bounds == {"reaper_util": (0.0, 0.05)}
    for m in ms.all:
        assert m.source and ("tech@" in m.source or "DESIGN.md" in m.source)


def test_point_set_is_applied_to_the_preset_as_a_study_set_would() -> None:
    load, available = shipped()
    ms = load_measurements(["kernel_build_altra_j16_pmap_purge_reaper"], "all", load, available)
    (m,) = ms.selected
    specs = m.point_specs(ms.presets, [0, 5])
    assert [s.seed for s in specs] == [0, 5]
    expected_mix = {**load("mix", "kernel_build"), "slots": 16}  # make -j16 on 80 CPUs
    assert dict(specs[0].params["mix"]) == expected_mix
    assert dict(specs[0].params["machine"]) == load("machine", "arm64_altra80")
    assert specs[0].cores == 80
    # the preset itself is untouched
    assert ms.presets["mix"]["kernel_build"]["slots"] is None


def test_trial_presets_come_first_and_the_measured_set_wins() -> None:
    load, available = shipped()
    ms = load_measurements(["kernel_build_altra_j16_pmap_purge_reaper"], "all", load, available)
    (m,) = ms.selected
    trial = copy.deepcopy(ms.presets)
    trial["mix"]["kernel_build"]["slots"] = 3
    trial["mix"]["kernel_build"]["klock_frac"] = 0.2
    params = m.params(trial)
    assert params["mix"]["slots"] == 16 and params["mix"]["klock_frac"] == 0.2


def test_versus_loads_the_other_file_and_ratios_cover_common_figures() -> None:
    other = {**GOOD, "name": "other", "figures": {"wall_s": 0.07, "user_s": 0.01}}
    mine = {**GOOD, "versus": "other", "ratio_tolerance": 0.02}
    load, available = with_files({"mine": mine, "other": other})
    ms = load_measurements(["mine"], "all", load, available)
    assert [m.name for m in ms.selected] == ["mine"]
    assert sorted(ms.by_name) == ["mine", "other"]  # its points are computed too
    assert ms.by_name["mine"].ratio_figures == ("wall_s",)
    assert dict(ms.by_name["mine"].ratio_tolerance) == {"wall_s": 0.02}
    assert ratio_figure("wall_s", "other") == "wall_s/other"


def test_check_with_an_unknown_set_parameter_is_not_yet_modelled() -> None:
    d = {**GOOD, "role": "check", "point": {**GOOD["point"], "set": {"variant": {"cache": 0}}}}
    load, available = with_files({"mine": d})
    (m,) = load_measurements(["mine"], "all", load, available).selected
    assert not m.modelled and "cache" in (m.not_modelled or "")
    assert m.point_specs({}, [0]) == []


def broken(**changes: Any) -> dict[str, Any]:
    d = copy.deepcopy(GOOD)
    for key, value in changes.items():
        if value is None:
            d.pop(key, None)
        else:
            d[key] = value
    return d


BAD = [
    (broken(colour="red"), "measurement/mine.yaml: colour: unknown field"),
    (broken(figures=None), "measurement/mine.yaml: figures: missing"),
    (broken(figures={}), "measurement/mine.yaml: figures: missing"),
    (broken(figures={"walltime": 1.0}), "figures.walltime: 'walltime' is not a point column"),
    (broken(figures={"wall_s": -1}), "figures.wall_s: -1 is not a positive number"),
    (broken(source=None), "measurement/mine.yaml: source: missing"),
    (broken(role="fit"), "role: 'fit'; allowed: calibrate, check"),
    (broken(name="yours"), "name: 'yours' is not the file's name 'mine'"),
    (broken(tolerance=None), "tolerance: missing"),
    (broken(tolerance={"wall_s": 0.1}), "tolerance: no tolerance for figure 'sys_s'"),
    (broken(tolerance={"wall_s": 0.1, "sys_s": 0.1, "user_s": 1}), "tolerance.user_s: not a"),
    (broken(tolerance=-0.1), "tolerance: -0.1 is not a relative tolerance"),
    (broken(point={**GOOD["point"], "machine": "cray1"}), "point.machine: unknown machine 'cray1'"),
    (broken(point={**GOOD["point"], "mix": "bake"}), "point.mix: unknown mix 'bake'"),
    (broken(point={**GOOD["point"], "variant": "magic"}), "point.variant: unknown variant"),
    (broken(point={**GOOD["point"], "cores": 0}), "point.cores: 0 is not an integer >= 1"),
    (broken(point={**GOOD["point"], "threads": 2}), "point.threads: unknown field"),
    (broken(point={"machine": "arm64_m2", "mix": "fork_exit", "variant": "baseline"}), "cores"),
    (
        broken(point={**GOOD["point"], "set": {"mix": {"slotz": 2}}}),
        "measurement/mine.yaml: point.set.mix.slotz: unknown mix parameter",
    ),
    (broken(point={**GOOD["point"], "set": {"cpu": {}}}), "point.set.cpu: unknown group"),
    (
        broken(point={**GOOD["point"], "set": {"mix": {"slots": 0}}}),
        "measurement/mine.yaml: point: slots",
    ),
    (broken(bounds={"reaper_util": [0.5, 0.1]}), "bounds.reaper_util: lo 0.5 > hi 0.1"),
    (broken(bounds={"reaper_util": 0.05}), "bounds.reaper_util: 0.05 is not a pair"),
    (broken(bounds={"wall_s": [0, 1]}), "bounds.wall_s: is also a figure"),
    (broken(versus="nobody", ratio_tolerance=0.01), "versus: unknown measurement 'nobody'"),
    (broken(versus="mine", ratio_tolerance=0.01), "versus: a measurement cannot be compared"),
    (broken(ratio_tolerance=0.01), "ratio_tolerance: given without versus"),
    (broken(versus="kernel_build_m2_baseline"), "ratio_tolerance: missing"),
    (
        broken(versus="kernel_build_ryzen_pmap_purge_reaper", ratio_tolerance=0.01),
        "versus: 'kernel_build_ryzen_pmap_purge_reaper' has none of this file's figures",
    ),
]


@pytest.mark.parametrize(("content", "message"), BAD, ids=[m for _, m in BAD])
def test_malformed_file_is_one_line_naming_the_file_and_field(
    content: dict[str, Any], message: str
) -> None:
    load, available = with_files({"mine": content})
    with pytest.raises(StudyError) as info:
        load_measurements(["mine"], "all", load, available)
    text = str(info.value)
    assert message in text
    assert "\n" not in text
    assert text.startswith("measurement/mine.yaml: ")


def test_unknown_variant_is_an_error_for_calibrate_and_shown_for_check() -> None:
    point = {**GOOD["point"], "variant": "not_yet"}
    load, available = with_files({"mine": broken(point=point)})
    with pytest.raises(StudyError, match="point.variant: unknown variant 'not_yet'"):
        load_measurements(["mine"], "all", load, available)
    load, available = with_files({"mine": broken(point=point, role="check")})
    (m,) = load_measurements(["mine"], "all", load, available).selected
    assert m.not_modelled == "no variant 'not_yet' in the model"


@pytest.mark.parametrize(
    ("names", "role", "message"),
    [
        (["nope"], "all", "measurements: unknown measurement 'nope'; available: "),
        (7, "all", "7 is not a list of measurement names"),
        (None, "fitted", "role: 'fitted'; allowed: all, calibrate, check"),
    ],
)
def test_selection_errors(names: Any, role: str, message: str) -> None:
    load, available = shipped()
    with pytest.raises(StudyError, match=message.replace("(", r"\(")):
        load_measurements(names, role, load, available)


def test_role_filter_keeps_the_versus_target_for_its_points() -> None:
    load, available = shipped()
    ms = load_measurements(None, "calibrate", load, available)
    assert all(m.role == "calibrate" for m in ms.selected)
    specs, index = ms.point_specs([0, 1, 2])
    assert len(specs) == 3 * 8  # eight modelled calibrate measurements
    assert sorted({name for name, _ in index}) == sorted(m.name for m in ms.selected)


def test_fields_are_the_contract() -> None:
    assert FIELDS == (
        "name",
        "source",
        "role",
        "point",
        "figures",
        "bounds",
        "tolerance",
        "versus",
        "ratio_tolerance",
    )
    assert {"wall_s", "user_s", "sys_s", "reaper_util"} <= set(METRIC_NAMES)
    assert Measurement.from_dict.__doc__
