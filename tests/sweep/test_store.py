"""sweep.store: the schema, atomic partitioned writes, three readers, resume and quarantine."""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from exitcore import METRIC_FIELDS, MODEL_VERSION
from sweep.errors import StudyError
from sweep.plan import Point
from sweep.store import FILE_SCHEMA, POINT_SCHEMA, ResultSet, read_points, rows_table


def make_points(n: int, variant: str = "base", salt: str = "") -> list[Point]:
    machines, mixes = ("m1", "m2"), ("a", "b")
    return [
        Point(
            point_id=f"{salt}{variant}{i:06d}",
            machine=machines[i % 2],
            mix=mixes[(i // 2) % 2],
            variant=variant,
            cores=1 + i // 4,
            seed=0,
            entropy=(0, i),
        )
        for i in range(n)
    ]


def metrics_for(point: Point) -> dict:
    return {
        name: (kind(point.cores * 1.5) if kind is not bool else point.cores > 2)
        for name, kind in METRIC_FIELDS
    }


def table_for(points: list[Point], failing: set[str] = frozenset()) -> pa.Table:
    return rows_table(
        points,
        [None if p.point_id in failing else metrics_for(p) for p in points],
        ["RuntimeError: boom" if p.point_id in failing else None for p in points],
        study="t",
        config_hash="c0ffee",
    )


def write(study_dir: Path, points: list[Point], failing: set[str] = frozenset()) -> ResultSet:
    result_set = ResultSet(study_dir, flush_points=10_000)
    result_set.prepare(points, force=False)
    result_set.append(table_for(points, failing))
    result_set.flush()
    return result_set


def test_schema_is_keys_then_every_metric_then_provenance() -> None:
    types = {float: pa.float64(), int: pa.int64(), bool: pa.bool_()}
    metric_names = [name for name, _ in METRIC_FIELDS]
    assert POINT_SCHEMA.names == [
        *("point_id", "study", "machine", "mix", "variant", "cores", "seed", "draw"),
        *metric_names,
        *("status", "error", "model_version", "config_hash", "created_at"),
    ]
    for name, kind in METRIC_FIELDS:
        assert POINT_SCHEMA.field(name).type == types[kind]
    assert "machine" not in FILE_SCHEMA.names and "mix" not in FILE_SCHEMA.names


def test_flush_writes_one_file_per_partition_readable_by_three_readers(tmp_path: Path) -> None:
    points = make_points(12)
    result_set = write(tmp_path / "t", points)
    files = result_set.part_files()
    assert result_set.files_written == len(files) == 4
    assert {(f.parent.parent.name, f.parent.name) for f in files} == {
        (f"machine={m}", f"mix={x}") for m in ("m1", "m2") for x in ("a", "b")
    }
    assert not list((tmp_path / "t" / ".tmp").iterdir())

    frame = pl.scan_parquet(tmp_path / "t" / "points", hive_partitioning=True).collect()
    assert frame.height == 12 and sorted(frame.columns) == sorted(POINT_SCHEMA.names)
    by_id = {row["point_id"]: row for row in frame.iter_rows(named=True)}
    for point in points:
        row = by_id[point.point_id]
        assert (row["machine"], row["mix"], row["cores"]) == (point.machine, point.mix, point.cores)
        assert row["wall_s"] == point.cores * 1.5 and row["status"] == "ok"
        assert row["model_version"] == MODEL_VERSION

    glob = f"{tmp_path}/t/points/**/*.parquet"
    counts = duckdb.sql(
        f"select machine, mix, count(*) from read_parquet('{glob}', hive_partitioning=true) "
        "group by all order by all"
    ).fetchall()
    assert counts == [("m1", "a", 3), ("m1", "b", 3), ("m2", "a", 3), ("m2", "b", 3)]
    assert read_points(tmp_path / "t").num_rows == 12


def test_error_rows_keep_the_message_and_null_metrics(tmp_path: Path) -> None:
    points = make_points(4)
    write(tmp_path / "t", points, failing={points[1].point_id})
    table = read_points(tmp_path / "t")
    rows = {r["point_id"]: r for r in table.to_pylist()}
    bad = rows[points[1].point_id]
    assert bad["status"] == "error" and bad["error"] == "RuntimeError: boom"
    assert bad["wall_s"] is None
    assert rows[points[0].point_id]["error"] is None


def test_resume_skips_ok_rows_and_drops_error_rows_for_retry(tmp_path: Path) -> None:
    points = make_points(8)
    write(tmp_path / "t", points, failing={points[3].point_id})
    report = ResultSet(tmp_path / "t").prepare(points, force=False)
    assert [p.point_id for p in report.todo] == [points[3].point_id]
    assert report.stored_ok == 7 and report.dropped_rows == 1
    assert sorted(read_points(tmp_path / "t").column("point_id").to_pylist()) == sorted(
        p.point_id for p in points if p is not points[3]
    )


def test_a_changed_parameter_supersedes_the_row_at_its_grid_key(tmp_path: Path) -> None:
    old = make_points(8)
    write(tmp_path / "t", old)
    new = make_points(8, salt="v2-")[:2] + old[2:]  # same grid keys, two new ids
    report = ResultSet(tmp_path / "t").prepare(new, force=False)
    assert [p.point_id for p in report.todo] == [new[0].point_id, new[1].point_id]
    assert report.dropped_rows == 2
    assert read_points(tmp_path / "t").num_rows == 6


def test_rows_outside_the_plan_are_kept(tmp_path: Path) -> None:
    base = make_points(8, variant="base")
    write(tmp_path / "t", base)
    other = make_points(8, variant="fast")
    report = ResultSet(tmp_path / "t").prepare(other, force=False)
    assert len(report.todo) == 8 and report.dropped_rows == 0
    assert read_points(tmp_path / "t").num_rows == 8


def test_force_recomputes_everything(tmp_path: Path) -> None:
    points = make_points(8)
    write(tmp_path / "t", points)
    report = ResultSet(tmp_path / "t").prepare(points, force=True)
    assert len(report.todo) == 8 and read_points(tmp_path / "t").num_rows == 0


def test_corrupt_file_is_quarantined_and_its_points_recomputed(tmp_path: Path, capsys) -> None:
    points = make_points(8)
    result_set = write(tmp_path / "t", points)
    victim = result_set.part_files()[0]
    victim_ids = set(pq.read_table(victim).column("point_id").to_pylist())
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    report = ResultSet(tmp_path / "t").prepare(points, force=False)
    assert {p.point_id for p in report.todo} == victim_ids
    assert len(report.quarantined) == 1 and report.quarantined[0].parent.name == "quarantine"
    assert not victim.exists()
    assert "corrupt Parquet file" in capsys.readouterr().err


def test_other_model_version_is_refused_unless_forced(tmp_path: Path) -> None:
    study = tmp_path / "t"
    study.mkdir()
    (study / "study.yaml").write_text(yaml.safe_dump({"versions": {"model_version": "0.0.1"}}))
    with pytest.raises(StudyError, match="model version 0.0.1.*force=true"):
        ResultSet(study).check_compatible(force=False)
    ResultSet(study).check_compatible(force=True)


def test_unwritable_output_is_refused_and_nothing_created(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StudyError, match="not writable"):
        ResultSet(blocker / "out" / "t").check_writable()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
    ResultSet(tmp_path / "ok" / "t").check_writable()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_study_yaml_is_written_atomically(tmp_path: Path) -> None:
    result_set = ResultSet(tmp_path / "t")
    result_set.write_study_yaml({"grid": {"cores": [1, 2]}}, {"model_version": MODEL_VERSION})
    loaded = yaml.safe_load((tmp_path / "t" / "study.yaml").read_text())
    assert loaded["config"]["grid"]["cores"] == [1, 2]
    assert loaded["versions"]["model_version"] == MODEL_VERSION
    assert not list((tmp_path / "t" / ".tmp").iterdir())
