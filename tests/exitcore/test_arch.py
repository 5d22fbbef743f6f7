from __future__ import annotations

import dataclasses
import inspect
import re

import pytest

import exitcore.arch as arch_module
from exitcore.arch import AMD64, ARCHS, ARM64, ArchProfile


def test_builtins_are_registered_by_name():
    assert ARCHS == {"arm64": ARM64, "amd64": AMD64}
    assert ARM64.tlb_model == "broadcast" and AMD64.tlb_model == "ipi"


def test_design_defaults_that_stand():
    # DESIGN.md section 2 (the constants not recalibrated here)
    assert ARM64.exit_prologue_ns == 10_000
    assert ARM64.map_entry_ns == 400
    assert ARM64.walk_step_ns == 3 and ARM64.walk_step_pages == 1
    assert AMD64.walk_step_ns == 15 and AMD64.walk_step_pages == 512
    assert AMD64.pte_ns == 40 and AMD64.pte_sharer_ns == 5
    assert ARM64.tlbi_per_page == 2 and ARM64.tlbi_core_slope == 0.026
    assert AMD64.full_flush_range_pages == 32
    assert ARM64.asid_flush_ns == AMD64.asid_flush_ns == 200
    assert ARM64.page_free_pageq_ns == 40
    assert ARM64.ptp_free_ns == 600
    assert ARM64.proc_free_ns == 3_000 and ARM64.notify_ns == 2_000
    # OpenBSD arm64 user space is 39 bits (3 levels); amd64 has 4
    assert ARM64.table_levels == 3 and AMD64.table_levels == 4


def test_broadcast_tlbi_gets_three_times_dearer_from_8_to_100_cores():
    def factor(cores: int) -> float:
        return 1 + ARM64.tlbi_core_slope * (cores - 1)

    assert factor(100) / factor(8) == pytest.approx(3.0, rel=0.02)


def test_every_constant_states_its_source():
    source = inspect.getsource(arch_module)
    for profile in ("ARM64", "AMD64"):
        block = source.split(f"{profile}: Final = ArchProfile(")[1].split("\n)\n")[0]
        lines = block.splitlines()
        for f in dataclasses.fields(ArchProfile):
            if f.name == "name":
                continue
            (index,) = [i for i, line in enumerate(lines) if line.strip().startswith(f"{f.name}=")]
            context = lines[index] + "".join(lines[max(0, index - 3) : index])
            assert re.search(r"\((published|published shape|derived|estimate)\)|unused", context), (
                f"{profile}.{f.name} has no source"
            )


def test_with_overrides_and_from_dict():
    faster = ARM64.with_overrides(tlbi_ns=30.0)
    assert faster.tlbi_ns == 30.0 and faster.pte_ns == ARM64.pte_ns
    assert ArchProfile.from_dict({"base": "amd64", "ipi_ns": 900}) == AMD64.with_overrides(
        ipi_ns=900
    )
    assert ArchProfile.from_dict(ARM64.to_dict()) == ARM64


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: ARM64.with_overrides(tlbi=1.0), "tlbi: unknown arch field; allowed:"),
        (lambda: ARM64.with_overrides(pte_ns=-1.0), "pte_ns: must be >= 0"),
        (lambda: ARM64.with_overrides(tlb_model="mesh"), "tlb_model: 'mesh' is not one of"),
        (lambda: ARM64.with_overrides(walk_step_pages=0), "walk_step_pages: must be an integer"),
        (lambda: ArchProfile.from_dict({"base": "riscv"}), "base: 'riscv' is not one of"),
        (lambda: ARM64.with_overrides(table_levels=5), "table_levels: must be 1, 2, 3 or 4"),
        (lambda: ArchProfile.from_dict({"name": "x"}), "exit_prologue_ns: missing"),
        (
            lambda: ARM64.with_overrides(page_free_pageq_ns=1e6),
            "page_free_pageq_ns: must be <= page_free_ns",
        ),
    ],
)
def test_bad_values_raise_naming_the_field(call, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        call()
