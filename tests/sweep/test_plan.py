"""sweep.spec and sweep.plan: grid parsing, validation, content hashes and per-point seeds."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from sweep.errors import StudyError
from sweep.plan import plan
from sweep.spec import StudySpec, parse_cores

GROUPS = {
    "machine": {"m1": {"cores": 8, "reapers": 1}, "m2": {"cores": 80, "reapers": 1}},
    "mix": {"small": {"n_procs": 10, "rss_mb": 4.0}, "big": {"n_procs": 50, "rss_mb": 64.0}},
    "variant": {
        "base": {"x6": "reaper", "flags": {"asid": False}},
        "fast": {"x6": "exit", "flags": {"asid": True}},
    },
}
AVAILABLE = {group: sorted(names) for group, names in GROUPS.items()}


def make_spec(**overrides: object) -> StudySpec:
    config: dict = {
        "study": {"name": "t", "seed": 0},
        "out": "results",
        "grid": {
            "machine": ["m1", "m2"],
            "mix": ["small", "big"],
            "variant": ["base", "fast"],
            "cores": [1, 2, 4],
            "seed": [0, 1],
        },
        "set": {"machine": {}, "mix": {}, "variant": {}},
    }
    for key, value in overrides.items():
        section, _, leaf = key.partition("__")
        if leaf:
            config[section][leaf] = value
        else:
            config[section] = value
    return StudySpec.from_dicts(config, lambda g, n: GROUPS[g][n], AVAILABLE)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1..128", (1, 2, 4, 8, 16, 32, 64, 128)),
        ("1..100", (1, 2, 4, 8, 16, 32, 64)),
        ("1..81x3", (1, 3, 9, 27, 81)),
        ("8..32+8", (8, 16, 24, 32)),
        (["1..8", 80, 8], (1, 2, 4, 8, 80)),
        (["12", 6], (12, 6)),
        (5, (5,)),
    ],
)
def test_core_ranges_expand_as_documented(text: object, expected: tuple[int, ...]) -> None:
    assert parse_cores(text) == expected


@pytest.mark.parametrize("bad", [0, -4, 1.5, "abc", [], True, "0..8", "8..4", "1..8x1", None])
def test_bad_core_counts_are_rejected_naming_the_field(bad: object) -> None:
    with pytest.raises(StudyError, match="grid.cores"):
        parse_cores(bad)


def test_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(StudyError, match=r"unknown variant 'nope'; valid variants: base, fast"):
        make_spec(grid__variant=["base", "nope"])


@pytest.mark.parametrize("axis", ["machine", "mix", "variant", "cores", "seed"])
def test_empty_axis_is_rejected(axis: str) -> None:
    with pytest.raises(StudyError, match=f"grid.{axis} is empty"):
        make_spec(**{f"grid__{axis}": []})


def test_overrides_apply_to_every_item_of_the_group_and_unknown_keys_list_allowed() -> None:
    spec = make_spec(set__machine={"reapers": 2}, set__variant={"flags": {"asid": True}})
    assert [spec.params["machine"][m]["reapers"] for m in ("m1", "m2")] == [2, 2]
    assert spec.params["machine"]["m2"]["cores"] == 80
    assert spec.params["variant"]["base"] == {"x6": "reaper", "flags": {"asid": True}}
    assert GROUPS["machine"]["m1"]["reapers"] == 1  # the loaded dicts are not mutated
    with pytest.raises(StudyError, match=r"set.mix.nprocs: .* allowed: n_procs, rss_mb"):
        make_spec(set__mix={"nprocs": 3})
    with pytest.raises(StudyError, match=r"set.variant.flags.tlb: .* allowed: asid"):
        make_spec(set__variant={"flags": {"tlb": 1}})


def test_plan_is_the_cartesian_product_with_unique_ids() -> None:
    spec = make_spec()
    points = plan(spec)
    assert len(points) == 2 * 2 * 2 * 3 * 2 == spec.grid.size
    assert {p.key for p in points} == set(
        itertools.product(
            ["m1", "m2"], ["small", "big"], ["base", "fast"], [1, 2, 4], [0, 1], [None]
        )
    )
    assert len({p.point_id for p in points}) == len(points)


def test_ids_and_seeds_do_not_depend_on_axis_order() -> None:
    forward = {p.key: (p.point_id, p.entropy) for p in plan(make_spec())}
    reverse = make_spec(
        grid__machine=["m2", "m1"], grid__variant=["fast", "base"], grid__cores=[4, 1, 2]
    )
    assert {p.key: (p.point_id, p.entropy) for p in plan(reverse)} == forward


def test_changing_one_parameter_changes_exactly_the_affected_ids() -> None:
    before = {p.key: p.point_id for p in plan(make_spec())}
    changed = dict(GROUPS["mix"]["big"], n_procs=51)
    GROUPS["mix"]["big"] = changed
    try:
        after = {p.key: p.point_id for p in plan(make_spec())}
    finally:
        GROUPS["mix"]["big"] = dict(changed, n_procs=50)
    differing = {key for key in before if before[key] != after[key]}
    assert differing == {key for key in before if key[1] == "big"}


def test_a_changed_mix_parameter_keeps_the_stream_a_renamed_mix_does_not() -> None:
    before = {p.key: p for p in plan(make_spec())}
    changed = dict(GROUPS["mix"]["big"], n_procs=51)
    GROUPS["mix"]["big"] = changed
    try:
        after = {p.key: p for p in plan(make_spec())}
    finally:
        GROUPS["mix"]["big"] = dict(changed, n_procs=50)
    for key, point in before.items():
        assert after[key].entropy == point.entropy  # common random numbers across values
    small = before[("m1", "small", "base", 4, 0, None)]
    big = before[("m1", "big", "base", 4, 0, None)]
    assert small.entropy != big.entropy


def test_root_seed_changes_every_id_and_stream() -> None:
    base = plan(make_spec())
    other = plan(make_spec(study={"name": "t", "seed": 1}))
    assert all(
        a.point_id != b.point_id and a.entropy != b.entropy
        for a, b in zip(base, other, strict=True)
    )


def test_variants_and_machines_share_the_workload_stream_seeds_do_not() -> None:
    points = plan(make_spec())
    by_key = {p.key: p for p in points}
    a = by_key[("m1", "small", "base", 4, 0, None)]
    b = by_key[("m2", "small", "fast", 4, 0, None)]
    c = by_key[("m1", "small", "base", 4, 1, None)]
    d = by_key[("m1", "small", "base", 2, 0, None)]
    assert a.entropy == b.entropy  # common random numbers across variants and machines
    assert a.rng().random(4).tolist() == b.rng().random(4).tolist()
    assert len({a.entropy, c.entropy, d.entropy}) == 3
    assert not np.array_equal(a.rng().random(4), c.rng().random(4))


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("study", {"name": "a/b", "seed": 0}, "study.name"),
        ("study", {"name": "t", "seed": -1}, "study.seed"),
        ("ray", {"num_cpus": 0}, "ray.num_cpus"),
        ("progress", "fancy", "progress"),
        ("set", {"cpu": {}}, "set.cpu: unknown group"),
    ],
)
def test_other_bad_fields_are_named(key: str, value: object, match: str) -> None:
    with pytest.raises(StudyError, match=match):
        make_spec(**{key: value})
