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
    # Where the baseline reaper is the busy server (80-CPU machine, 64 jobs), exited compilers
    # wait for it with their pages; pmap_purge frees them in exit, so memory is held only while
    # exits run. (On 8 cores, with the reaper mostly idle, the two differ by sampling noise.)
    # KERNEL_LOCK, the free-page and page-queue locks and the object locks are made cheap (the
    # low ends of the fit ranges, no hold growth): this is about where pages are freed, and 64
    # compilers and exits at once would otherwise wait on those locks, not for the reaper.
    mix = dict(SMALL_BUILD, processes=400, pageq_hold_us=0.1, klock_hold_us=2.0, vnode_hold_us=0.3)
    machine = PRESET_MACHINES["arm64_altra80"] | {
        "lock_hold_growth": 0.0,
        "arch_overrides": {
            "fpageq_acq_ns": 100.0,
            "fpageq_page_ns": 20.0,
            "page_free_pageq_ns": 20.0,
        },
    }

    def run(variant: str) -> PointResult:
        p = PointParams.from_dicts(machine, mix, PRESET_VARIANTS[variant], 64)
        return simulate(p, np.random.default_rng(0))

    base, purge = run("baseline"), run("pmap_purge")
    assert base.reaper_util > 0.75  # the premise: the reaper is the backlog
    assert 0 < 2 * purge.unreclaimed_mb_max < base.unreclaimed_mb_max
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
    segs = build_segments(w, teardown_for(w, p.variant, p.machine, 4), p.variant, p.machine)
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


@pytest.mark.parametrize(
    ("machine", "variant", "cores", "slots", "kernel"),
    [
        ("arm64_m2", "baseline", 8, None, {}),  # target 4
        ("arm64_m2", "pmap_deactivate", 8, None, {}),  # target 5: the KERNEL_LOCK-heavy one
        # target 10: every lock contended
        ("arm64_altra80", "baseline_2024", 80, 32, {"percpu_page_cache": 0, "amap_free": "list"}),
    ],
)
def test_results_do_not_depend_on_how_work_is_cut_into_pieces(
    machine: str, variant: str, cores: int, slots: int | None, kernel: dict[str, object]
) -> None:
    """Doubling the granularity (pieces 16 -> 32) moves wall, user and sys by less than 1 %
    (the mean change of four seeds, each compared with itself: what stays is the cut's, not the
    seed's): acquisitions have their own count, hold and place in the user time, so the cut only
    adds scheduling points. (With a lock section per piece, as the first contention model had,
    target 5's sys grew by several seconds per doubling; with each piece's system time laid out
    after its user burst, target 10's sys moved -1.5 %: its faults came in bursts.)"""
    build = {**PRESET_MIXES["kernel_build"], "processes": 600, "slots": slots}
    v = {**PRESET_VARIANTS[variant], **kernel}
    change: dict[str, list[float]] = {"wall_s": [], "user_s": [], "sys_s": []}
    for seed in range(4):
        got = {}
        for pieces in (16, 32):
            mix = {**build, "pieces": pieces}
            p = PointParams.from_dicts(PRESET_MACHINES[machine], mix, v, cores)
            got[pieces] = simulate(p, np.random.default_rng(seed))
        for name in change:
            change[name].append(getattr(got[32], name) / getattr(got[16], name) - 1)
    for name, values in change.items():
        mean = float(np.mean(values))
        assert abs(mean) < 0.01, f"{name}: {mean:+.2%} from 16 to 32 pieces"


@pytest.mark.parametrize(
    ("machine", "variant", "cores", "slots", "kernel"),
    [
        ("arm64_m2", "baseline", 8, None, {}),  # target 4
        ("arm64_m2", "pmap_deactivate", 8, None, {}),  # target 5: long KERNEL_LOCK sections
        # target 10: the shared object lock saturated, wake-all releases
        ("arm64_altra80", "baseline_2024", 80, 32, {"percpu_page_cache": 0, "amap_free": "list"}),
    ],
)
def test_results_do_not_depend_on_the_lock_resolution(
    machine: str, variant: str, cores: int, slots: int | None, kernel: dict[str, object]
) -> None:
    """The shipped resolution (100 us) against 4 us, where no kernel_build hold above 4 us is
    merged any more: wall, user and sys within 1 % (the mean of two seeds' paired changes).
    Without the engine's rules for merged acquisitions target 5's sys moved 5 % and target
    10's wall 23 % (model 0.5.0's constants); without the spin budget of a merged request scaled
    by the real ones it stands for, targets 4 and 5's sys moved 4.5 % (model 0.7.0's)."""
    build = {**PRESET_MIXES["kernel_build"], "processes": 600, "slots": slots}
    v = {**PRESET_VARIANTS[variant], **kernel}
    change: dict[str, list[float]] = {"wall_s": [], "user_s": [], "sys_s": []}
    for seed in range(2):
        got = {}
        for res in (build["lock_resolution_us"], 4.0):
            mix = {**build, "lock_resolution_us": res}
            p = PointParams.from_dicts(PRESET_MACHINES[machine], mix, v, cores)
            got[res] = simulate(p, np.random.default_rng(seed))
        coarse, fine = got.values()
        for name in change:
            change[name].append(getattr(fine, name) / getattr(coarse, name) - 1)
    for name, values in change.items():
        mean = float(np.mean(values))
        assert abs(mean) < 0.01, f"{name}: {mean:+.2%} from the shipped resolution to 4 us"


