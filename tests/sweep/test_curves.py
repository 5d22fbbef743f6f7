"""Seed aggregation, speedup, baseline comparison and result-set reading on synthetic data."""

from __future__ import annotations

import math

import polars as pl
import pytest

try:
    import synthetic as syn
except ImportError:  # tests/ laid out as a package
    from tests.sweep import synthetic as syn

from sweep.curves import compute_curves, summarize, t_quantile
from sweep.store import ResultSetError, point_files


@pytest.mark.parametrize(
    ("df", "published"),
    # Student-t two-sided 95 % critical values, standard tables.
    [(1, 12.706), (2, 4.303), (3, 3.182), (4, 2.776), (9, 2.262), (30, 2.042), (120, 1.980)],
)
def test_t_quantile_matches_tables(df, published):
    assert t_quantile(df) == pytest.approx(published, abs=6e-4)


def test_t_quantile_rejects_bad_df():
    with pytest.raises(ValueError, match="df"):
        t_quantile(0)


def _curves(tmp_path, rows, **kw):
    study = syn.write_result_set(tmp_path / "study", rows, **kw)
    return compute_curves(study / "points")


def test_mean_and_t_interval_across_seeds(tmp_path):
    rows = [
        syn.point_row("m", "x", "baseline", 4, seed, wall_s=w, exits_per_s=1.0)
        for seed, w in enumerate([1.0, 2.0, 3.0])
    ]
    row = _curves(tmp_path, rows).row(0, named=True)
    half = 4.303 * 1.0 / math.sqrt(3)  # sd of (1, 2, 3) is 1
    assert row["n_seeds"] == 3
    assert row["wall_s_mean"] == pytest.approx(2.0)
    assert row["wall_s_lo"] == pytest.approx(2.0 - half, abs=1e-3)
    assert row["wall_s_hi"] == pytest.approx(2.0 + half, abs=1e-3)


def test_single_seed_has_no_interval(tmp_path):
    rows = [syn.point_row("m", "x", "baseline", 4, 0, wall_s=5.0, exits_per_s=1.0)]
    row = _curves(tmp_path, rows).row(0, named=True)
    assert row["wall_s_mean"] == 5.0
    assert row["wall_s_lo"] is None and row["wall_s_hi"] is None


def test_error_rows_are_ignored(tmp_path):
    rows = [
        syn.point_row("m", "x", "baseline", 4, 0, wall_s=2.0, exits_per_s=1.0),
        syn.point_row("m", "x", "baseline", 4, 1, wall_s=1e9, status="error", error="boom"),
        syn.point_row("m", "x", "broken", 4, 0, wall_s=1e9, status="error", error="boom"),
    ]
    curves = _curves(tmp_path, rows)
    assert curves["variant"].to_list() == ["baseline"]
    assert curves["wall_s_mean"].to_list() == [2.0]
    assert curves["n_seeds"].to_list() == [1]


def test_speedup_and_efficiency_against_smallest_cores(tmp_path):
    walls = {2: 100.0, 4: 60.0, 8: 40.0}  # grid does not start at 1
    rows = [
        syn.point_row("m", "x", "baseline", c, s, wall_s=w, exits_per_s=1000 / w)
        for c, w in walls.items()
        for s in range(2)
    ]
    curves = _curves(tmp_path, rows)
    assert curves["cores"].to_list() == [2, 4, 8]
    assert curves["speedup"].to_list() == pytest.approx([1.0, 100 / 60, 2.5])
    assert curves["efficiency"].to_list() == pytest.approx([1.0, 100 / 60 / 2, 2.5 / 4])
    assert curves["wall_speedup"].to_list() == pytest.approx([1.0, 100 / 60, 2.5])


def test_speedup_is_throughput_based_when_work_grows_with_cores(tmp_path):
    # fork_exit-like: each core runs the same loop, so wall time stays put while exits grow.
    rows = [
        syn.point_row("m", "x", "baseline", c, 0, wall_s=10.0, exits=100 * c, exits_per_s=10.0 * c)
        for c in [1, 2, 4]
    ]
    curves = _curves(tmp_path, rows)
    assert curves["speedup"].to_list() == pytest.approx([1.0, 2.0, 4.0])
    assert curves["efficiency"].to_list() == pytest.approx([1.0, 1.0, 1.0])
    assert curves["wall_speedup"].to_list() == pytest.approx([1.0, 1.0, 1.0])


