"""Typed study specification: the plain dicts of a composed config become frozen dataclasses once.

Nothing here knows Hydra. ``sweep.__main__`` hands :meth:`StudySpec.from_dicts` the resolved
config as plain containers plus the group files (``machine/*.yaml`` and friends: the presets of
``exitcore/presets`` and the user's own) it found on Hydra's search path; everything below
works on :class:`StudySpec`.

Core-count axes accept integers and compact ranges (see :func:`parse_cores`):

- ``1..128``      -> 1, 2, 4, ..., 128 (geometric, factor 2)
- ``1..81x3``     -> 1, 3, 9, 27, 81 (geometric, factor 3)
- ``8..64+8``     -> 8, 16, ..., 64 (arithmetic, step 8)
- a list mixing both: ``[1..64,80]`` -> 1, 2, ..., 64, 80
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sweep.errors import StudyError

GROUPS: tuple[str, ...] = ("machine", "mix", "variant")
"""Config groups whose YAML files define the points' parameters, in grid order."""

_RANGE = re.compile(r"^\s*(\d+)\s*\.\.\s*(\d+)\s*(?:([x+])\s*(\d+))?\s*$")
_PLURAL = {"machine": "machines", "mix": "mixes", "variant": "variants"}
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def parse_cores(value: Any) -> tuple[int, ...]:
    """Core counts of a grid axis, in the order given, duplicates removed.

    Parameters
    ----------
    value : int, str or sequence of int/str
        Integers >= 1 or range strings ``A..B`` (x2), ``A..BxF`` (geometric, factor F >= 2),
        ``A..B+S`` (arithmetic, step S >= 1). B is included when the progression hits it.

    Raises
    ------
    StudyError
        For an empty axis, zero, negative or non-integer core counts, or a malformed range.

    Examples
    --------
    >>> parse_cores("1..16")
    (1, 2, 4, 8, 16)
    >>> parse_cores(["8..32+8", 48])
    (8, 16, 24, 32, 48)
    """
    items = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else [value]
    cores: list[int] = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int | str):
            raise StudyError(f"grid.cores: {item!r} is not an integer core count or a range A..B")
        if isinstance(item, int):
            cores.append(item)
            continue
        if item.strip().lstrip("-").isdigit():
            cores.append(int(item))
            continue
        match = _RANGE.match(item)
        if match is None:
            raise StudyError(
                f"grid.cores: {item!r} is not an integer or a range (1..128, 1..81x3, 8..64+8)"
            )
        lo, hi, kind, step_text = match.groups()
        start, stop = int(lo), int(hi)
        step = int(step_text) if step_text else 2
        if start < 1 or stop < start:
            raise StudyError(f"grid.cores: range {item!r} needs 1 <= start <= stop")
        if (kind in (None, "x") and step < 2) or (kind == "+" and step < 1):
            raise StudyError(f"grid.cores: range {item!r} has a step that never advances")
        n = start
        while n <= stop:
            cores.append(n)
            n = n + step if kind == "+" else n * step
    for n in cores:
        if n < 1:
            raise StudyError(f"grid.cores: {n} is not a valid core count (integers >= 1)")
    if not cores:
        raise StudyError("grid.cores is empty; give at least one core count")
    return tuple(dict.fromkeys(cores))


def _names(axis: str, value: Any, available: Sequence[str]) -> tuple[str, ...]:
    items = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else [value]
    if not items:
        raise StudyError(f"grid.{axis} is empty; valid {_PLURAL[axis]}: {', '.join(available)}")
    names: list[str] = []
    for item in items:
        if not isinstance(item, str) or item not in available:
            raise StudyError(
                f"grid.{axis}: unknown {axis} {item!r}; "
                f"valid {_PLURAL[axis]}: {', '.join(available)}"
            )
        names.append(item)
    return tuple(dict.fromkeys(names))


