"""simulate(): one point end to end, determinism, metric consistency, bad input."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from exitcore import PointParams, engine, presets, simulate
from exitcore.mix import MixParams, generate
from exitcore.result import PointResult
from exitcore.simulate import build_segments, teardown_for

PRESET_MACHINES = presets.load_all("machine")
PRESET_MIXES = presets.load_all("mix")
PRESET_VARIANTS = presets.load_all("variant")

SMALL_BUILD = {**PRESET_MIXES["kernel_build"], "processes": 120, "address_space_templates": 16}


def params(
    machine: str = "arm64_m2", mix: dict | None = None, variant: str = "baseline", cores: int = 8
) -> PointParams:
    return PointParams.from_dicts(
        PRESET_MACHINES[machine], mix or SMALL_BUILD, PRESET_VARIANTS[variant], cores
    )


def test_result_fields_are_consistent() -> None:
    r = simulate(params(), np.random.default_rng(0))
    assert isinstance(r, PointResult)
    assert r.exits == 121  # 120 compilers and the link
    assert r.exits_per_s == pytest.approx(r.exits / r.wall_s)
    assert 0 < r.notify_latency_mean_s <= r.notify_latency_p99_s <= r.notify_latency_max_s
    assert 1 <= r.zombies_max <= 8
    assert r.unreclaimed_mb_max > 0
    ops = sum(getattr(r, f"op_x{i}_s") for i in range(9))
    assert ops == pytest.approx(r.ctx_exit_s + r.ctx_exit_klock_s + r.ctx_reaper_s)
    assert r.reaper_busy_s >= r.ctx_reaper_s  # its work, plus spinning for KERNEL_LOCK
    assert r.klock_hold_s >= r.ctx_exit_klock_s
    assert r.page_lookups > 0 and r.tlb_invalidations > 0 and r.ptes_removed > 0
    assert not r.is_what_if


def test_same_seed_is_bit_identical_and_seeds_differ() -> None:
    a = simulate(params(), np.random.default_rng(42)).as_dict()
    b = simulate(params(), np.random.default_rng(42)).as_dict()
    c = simulate(params(), np.random.default_rng(43)).as_dict()
    assert a == b
    assert a["wall_s"] != c["wall_s"] and a["user_s"] != c["user_s"]


def test_what_if_flag() -> None:
    assert simulate(params(cores=12), np.random.default_rng(0)).is_what_if
    assert not simulate(params(cores=4), np.random.default_rng(0)).is_what_if


def test_linux_fullmm_has_no_reaper_work_and_no_zombie_memory() -> None:
    r = simulate(params(variant="linux_fullmm"), np.random.default_rng(0))
    assert r.reaper_busy_s == 0.0 and r.ctx_reaper_s == 0.0
    assert r.notify_latency_max_s <= r.wall_s


def test_baseline_keeps_memory_until_the_reaper_frees_it() -> None:
    base = simulate(params(), np.random.default_rng(0))
    purge = simulate(params(variant="pmap_purge"), np.random.default_rng(0))
    # pmap_purge frees the pages during exit: memory is held only while exits run, not while
    # zombies wait for the reaper
    assert 0 < purge.unreclaimed_mb_max < base.unreclaimed_mb_max
    assert purge.zombies_max >= 1


@pytest.mark.parametrize("mix", sorted(PRESET_MIXES))
def test_every_builtin_mix_runs(mix: str) -> None:
    d = dict(PRESET_MIXES[mix])
    if d["processes_per_slot"] == 0:
        d["processes"] = min(d["processes"], 200)
    r = simulate(params(mix=d, cores=4), np.random.default_rng(1))
    assert r.exits > 0 and r.wall_s > 0 and 0 <= r.cpu_util <= 1


@pytest.mark.parametrize("cores", [0, -1])
def test_bad_core_count(cores: int) -> None:
    with pytest.raises(ValueError, match="cores"):
        params(cores=cores)


def test_zero_slots_unknown_parameter_and_empty_mix() -> None:
    with pytest.raises(ValueError, match="slots"):
        params(mix={**SMALL_BUILD, "slots": 0})
    with pytest.raises(ValueError, match="make_flags"):
        params(mix={**SMALL_BUILD, "make_flags": "-k"})
    with pytest.raises(ValueError, match="processes"):
        params(mix={**SMALL_BUILD, "processes": 0})


def test_params_are_frozen() -> None:
    p = params()
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.cores = 3  # type: ignore[misc]


def configure(processes: int = 300) -> dict:
    return {**PRESET_MIXES["configure"], "processes": processes, "address_space_templates": 16}


@pytest.mark.parametrize("machine", sorted(PRESET_MACHINES))
def test_configure_wall_time_stays_within_a_sane_factor_of_the_m2(machine: str) -> None:
    # One serial chain of tiny processes: its wall time is CPU time plus blocked I/O. Every
    # machine's CPU is within 2x of the M2's (cpu_speed, kernel_speed >= 0.5) and a storage
    # stall costs milliseconds, so no machine may be 5x slower or faster (a blocked-time
    # multiplier fitted to one mix once made configure 200x slower on one laptop).
    m2 = simulate(params(mix=configure(), cores=8), np.random.default_rng(0))
    other = simulate(params(machine, mix=configure(), cores=8), np.random.default_rng(0))
    assert 0.2 < other.wall_s / m2.wall_s < 5.0


@pytest.mark.parametrize("machine", sorted(PRESET_MACHINES))
@pytest.mark.parametrize("mix", ["fork_exit", "sparse_mmap", "big_rss"])
def test_a_mix_without_io_never_blocks(machine: str, mix: str) -> None:
    p = params(machine, mix={**PRESET_MIXES[mix], "io_ops": 0.0}, cores=4)
    w = generate(p.mix, 4, np.random.default_rng(0))
    segs = build_segments(
        w,
        teardown_for(w, p.variant, p.machine, 4),
        p.machine.cpu_speed,
        p.machine.io_op_s,
        p.machine.kernel_speed,
    )
    assert not np.any(segs.seg_kind == engine.BLOCK)


@pytest.mark.parametrize("machine", sorted(PRESET_MACHINES))
def test_io_adds_exactly_its_blocked_time_to_one_serial_chain(machine: str) -> None:
    # One chain on 8 CPUs: nothing overlaps or contends, so each I/O stall lands on the critical
    # path whole. Blocked time = io_op_s * io_ops * sum(user) / mean user of the lognormal.
    mix = configure(100)
    slow = {**PRESET_MACHINES[machine], "io_op_s": 0.004}
    fast = {**PRESET_MACHINES[machine], "io_op_s": 0.0}
    runs = [
        simulate(
            PointParams.from_dicts(m, mix, PRESET_VARIANTS["baseline"], 8),
            np.random.default_rng(5),
        )
        for m in (slow, fast)
    ]
    user_s = generate(MixParams.from_dict(mix), 8, np.random.default_rng(5)).user_s
    mean_user = mix["user_s_median"] * np.exp(mix["user_s_sigma"] ** 2 / 2)
    blocked = 0.004 * mix["io_ops"] * user_s.sum() / mean_user
    assert runs[0].wall_s - runs[1].wall_s == pytest.approx(blocked, rel=1e-9)
    # blocked time is neither user nor sys
    assert runs[0].user_s == pytest.approx(runs[1].user_s, rel=1e-9)
    assert runs[0].sys_s == pytest.approx(runs[1].sys_s, rel=1e-9)
