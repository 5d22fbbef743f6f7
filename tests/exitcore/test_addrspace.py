from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
from teardown_layouts import random_batch, single_entry

from exitcore.addrspace import (
    PLACEMENT_CLUSTERED,
    PLACEMENT_DENSE,
    PLACEMENT_UNIFORM,
    AddressSpaces,
)


def _three_procs() -> dict[str, object]:
    return {
        "entry_proc": [0, 0, 2, 2, 2],
        "start_vpn": [10, 100, 0, 600, 5000],
        "virtual_pages": [50, 20, 512, 1000, 3],
        "resident_pages": [50, 0, 7, 400, 3],
        "is_anon": [True, False, True, False, True],
        "sharers": [1, 4, 1, 2, 1],
        "placement": [PLACEMENT_DENSE, PLACEMENT_UNIFORM, PLACEMENT_UNIFORM, 2, 0],
        "threads": [1, 3, 2],
        "user_va_pages": [1 << 20, 1 << 20, 1 << 20],
    }


def test_per_process_sums_match_a_loop():
    fields = _three_procs()
    spaces = AddressSpaces(**fields)  # type: ignore[arg-type]
    expected = {"V": [0, 0, 0], "R": [0, 0, 0], "Ra": [0, 0, 0], "E": [0, 0, 0]}
    for i, p in enumerate(fields["entry_proc"]):  # type: ignore[arg-type]
        expected["V"][p] += fields["virtual_pages"][i]  # type: ignore[index]
        expected["R"][p] += fields["resident_pages"][i]  # type: ignore[index]
        expected["Ra"][p] += fields["resident_pages"][i] * fields["is_anon"][i]  # type: ignore[index]
        expected["E"][p] += 1
    assert spaces.n_procs == 3
    assert spaces.virtual_pages_per_proc.tolist() == expected["V"]
    assert spaces.resident_pages_per_proc.tolist() == expected["R"]
    assert spaces.anon_resident_pages_per_proc.tolist() == expected["Ra"]
    assert spaces.entries_per_proc.tolist() == expected["E"]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("resident_pages", [-1, 0, 7, 400, 3], "resident_pages: must be >= 0"),
        ("resident_pages", [51, 0, 7, 400, 3], "resident_pages: must be <= virtual_pages"),
        ("virtual_pages", [50, 0, 512, 1000, 3], "virtual_pages: must be >= 1"),
        ("sharers", [1, 0, 1, 2, 1], "sharers: must be >= 1"),
        ("placement", [0, 0, 3, 0, 0], "placement: must be a code of"),
        ("entry_proc", [0, 2, 0, 2, 2], "entry_proc: must be non-decreasing"),
        ("entry_proc", [0, 0, 2, 2, 3], "entry_proc: must be in [0, 3)"),
        ("start_vpn", [10, 40, 0, 600, 5000], "start_vpn: entries of a process must be sorted"),
        ("start_vpn", [10, 100, 0, 600, (1 << 20) - 2], "start_vpn: entry must end at or below"),
        ("threads", [1, 0, 2], "threads: must be >= 1"),
        ("user_va_pages", [1 << 20, 1 << 20, 1 << 37], "user_va_pages: must be <="),
        ("virtual_pages", [50, 20, 512], "virtual_pages: expected shape (5,)"),
        ("threads", [1, 2], "threads: expected the shape of user_va_pages (3,)"),
        ("resident_pages", [50.5, 0, 7, 400, 3], "resident_pages: expected integers"),
    ],
)
def test_bad_fields_raise_naming_the_field(field, value, message):
    fields = _three_procs()
    fields[field] = value
    with pytest.raises(ValueError, match=re.escape(message)):
        AddressSpaces(**fields)  # type: ignore[arg-type]