def _seeds(value: Any) -> tuple[int, ...]:
    items = list(value) if isinstance(value, Sequence) and not isinstance(value, str) else [value]
    if not items:
        raise StudyError("grid.seed is empty; give at least one seed, e.g. grid.seed=[0]")
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int) or item < 0:
            raise StudyError(f"grid.seed: {item!r} is not a non-negative integer")
    return tuple(dict.fromkeys(items))


def apply_overrides(
    group: str, base: Mapping[str, Any], overrides: Mapping[str, Any], path: str
) -> dict[str, Any]:
    """``base`` with ``overrides`` merged in; every overridden key must exist in ``base``.

    The grammar of a study's ``set.<group>.<param>`` and of a measurement's ``point.set``:
    nested mappings merge key by key, anything else replaces the value. ``path`` is the
    ``<group>.`` prefix named in the error (``set.mix.slots: unknown mix parameter; ...``).
    """
    out = copy.deepcopy(dict(base))
    for key, value in overrides.items():
        if key not in out:
            allowed = ", ".join(sorted(out)) or "(none)"
            raise StudyError(f"set.{path}{key}: unknown {group} parameter; allowed: {allowed}")
        if isinstance(value, Mapping):
            if not isinstance(out[key], Mapping):
                raise StudyError(f"set.{path}{key}: {group} parameter is not a mapping")
            out[key] = apply_overrides(group, out[key], value, f"{path}{key}.")
        else:
            out[key] = copy.deepcopy(value)
    return out


@dataclass(frozen=True, slots=True)
class GridSpec:
    """The axes of a study; the points are their cartesian product."""

    machine: tuple[str, ...]
    mix: tuple[str, ...]
    variant: tuple[str, ...]
    cores: tuple[int, ...]
    seed: tuple[int, ...]

    @property
    def size(self) -> int:
        return (
            len(self.machine) * len(self.mix) * len(self.variant) * len(self.cores) * len(self.seed)
        )


@dataclass(frozen=True, slots=True)
class RaySpec:
    """Where and how chunks run. ``address=None`` starts a local Ray (unless RAY_ADDRESS is set)."""

    address: str | None = None
    num_cpus: int | None = None
    task_target_s: float = 0.5
    max_tasks_in_flight: int | None = None
    chunk_points: int | None = None
    inprocess_s: float = 2.0
    """Local runs: compute in this process for up to this many seconds before starting Ray
    (estimate: a local Ray takes 3-7 s to start on a 2-core machine); 0 = always Ray."""
    connect_timeout_s: float = 15.0
    """How long the cluster at ``address`` (or ``RAY_ADDRESS``) has to answer."""


@dataclass(frozen=True, slots=True)
class StoreSpec:
    """Flush policy: a Parquet file per partition every ``flush_points`` rows or ``flush_s``."""

    flush_points: int = 5000
    flush_s: float = 30.0


@dataclass(frozen=True, slots=True)
class UncertaintySpec:
    """``uncertainty.*``: draw ``samples`` parameter vectors inside the ranges of the parameter
    list ``conf/fit/<params>.yaml``, simulate every grid point at each (:mod:`sweep.uncertainty`).

    ``ranges`` holds the list's :class:`sweep.ranges.ParamRange` entries, validated against the
    presets; it is empty (and the list is not read) when ``samples`` is 0.
    """

    samples: int = 0
    params: str = "calibration"
    ranges: tuple[Any, ...] = ()


