"""Parameter ranges: validation against the presets, and applying values."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from exitcore import presets
from sweep.errors import StudyError
from sweep.ranges import ParamRange, apply, current_values, list_lookup, load_ranges
from sweep.spec import GROUPS

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "machine": {
        "m2": {"cpu_speed": 1.0, "reapers": 1, "arch_overrides": {}, "arch": "arm64"},
        "box": {"cpu_speed": 0.5, "reapers": 2, "arch_overrides": {"tlbi_ns": 60.0}},
    },
    "mix": {"kb": {"klock_frac": 0.45, "slots": None, "nested": {"depth": 3}}},
    "variant": {"base": {"pte_ns": 100.0}},
}


def item(**changes: Any) -> dict[str, Any]:
    base = {
        "group": "mix",
        "name": "kb",
        "param": "klock_frac",
        "lo": 0.1,
        "hi": 0.6,
        "source": "2021 make -j17 profile",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def test_a_valid_list_becomes_frozen_ranges() -> None:
    (r,) = load_ranges([item()], PRESETS)
    assert r == ParamRange("mix", "kb", "klock_frac", 0.1, 0.6, "2021 make -j17 profile")
    assert r.label == "mix.kb.klock_frac"
    with pytest.raises(AttributeError):
        r.lo = 0.2  # type: ignore[misc]


BAD = [
    ([item(colour=1)], "parameters[0].colour: unknown field"),
    ([item(group="cpu")], "parameters[0].group: 'cpu'; allowed: machine, mix, variant"),
    ([item(name="kernel")], "parameters[0].name: unknown mix 'kernel'; available: kb, *"),
    ([item(param="klock")], "parameters[0].param: mix 'kb' has no parameter 'klock'"),
    ([item(param="nested.width")], "has no key 'width' under 'nested'"),
    ([item(param="slots")], "slots = None is not numeric"),
    ([item(lo=0.7)], "parameters[0]: lo 0.7 > hi 0.6"),
    ([item(hi="high")], "parameters[0].hi: 'high' is not a number"),
    ([item(lo=True)], "parameters[0].lo: True is not a number"),
    ([item(hi=float("inf"))], "parameters[0].hi: inf is not a finite number"),
    ([item(source=None)], "parameters[0].source: missing"),
    ([item(source="   ")], "parameters[0].source: missing; say why"),
    ([item(), item()], "parameters[1]: mix.kb.klock_frac is already parameters[0]"),
    ([item(), item(name="*")], "mix.kb.klock_frac is also set by mix.*.klock_frac"),
    ([], "parameters: give a non-empty list"),
    ("klock_frac", "parameters: give a non-empty list"),
    ([item(group="machine", name="*", param="arch")], "machine 'box' has no parameter 'arch'"),
]


@pytest.mark.parametrize(("items", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_entries_are_one_line_naming_entry_and_field(items: Any, message: str) -> None:
    with pytest.raises(StudyError) as info:
        load_ranges(items, PRESETS)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


LISTS: dict[str, Any] = {
    "base": {
        "parameters": [
            item(),
            item(group="machine", name="m2", param="cpu_speed", lo=0.5, hi=2.0, source="a core"),
            item(group="variant", name="base", param="pte_ns", lo=50, hi=150, source="a PTE"),
        ]
    },
    "chained": {"parameters": {"from": "base"}},
}
LOOKUP = list_lookup(lambda group, name: LISTS[name], {"fit": list(LISTS)})


def test_from_takes_the_named_ranges_of_another_list_in_the_order_asked() -> None:
    taken = load_ranges(
        {"from": "base", "only": ["variant.base.pte_ns", "mix.kb.klock_frac"]}, PRESETS, LOOKUP
    )
    assert taken == (
        ParamRange("variant", "base", "pte_ns", 50.0, 150.0, "a PTE"),
        ParamRange("mix", "kb", "klock_frac", 0.1, 0.6, "2021 make -j17 profile"),
    )
    added = load_ranges(
        {
            "from": "base",
            "only": ["mix.kb.klock_frac"],
            "add": [item(name="*", param="nested.depth")],
        },
        PRESETS,
        LOOKUP,
    )
    assert [r.label for r in added] == ["mix.kb.klock_frac", "mix.*.nested.depth"]
    everything = load_ranges({"from": "base"}, PRESETS, LOOKUP)
    assert [r.label for r in everything] == [
        "mix.kb.klock_frac", "machine.m2.cpu_speed", "variant.base.pte_ns"
    ]  # fmt: skip


BAD_FROM = [
    ({"from": "nope"}, "parameters.from: unknown list 'nope'; lists in conf/fit/: base, chained"),
    ({"from": "chained"}, "parameters.from: fit/chained.yaml takes its ranges from another list"),
    ({"from": "base", "only": ["mix.kb.pte_ns"]}, "parameters.only[0]: 'mix.kb.pte_ns' is not a"),
    ({"from": "base", "only": []}, "parameters.only: give a non-empty list"),
    ({"from": "base", "also": 1}, "parameters.also: unknown key; allowed: from, only, add"),
    ({"from": "base", "add": "x"}, "parameters.add: give a list of"),
    (
        {"from": "base", "add": [item()]},
        "parameters[3]: mix.kb.klock_frac is already parameters[0]",
    ),
    ({"only": ["mix.kb.klock_frac"]}, "parameters.from: name a parameter list"),
    (
        {"from": "base", "only": ["mix.kb.klock_frac", "mix.kb.klock_frac"]},
        "parameters[1]: mix.kb.klock_frac is already parameters[0]",
    ),
]


@pytest.mark.parametrize(("items", "message"), BAD_FROM, ids=[m for _, m in BAD_FROM])
def test_a_bad_from_is_one_line(items: Any, message: str) -> None:
    with pytest.raises(StudyError) as info:
        load_ranges(items, PRESETS, LOOKUP)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_the_shipped_lists_that_take_ranges_take_existing_ones() -> None:
    # every conf/fit/ list resolves against the shipped presets (a label renamed in the list it
    # takes from fails here, not in a fit an hour later)
    conf = Path(__file__).resolve().parents[2] / "conf" / "fit"
    lists = {p.stem: yaml.safe_load(p.read_text()) for p in conf.glob("*.yaml")}
    shipped = {g: presets.load_all(g) for g in GROUPS}
    lookup = list_lookup(lambda group, name: lists[name], {"fit": sorted(lists)})
    wakeup = load_ranges(lists["wakeup"]["parameters"], shipped, lookup)
    assert len(wakeup) == 9


def test_open_mapping_takes_a_new_architecture_override() -> None:
    (r,) = load_ranges([item(group="machine", name="m2", param="arch_overrides.tlbi_ns")], PRESETS)
    out = apply(PRESETS, [r], [75.0])
    assert out["machine"]["m2"]["arch_overrides"] == {"tlbi_ns": 75.0}
    assert PRESETS["machine"]["m2"]["arch_overrides"] == {}  # deep copy: the input is untouched


def test_apply_sets_nested_wildcard_and_rounds_integers() -> None:
    before = copy.deepcopy(PRESETS)
    ranges = load_ranges(
        [
            item(),
            item(group="machine", name="*", param="reapers", lo=1, hi=4),
            item(param="nested.depth", lo=1, hi=9),
            item(group="variant", name="base", param="pte_ns", lo=50, hi=150),
        ],
        PRESETS,
    )
    out = apply(PRESETS, ranges, [0.3, 2.6, 4.4, 120.5])
    assert out["mix"]["kb"]["klock_frac"] == 0.3
    assert out["machine"]["m2"]["reapers"] == 3 and out["machine"]["box"]["reapers"] == 3
    assert isinstance(out["machine"]["m2"]["reapers"], int)
    assert out["mix"]["kb"]["nested"] == {"depth": 4}
    assert out["variant"]["base"]["pte_ns"] == 120.5
    assert out["machine"]["box"]["cpu_speed"] == 0.5  # what no range names stays
    assert PRESETS == before
    assert current_values(out, ranges) == [0.3, 3.0, 4.0, 120.5]


def test_apply_to_params_without_the_named_preset_changes_nothing() -> None:
    (r,) = load_ranges([item()], PRESETS)
    only_machines = {"machine": copy.deepcopy(PRESETS["machine"])}
    assert apply(only_machines, [r], [0.2]) == only_machines
    with pytest.raises(ValueError, match="expected 1 values"):
        apply(PRESETS, [r], [0.2, 0.3])


def test_an_arch_constant_no_preset_overrides_starts_at_its_profile_value() -> None:
    """A fit's start is what the model runs with: the architecture profile's constant, not a
    midpoint of the range (the arm64 value is read from the profile by hand here)."""
    from exitcore.arch import ARM64

    machines = {"machine": {"m": {"arch": "arm64", "arch_overrides": {}}}}
    ranges = [ParamRange("machine", "m", "arch_overrides.fpageq_acq_ns", 1.0, 1e4, "")]
    assert current_values(machines, ranges) == [ARM64.fpageq_acq_ns]
    overridden = {"machine": {"m": {"arch": "arm64", "arch_overrides": {"fpageq_acq_ns": 7.0}}}}
    assert current_values(overridden, ranges) == [7.0]
