"""The validation table from hand-made rows: means, intervals, ratios, bounds, exit status."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from sweep import validation
from sweep.measurement import load_measurements
from sweep.store import METRIC_NAMES

try:
    from measurement_files import GOOD, with_files
except ImportError:  # run from the project root as a package
    from tests.sweep.measurement_files import GOOD, with_files

T_975_2 = 4.302652729911275  # Student t, 97.5 % quantile, 2 degrees of freedom (tables)

BASE = {**GOOD, "name": "base", "figures": {"wall_s": 10.0, "sys_s": 4.0}, "tolerance": 0.05}
MOVED = {
    **GOOD,
    "name": "moved",
    "figures": {"wall_s": 10.0, "sys_s": 5.0},
    "tolerance": {"wall_s": 0.05, "sys_s": 0.1},
    "versus": "base",
    "ratio_tolerance": 0.02,
}
REAPER = {
    **GOOD,
    "name": "reaper",
    "figures": None,
    "tolerance": None,
    "bounds": {"reaper_util": [0.0, 0.05]},
}
FUTURE = {**GOOD, "name": "future", "role": "check", "point": {**GOOD["point"], "variant": "x"}}


def measurement_set(*files: dict[str, Any]) -> Any:
    contents = {f["name"]: {k: v for k, v in f.items() if v is not None} for f in files}
    load, available = with_files(contents)
    return load_measurements(sorted(contents), "all", load, available)


def rows(index: list[tuple[str, int]], values: dict[str, dict[str, list[float]]]) -> pl.DataFrame:
    """Point rows in ``index`` order: each measurement's figure values seed by seed."""
    seen: dict[str, int] = {}
    records = []
    for name, _seed in index:
        i = seen.get(name, 0)
        seen[name] = i + 1
        record: dict[str, Any] = dict.fromkeys(METRIC_NAMES, 0.0)
        for column, per_seed in values.get(name, {}).items():
            record[column] = per_seed[i]
        failed = math.isnan(record["wall_s"])
        record["status"] = "error" if failed else "ok"
        record["error"] = "ValueError: boom" if failed else None
        records.append(record)
    return pl.DataFrame(records)


def table_of(ms: Any, values: dict[str, dict[str, list[float]]]) -> pl.DataFrame:
    _, index = ms.point_specs([0, 1, 2])
    samples, _ = validation.collect_samples(ms, index, rows(index, values))
    return validation.validation_table(ms, samples)


def row(table: pl.DataFrame, measurement: str, figure: str) -> dict[str, Any]:
    found = table.filter((pl.col("measurement") == measurement) & (pl.col("figure") == figure))
    assert found.height == 1
    return found.row(0, named=True)


VALUES = {
    "base": {"wall_s": [9.0, 10.0, 11.0], "sys_s": [4.0, 4.0, 4.4]},
    "moved": {"wall_s": [9.0, 10.0, 11.0], "sys_s": [5.0, 4.8, 4.4]},
    "reaper": {"wall_s": [1.0, 1.0, 1.0], "reaper_util": [0.01, 0.02, 0.03]},
}


def test_columns_are_the_contract_and_figures_are_mean_and_t_interval() -> None:
    ms = measurement_set(BASE, MOVED, REAPER)
    table = table_of(ms, VALUES)
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
    wall = row(table, "base", "wall_s")
    assert wall["model_mean"] == pytest.approx(10.0)
    assert wall["model_ci95"] == pytest.approx(T_975_2 * 1.0 / math.sqrt(3))  # sd of 9, 10, 11
    assert wall["rel_error"] == pytest.approx(0.0) and wall["within"] is True
    sys_s = row(table, "base", "sys_s")
    assert sys_s["model_mean"] == pytest.approx(12.4 / 3)
    assert sys_s["rel_error"] == pytest.approx(12.4 / 3 / 4.0 - 1)  # +3.3 %, within 5 %
    assert sys_s["within"] is True and sys_s["tolerance"] == 0.05
    moved = row(table, "moved", "sys_s")
    assert moved["rel_error"] == pytest.approx(14.2 / 3 / 5.0 - 1)  # -5.3 %, within 10 %
    assert moved["within"] is True and moved["tolerance"] == 0.1