def test_variants_against_baseline_at_same_point(tmp_path):
    rows = []
    for variant, walls in {"baseline": [10.0, 8.0], "combined": [10.0, 4.0]}.items():
        for c, w in zip([1, 2], walls, strict=True):
            rows.append(syn.point_row("m", "x", variant, c, 0, wall_s=w, exits_per_s=100 / w))
    rows.append(syn.point_row("other", "x", "combined", 1, 0, wall_s=3.0, exits_per_s=1.0))
    curves = _curves(tmp_path, rows)
    combined = curves.filter(machine="m", variant="combined")
    assert combined["wall_ratio_vs_baseline"].to_list() == pytest.approx([1.0, 0.5])
    assert combined["throughput_gain_vs_baseline"].to_list() == pytest.approx([1.0, 2.0])
    # No baseline on that machine: no comparison rather than a wrong one.
    assert curves.filter(machine="other")["throughput_gain_vs_baseline"].to_list() == [None]
    summary = summarize(curves).filter(machine="m", variant="combined").row(0, named=True)
    assert summary["gain_vs_baseline"] == pytest.approx(2.0)
    assert summary["speedup_at_max"] == pytest.approx(2.5)
    assert summary["max_cores"] == 2


@pytest.mark.parametrize("keep", [True, False])
def test_both_file_layouts_read_alike(tmp_path, keep):
    rows = []
    for machine in ["arm64_m2", "arm64_altra80"]:
        for mix in ["kernel_build", "fork_exit"]:
            rows += syn.curve_rows(machine, mix, "baseline", [1, 2], [1.0, 2.0])
    curves = _curves(tmp_path, rows, files_per_partition=2, keep_partition_columns=keep)
    assert curves.height == 8
    assert sorted(set(curves["machine"])) == ["arm64_altra80", "arm64_m2"]
    assert curves["n_seeds"].to_list() == [3] * 8
    assert curves.schema["machine"] == pl.String


def test_result_set_being_written(tmp_path):
    rows = syn.curve_rows("m", "x", "baseline", [1, 2], [1.0, 2.0])
    study = syn.write_result_set(tmp_path / "study", rows)
    part_dir = study / "points" / "machine=m" / "mix=x"
    complete = point_files(study / "points")
    (part_dir / ".part-abc.parquet.tmp").write_bytes(b"PAR1 half")
    (part_dir / "part-torn.parquet").write_bytes(b"PAR1 truncated, no footer")
    (part_dir / "part-empty.parquet").write_bytes(b"")
    assert point_files(study / "points") == complete
    curves = compute_curves(study / "points")
    assert curves["exits_per_s_mean"].to_list() == pytest.approx([1.0, 2.0])


def test_missing_and_empty_result_sets(tmp_path):
    with pytest.raises(ResultSetError, match="not a directory"):
        compute_curves(tmp_path / "nope")
    (tmp_path / "points").mkdir()
    with pytest.raises(ResultSetError, match="no part"):
        compute_curves(tmp_path / "points")
    rows = [syn.point_row("m", "x", "v", 1, 0, status="error", error="boom")]
    syn.write_result_set(tmp_path / "bad", rows)
    with pytest.raises(ResultSetError, match="no successful point"):
        compute_curves(tmp_path / "bad" / "points")


def test_reading_while_the_writer_appends_and_rewrites(tmp_path):
    # A writer thread appends files (temporary name, then rename) and drops old ones, as the
    # sweep's store does on resume; every read must see complete files only.
    import os
    import threading
    import time
    import uuid

    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = syn.curve_rows("m", "x", "baseline", [1, 2], [1.0, 2.0], seeds=1)
    study = syn.write_result_set(tmp_path / "study", rows)
    part_dir = study / "points" / "machine=m" / "mix=x"
    table = pa.Table.from_pylist(rows, schema=syn.SCHEMA)
    stop = threading.Event()

    def writer():
        written = []
        while not stop.is_set():
            tmp = part_dir / f".part-{uuid.uuid4().hex}.parquet.tmp"
            pq.write_table(table, tmp)
            target = part_dir / f"part-{uuid.uuid4().hex}.parquet"
            os.replace(tmp, target)
            written.append(target)
            if len(written) > 3:
                written.pop(0).unlink()
            time.sleep(0.002)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for _ in range(10):
            curves = compute_curves(study / "points")
            assert curves["cores"].to_list() == [1, 2]
            assert curves["exits_per_s_mean"].to_list() == pytest.approx([1.0, 2.0])
    finally:
        stop.set()
        thread.join()