def test_wake_all_costs_do_not_depend_on_the_lock_resolution() -> None:
    """Target 10's kernel with hot object locks (most jobs on the compiler's vnode, 10 us holds),
    so that its wake-all rwlocks have many sleepers: sys and wall at the shipped resolution
    (100 us, where a release stands for the wake-ups of the real acquisitions it merges) within
    2 % of 25 us (one seed; the wake-ups add about 60 % to sys here). Counting one wake-up per
    merged release gave sys 24 % short at 100 us."""
    build = {
        **PRESET_MIXES["kernel_build"], "processes": 600, "slots": 32,
        "vnode_hold_us": 10.0, "vnode_shared_frac": 0.9,
    }  # fmt: skip
    v = {**PRESET_VARIANTS["baseline_2024"], "percpu_page_cache": 0, "amap_free": "list"}
    got = {}
    for wakeup in ("one", "all"):
        for res in (build["lock_resolution_us"], 25.0):
            mix = {**build, "lock_resolution_us": res}
            p = PointParams.from_dicts(
                PRESET_MACHINES["arm64_altra80"], mix, {**v, "rw_wakeup": wakeup}, 80
            )
            got[wakeup, res] = simulate(p, np.random.default_rng(0))
    assert got["all", 100.0].sys_s > 1.3 * got["one", 100.0].sys_s  # the wake-ups matter here
    for name in ("wall_s", "sys_s"):
        change = getattr(got["all", 25.0], name) / getattr(got["all", 100.0], name) - 1
        assert abs(change) < 0.02, f"{name}: {change:+.2%} from 100 to 25 us"


def test_target_11_does_not_depend_on_the_lock_resolution() -> None:
    """Target 11 (the 80-CPU machine, the March 2024 kernel, make -j64) in full: sys and wall at
    the shipped resolution within 2 % of 16 us, on each of three seeds. Its page-queue lock
    collapses when a spin lock's hold grows too fast with its queue: with the Altra's
    ``lock_hold_growth`` at 0.0528 (the wake-all fit's, at 100 us) it did at 16 us and not at
    100 us (sys +15 %, one seed in three at 0.033), so the fit saw a different model from the
    converged one."""
    build = {**PRESET_MIXES["kernel_build"], "slots": 64}
    v = {**PRESET_VARIANTS["baseline_2024"], "percpu_page_cache": 0, "amap_free": "list"}
    for seed in range(3):
        got = {}
        for res in (build["lock_resolution_us"], 16.0):
            mix = {**build, "lock_resolution_us": res}
            p = PointParams.from_dicts(PRESET_MACHINES["arm64_altra80"], mix, v, 80)
            got[res] = simulate(p, np.random.default_rng(seed))
        coarse, fine = got.values()
        for name in ("wall_s", "sys_s"):
            change = getattr(fine, name) / getattr(coarse, name) - 1
            assert abs(change) < 0.02, f"seed {seed}: {name}: {change:+.2%} from 100 to 16 us"


def test_a_saturated_sleeping_lock_does_not_depend_on_the_lock_resolution() -> None:
    """The default study's M2 kernel build at 128 cores (a what-if): the object lock ~95 %
    utilised and the reaper ~93 % busy, so the jobs not running split between the lock's
    queue and the zombies, and that split turns on how long the reaper's one short
    acquisition of the lock waits behind the compilers' merged ones. Wall within 1 % and the
    object lock's wait within 10 % from the shipped resolution to 4 us, where no object-lock
    acquisition is merged (two seeds). With the merged requests queued FIFO, or placed only
    by real hold, wall moved -2.5 % and the wait 3.2x (the reaper waited for whole merged
    holds)."""
    build = PRESET_MIXES["kernel_build"]
    got: dict[float, list[float]] = {}
    for res in (build["lock_resolution_us"], 4.0):
        mix = {**build, "lock_resolution_us": res}
        p = PointParams.from_dicts(
            PRESET_MACHINES["arm64_m2"], mix, PRESET_VARIANTS["baseline"], 128
        )
        runs = [simulate(p, np.random.default_rng(seed)) for seed in range(2)]
        got[res] = [
            float(np.mean([r.wall_s for r in runs])),
            float(np.mean([r.vnode_wait_s for r in runs])),
        ]
    (wall_c, wait_c), (wall_f, wait_f) = got.values()
    assert abs(wall_f / wall_c - 1) < 0.01, f"wall {wall_f / wall_c - 1:+.2%}"
    assert abs(wait_f / wait_c - 1) < 0.10, f"object-lock wait x{wait_f / wait_c:.2f}"