def test_ratio_is_taken_seed_by_seed_against_the_published_ratio() -> None:
    ms = measurement_set(BASE, MOVED)
    table = table_of(ms, VALUES)
    ratio = row(table, "moved", "sys_s/base")
    per_seed = np.array([5.0 / 4.0, 4.8 / 4.0, 4.4 / 4.4])
    assert ratio["published"] == pytest.approx(5.0 / 4.0)
    assert ratio["model_mean"] == pytest.approx(per_seed.mean())
    assert ratio["model_ci95"] == pytest.approx(T_975_2 * per_seed.std(ddof=1) / math.sqrt(3))
    assert ratio["rel_error"] == pytest.approx(per_seed.mean() / 1.25 - 1)  # -8 %
    assert ratio["within"] is False and ratio["tolerance"] == 0.02
    wall_ratio = row(table, "moved", "wall_s/base")
    assert wall_ratio["model_mean"] == pytest.approx(1.0) and wall_ratio["within"] is True
    assert validation.exit_status(table) == 1  # one calibrate row outside


def test_bound_inside_has_no_error_outside_the_relative_distance() -> None:
    ms = measurement_set(REAPER)
    inside = row(table_of(ms, VALUES), "reaper", "reaper_util")
    assert inside["published"] == 0.05 and inside["tolerance"] is None
    assert inside["model_mean"] == pytest.approx(0.02)
    assert inside["rel_error"] == 0.0 and inside["within"] is True
    high = {"reaper": {"wall_s": [1.0] * 3, "reaper_util": [0.1, 0.1, 0.1]}}
    outside = row(table_of(ms, high), "reaper", "reaper_util")
    assert outside["rel_error"] == pytest.approx(1.0) and outside["within"] is False
    assert validation.exit_status(table_of(ms, VALUES)) == 0
    assert validation.exit_status(table_of(ms, high)) == 1
    assert validation.log_residuals(table_of(ms, high)) == pytest.approx([math.log(2.0)])
    assert "[0, 0.05]" in validation.markdown_table(table_of(ms, high), ms)


def test_not_modelled_check_is_shown_without_model_values_and_does_not_gate() -> None:
    ms = measurement_set(BASE, FUTURE)
    table = table_of(ms, VALUES)
    future = table.filter(pl.col("measurement") == "future")
    assert future.height == 2  # both its figures are listed
    assert future.get_column("model_mean").null_count() == 2
    assert future.get_column("within").null_count() == 2
    assert validation.exit_status(table) == 0
    text = validation.text_table(table, ms)
    assert text.count("not yet modelled") == 2
    assert validation.notes(ms, {}) == ["future: not yet modelled: no variant 'x' in the model"]
    assert any(
        "check: 0 of 2 rows within, 2 without" in line for line in validation.summary_lines(table)
    )


def test_a_failed_point_fails_its_calibrate_rows_and_cannot_be_fitted() -> None:
    ms = measurement_set(BASE)
    values = {"base": {"wall_s": [9.0, math.nan, 11.0], "sys_s": [4.0, 4.0, 4.0]}}
    _, index = ms.point_specs([0, 1, 2])
    samples, errors = validation.collect_samples(ms, index, rows(index, values))
    table = validation.validation_table(ms, samples)
    assert table.get_column("within").to_list() == [False, False]
    assert validation.exit_status(table) == 1
    assert errors == {"base": ["ValueError: boom"]}
    assert validation.notes(ms, errors) == ["base: 1 point(s) failed: ValueError: boom"]
    with pytest.raises(ValueError, match="base wall_s: no model value"):
        validation.log_residuals(table)


def test_largest_error_per_role_and_log_residuals() -> None:
    ms = measurement_set(BASE, MOVED, REAPER)
    table = table_of(ms, VALUES)
    largest = validation.largest_errors(table)["calibrate"]
    assert (largest["measurement"], largest["figure"]) == ("moved", "sys_s/base")
    residuals = validation.log_residuals(table)
    assert residuals == pytest.approx(np.log1p(table.get_column("rel_error").to_numpy()))


def test_rows_must_match_the_points() -> None:
    ms = measurement_set(BASE)
    _, index = ms.point_specs([0, 1])
    with pytest.raises(ValueError, match="expected 2 rows"):
        validation.collect_samples(ms, index, rows(index + index[:1], VALUES))


def test_report_and_figure_are_written(tmp_path: Path) -> None:
    ms = measurement_set(BASE, MOVED, REAPER, FUTURE)
    table = table_of(ms, VALUES)
    report = validation.markdown_report(table, ms, validation.notes(ms, {}), "header")
    assert "| moved | calibrate | sys_s/base | 1.25 |" in report
    assert "future: not yet modelled" in report and "## Sources" in report
    path = validation.plot(table, ms, tmp_path / "v.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
