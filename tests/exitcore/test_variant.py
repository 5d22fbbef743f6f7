from __future__ import annotations

import re

import pytest

from exitcore import presets
from exitcore.result import OPS
from exitcore.variant import VARIANTS, Variant

PRESET_VARIANTS = presets.load_all("variant")


# DESIGN.md section 3, transcribed: ops per context (X5 twice in pmap_purge).
DESIGN_TABLE = {
    "baseline": ({}, {"X0"}, {"X1", "X2", "X3", "X4", "X5", "X6", "X7", "X8"}, "reaper"),
    "baseline_2024": ({}, {"X0"}, {"X1", "X2", "X3", "X4", "X5", "X6", "X7", "X8"}, "reaper"),
    "uvm_purge": ({"X1", "X2", "X3", "X4", "X6"}, {"X0"}, {"X5", "X7", "X8"}, "reaper"),
    "pmap_purge": ({"X1", "X2", "X3", "X5", "X6"}, {"X0"}, {"X5", "X7", "X8"}, "reaper"),
    "pmap_deactivate": (set(), {"X0", "X3", "X5", "X7"}, {"X1", "X6", "X8"}, "reaper"),
    "combined": ({"X1", "X3", "X5", "X6", "X7"}, {"X0"}, {"X8"}, "reaper"),
    "rip_reaper": ({"X1", "X3", "X5", "X6", "X7"}, {"X0"}, {"X8"}, "exit"),
    "linux_fullmm": ({"X0", "X1", "X3", "X5", "X6", "X7", "X8"}, set(), set(), "exit"),
    "zap_first": ({"X1", "X2", "X3", "X4", "X6"}, {"X0"}, {"X5", "X7", "X8"}, "reaper"),
}


def test_builtins_parse_and_round_trip():
    assert set(VARIANTS) == set(DESIGN_TABLE)
    for name, variant in VARIANTS.items():
        assert variant.name == name
        assert Variant.from_dict(variant.to_dict()) == variant
        assert Variant.from_dict(PRESET_VARIANTS[name]) == variant


@pytest.mark.parametrize("name", sorted(DESIGN_TABLE))
def test_builtins_follow_the_design_table(name):
    exit_ops, klock_ops, reaper_ops, notify = DESIGN_TABLE[name]
    variant = VARIANTS[name]
    for ctx, ops in (("exit", exit_ops), ("exit_klock", klock_ops), ("reaper", reaper_ops)):
        assert {op for op in OPS if ctx in variant.contexts_of(op)} == set(ops), ctx
    assert variant.notify == notify
    assert variant.notify_from_exit == (notify == "exit")


def test_flags_of_the_builtins():
    assert {n for n, v in VARIANTS.items() if v.walk == "sparse"} == {
        "pmap_deactivate",
        "combined",
        "rip_reaper",
        "linux_fullmm",
    }
    assert VARIANTS["zap_first"].walk == "full_user_va"
    assert {n for n, v in VARIANTS.items() if v.tlb_flush == "per_page"} == {
        "baseline",
        "baseline_2024",
        "uvm_purge",
        "zap_first",
    }
    assert VARIANTS["linux_fullmm"].pte_ns == 110.0
    assert VARIANTS["pmap_purge"].contexts_of("X5") == ("exit", "reaper")


def test_2024_kernel_locks_the_reapers_teardown_and_2025_does_not():
    """DESIGN.md section 9: only baseline_2024 takes KERNEL_LOCK in the reaper's X1, X7, X8."""
    for name, v in VARIANTS.items():
        locked = {op for op in OPS if "klock" in v.locks_of(op)}
        assert locked == ({"X1", "X7", "X8"} if name == "baseline_2024" else set()), name
        assert v.locks_of("X6") == ("fpageq", "pageq") and "kmmap" in v.locks_of("X8")
        assert v.percpu_page_cache == 16  # committed 2024-05-01


def test_only_the_2024_kernel_wakes_every_rwlock_sleeper():
    """kern_rwlock.c: wakeup(rwl) up to 1.50 (2023) and in 1.52, wakeup_one from 1.53 (2025)."""
    for name, v in VARIANTS.items():
        assert v.rw_wakeup == ("all" if name == "baseline_2024" else "one"), name


def test_percpu_page_cache_and_locks_are_validated():
    base = PRESET_VARIANTS["baseline"]
    assert Variant.from_dict({**base, "percpu_page_cache": 0}).percpu_page_cache == 0
    for bad in (-1, 1.5, "16", True):
        with pytest.raises(ValueError, match="percpu_page_cache"):
            Variant.from_dict({**base, "percpu_page_cache": bad})
    with pytest.raises(ValueError, match=r"locks\.X6.*giant"):
        Variant.from_dict({**base, "locks": {"X6": ["giant"]}})
    with pytest.raises(ValueError, match="X10"):
        Variant.from_dict({**base, "locks": {"X10": ["klock"]}})
    # a variant without `locks` takes the defaults every kernel has
    no_locks = {k: v for k, v in base.items() if k != "locks"}
    assert Variant.from_dict(no_locks) == VARIANTS["baseline"]


def test_a_ninth_variant_is_just_data():
    d = dict(PRESET_VARIANTS["combined"], name="combined_klock")
    d["ops"] = dict(d["ops"], X7="exit_klock")
    variant = Variant.from_dict(d)
    assert variant.contexts_of("X7") == ("exit_klock",)


def _with(**changes):
    d = {**PRESET_VARIANTS["baseline"], **changes}
    return d


@pytest.mark.parametrize(
    ("d", "message"),
    [
        (
            _with(ops={**PRESET_VARIANTS["baseline"]["ops"], "X9": "exit"}),
            "ops: unknown operation 'X9'; allowed: ['X0'",
        ),
        (
            _with(ops={**PRESET_VARIANTS["baseline"]["ops"], "X3": "kernel"}),
            "ops.X3: 'kernel' is not one of ['exit', 'exit_klock', 'reaper', 'none']",
        ),
        (
            _with(ops={k: v for k, v in PRESET_VARIANTS["baseline"]["ops"].items() if k != "X8"}),
            "ops.X8: missing",
        ),
        (_with(notify="parent"), "notify: 'parent' is not one of ['exit', 'reaper']"),
        (_with(tlb_flush="lazy"), "tlb_flush: 'lazy' is not one of ['per_page', 'asid']"),
        (_with(walk="skip"), "walk: 'skip' is not one of"),
        (_with(rw_wakeup="some"), "rw_wakeup: 'some' is not one of ['one', 'all']"),
        (_with(pte_ns=-3.0), "pte_ns: expected null or a number >= 0"),
        (_with(colour="red"), "colour: unknown variant field; allowed:"),
        ({"ops": {}}, "name: missing"),
    ],
)
def test_bad_variants_raise_naming_the_field(d, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        Variant.from_dict(d)


def test_flags_drop_the_ops_they_make_unnecessary():
    asid = Variant.from_dict({**PRESET_VARIANTS["baseline"], "tlb_flush": "asid"})
    assert asid.contexts_of("X4") == ()
    assert asid.contexts_of("X3") == ("reaper",)
    sparse = Variant.from_dict({**PRESET_VARIANTS["uvm_purge"], "walk": "sparse"})
    assert sparse.contexts_of("X2") == ()
    assert Variant.from_dict(sparse.to_dict()) == sparse
