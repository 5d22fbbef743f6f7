"""Parameter draws in a study (``uncertainty.samples``): the draws, their points, resume after a
kill, and the knee quantiles, bottleneck shares and bands of the curves.

Curves are checked against a brute-force recomputation from the stored rows written here, with
its own knee rule, quantile rule and saturation rule (the definitions of sweep.curves and
sweep.uncertainty, re-implemented as plain loops), never against the code under test.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import signal
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from exitcore import presets
from exitcore.result import METRIC_FIELDS
from sweep.pipeline import run_study
from sweep.plan import plan, point_id
from sweep.spec import StudySpec
from sweep.store import read_points
from sweep.uncertainty import draw_values, study_params

TOY_LIST = {
    "parameters": [
        {
            "group": "mix",
            "name": "fork_exit",
            "param": "klock_syscall_frac",
            "lo": 0.1,
            "hi": 0.6,
            "source": "test range",
        },
        {
            "group": "machine",
            "name": "*",
            "param": "cpu_speed",
            "lo": 0.5,
            "hi": 1.5,
            "source": "test range",
        },
        {
            "group": "mix",
            "name": "kernel_build",  # not in the grids below: changes nothing there
            "param": "klock_syscall_frac",
            "lo": 0.2,
            "hi": 0.5,
            "source": "test range",
        },
    ]
}
GROUPS = {
    "machine": presets.load_all("machine"),
    "mix": presets.load_all("mix"),
    "variant": presets.load_all("variant"),
    "fit": {"toy": TOY_LIST},
}
GRID = {
    "machine": ["arm64_m2"],
    "mix": ["fork_exit"],
    "variant": ["baseline", "pmap_purge"],
    "cores": [1, 2, 4, 8, 16],
    "seed": [0, 1],
}


def make_spec(out: Path, samples: int, **extra: Any) -> StudySpec:
    config = {
        "study": {"name": "u", "seed": 7},
        "out": str(out),
        "grid": GRID,
        "progress": "off",
        "report": True,
        "ray": {"inprocess_s": 1000.0},  # the toy points run in this process, never on Ray
        "uncertainty": {"samples": samples, "params": "toy"},
        **extra,
    }
    return StudySpec.from_dicts(
        config, lambda g, n: GROUPS[g][n], {g: sorted(d) for g, d in GROUPS.items()}
    )


def toy_point(
    machine: Mapping[str, Any],
    mix: Mapping[str, Any],
    variant: Mapping[str, Any],
    cores: int,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """Throughput linear in cores up to a cap set by klock_syscall_frac (and pmap_purge's
    doubling): the knee moves with the drawn constant; the saturated resource switches at
    klock_syscall_frac 0.35."""
    klock = float(mix["klock_syscall_frac"])
    cap = (2.0 + 40.0 * (klock - 0.1)) * (2.0 if variant["name"] == "pmap_purge" else 1.0)
    noise = 1.0 + 0.01 * rng.standard_normal()
    x = 1000.0 * float(machine["cpu_speed"]) * min(cores, cap) * noise
    util = min(1.0, cores / cap)
    metrics: dict[str, Any] = {name: kind(0) for name, kind in METRIC_FIELDS}
    metrics.update(
        exits=1000,
        exits_per_s=x,
        wall_s=1000.0 / x,
        reaper_util=util if klock <= 0.35 else 0.5 * util,
        klock_util=0.5 * util if klock <= 0.35 else util,
        cpu_util=util,
    )
    return metrics


def slow_toy_point(*args: Any) -> dict[str, Any]:
    time.sleep(0.03)
    return toy_point(*args)


# --------------------------------------------------------------------------- draws and plan


def test_samples_zero_keeps_the_plain_points_and_their_ids(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, 0)
    points = plan(spec)
    assert len(points) == 2 * 5 * 2 and all(p.draw is None for p in points)
    for p in points:
        names = {"machine": p.machine, "mix": p.mix, "variant": p.variant}
        params = {g: spec.params[g][names[g]] for g in names}
        assert p.point_id == point_id(names, params, p.cores, p.seed, 7)
    drawn = plan(make_spec(tmp_path, 3))
    assert [p.point_id for p in drawn[: len(points)]] == [p.point_id for p in points]
    assert len(drawn) == 4 * len(points) and len({p.point_id for p in drawn}) == len(drawn)


def test_draws_are_a_seeded_latin_hypercube_inside_the_ranges(tmp_path: Path) -> None:
    ranges = make_spec(tmp_path, 5).uncertainty.ranges
    n = 20
    values = draw_values(ranges, n, root_seed=7)
    assert values.shape == (n, 3)
    for j, r in enumerate(ranges):
        # Latin hypercube: each of the n equal strata of every range holds exactly one draw.
        strata = np.floor((values[:, j] - r.lo) / (r.hi - r.lo) * n).astype(int)
        assert sorted(strata.tolist()) == list(range(n))
    assert np.array_equal(values, draw_values(ranges, n, root_seed=7))
    assert not np.allclose(values, draw_values(ranges, n, root_seed=8))


def test_a_draw_point_runs_the_drawn_values_on_the_presets_stream(tmp_path: Path) -> None:
    spec = make_spec(tmp_path, 3)
    points = plan(spec)
    params = study_params(spec)
    values = draw_values(spec.uncertainty.ranges, 3, root_seed=7)
    nominal = {p.key[:5]: p for p in points if p.draw is None}
    for p in points:
        if p.draw is None:
            continue
        machine, mix, variant = (
            params[g][k] for g, k in zip(("machine", "mix", "variant"), p.param_keys, strict=True)
        )
        assert mix["klock_syscall_frac"] == values[p.draw, 0]
        assert machine["cpu_speed"] == values[p.draw, 1]
        assert variant == spec.params["variant"][p.variant]
        expected_mix = {**spec.params["mix"]["fork_exit"], "klock_syscall_frac": values[p.draw, 0]}
        assert mix == expected_mix  # nothing else changed
        assert p.entropy == nominal[p.key[:5]].entropy  # common random numbers across draws


# --------------------------------------------------------------------------- curves


def _brute_knee(cores: list[int], thr: list[float], threshold: float = 0.1) -> int | None:
    for i in range(len(cores) - 1):
        marginal = ((thr[i + 1] - thr[i]) / thr[i]) / ((cores[i + 1] - cores[i]) / cores[i])
        if marginal < threshold:
            return cores[i]
    return None


def _brute_saturated(reaper: float, klock: float, cpu: float) -> str:
    if reaper >= 0.8 and reaper >= klock:
        return "reaper"
    if klock >= 0.8:
        return "kernel_lock"
    return "cpu" if cpu >= 0.8 else "none"


def _type1(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def test_knee_quantiles_shares_and_bands_equal_a_brute_force_recomputation(
    tmp_path: Path,
) -> None:
    samples = 12  # type 1 and numpy's 'nearest' or 'linear' differ at 12 draws
    spec = make_spec(tmp_path, samples)
    assert run_study(spec, point_fn=toy_point) == 0
    rows = read_points(spec.study_dir).to_pylist()
    assert len(rows) == (samples + 1) * 20
    curves = pl.read_parquet(spec.study_dir / "curves.parquet")
    cores = GRID["cores"]
    knees_seen: set[int | None] = set()
    for variant in GRID["variant"]:
        knees: list[float] = []
        bottlenecks: list[str] = []
        by_draw_cores: dict[int, list[float]] = {c: [] for c in cores}
        for draw in range(samples):
            mine = [r for r in rows if r["variant"] == variant and r["draw"] == draw]
            assert len(mine) == len(cores) * 2
            mean = {
                c: {
                    m: float(np.mean([r[m] for r in mine if r["cores"] == c]))
                    for m in ("exits_per_s", "reaper_util", "klock_util", "cpu_util")
                }
                for c in cores
            }
            knee = _brute_knee(cores, [mean[c]["exits_per_s"] for c in cores])
            knees_seen.add(knee)
            knees.append(math.inf if knee is None else knee)
            bottlenecks.append(
                "none"
                if knee is None
                else _brute_saturated(
                    mean[knee]["reaper_util"], mean[knee]["klock_util"], mean[knee]["cpu_util"]
                )
            )
            for c in cores:
                by_draw_cores[c].append(mean[c]["exits_per_s"])
        curve = curves.filter(pl.col("variant") == variant).sort("cores")
        for column, q in (("knee_p05", 0.05), ("knee_p50", 0.5), ("knee_p95", 0.95)):
            expected = _type1(knees, q)
            got = curve[column][0]
            assert (got is None) if math.isinf(expected) else got == expected, (variant, column)
        share = {s["resource"]: s["share"] for s in curve["bottleneck_share"][0]}
        assert share == {b: bottlenecks.count(b) / samples for b in set(bottlenecks)}
        assert curve["n_draws"][0] == samples
        for i, c in enumerate(cores):
            values = by_draw_cores[c]
            assert curve["exits_per_s_p05"][i] == pytest.approx(np.quantile(values, 0.05))
            assert curve["exits_per_s_p95"][i] == pytest.approx(np.quantile(values, 0.95))
    # The drawn constant moves the knee, and both resources are the bottleneck in some draw:
    # the test exercises the quantiles and shares, not a constant.
    assert len(knees_seen) >= 3
    report = (spec.study_dir / "report.md").read_text()
    assert "%" in report and "(" in report


def test_plain_curves_ignore_the_draw_rows(tmp_path: Path) -> None:
    drawn = make_spec(tmp_path / "a", 4)
    plain = make_spec(tmp_path / "b", 0)
    assert run_study(drawn, point_fn=toy_point) == 0
    assert run_study(plain, point_fn=toy_point) == 0
    a = pl.read_parquet(drawn.study_dir / "curves.parquet")
    b = pl.read_parquet(plain.study_dir / "curves.parquet")
    assert "knee_p50" not in b.columns
    assert a.select(b.columns).equals(b)


# --------------------------------------------------------------------------- resume


def _run_in_child(spec: StudySpec) -> None:
    os._exit(run_study(spec, point_fn=slow_toy_point))


def test_a_study_with_draws_killed_mid_run_resumes_with_only_the_missing_draws(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = make_spec(
        tmp_path, 4, store={"flush_points": 5000, "flush_s": 0.05}, cache=False, report=False
    )
    total = 5 * 20
    child = multiprocessing.get_context("fork").Process(target=_run_in_child, args=(spec,))
    child.start()
    stored = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and child.is_alive():
        stored = read_points(spec.study_dir).num_rows if (spec.study_dir / "points").is_dir() else 0
        if stored >= 30:  # every plain point and some draws are on disk
            break
        time.sleep(0.01)
    assert child.pid is not None
    os.kill(child.pid, signal.SIGKILL)
    child.join()
    before = read_points(spec.study_dir)
    done = set(before.column("point_id").to_pylist())
    draws_done = {d for d in before.column("draw").to_pylist() if d is not None}
    assert 20 < len(done) < total and draws_done, (len(done), draws_done)
    capsys.readouterr()

    assert run_study(spec, point_fn=toy_point) == 0
    err = capsys.readouterr().err
    assert f"{total} points, {len(done)} already stored, 0 from the cache, " in err
    assert f"{total - len(done)} to compute" in err
    after = read_points(spec.study_dir)
    ids = after.column("point_id").to_pylist()
    assert sorted(ids) == sorted({p.point_id for p in plan(spec)})  # each point once
    # Rows stored before the kill are kept as they were (not recomputed).
    kept = after.filter(pl.Series(ids).is_in(list(done)).to_arrow())
    assert sorted(kept.column("created_at").to_pylist()) == sorted(
        before.column("created_at").to_pylist()
    )
    reference = make_spec(tmp_path / "ref", 4, cache=False, report=False)
    assert run_study(reference, point_fn=toy_point) == 0
    expected = read_points(reference.study_dir).sort_by("point_id")
    got = after.sort_by("point_id")
    for column in ("point_id", "draw", "cores", "seed", "exits_per_s", "wall_s"):
        assert got.column(column).equals(expected.column(column)), column


# --------------------------------------------------------------------------- shipped lists


@pytest.mark.parametrize(
    "path",
    sorted((Path(__file__).parents[2] / "conf" / "fit").glob("*.yaml")),
    ids=lambda p: p.stem,
)
def test_every_shipped_range_loads_and_holds_the_value_the_model_ships(path: Path) -> None:
    import yaml

    from exitcore import presets
    from exitcore.arch import ARCHS
    from sweep.spec import load_param_list

    def load(group: str, name: str) -> dict[str, Any]:
        if group == "fit":  # a list may take ranges from another (from:)
            return yaml.safe_load((path.parent / f"{name}.yaml").read_text())
        return presets.load(group, name)

    available = {g: sorted(presets.names(g)) for g in ("machine", "mix", "variant")}
    available["fit"] = sorted(p.stem for p in path.parent.glob("*.yaml"))
    ranges = load_param_list("uncertainty.params", path.stem, load, available, GROUPS_EMPTY)
    assert ranges
    for r in ranges:
        names = available[r.group] if r.name == "*" else [r.name]
        for name in names:
            preset = load(r.group, name)
            node: Any = preset
            for key in r.keys:
                node = node.get(key) if isinstance(node, dict) else None
            if node is None and r.keys[0] == "arch_overrides":
                node = getattr(ARCHS[preset["arch"]], r.keys[1])  # the architecture's constant
            assert r.lo <= float(node) <= r.hi, (r.label, name, node)


GROUPS_EMPTY: dict[str, dict[str, Any]] = {"machine": {}, "mix": {}, "variant": {}}