def load_param_list(
    key: str,
    name: Any,
    load_group: Any,
    available: Mapping[str, Sequence[str]],
    params: Mapping[str, Mapping[str, Mapping[str, Any]]],
) -> tuple[Any, ...]:
    """The validated ranges of the parameter list ``conf/fit/<name>.yaml`` (:mod:`sweep.ranges`).

    A range may name any preset on the search path (one list serves many studies); the study's
    own presets (``params``, ``set.`` overrides applied) are checked at their study values.
    Raises :class:`StudyError` prefixed with ``key`` (the config key naming the list).
    """
    from sweep.ranges import list_lookup, load_ranges  # sweep.ranges imports this module

    lists = list(available.get("fit", ()))
    if not isinstance(name, str) or name not in lists:
        raise StudyError(
            f"{key}: unknown parameter list {name!r}; lists in conf/fit/: "
            + (", ".join(lists) or "none")
        )
    try:
        fit = load_group("fit", name)
        presets = {
            group: {
                preset: params[group][preset]
                if preset in params[group]
                else load_group(group, preset)
                for preset in available[group]
            }
            for group in GROUPS
        }
        return load_ranges(fit.get("parameters"), presets, list_lookup(load_group, available))
    except StudyError as exc:
        raise StudyError(f"{key}={name} (fit/{name}.yaml): {exc}") from None


def _uncertainty(
    config: Mapping[str, Any],
    load_group: Any,
    available: Mapping[str, Sequence[str]],
    params: Mapping[str, Mapping[str, Mapping[str, Any]]],
) -> UncertaintySpec:
    cfg = config.get("uncertainty") or {}
    unknown = sorted(set(cfg) - {"samples", "params"})
    if unknown:
        raise StudyError(f"uncertainty.{unknown[0]}: unknown key; keys: params, samples")
    samples = cfg.get("samples", 0)
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 0:
        raise StudyError(f"uncertainty.samples: {samples!r} is not an integer >= 0")
    name = cfg.get("params", "calibration")
    if samples == 0:
        return UncertaintySpec(samples=0, params=str(name))
    ranges = load_param_list("uncertainty.params", name, load_group, available, params)
    return UncertaintySpec(samples=samples, params=str(name), ranges=ranges)


@dataclass(frozen=True)
class StudySpec:
    """A validated study: names, grid, resolved group parameters and run options.

    ``params[group][name]`` is the dict handed to ``exitcore`` for that machine, mix or variant,
    with the study-wide ``set.<group>`` overrides already applied.
    """

    name: str
    out: Path
    force: bool
    root_seed: int
    grid: GridSpec
    params: Mapping[str, Mapping[str, Mapping[str, Any]]]
    ray: RaySpec = field(default_factory=RaySpec)
    store: StoreSpec = field(default_factory=StoreSpec)
    progress: str = "auto"
    report: bool = True
    cache: bool = True
    """Take points already computed under ``out`` from its point cache (:mod:`sweep.cache`)."""
    config: Mapping[str, Any] = field(default_factory=dict)
    """The resolved config as plain containers, recorded in ``study.yaml``."""
    uncertainty: UncertaintySpec = field(default_factory=UncertaintySpec)

    @property
    def study_dir(self) -> Path:
        return self.out / self.name

    @classmethod
    def from_dicts(
        cls,
        config: Mapping[str, Any],
        load_group: Any,
        available: Mapping[str, Sequence[str]],
    ) -> StudySpec:
        """Validate a resolved config and build the spec.

        Parameters
        ----------
        config : mapping
            The composed config as plain containers (``study``, ``out``, ``force``, ``grid``,
            ``set``, ``ray``, ``store``, ``progress``).
        load_group : callable ``(group, name) -> dict``
            Loads ``<group>/<name>.yaml`` from the config search path.
        available : mapping group -> names
            The names each group offers, for validation and error messages.
        """
        study = config.get("study", {})
        name = str(study.get("name", "default"))
        if not _NAME.match(name) or name in (".", ".."):
            raise StudyError(f"study.name: {name!r} must be letters, digits, '_', '-' or '.'")
        root_seed = study.get("seed", 0)
        if isinstance(root_seed, bool) or not isinstance(root_seed, int) or root_seed < 0:
            raise StudyError(f"study.seed: {root_seed!r} is not a non-negative integer")
        grid_cfg = config.get("grid", {})
        grid = GridSpec(
            machine=_names("machine", grid_cfg.get("machine"), available["machine"]),
            mix=_names("mix", grid_cfg.get("mix"), available["mix"]),
            variant=_names("variant", grid_cfg.get("variant"), available["variant"]),
            cores=parse_cores(grid_cfg.get("cores")),
            seed=_seeds(grid_cfg.get("seed")),
        )
        overrides = config.get("set") or {}
        unknown_groups = sorted(set(overrides) - set(GROUPS))
        if unknown_groups:
            raise StudyError(
                f"set.{unknown_groups[0]}: unknown group; allowed: {', '.join(GROUPS)}"
            )
        params: dict[str, dict[str, dict[str, Any]]] = {}
        for group in GROUPS:
            params[group] = {}
            for item in getattr(grid, group):
                base = load_group(group, item)
                if not isinstance(base, Mapping):
                    raise StudyError(f"{group}/{item}.yaml must hold a mapping of parameters")
                params[group][item] = apply_overrides(
                    group, base, overrides.get(group) or {}, f"{group}."
                )
        uncertainty = _uncertainty(config, load_group, available, params)
        ray = parse_ray(config.get("ray"))
        store_cfg = config.get("store") or {}
        store = StoreSpec(
            flush_points=_optional_positive_int(
                "store.flush_points", store_cfg.get("flush_points", 5000)
            )
            or 5000,
            flush_s=_positive_float("store.flush_s", store_cfg.get("flush_s", 30.0)),
        )
        progress = parse_progress(config.get("progress", "auto"))
        force = parse_bool("force", config.get("force", False))
        report = parse_bool("report", config.get("report", True))
        cache = parse_bool("cache", config.get("cache", True))
        return cls(
            name=name,
            out=Path(str(config.get("out", "results"))),
            force=force,
            root_seed=root_seed,
            grid=grid,
            params=params,
            ray=ray,
            store=store,
            progress=progress,
            report=report,
            cache=cache,
            config=dict(config),
            uncertainty=uncertainty,
        )