def test_from_processes_keeps_totals_and_layout_rules():
    rng = np.random.default_rng(7)
    entries = rng.integers(1, 1500, 60)
    virtual = entries + rng.integers(0, 500_000, 60)
    resident = (virtual * rng.uniform(0, 0.5, 60)).astype(np.int64)
    anon = rng.uniform(0.3, 0.9, 60)
    spaces = AddressSpaces.from_processes(
        rng, entries=entries, virtual_pages=virtual, resident_pages=resident, anon_fraction=anon
    )
    assert spaces.entries_per_proc.tolist() == entries.tolist()
    assert spaces.virtual_pages_per_proc.tolist() == virtual.tolist()
    # Each kind holds at most half the process: its entries always have room for it.
    assert spaces.resident_pages_per_proc.tolist() == resident.tolist()
    assert np.array_equal(spaces.anon_resident_pages_per_proc, np.rint(resident * anon))
    assert np.all(spaces.resident_pages <= spaces.virtual_pages)
    # sharers: anonymous entries are private
    assert np.all(spaces.sharers[spaces.is_anon] == 1)


def test_from_processes_same_seed_same_bits():
    a = random_batch(3, n_procs=20)
    b = random_batch(3, n_procs=20)
    for f in dataclasses.fields(AddressSpaces):
        assert np.array_equal(np.asarray(getattr(a, f.name)), np.asarray(getattr(b, f.name)))


def test_from_processes_rejects_impossible_totals():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="resident_pages: must be <= virtual_pages"):
        AddressSpaces.from_processes(rng, entries=2, virtual_pages=10, resident_pages=11)
    with pytest.raises(ValueError, match="virtual_pages: must be >= entries"):
        AddressSpaces.from_processes(rng, entries=20, virtual_pages=10, resident_pages=1)
    with pytest.raises(ValueError, match="user_va_pages: process 0 needs more"):
        AddressSpaces.from_processes(
            rng, entries=2, virtual_pages=10_000, resident_pages=1, user_va_pages=5_000
        )


def test_resident_vpns_respect_entries_and_placements():
    spaces = random_batch(11, n_procs=12)
    procs, vpns = spaces.resident_vpns(np.random.default_rng(1))
    entry = np.repeat(np.arange(spaces.n_entries), spaces.resident_pages)
    assert vpns.size == spaces.resident_pages.sum()
    assert np.array_equal(procs, spaces.entry_proc[entry])
    assert np.all(vpns >= spaces.start_vpn[entry])
    assert np.all(vpns < spaces.start_vpn[entry] + spaces.virtual_pages[entry])
    keys = (procs << 36) | vpns
    assert np.all(np.diff(keys) > 0)  # sorted and distinct
    offsets = vpns - spaces.start_vpn[entry]
    rank = np.arange(vpns.size) - np.repeat(
        np.cumsum(spaces.resident_pages) - spaces.resident_pages, spaces.resident_pages
    )
    dense = spaces.placement[entry] == PLACEMENT_DENSE
    assert np.array_equal(offsets[dense], rank[dense])
    clustered = spaces.placement[entry] == PLACEMENT_CLUSTERED
    clusters = np.asarray(spaces.cluster_pages)[entry]
    full_slots = spaces.virtual_pages[entry] // clusters
    enough = full_slots >= -(-spaces.resident_pages[entry] // clusters)
    runs_ok = clustered & enough
    # a run fills its slot from the start: a page's offset within its slot equals its rank's
    assert np.array_equal((offsets % clusters)[runs_ok], (rank % clusters)[runs_ok])


def test_uniform_placement_is_uniform_over_the_entry():
    spaces = single_entry(1000, 100, placement=PLACEMENT_UNIFORM)
    rng = np.random.default_rng(5)
    hits = np.zeros(1000)
    for _ in range(400):
        hits[spaces.resident_vpns(rng)[1]] += 1
    # each page resident with probability 0.1: 40 expected hits per page
    by_decile = hits.reshape(10, 100).sum(axis=1)
    assert np.all(np.abs(by_decile - 4000) < 4 * np.sqrt(4000 * 0.9))
