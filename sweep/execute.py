"""Chunks of points on Ray: the only module that knows Ray.

- Points are grouped by (mix, cores) (points of a group cost about the same) and cut into
  chunks sized from measured cost so a task runs ``task_target_s`` seconds (default 0.5 s, far
  above Ray's ~1 ms per-task overhead); the first chunk of an unmeasured group is one point.
  Heavier groups go first, and no chunk takes more than 1/(2 x CPUs) of what is left, so the
  last tasks are short and the workers finish together.
- Shared inputs (every resolved parameter dict, the point function) are ``ray.put`` once; each
  task carries only its :class:`~sweep.plan.Point` records.
- At most ``max_tasks_in_flight`` tasks (default 2 x cluster CPUs + 2) are submitted; finished
  ones are taken with ``ray.wait`` as they complete, in any order.
- A point that raises becomes a ``status='error'`` row inside the task; a task that dies
  (worker crash, node loss) is retried by Ray ``max_retries`` times and, if it still fails, its
  points are recorded as errors too. Nothing is lost silently.

Each point draws from its own ``SeedSequence`` (:meth:`sweep.plan.Point.rng`), so results do
not depend on chunking, worker count or completion order.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import ray

from sweep.compute import Shared, compute_chunk
from sweep.errors import StudyError
from sweep.plan import Point
from sweep.store import rows_table

TASK_MAX_RETRIES = 3
"""Ray re-runs a task whose worker died this many times (estimate: enough for a flaky node)."""


@ray.remote(max_retries=TASK_MAX_RETRIES)
def _compute_chunk_task(shared: Shared, chunk: list[Point]) -> tuple[pa.Table, float]:
    return compute_chunk(shared, chunk)


def connect(address: str | None, num_cpus: int | None) -> None:
    """Start or join Ray once per process (a multirun reuses the first job's Ray).

    ``address`` None: join ``RAY_ADDRESS`` if the environment sets it (as Ray does), else start
    a fresh local Ray with ``num_cpus`` (None = every core) -- ``address="local"``, so a cluster
    someone started with ``ray start`` on this machine is never joined by accident.
    ``auto`` or ``host:port``: join that cluster.
    """
    if ray.is_initialized():
        return
    quiet: dict[str, Any] = {
        "log_to_driver": False,
        "logging_level": logging.ERROR,  # Ray warns on every start (token auth notice)
        "include_dashboard": False,
    }
    try:
        if address is not None or os.environ.get("RAY_ADDRESS"):
            from sweep.cluster import join  # also checks the cluster's Ray and Python versions

            print(f"sweep: cluster {join(address, **quiet)}", file=sys.stderr)
        else:
            ray.init(address="local", num_cpus=num_cpus, **quiet)
    except StudyError:
        raise
    except (ConnectionError, ValueError, RuntimeError) as exc:
        where = address or os.environ.get("RAY_ADDRESS") or "local"
        detail = " ".join(str(exc).split())[:300]
        raise StudyError(f"ray.address={where}: cannot start or join Ray: {detail}") from None


def cluster_cpus() -> int:
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


@dataclass
class RunStats:
    points: int = 0
    failed: int = 0
    tasks: int = 0
    lost_tasks: int = 0
    compute_s: float = 0.0
    wall_s: float = 0.0


class _Chunker:
    """Cuts the todo list into chunks of about ``target_s`` seconds from measured costs."""

    def __init__(
        self, points: Sequence[Point], target_s: float, fixed: int | None, cpus: int
    ) -> None:
        groups: dict[tuple[str, int], deque[Point]] = defaultdict(deque)
        for point in points:
            groups[(point.mix, point.cores)].append(point)
        # Heaviest first (cost grows with cores for every mix), so stragglers are short.
        self.order = deque(sorted(groups, key=lambda key: (-key[1], key[0])))
        self.groups = groups
        self.remaining = len(points)
        self.target_s = target_s
        self.fixed = fixed
        self.cpus = cpus
        self.cost_s: dict[tuple[str, int], float] = {}

    def __bool__(self) -> bool:
        return self.remaining > 0

    def observe(self, chunk: Sequence[Point], compute_s: float) -> None:
        key = (chunk[0].mix, chunk[0].cores)
        per_point = compute_s / len(chunk)
        old = self.cost_s.get(key)
        self.cost_s[key] = per_point if old is None else 0.5 * (old + per_point)

    def _estimate(self, key: tuple[str, int]) -> float | None:
        if key in self.cost_s:
            return self.cost_s[key]
        same_mix = [(c, s) for (m, c), s in self.cost_s.items() if m == key[0]]
        if not same_mix:
            return None
        cores, cost = min(same_mix, key=lambda cs: abs(math.log(cs[0] / key[1])))
        return cost * key[1] / cores  # (estimate) cost roughly linear in cores

    def next_chunk(self) -> list[Point]:
        key = self.order[0]
        group = self.groups[key]
        if self.fixed is not None:
            size = self.fixed
        else:
            cost = self._estimate(key)
            size = 1 if cost is None else max(1, int(self.target_s / max(cost, 1e-6)))
            size = min(size, max(1, math.ceil(self.remaining / (2 * self.cpus))))
        chunk = [group.popleft() for _ in range(min(size, len(group)))]
        if not group:
            self.order.popleft()
        self.remaining -= len(chunk)
        return chunk


def run(
    points: Sequence[Point],
    shared: Shared,
    on_rows: Callable[[pa.Table], None],
    *,
    task_target_s: float = 0.5,
    max_tasks_in_flight: int | None = None,
    chunk_points: int | None = None,
    on_tick: Callable[[], None] | None = None,
) -> RunStats:
    """Compute ``points`` on the connected Ray; hand each finished chunk's rows to ``on_rows``.

    ``on_tick`` is called at least once a second (for time-based flushes).
    """
    start = time.perf_counter()
    stats = RunStats()
    if not points:
        return stats
    cpus = cluster_cpus()
    cap = max_tasks_in_flight or 2 * cpus + 2
    chunker = _Chunker(points, task_target_s, chunk_points, cpus)
    shared_ref = ray.put(shared)
    in_flight: dict[ray.ObjectRef, list[Point]] = {}
    while chunker or in_flight:
        while chunker and len(in_flight) < cap:
            chunk = chunker.next_chunk()
            in_flight[_compute_chunk_task.remote(shared_ref, chunk)] = chunk
            stats.tasks += 1
        ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=1.0)
        for ref in ready:
            chunk = in_flight.pop(ref)
            try:
                table, compute_s = ray.get(ref)
                chunker.observe(chunk, compute_s)
            except ray.exceptions.RayError as exc:
                stats.lost_tasks += 1
                message = " ".join(f"task failed: {type(exc).__name__}: {exc}".split())[:2000]
                table = rows_table(
                    chunk,
                    [None] * len(chunk),
                    [message] * len(chunk),
                    shared.study,
                    shared.config_hash,
                )
                compute_s = 0.0
            stats.points += table.num_rows
            stats.failed += table.num_rows - _count_ok(table)
            stats.compute_s += compute_s
            on_rows(table)
        if on_tick is not None:
            on_tick()
    stats.wall_s = time.perf_counter() - start
    return stats


def _count_ok(table: pa.Table) -> int:
    return sum(1 for status in table.column("status").to_pylist() if status == "ok")
