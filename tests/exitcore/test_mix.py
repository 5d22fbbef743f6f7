"""Process mixes: parameters, phase layout, drawn workloads, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from exitcore import presets
from exitcore.mix import MixParams, generate

PRESET_MIXES = presets.load_all("mix")


def kernel_build(**change: object) -> MixParams:
    return MixParams.from_dict({**PRESET_MIXES["kernel_build"], **change})


@pytest.mark.parametrize("name", sorted(PRESET_MIXES))
def test_builtin_mixes_parse_round_trip_and_generate(name: str) -> None:
    mix = MixParams.from_dict(PRESET_MIXES[name])
    assert MixParams.from_dict(mix.to_dict()) == mix
    w = generate(mix, 4, np.random.default_rng(0))
    assert w.processes == w.phase_ptr[-1] > 0
    assert w.spaces.n_procs <= w.processes
    assert np.all(w.resident_pages <= w.virtual_pages)
    assert np.all(w.anon_pages <= w.resident_pages)


def test_unknown_parameter_names_itself_and_lists_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match=r"compilers_per_core.*allowed.*user_s_median"):
        MixParams.from_dict({**PRESET_MIXES["kernel_build"], "compilers_per_core": 3})


def test_missing_parameter_is_named() -> None:
    d = dict(PRESET_MIXES["kernel_build"])
    del d["klock_hold_us"]
    with pytest.raises(ValueError, match="klock_hold_us"):
        MixParams.from_dict(d)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"processes": 0, "processes_per_slot": 0}, "processes"),
        ({"slots": 0}, "slots"),
        ({"user_s_median": 0.0}, "user_s_median"),
        ({"klock_syscall_frac": 1.5}, "klock_syscall_frac"),
        ({"vnode_shared_frac": -0.1}, "vnode_shared_frac"),
        ({"vnode_pool": 0}, "vnode_pool"),
        ({"lock_resolution_us": -1.0}, "lock_resolution_us"),
        ({"pieces": 0}, "pieces"),
        ({"rss_mb_min": 200.0}, "rss_mb_min"),
        ({"placement": "diagonal"}, "placement"),
        ({"processes": -5}, "processes"),
        ({"threads": 1.5}, "threads"),
        ({"io_ops": -1.0}, "io_ops"),
        ({"blocked_per_user": 0.1}, "blocked_per_user"),
    ],
)
def test_bad_parameters_raise_naming_the_field(change: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        kernel_build(**change)


@pytest.mark.parametrize("cores", [0, -3])
def test_bad_core_count(cores: int) -> None:
    with pytest.raises(ValueError, match="cores"):
        generate(kernel_build(), cores, np.random.default_rng(0))


def test_phases_barriers_and_serial_tail() -> None:
    mix = kernel_build(processes=100, phases=3, serial_per_barrier=2, serial_tail=1)
    w = generate(mix, 6, np.random.default_rng(0))
    sizes = np.diff(w.phase_ptr)
    # 100 parallel processes in 3 phases (34, 33, 33), two serial steps between, a link
    assert list(sizes) == [34, 2, 33, 2, 33, 1]
    assert list(w.phase_slots) == [6, 1, 6, 1, 6, 1]


def test_slots_default_to_cores_and_processes_per_slot_scales() -> None:
    fork_exit = MixParams.from_dict(PRESET_MIXES["fork_exit"])
    w = generate(fork_exit, 12, np.random.default_rng(0))
    assert list(w.phase_slots) == [12]
    assert w.processes == 12 * fork_exit.processes_per_slot
    configure = MixParams.from_dict(PRESET_MIXES["configure"])
    assert list(generate(configure, 64, np.random.default_rng(0)).phase_slots) == [1]


def test_times_follow_the_parameters() -> None:
    mix = kernel_build(serial_tail=0)
    w = generate(mix, 8, np.random.default_rng(3))
    np.testing.assert_allclose(w.sys_s, mix.sys_s_fixed + mix.sys_per_user * w.user_s)
    # lognormal with moment-matched normal draws: the median is exact
    assert np.median(np.log(w.user_s)) == pytest.approx(np.log(mix.user_s_median), abs=0.05)
    # the mean of a lognormal is median * exp(sigma^2 / 2)
    expected_mean = mix.user_s_median * np.exp(mix.user_s_sigma**2 / 2)
    assert w.user_s.mean() == pytest.approx(expected_mean, rel=0.01)
    # I/O in proportion to user time, io_ops for a process of the mean user time
    np.testing.assert_allclose(w.io_ops, mix.io_ops * w.user_s / expected_mean)
    assert w.io_ops.mean() == pytest.approx(mix.io_ops, rel=0.01)


def test_lock_counts_follow_the_work() -> None:
    """Counts, by hand: system calls follow user time, page-queue moves resident pages, one
    page allocation per anonymous page, kernel-map acquisitions per process."""
    mix = kernel_build(serial_tail=0)
    w = generate(mix, 8, np.random.default_rng(3))
    work = w.user_s / (mix.user_s_median * np.exp(mix.user_s_sigma**2 / 2))
    calls = mix.syscalls * work
    np.testing.assert_allclose(w.lock_counts[:, 0], calls * mix.klock_syscall_frac)
    np.testing.assert_allclose(w.lock_counts[:, 1], calls * mix.schedlock_per_syscall)
    # faults_per_page allocations per anonymous page, all but the last freed before the exit
    np.testing.assert_allclose(w.lock_counts[:, 2], (2 * mix.faults_per_page - 1) * w.anon_pages)
    np.testing.assert_allclose(w.lock_counts[:, 3], w.resident_pages * mix.pageq_per_page)
    assert np.all(w.lock_counts[:, 4] == mix.kmmap_acq)
    np.testing.assert_allclose(w.lock_counts[:, 5], mix.vnode_acq * work)
    assert w.lock_hold_s[0] == pytest.approx(mix.klock_hold_us * 1e-6)
    # each process's own objects are one of the pool's other locks
    assert w.vnode_own.min() >= 1 and w.vnode_own.max() < mix.vnode_pool
    assert len(np.unique(w.vnode_own)) > mix.vnode_pool // 2


@pytest.mark.parametrize("name", sorted(PRESET_MIXES))
def test_only_mixes_that_read_files_do_io(name: str) -> None:
    w = generate(MixParams.from_dict(PRESET_MIXES[name]), 4, np.random.default_rng(0))
    # fork_exit's child exits at once, sparse_mmap and big_rss touch anonymous memory only
    assert (w.io_ops.sum() > 0) == (name in ("kernel_build", "configure"))
    assert np.all(w.io_ops >= 0)


def test_resident_memory_range() -> None:
    mix = kernel_build()
    w = generate(mix, 8, np.random.default_rng(1))
    mb = w.resident_pages / 256
    assert mb.min() >= mix.rss_mb_min - 0.01 and mb.max() <= mix.rss_mb_max + 0.01


def test_same_seed_same_workload_and_different_seed_differs() -> None:
    a = generate(kernel_build(), 8, np.random.default_rng(7))
    b = generate(kernel_build(), 8, np.random.default_rng(7))
    c = generate(kernel_build(), 8, np.random.default_rng(8))
    assert np.array_equal(a.user_s, b.user_s) and np.array_equal(a.space_of, b.space_of)
    assert np.array_equal(a.spaces.start_vpn, b.spaces.start_vpn)
    assert not np.array_equal(a.user_s, c.user_s)
