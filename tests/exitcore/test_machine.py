"""Machine profiles: parsing, SMT sibling layout, what-if flags, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from exitcore import presets
from exitcore.arch import ARM64
from exitcore.machine import MachineProfile

PRESET_MACHINES = presets.load_all("machine")


@pytest.mark.parametrize("name", sorted(PRESET_MACHINES))
def test_builtin_profiles_parse_and_round_trip(name: str) -> None:
    machine = MachineProfile.from_dict(PRESET_MACHINES[name])
    assert machine.name == name
    assert MachineProfile.from_dict(machine.to_dict()) == machine


def test_builtin_counts_match_the_published_machines() -> None:
    counts = {n: (d["physical_cores"], d["hardware_threads"]) for n, d in PRESET_MACHINES.items()}
    assert counts == {
        "arm64_m2": (8, 8),
        "amd64_ryzen8845": (8, 16),
        "arm64_altra80": (80, 80),
        "amd64_epyc192": (96, 192),
    }


def test_smt_siblings_pair_thread_i_with_i_plus_physical_cores() -> None:
    ryzen = MachineProfile.from_dict(PRESET_MACHINES["amd64_ryzen8845"])
    full = ryzen.siblings(16)
    assert list(full[:8]) == list(range(8, 16))
    assert list(full[8:]) == list(range(8))
    # 8 threads: one per physical core, no sibling in use
    assert np.all(ryzen.siblings(8) == -1)
    # 12 threads: cores 0-3 have both threads
    part = ryzen.siblings(12)
    assert list(part[:4]) == [8, 9, 10, 11] and np.all(part[4:8] == -1)
    # what-if: threads beyond the 16 hardware threads are whole cores
    what_if = ryzen.siblings(20)
    assert np.all(what_if[16:] == -1) and list(what_if[:8]) == list(range(8, 16))


def test_no_siblings_without_smt() -> None:
    m2 = MachineProfile.from_dict(PRESET_MACHINES["arm64_m2"])
    assert np.all(m2.siblings(64) == -1)


def test_smt_speed_splits_one_core_plus_gain_between_two_threads() -> None:
    machine = MachineProfile(
        name="x", arch="amd64", physical_cores=2, hardware_threads=4, smt_gain=0.25
    )
    assert machine.smt_speed == pytest.approx(0.625)


def test_what_if_is_more_cores_than_hardware_threads() -> None:
    m2 = MachineProfile.from_dict(PRESET_MACHINES["arm64_m2"])
    assert not m2.is_what_if(8)
    assert m2.is_what_if(9)


def test_arch_overrides_are_merged_onto_the_base_profile() -> None:
    d = dict(PRESET_MACHINES["arm64_m2"], arch_overrides={"tlbi_ns": 90.0})
    arch = MachineProfile.from_dict(d).arch_profile()
    assert arch.tlbi_ns == 90.0
    assert arch.pte_ns == ARM64.pte_ns


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"physical_cores": 0}, "physical_cores"),
        ({"hardware_threads": 12}, "hardware_threads"),
        ({"reapers": 0}, "reapers"),
        ({"arch": "riscv"}, "arch"),
        ({"smt_gain": 1.5}, "smt_gain"),
        ({"cpu_speed": 0.0}, "cpu_speed"),
        ({"kernel_speed": -1.0}, "kernel_speed"),
        ({"io_op_s": -1.0}, "io_op_s"),
        ({"io_op_s": float("inf")}, "io_op_s"),
        ({"lock_hold_growth": -0.1}, "lock_hold_growth"),
        ({"rw_spin_us": float("inf")}, "rw_spin_us"),
        ({"rw_spin_us": -1.0}, "rw_spin_us"),
        ({"rw_wake_us": 0.0}, "rw_wake_us"),
        ({"rw_wake_us": float("nan")}, "rw_wake_us"),
        ({"blocked_scale": 4100.0}, "blocked_scale"),
        ({"arch_overrides": {"no_such_cost": 1.0}}, "no_such_cost"),
        ({"turbo": True}, "turbo"),
    ],
)
def test_bad_machine_fields_raise_naming_the_field(change: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        MachineProfile.from_dict({**PRESET_MACHINES["amd64_ryzen8845"], **change})


def test_bad_core_count_for_siblings() -> None:
    with pytest.raises(ValueError, match="cores"):
        MachineProfile.from_dict(PRESET_MACHINES["arm64_m2"]).siblings(0)
