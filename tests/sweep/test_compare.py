"""sweep.compare: ratios B/A of two real Parquet result sets, checked against hand computation.

The result sets are written with the store's own code (``sweep.store.ResultSet``), with metric
values chosen here, so every ratio and interval has a value known without sweep.compare.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pytest

from exitcore import METRIC_FIELDS
from sweep.compare import METRICS, CompareError, compare, figure, main
from sweep.plan import Point
from sweep.store import ResultSet, rows_table

# Student-t critical values t(0.975, df), from the published tables (e.g. NIST/SEMATECH
# e-Handbook 1.3.6.7.2): independent of sweep.curves.t_quantile.
T975 = {1: 12.7062, 2: 4.3027, 3: 3.1824}

M, X = "arm64_m2", "fork_exit"


def write_set(study_dir: Path, rows: list[dict]) -> Path:
    """A result set through the real store: ``rows`` give the key, status and metrics."""
    points, metrics, errors = [], [], []
    for i, row in enumerate(rows):
        points.append(
            Point(
                point_id=f"{study_dir.name}-{i:04d}",
                machine=row.get("machine", M),
                mix=row.get("mix", X),
                variant=row["variant"],
                cores=row["cores"],
                seed=row["seed"],
                entropy=(0, i),
            )
        )
        if row.get("status", "ok") == "error":
            metrics.append(None)
            errors.append("RuntimeError: boom")
        else:
            values = {name: kind(1) for name, kind in METRIC_FIELDS}
            values.update({m: row[m] for m in METRICS if m in row})
            metrics.append(values)
            errors.append(None)
    result_set = ResultSet(study_dir)
    result_set.prepare(points, force=False)
    result_set.append(rows_table(points, metrics, errors, study=study_dir.name, config_hash="c"))
    result_set.close()
    return study_dir


def seeds_rows(variant: str, cores: int, **per_seed: list[float]) -> list[dict]:
    n = len(next(iter(per_seed.values())))
    return [
        {"variant": variant, "cores": cores, "seed": s, **{m: v[s] for m, v in per_seed.items()}}
        for s in range(n)
    ]


def log_t_interval(ratios: list[float]) -> tuple[float, float]:
    """95 % t interval of the per-seed ratios on the log scale, by hand."""
    logs = [math.log(r) for r in ratios]
    n = len(logs)
    mean = sum(logs) / n
    sd = math.sqrt(sum((x - mean) ** 2 for x in logs) / (n - 1))
    half = T975[n - 1] * sd / math.sqrt(n)
    return math.exp(mean - half), math.exp(mean + half)


A_WALL = [10.0, 12.0, 14.0]
A_SYS = [4.0, 5.0, 6.0]
A_EXITS = [100.0, 90.0, 80.0]
A_REAPER = [0.5, 0.6, 0.7]


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("cmp") / "results"
    a_rows = [
        # baseline, 4 cores: B changes each metric by a known per-seed factor.
        *seeds_rows(
            "baseline", 4, wall_s=A_WALL, sys_s=A_SYS, exits_per_s=A_EXITS, reaper_util=A_REAPER
        ),
        # baseline, 8 cores: seed 2 only in A.
        *seeds_rows("baseline", 8, wall_s=[5.0, 6.0, 7.0], sys_s=[1.0, 1.0, 1.0]),
        # combined, 4 cores: one seed, no interval.
        *seeds_rows("combined", 4, wall_s=[3.0], sys_s=[2.0], reaper_util=[0.0]),
        # rip_reaper, 4 cores: no reaper work on either side; seed 1 failed in A.
        *seeds_rows("rip_reaper", 4, wall_s=[2.0, 2.0], reaper_util=[0.0, 0.0]),
    ]
    a_rows[-1]["status"] = "error"
    b_rows = [
        *seeds_rows(
            "baseline",
            4,
            wall_s=[w * f for w, f in zip(A_WALL, [1.10, 1.12, 1.08], strict=True)],  # > 1
            sys_s=[s * f for s, f in zip(A_SYS, [1.30, 0.80, 1.00], strict=True)],  # spans 1
            exits_per_s=[x * 0.5 for x in A_EXITS],  # exactly halved
            reaper_util=A_REAPER,  # unchanged
        ),
        *seeds_rows("baseline", 8, wall_s=[5.5, 6.6], sys_s=[1.0, 1.0]),
        *seeds_rows("combined", 4, wall_s=[6.0], sys_s=[1.0], reaper_util=[0.25]),
        *seeds_rows("rip_reaper", 4, wall_s=[4.0, 3.0], reaper_util=[0.0, 0.0]),
        # pmap_purge only in B, and a failed row in B whose A partner does not exist.
        *seeds_rows("pmap_purge", 4, wall_s=[1.0]),
        {"variant": "pmap_purge", "cores": 8, "seed": 0, "status": "error"},
    ]
    a = write_set(root / "before", a_rows)
    b = write_set(root / "after", b_rows)
    return a, b, compare(a, b)


def row(comparison, variant: str, cores: int) -> dict:
    [rec] = comparison.ratios.filter(variant=variant, cores=cores).iter_rows(named=True)
    return rec


def test_ratios_are_ratios_of_seed_means(pair):
    _, _, c = pair
    rec = row(c, "baseline", 4)
    assert rec["n_seeds"] == 3
    wall_b = [10 * 1.10, 12 * 1.12, 14 * 1.08]
    assert rec["wall_s_ratio"] == pytest.approx(sum(wall_b) / sum(A_WALL), rel=1e-12)
    sys_b = [4 * 1.30, 5 * 0.80, 6 * 1.00]
    assert rec["sys_s_ratio"] == pytest.approx(sum(sys_b) / sum(A_SYS), rel=1e-12)
    assert rec["exits_per_s_ratio"] == pytest.approx(0.5, rel=1e-12)
    assert rec["reaper_util_ratio"] == pytest.approx(1.0, rel=1e-12)
    # 8 cores: only seeds 0 and 1 are paired; seed 2 of A has no partner.
    rec8 = row(c, "baseline", 8)
    assert rec8["n_seeds"] == 2
    assert rec8["wall_s_ratio"] == pytest.approx((5.5 + 6.6) / (5.0 + 6.0), rel=1e-12)


def test_interval_is_a_t_interval_on_log_ratios_and_flags_only_when_it_excludes_1(pair):
    _, _, c = pair
    rec = row(c, "baseline", 4)
    lo, hi = log_t_interval([1.10, 1.12, 1.08])
    assert (rec["wall_s_lo"], rec["wall_s_hi"]) == pytest.approx((lo, hi), rel=1e-4)
    assert lo > 1 and rec["wall_s_differs"] is True
    lo, hi = log_t_interval([1.30, 0.80, 1.00])
    assert (rec["sys_s_lo"], rec["sys_s_hi"]) == pytest.approx((lo, hi), rel=1e-4)
    assert lo < 1 < hi and rec["sys_s_differs"] is False
    # A constant per-seed ratio: a zero-width interval at it, which excludes 1 unless it is 1.
    assert (rec["exits_per_s_lo"], rec["exits_per_s_hi"]) == pytest.approx((0.5, 0.5))
    assert rec["exits_per_s_differs"] is True
    assert rec["reaper_util_differs"] is False
    rec8 = row(c, "baseline", 8)
    lo, hi = log_t_interval([1.1, 1.1])
    assert rec8["wall_s_lo"] == pytest.approx(lo) and rec8["wall_s_differs"] is True


def test_no_interval_with_one_seed_or_a_zero(pair):
    _, _, c = pair
    one = row(c, "combined", 4)
    assert one["n_seeds"] == 1 and one["wall_s_ratio"] == pytest.approx(2.0)
    assert one["wall_s_lo"] is None and one["wall_s_differs"] is None
    assert one["reaper_util_ratio"] == math.inf  # B has reaper work where A had none
    rip = row(c, "rip_reaper", 4)
    assert rip["n_seeds"] == 1 and rip["wall_s_ratio"] == pytest.approx(2.0)  # seed 1 failed in A
    assert rip["reaper_util_ratio"] is None  # 0 / 0


def test_one_sided_points_are_counted_and_listed_with_why(pair):
    _, _, c = pair
    listed = {
        (r["side"], r["variant"], r["cores"], r["seed"], r["reason"])
        for r in c.one_sided.iter_rows(named=True)
    }
    assert listed == {
        ("A", "baseline", 8, 2, "absent from B"),
        ("B", "pmap_purge", 4, 0, "absent from A"),
        ("B", "rip_reaper", 4, 1, "error in A"),
    }
    assert (c.errors_a, c.errors_b) == (1, 1)
    assert c.paired_points == 3 + 2 + 1 + 1
    assert set(c.ratios["variant"]) == {"baseline", "combined", "rip_reaper"}  # no pmap_purge


def test_cli_prints_table_and_writes_md_and_figure(pair, capsys):
    a, b, _ = pair
    assert main([str(a), str(b)]) == 0
    out = capsys.readouterr().out
    line = next(
        ln for ln in out.splitlines() if re.match(r"arm64_m2\s+fork_exit\s+baseline\s+4 ", ln)
    )
    cells = re.split(r" {2,}", line.strip())
    lo, hi = log_t_interval([1.10, 1.12, 1.08])
    ratio = (11 + 13.44 + 15.12) / 36
    assert cells[5] == f"{ratio:.4f} [{lo:.4f}, {hi:.4f}] *"
    assert cells[6].endswith("]") and "*" not in cells[6]  # sys_s: the interval spans 1
    assert (
        "only in A (absent from B): baseline, fork_exit on arm64_m2: 1 point, cores 8, seeds 2\n"
        in out
    )
    assert (
        "only in B (error in A): rip_reaper, fork_exit on arm64_m2: 1 point, cores 4, seeds 1\n"
        in out
    )
    assert "1 points only in A (before), 2 only in B (after)" in out
    assert "failed rows excluded: 1 in A, 1 in B" in out
    md = (b / "compare-before.md").read_text()
    assert md.count("| B | arm64_m2 | fork_exit |") == 2 and "| A | arm64_m2 |" in md
    assert f"| {ratio:.4f} [{lo:.4f}, {hi:.4f}] * |" in md
    assert "![ratios B/A against cores](compare-before.png)" in md
    pixels = matplotlib.image.imread(b / "compare-before.png")
    assert pixels.shape[0] > 400 and pixels[..., :3].std() > 0.05
    assert not [p for p in b.iterdir() if p.name.startswith(".compare")]


def test_figure_has_a_panel_per_metric_and_a_line_per_curve(pair):
    _, _, c = pair
    fig = figure(c)
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == list(METRICS)
    for ax in axes:
        labels = {ln.get_label() for ln in ax.get_lines() if not ln.get_label().startswith("_")}
        assert labels == {f"{v}, {X} on {M}" for v in ("baseline", "combined", "rip_reaper")}
        assert ax.get_xscale() == "log"
    # Ratios between 0.5 and 2: linear axes (reaper_util has an inf: linear as well).
    assert [ax.get_yscale() for ax in axes] == ["linear"] * 4


def test_a_wide_ratio_range_gets_a_log_axis(tmp_path):
    a = write_set(
        tmp_path / "a",
        [*seeds_rows("baseline", 4, wall_s=[1.0]), *seeds_rows("zap_first", 4, wall_s=[1.0])],
    )
    b = write_set(
        tmp_path / "b",
        [*seeds_rows("baseline", 4, wall_s=[1.1]), *seeds_rows("zap_first", 4, wall_s=[50.0])],
    )
    axes = figure(compare(a, b)).axes
    assert [ax.get_yscale() for ax in axes] == ["log", "linear", "linear", "linear"]
    # On the log axis both ratios stay inside the drawn range.
    low, high = axes[0].get_ylim()
    assert low < 1.1 and high > 50


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    repo = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=str(repo), PYTHONWARNINGS="ignore")
    return subprocess.run(
        [sys.executable, "-m", "sweep.compare", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def _one_line_error(proc: subprocess.CompletedProcess[str], message: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == "" and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sweep.compare: error: "), proc.stderr
    assert message in lines[0]


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing_a", "no study directory at"),
        ("missing_b", "no study directory at"),
        ("not_a_result_set", "is not a result set: no point is stored in it"),
        ("empty_points", "is not a result set: no point is stored in it"),
        ("corrupt", "cannot be read as a result set"),
        ("nothing_in_common", "have no successful point in common"),
        ("only_errors", "have no successful point in common"),
    ],
)
def test_cli_errors_are_one_line_exit_2_and_write_nothing(tmp_path, pair, case, message):
    a, _, _ = pair
    b = tmp_path / "other"
    if case == "missing_a":
        a = tmp_path / "absent"
        write_set(b, seeds_rows("baseline", 4, wall_s=[1.0]))
    elif case == "not_a_result_set":
        b.mkdir()
        (b / "report.md").write_text("not a result set")
    elif case == "empty_points":
        (b / "points").mkdir(parents=True)
    elif case == "corrupt":
        write_set(b, seeds_rows("baseline", 4, wall_s=[1.0]))
        victim = next((b / "points").rglob("*.parquet"))
        victim.write_bytes(b"PAR1 not parquet at all")
    elif case == "nothing_in_common":
        write_set(b, seeds_rows("baseline", 64, wall_s=[1.0]))
    elif case == "only_errors":
        write_set(b, [{"variant": "baseline", "cores": 4, "seed": 0, "status": "error"}])
    before = sorted(p.name for p in b.iterdir()) if b.is_dir() else None
    _one_line_error(_cli(str(a), str(b)), message)
    assert (sorted(p.name for p in b.iterdir()) if b.is_dir() else None) == before


def test_compare_raises_for_a_point_stored_twice(tmp_path, pair):
    a, _, _ = pair
    b = write_set(tmp_path / "twice", seeds_rows("baseline", 4, wall_s=[1.0]))
    extra = write_set(tmp_path / "extra", seeds_rows("baseline", 4, wall_s=[2.0]))
    part = next((extra / "points").rglob("*.parquet"))
    target = next((b / "points").rglob("*.parquet")).parent / "part-second.parquet"
    os.replace(part, target)
    with pytest.raises(CompareError, match="holds 1 point"):
        compare(a, b)


def test_a_set_against_itself_is_all_ones_and_nothing_flagged(pair):
    a, _, _ = pair
    c = compare(a, a)
    assert c.one_sided.is_empty() and c.flagged == 0
    finite = c.ratios.select("wall_s_ratio", "sys_s_ratio").to_numpy()
    assert (finite == 1.0).all()


def test_printout_groups_one_sided_points_by_curve(tmp_path, capsys):
    a = write_set(tmp_path / "a", seeds_rows("baseline", 1, wall_s=[1.0]))
    b_rows = [*seeds_rows("baseline", 1, wall_s=[1.0])]
    for cores in (2, 4, 8):
        b_rows += seeds_rows("combined", cores, wall_s=[1.0, 1.0, 1.0])
    b = write_set(tmp_path / "b", b_rows)
    assert main([str(a), str(b)]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("  only in")]
    assert lines == [
        "  only in B (absent from A): combined, fork_exit on arm64_m2: 9 points, cores 2, 4, 8, "
        "seeds 0, 1, 2"
    ]
    assert (b / "compare-a.md").read_text().count("| B | arm64_m2 | fork_exit | combined |") == 9


def test_cli_write_failure_is_one_line_and_leaves_no_temporary(tmp_path, pair):
    a, _, _ = pair
    b = write_set(tmp_path / "b", seeds_rows("baseline", 4, wall_s=[1.0, 2.0, 3.0]))
    (b / "compare-before.md" / "in_the_way").mkdir(parents=True)  # the target is a directory
    _one_line_error(_cli(str(a), str(b)), f"cannot write into {b}")
    assert not [p.name for p in b.iterdir() if p.name.startswith(".")]
