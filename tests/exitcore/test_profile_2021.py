"""Soft check: the 2021 profile of a 16-core arm64 ``make -j17`` (DESIGN.md sections 6 and 9).

Published shares of all CPU time (cores x wall): 18 % spinning on KERNEL_LOCK, 10 % on
SCHED_LOCK, 12 % on the page-queue lock, 30 % in userland. The check is soft: each share of the
model must be within a factor of two of the profile's, or be a recorded gap (a finding, with the
share the model gives at this commit). The profile is ``role: check`` material: nothing is fitted
to it.

The model's point: ``arm64_altra80`` at 16 cores (the profile does not name its machine; this
is the arm64 profile with the right core type), ``kernel_build`` with 17 slots, ``baseline_2024``
without the per-CPU page cache and with the amap list free: the 2021 kernel predates the 2024
unlock of the reaper, the cache and the per-page amap free. It also took KERNEL_LOCK in more
fault and system-call paths than the 2024 kernel; the mix's ``klock_frac`` is the fitted 2024
figure, so the KERNEL_LOCK share is a lower bound.
"""

from __future__ import annotations

import numpy as np
import pytest

from exitcore import presets
from exitcore.simulate import PointParams, simulate

CORES = 16
PROFILE = {"klock": 0.18, "schedlock": 0.10, "pageq": 0.12, "user": 0.30}
"""Published share of all CPU time per lock spun on (and ``user``)."""

KNOWN_GAPS = {
    # The wake-up refit (model 0.7.0) leaves every spin lock of this build little spun on: 0.8 %
    # of CPU on KERNEL_LOCK, 1.2 % on the page-queue lock, 0.9 % on the free-page lock, and
    # 38 % user; 25 % is idle and the waits are on the compilers' shared object lock (39 % of
    # CPU time, mostly asleep), a sleeping lock the profile does not list. No calibrate target
    # separates the locks, and the model lacks the 2021 kernel's locked fault paths.
    "klock": 0.0076,
    "schedlock": 0.0001,
    "pageq": 0.0119,
}
"""Share the model gives at this commit (seeds 0-2), for each share outside a factor of two."""


@pytest.fixture(scope="module")
def shares() -> dict[str, float]:
    mix = {**presets.load("mix", "kernel_build"), "slots": 17}
    variant = {
        **presets.load("variant", "baseline_2024"),
        "percpu_page_cache": 0,
        "amap_free": "list",
    }
    params = PointParams.from_dicts(presets.load("machine", "arm64_altra80"), mix, variant, CORES)
    per_seed = []
    for seed in range(3):
        r = simulate(params, np.random.default_rng(seed)).as_dict()
        cpu_s = CORES * r["wall_s"]
        spun = {lock: r[f"{lock}_wait_s"] / cpu_s for lock in PROFILE if lock != "user"}
        per_seed.append({**spun, "user": r["user_s"] / cpu_s})
    return {k: float(np.mean([s[k] for s in per_seed])) for k in PROFILE}


def within_factor_two(model: float, published: float) -> bool:
    return published / 2 <= model <= 2 * published


@pytest.mark.parametrize("share", sorted(PROFILE))
def test_share_is_within_a_factor_of_two_or_a_recorded_gap(
    shares: dict[str, float], share: str
) -> None:
    model, published = shares[share], PROFILE[share]
    if share not in KNOWN_GAPS:
        assert within_factor_two(model, published), (share, model, published)
        return
    # a listed gap stays a gap (an improvement updates the table and the README) ...
    assert not within_factor_two(model, published), f"{share} now within: {model:.3f}"
    # ... and does not drift far from what was recorded
    assert abs(model - KNOWN_GAPS[share]) <= max(0.01, 0.5 * KNOWN_GAPS[share]), (share, model)
