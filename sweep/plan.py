"""Study spec -> ordered, content-hashed points.

A point's identity is everything that determines its result:

- ``point_id`` = SHA-256 (first 32 hex digits) of the canonical JSON of the machine, mix and
  variant names and resolved parameter dicts, the core count, the grid seed, the study's root
  seed and ``exitcore.MODEL_VERSION``. Same inputs -> same id, so a rerun finds its points
  stored; any changed parameter -> a new id, so exactly the affected points are recomputed.
- The point's random stream is ``SeedSequence([root_seed, seed, *digest words])`` where the
  digest covers the mix parameters and the core count only. It never depends on the order,
  the chunk or the worker, so rows are bit-identical however the study is run; and every
  variant and machine at a given (mix, cores, seed) sees the same generated workload (common
  random numbers), which makes variant-vs-baseline differences free of workload noise.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from exitcore import MODEL_VERSION
from sweep.errors import StudyError
from sweep.spec import StudySpec


def canonical_json(value: Any) -> str:
    """Deterministic JSON: sorted keys, no whitespace, floats in repr form."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=True)


def digest(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Point:
    """One (machine, mix, variant, cores, seed) of a study.

    ``entropy`` seeds the point's ``numpy.random.SeedSequence`` (see module docstring).
    """

    point_id: str
    machine: str
    mix: str
    variant: str
    cores: int
    seed: int
    entropy: tuple[int, ...]
    params_keys: tuple[str, str, str] | None = None
    """Where the machine, mix and variant parameters of this point are found in the study's
    ``params[group]`` mappings; None: under their names (a grid study)."""

    @property
    def param_keys(self) -> tuple[str, str, str]:
        return self.params_keys or (self.machine, self.mix, self.variant)

    @property
    def key(self) -> tuple[str, str, str, int, int]:
        """The point's place in the grid (its labels), independent of parameter values."""
        return (self.machine, self.mix, self.variant, self.cores, self.seed)

    def rng(self) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence(list(self.entropy)))


def point_id(
    names: Mapping[str, str],
    params: Mapping[str, Mapping[str, Any]],
    cores: int,
    seed: int,
    root_seed: int,
    model_version: str = MODEL_VERSION,
) -> str:
    """Content hash of everything that determines one point's result."""
    encoded = {group: canonical_json(params[group]) for group in names}
    return _point_id(names, encoded, cores, seed, root_seed, model_version)


def _point_id(
    names: Mapping[str, str],
    encoded: Mapping[str, str],
    cores: int,
    seed: int,
    root_seed: int,
    model_version: str,
) -> str:
    parts = [f"{group}={names[group]}:{encoded[group]}" for group in ("machine", "mix", "variant")]
    text = "|".join([*parts, f"cores={cores}", f"seed={seed}", f"root={root_seed}", model_version])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def point_entropy(mix_params: Mapping[str, Any], cores: int, seed: int, root_seed: int) -> tuple:
    """Seed-sequence entropy of a point: root seed, grid seed, then 4 words of a digest."""
    words = bytes.fromhex(digest({"mix": mix_params, "cores": cores})[:32])
    return (root_seed, seed, *np.frombuffer(words, dtype="<u4").tolist())


def config_hash(spec: StudySpec) -> str:
    """Hash of the study-level inputs (grid, resolved parameters, root seed, model version)."""
    return digest(
        {
            "grid": {
                axis: list(getattr(spec.grid, axis))
                for axis in ("machine", "mix", "variant", "cores", "seed")
            },
            "params": spec.params,
            "root_seed": spec.root_seed,
            "model_version": MODEL_VERSION,
        }
    )[:16]


def plan(spec: StudySpec) -> list[Point]:
    """Every point of the study in grid order (machine, mix, variant, cores, seed)."""
    grid = spec.grid
    entropies = {
        (mix, cores, seed): point_entropy(spec.params["mix"][mix], cores, seed, spec.root_seed)
        for mix, cores, seed in itertools.product(grid.mix, grid.cores, grid.seed)
    }
    encoded = {
        group: {name: canonical_json(value) for name, value in spec.params[group].items()}
        for group in spec.params
    }
    points = []
    for machine, mix, variant, cores, seed in itertools.product(
        grid.machine, grid.mix, grid.variant, grid.cores, grid.seed
    ):
        names = {"machine": machine, "mix": mix, "variant": variant}
        texts = {group: encoded[group][names[group]] for group in names}
        points.append(
            Point(
                point_id=_point_id(names, texts, cores, seed, spec.root_seed, MODEL_VERSION),
                machine=machine,
                mix=mix,
                variant=variant,
                cores=cores,
                seed=seed,
                entropy=entropies[(mix, cores, seed)],
            )
        )
    return points


def _parsers() -> dict[str, Any]:
    from exitcore.machine import MachineProfile
    from exitcore.mix import MixParams
    from exitcore.variant import Variant

    return {"machine": MachineProfile, "mix": MixParams, "variant": Variant}


GROUP_PARSERS: tuple[str, ...] = ("machine", "mix", "variant")
"""Groups whose parameter dicts ``exitcore`` parses (``from_dict``), in grid order."""


def validate_params(
    params: Mapping[str, Mapping[str, Mapping[str, Any]]],
    combos: Iterable[tuple[tuple[str, str, str], int]],
) -> None:
    """Check parameter sets and core counts with ``exitcore``'s own validation.

    ``params[group][key]`` are parsed once each by their ``from_dict`` (the error names the
    group and key at fault); each ``((machine, mix, variant) keys, cores)`` of ``combos`` is
    then checked as one point. Raises :class:`StudyError`.
    """
    from exitcore.simulate import PointParams

    parsers = _parsers()
    for group, parser in parsers.items():
        for key, value in params[group].items():
            try:
                parser.from_dict(dict(value))
            except (ValueError, TypeError) as exc:
                raise StudyError(f"{group} {key.split('@')[0]!r}: {exc}") from None
    for keys, cores in combos:
        machine, mix, variant = (params[g][k] for g, k in zip(GROUP_PARSERS, keys, strict=True))
        try:
            PointParams.from_dicts(
                machine=dict(machine), mix=dict(mix), variant=dict(variant), cores=cores
            )
        except (ValueError, TypeError) as exc:
            raise StudyError(f"cores={cores}: {exc}") from None


def validate(spec: StudySpec) -> None:
    """Check every machine, mix, variant and core count of a study (:func:`validate_params`).

    Each core count is checked once with the first of everything else: a sum, not a product,
    of the axis lengths, and a bad value fails before anything is written.
    """
    grid = spec.grid
    first = (grid.machine[0], grid.mix[0], grid.variant[0])
    used = {
        group: {n: spec.params[group][n] for n in getattr(grid, group)} for group in GROUP_PARSERS
    }
    validate_params(used, [(first, cores) for cores in grid.cores])