def parse_ray(value: Any) -> RaySpec:
    """The ``ray.*`` keys of any entry point (study, validate, fit) as a :class:`RaySpec`."""
    ray_cfg = dict(value or {})
    num_cpus = ray_cfg.get("num_cpus")
    if num_cpus is not None and (
        isinstance(num_cpus, bool) or not isinstance(num_cpus, int) or num_cpus < 1
    ):
        raise StudyError(f"ray.num_cpus: {num_cpus!r} is not a positive integer")
    address = ray_cfg.get("address")
    return RaySpec(
        address=None if address in (None, "") else str(address),
        num_cpus=num_cpus,
        task_target_s=_positive_float("ray.task_target_s", ray_cfg.get("task_target_s", 0.5)),
        max_tasks_in_flight=_optional_positive_int(
            "ray.max_tasks_in_flight", ray_cfg.get("max_tasks_in_flight")
        ),
        chunk_points=_optional_positive_int("ray.chunk_points", ray_cfg.get("chunk_points")),
        inprocess_s=_non_negative_float("ray.inprocess_s", ray_cfg.get("inprocess_s", 2.0)),
        connect_timeout_s=_positive_float(
            "ray.connect_timeout_s", ray_cfg.get("connect_timeout_s", 15.0)
        ),
    )


def parse_progress(value: Any) -> str:
    progress = str(value)
    if progress not in ("auto", "bar", "log", "off"):
        raise StudyError(f"progress: {progress!r}; allowed: auto, bar, log, off")
    return progress


def parse_bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise StudyError(f"{key}: {value!r} is not true or false")
    return value


def _positive_float(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise StudyError(f"{key}: {value!r} is not a positive number")
    return float(value)


def _non_negative_float(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise StudyError(f"{key}: {value!r} is not a number >= 0")
    return float(value)


def _optional_positive_int(key: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise StudyError(f"{key}: {value!r} is not a positive integer")
    return value