def _quantile_by_hand(values: np.ndarray, q: float) -> float:
    """Linear interpolation between closest ranks (the definition of numpy's default)."""
    s = sorted(values.tolist())
    pos = q * (len(s) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (pos - lo) * (s[hi] - s[lo])


def _max_open_by_hand(starts: np.ndarray, ends: np.ndarray, weights: np.ndarray) -> float:
    """Largest total weight of [start, end) intervals open at one instant, trying every start."""
    best = 0.0
    for t in starts:
        open_now = (starts <= t) & (t < ends)
        best = max(best, float(weights[open_now].sum()))
    return best


@pytest.mark.parametrize(
    ("machine", "variant", "cores"),
    [
        ("arm64_m2", "baseline", 8),
        ("arm64_m2", "pmap_purge", 4),
        ("arm64_m2", "rip_reaper", 8),  # notified from exit: the reaper outlives the wall
        ("amd64_ryzen8845", "baseline", 16),
        ("arm64_m2", "rip_reaper", 64),  # 64 chains: zombies pile up behind the one reaper
    ],
)
def test_metrics_match_a_brute_force_recomputation_from_event_times(
    machine: str, variant: str, cores: int
) -> None:
    """Every derived metric of a point, recomputed here from the per-process event times by
    other code than exitcore.simulate.reduce_run (a p99 that became a p90, a horizon that became
    the wall, a zombie counted at its notification would all fail)."""
    from exitcore.simulate import reduce_run, run_engine

    mix = (
        {**SMALL_BUILD, "processes": 300}
        if cores < 64
        else {**PRESET_MIXES["fork_exit"], "processes_per_slot": 10}
    )
    p = params(machine, mix=mix, variant=variant, cores=cores)
    w = generate(p.mix, cores, np.random.default_rng(5))
    costs = teardown_for(w, p.variant, p.machine, cores)
    segs = build_segments(w, costs, p.variant, p.machine)
    run = run_engine(w, segs, p.variant, p.machine, cores)
    r = reduce_run(run, costs, p.variant, p.machine, cores)
    t = run.times_ns * 1e-9
    exit_t, exit_end, reap_end, notify = (
        t[:, engine.T_EXIT], t[:, engine.T_EXIT_END], t[:, engine.T_REAP_END], t[:, engine.T_NOTIFY]
    )  # fmt: skip
    latency = notify - exit_t
    assert r.notify_latency_p99_s == pytest.approx(_quantile_by_hand(latency, 0.99), rel=1e-9)
    assert r.notify_latency_mean_s == pytest.approx(sum(latency.tolist()) / len(latency))
    assert r.notify_latency_max_s == pytest.approx(max(latency.tolist()), rel=1e-9)
    wall = max(notify.tolist())
    horizon = float(t.max())  # the last event: a reaper may outlive the last notification
    assert r.wall_s == pytest.approx(wall) and r.exits == len(latency)
    if p.variant.notify_from_exit:
        assert horizon > wall  # so the utilisations below tell the two apart
    if p.variant.notify_from_exit:
        assert horizon > wall  # so the utilisations below tell the two apart
    assert r.exits_per_s == pytest.approx(len(latency) / wall)
    zombies = _max_open_by_hand(exit_t, reap_end, np.ones(len(exit_t)))
    assert r.zombies_max == zombies >= 1
    freed = reap_end if "reaper" in p.variant.contexts_of("X6") else exit_end
    mb = np.asarray(costs.resident_mb, float)
    assert r.unreclaimed_mb_max == pytest.approx(_max_open_by_hand(exit_t, freed, mb))
    assert r.reaper_util == pytest.approx(r.reaper_busy_s / (horizon * p.machine.reapers))
    assert r.klock_util == pytest.approx(r.klock_hold_s / horizon)
    busy = r.user_s + r.sys_s + r.reaper_busy_s
    assert r.cpu_util == pytest.approx(busy / (cores * horizon), rel=1e-9)
    assert r.cpu_idle_s == pytest.approx(cores * horizon - busy, rel=1e-9)
