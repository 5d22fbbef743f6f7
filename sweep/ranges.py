"""Parameter ranges: the one owner of the ``parameters:`` list of ``conf/fit/<name>.yaml``.

The same list serves every tool that varies the model's constants (the bounds of
``python -m sweep.fit``, and the ranges an uncertainty or sensitivity study samples)::

    parameters:
      - group: mix              # machine | mix | variant
        name: kernel_build      # a preset of that group, or "*" = every preset of the group
        param: klock_frac       # a key of the preset; nested keys with dots: arch_overrides.tlbi_ns
        lo: 0.1
        hi: 0.6
        source: "2021 16-core make -j17 profile: 18 % of CPU spinning on KERNEL_LOCK"

:func:`load_ranges` validates the list against the presets, :func:`apply` sets values.

A list may take some of another list's ranges instead of repeating them (one source of truth for
a bound and its reason)::

    parameters:
      from: contention          # another list of conf/fit/ (itself a plain list)
      only:                     # labels group.name.param, in the order wanted; all if left out
        - mix.kernel_build.vnode_acq
        - machine.arm64_altra80.rw_wake_us
      add:                      # ranges of this list's own, after those (optional)
        - {group: mix, name: kernel_build, param: lock_resolution_us, lo: 16, hi: 16, source: ...}
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sweep.errors import StudyError
from sweep.spec import GROUPS

FIELDS: tuple[str, ...] = ("group", "name", "param", "lo", "hi", "source")
FROM_KEYS: tuple[str, ...] = ("from", "only", "add")
ALL = "*"
"""``name: "*"``: the range applies to every preset of the group."""

# Mappings whose keys a preset need not list: architecture cost overrides start empty ({})
# and take any ArchProfile constant; the preset's own parser (exitcore's from_dict) rejects an
# unknown one when the point is planned.
OPEN_MAPPINGS: frozenset[tuple[str, str]] = frozenset({("machine", "arch_overrides")})


@dataclass(frozen=True, slots=True)
class ParamRange:
    """One varied constant: ``params[group][name][param]`` in ``[lo, hi]``, and why."""

    group: str
    name: str
    param: str
    lo: float
    hi: float
    source: str

    @property
    def label(self) -> str:
        """``group.name.param``, how tables and figures name the parameter."""
        return f"{self.group}.{self.name}.{self.param}"

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(self.param.split("."))


def list_lookup(load: Any, available: Mapping[str, Sequence[str]]) -> Callable[[str], Any]:
    """The ``parameters:`` value of a list of conf/fit/ by name (for ``from:``), from a group
    loader ``load(group, name)`` and the names ``available`` per group."""

    def lookup(name: str) -> Any:
        lists = list(available.get("fit", ()))
        if name not in lists:
            listing = ", ".join(lists) or "none"
            raise StudyError(
                f"parameters.from: unknown list {name!r}; lists in conf/fit/: {listing}"
            )
        return (load("fit", name) or {}).get("parameters")

    return lookup


def _is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str)


def _taken(items: Mapping[str, Any], lookup: Callable[[str], Any] | None) -> list[Any]:
    """The ranges a ``{from, only, add}`` mapping names: the other list's as it writes them,
    then the added ones."""
    unknown = sorted(set(items) - set(FROM_KEYS))
    if unknown:
        raise StudyError(f"parameters.{unknown[0]}: unknown key; allowed: {', '.join(FROM_KEYS)}")
    name = items.get("from")
    if not isinstance(name, str) or not name:
        raise StudyError("parameters.from: name a parameter list of conf/fit/")
    if lookup is None:
        raise StudyError("parameters.from: this list cannot take ranges from another")
    source = lookup(name)
    if isinstance(source, Mapping):
        raise StudyError(f"parameters.from: fit/{name}.yaml takes its ranges from another list")
    if not _is_list(source) or not source:
        raise StudyError(f"parameters.from: fit/{name}.yaml has no list of parameters")
    add = items.get("add", [])
    if not _is_list(add):
        raise StudyError("parameters.add: give a list of {group, name, param, lo, hi, source}")
    only = items.get("only")
    if only is None:
        return [*source, *add]
    if not _is_list(only) or not only:
        raise StudyError("parameters.only: give a non-empty list of labels group.name.param")
    by_label = {
        f"{r.get('group')}.{r.get('name')}.{r.get('param')}": r
        for r in source
        if isinstance(r, Mapping)
    }
    taken = []
    for i, label in enumerate(only):
        if label not in by_label:
            raise StudyError(f"parameters.only[{i}]: {label!r} is not a range of fit/{name}.yaml")
        taken.append(by_label[label])
    return [*taken, *add]


def load_ranges(
    items: Any,
    available_presets: Mapping[str, Mapping[str, Mapping[str, Any]]],
    lookup: Callable[[str], Any] | None = None,
) -> tuple[ParamRange, ...]:
    """Validate a ``parameters:`` list.

    Parameters
    ----------
    items : sequence of mappings, or a mapping {from, only, add}
        The list as read from YAML, or which ranges of another list to take (and add).
    available_presets : mapping group -> name -> dict
        The parameter dicts of the presets a range may name (for ``"*"``: every preset of the
        group that the range should apply to).
    lookup : callable, optional
        Another list's ``parameters:`` value by name (:func:`list_lookup`), for ``from:``.

    Raises
    ------
    StudyError
        One line naming the entry (``parameters[2]``) and the field: an unknown field, group,
        name or parameter for that preset, a non-numeric parameter or bound, ``lo > hi``, a
        missing source, the same parameter twice; for ``from:``, an unknown list or label.
    """
    if isinstance(items, Mapping):
        items = _taken(items, lookup)
    if not _is_list(items) or not items:
        raise StudyError(
            "parameters: give a non-empty list of {group, name, param, lo, hi, source}"
        )
    ranges: list[ParamRange] = []
    seen: dict[tuple[str, str, str], int] = {}
    for i, item in enumerate(items):
        where = f"parameters[{i}]"
        if not isinstance(item, Mapping):
            raise StudyError(f"{where}: a mapping of {', '.join(FIELDS)}")
        unknown = sorted(set(item) - set(FIELDS))
        if unknown:
            raise StudyError(f"{where}.{unknown[0]}: unknown field; allowed: {', '.join(FIELDS)}")
        for key in FIELDS:
            if item.get(key) is None or item.get(key) == "":
                raise StudyError(f"{where}.{key}: missing")
        group, name, param = item["group"], item["name"], item["param"]
        if group not in GROUPS:
            raise StudyError(f"{where}.group: {group!r}; allowed: {', '.join(GROUPS)}")
        presets = available_presets.get(group, {})
        if name != ALL and name not in presets:
            listing = ", ".join(sorted(presets)) or "none"
            raise StudyError(f"{where}.name: unknown {group} {name!r}; available: {listing}, *")
        if not isinstance(param, str):
            raise StudyError(f"{where}.param: {param!r} is not a parameter name")
        targets = sorted(presets) if name == ALL else [name]
        if not targets:
            raise StudyError(f"{where}.name: no {group} preset to apply '*' to")
        for target in targets:
            _check_param(f"{where}.param", group, target, param, presets[target])
        bounds = []
        for key in ("lo", "hi"):
            value = item[key]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise StudyError(f"{where}.{key}: {value!r} is not a number")
            if not math.isfinite(value):
                raise StudyError(f"{where}.{key}: {value!r} is not a finite number")
            bounds.append(float(value))
        lo, hi = bounds
        if lo > hi:
            raise StudyError(f"{where}: lo {lo:g} > hi {hi:g}")
        source = item["source"]
        if not isinstance(source, str) or not source.strip():
            raise StudyError(
                f"{where}.source: missing; say why the range is plausible (a figure, a profile)"
            )
        key3 = (group, name, param)
        if key3 in seen:
            raise StudyError(f"{where}: {group}.{name}.{param} is already parameters[{seen[key3]}]")
        seen[key3] = i
        ranges.append(ParamRange(group, name, param, lo, hi, " ".join(source.split())))
    _check_overlap(ranges)
    return tuple(ranges)


def _check_param(where: str, group: str, name: str, param: str, preset: Mapping[str, Any]) -> None:
    node: Any = preset
    keys = param.split(".")
    for depth, key in enumerate(keys):
        last = depth == len(keys) - 1
        if not isinstance(node, Mapping):
            raise StudyError(f"{where}: {group} {name!r}: {'.'.join(keys[:depth])} is no mapping")
        if key not in node:
            if last and depth == 1 and (group, keys[0]) in OPEN_MAPPINGS:
                return  # a new override: its name is checked by the model
            allowed = ", ".join(sorted(str(k) for k in node))
            prefix = ".".join(keys[:depth])
            what = f"parameter {param!r}" if not prefix else f"key {key!r} under {prefix!r}"
            raise StudyError(f"{where}: {group} {name!r} has no {what}; allowed: {allowed}")
        node = node[key]
    if isinstance(node, bool) or not isinstance(node, int | float):
        raise StudyError(f"{where}: {group} {name!r}: {param} = {node!r} is not numeric")


def _check_overlap(ranges: Sequence[ParamRange]) -> None:
    """A named preset and "*" must not both set one parameter (which would win?)."""
    wild = {(r.group, r.param) for r in ranges if r.name == ALL}
    for r in ranges:
        if r.name != ALL and (r.group, r.param) in wild:
            raise StudyError(
                f"parameters: {r.group}.{r.name}.{r.param} is also set by {r.group}.*.{r.param}"
            )


def apply(
    params: Mapping[str, Mapping[str, Mapping[str, Any]]],
    ranges: Sequence[ParamRange],
    values: Sequence[float],
) -> dict[str, dict[str, dict[str, Any]]]:
    """A deep copy of ``params[group][name]`` with each range's parameter set to its value.

    Dotted parameters set nested keys; ``"*"`` applies to every preset of the group present in
    ``params``; a range naming a preset not in ``params`` changes nothing. A parameter whose
    current value is an integer gets the value rounded to an integer. Values are not clipped to
    ``[lo, hi]``: that is the caller's business (an optimiser's bounds, a sampler's unit cube).
    """
    if len(values) != len(ranges):
        raise ValueError(f"values: expected {len(ranges)} values, got {len(values)}")
    out: dict[str, dict[str, dict[str, Any]]] = {
        group: {name: copy.deepcopy(dict(p)) for name, p in presets.items()}
        for group, presets in params.items()
    }
    for r, value in zip(ranges, values, strict=True):
        presets = out.get(r.group, {})
        names = sorted(presets) if r.name == ALL else [r.name] if r.name in presets else []
        for name in names:
            node: dict[str, Any] = presets[name]
            *parents, leaf = r.keys
            for key in parents:
                node[key] = dict(node.get(key) or {})
                node = node[key]
            current = node.get(leaf)
            is_int = isinstance(current, int) and not isinstance(current, bool)
            node[leaf] = int(round(value)) if is_int else float(value)
    return out


def current_values(
    params: Mapping[str, Mapping[str, Mapping[str, Any]]], ranges: Sequence[ParamRange]
) -> list[float | None]:
    """Each range's value in ``params`` (the first preset for ``"*"``); None where unset.

    A machine's ``arch_overrides.<constant>`` that the preset does not override is the value of
    its architecture's profile (what the model runs with)."""
    values: list[float | None] = []
    for r in ranges:
        presets = params.get(r.group, {})
        names = sorted(presets) if r.name == ALL else [r.name]
        preset: Any = presets.get(names[0]) if names else None
        node = preset
        for key in r.keys:
            node = node.get(key) if isinstance(node, Mapping) else None
        if node is None and r.group == "machine" and r.keys[0] == "arch_overrides":
            node = _arch_default(preset, r.keys[1:])
        ok = isinstance(node, int | float) and not isinstance(node, bool)
        values.append(float(node) if ok else None)
    return values


def _arch_default(machine: Any, keys: tuple[str, ...]) -> Any:
    """The architecture profile's value of an ``arch_overrides`` constant, or None."""
    from exitcore.arch import ARCHS

    arch = ARCHS.get(machine.get("arch")) if isinstance(machine, Mapping) else None
    return getattr(arch, keys[0], None) if arch is not None and len(keys) == 1 else None
