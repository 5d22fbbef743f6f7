"""Published measurements as data: ``conf/measurement/<name>.yaml``, one measured run each.

The one owner of the measurement file format. A file (found on Hydra's search path like every
group, so a user's own directory works through ``hydra.searchpath``)::

    name: kernel_build_m2_pmap_deactivate   # the file's own name
    source: "who, where, when: a mail, a commit, a paper"
    role: calibrate                         # calibrate: a fit may use it; check: compared only
    point: {machine: arm64_m2, mix: kernel_build, variant: pmap_deactivate, cores: 8,
            set: {mix: {slots: 8}}}         # optional, the grammar of set.<group>.<param>
    figures: {wall_s: 61.89, user_s: 323.25, sys_s: 173.81}   # published point columns
    bounds: {reaper_util: [0, 0.05]}        # optional inequality claims, lo <= value <= hi
    tolerance: 0.03                         # relative; one number or one per figure
    versus: kernel_build_m2_baseline        # optional: ratios of the common figures...
    ratio_tolerance: {sys_s: 0.03}          # ...with their own tolerance (one or per figure)

Figures and bounds name columns of :data:`sweep.store.METRIC_NAMES`. A ``check`` measurement
whose point names a variant, or a ``set`` parameter, the model does not have (yet) is kept and
reported as *not yet modelled* (:attr:`Measurement.not_modelled`) instead of refused: the
claim stays visible until the model can be held against it. In a ``calibrate`` measurement the
same is an error, as is every other malformed field: one line naming the file and the field.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from sweep.errors import StudyError
from sweep.spec import GROUPS, apply_overrides
from sweep.store import METRIC_NAMES

if TYPE_CHECKING:
    from sweep.pipeline import PointSpec

GROUP = "measurement"
"""The config group (``conf/measurement/``)."""

FIELDS: tuple[str, ...] = (
    "name",
    "source",
    "role",
    "point",
    "figures",
    "bounds",
    "tolerance",
    "versus",
    "ratio_tolerance",
)
POINT_FIELDS: tuple[str, ...] = ("machine", "mix", "variant", "cores", "set")
ROLES: tuple[str, ...] = ("calibrate", "check")
RATIO_SEPARATOR = "/"
"""A ratio figure is named ``<figure>/<other measurement>``, e.g.
``sys_s/kernel_build_m2_baseline``: this measurement's figure divided by the other's, in the
model and in the published values."""

Presets = Mapping[str, Mapping[str, Mapping[str, Any]]]
"""``presets[group][name]``: the parameter dict of each machine, mix and variant preset."""


def ratio_figure(figure: str, other: str) -> str:
    """The name of the ratio figure of ``figure`` against measurement ``other``."""
    return f"{figure}{RATIO_SEPARATOR}{other}"


@dataclass(frozen=True)
class MeasuredPoint:
    """Where the measurement was taken: preset names, CPUs online, per-group overrides."""

    machine: str
    mix: str
    variant: str
    cores: int
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """The file's ``point.set``: ``{group: {param: value}}``, applied to the presets."""


@dataclass(frozen=True)
class Measurement:
    """One validated measurement file.

    ``tolerance`` and ``ratio_tolerance`` are expanded to one entry per figure (per common
    figure for ratios). ``ratio_figures`` are the figures this measurement shares with
    ``versus`` (empty without ``versus``); they are filled in by :func:`load_measurements`,
    which sees both files.
    """

    name: str
    source: str
    role: str
    point: MeasuredPoint
    figures: Mapping[str, float]
    bounds: Mapping[str, tuple[float, float]]
    tolerance: Mapping[str, float]
    versus: str | None = None
    ratio_tolerance: Mapping[str, float] = field(default_factory=dict)
    ratio_figures: tuple[str, ...] = ()
    not_modelled: str | None = None
    """Why the model cannot compute this point yet (``check`` only), or None."""

    @property
    def file(self) -> str:
        return f"{GROUP}/{self.name}.yaml"

    @property
    def modelled(self) -> bool:
        return self.not_modelled is None

    @classmethod
    def from_dict(
        cls,
        d: Any,
        file_name: str,
        available: Mapping[str, Sequence[str]],
        presets: Presets,
    ) -> Measurement:
        """Validate one file's mapping.

        Parameters
        ----------
        d : mapping
            The file's content.
        file_name : str
            The file's name without ``.yaml`` (the ``name`` field must equal it).
        available : mapping group -> names
            Presets on the search path, for ``point.machine``, ``point.mix``, ``point.variant``.
        presets : mapping group -> name -> dict
            Parameter dicts of (at least) the presets the point names, for ``point.set``.

        Raises
        ------
        StudyError
            One line, ``measurement/<file>.yaml: <field>: <what is wrong>``.
        """
        where = f"{GROUP}/{file_name}.yaml"

        def fail(key: str, message: str) -> StudyError:
            return StudyError(f"{where}: {key}: {message}")

        if not isinstance(d, Mapping):
            raise StudyError(f"{where}: must hold a mapping of {', '.join(FIELDS)}")
        unknown = sorted(set(d) - set(FIELDS))
        if unknown:
            raise fail(unknown[0], f"unknown field; allowed: {', '.join(FIELDS)}")
        for key in ("name", "source", "role", "point"):
            if key not in d or d[key] in (None, ""):
                raise fail(key, "missing")
        name = d["name"]
        if name != file_name:
            raise fail("name", f"{name!r} is not the file's name {file_name!r}")
        source = d["source"]
        if not isinstance(source, str) or not source.strip():
            raise fail("source", "give who measured it, where and when (a mail, a commit)")
        role = d["role"]
        if role not in ROLES:
            raise fail("role", f"{role!r}; allowed: {', '.join(ROLES)}")

        point, not_modelled = _point(d["point"], role, available, presets, fail)

        figures = _figures(d.get("figures"), fail)
        bounds = _bounds(d.get("bounds"), fail)
        if not figures and not bounds:
            raise fail("figures", "missing: give at least one published figure or bound")
        both = sorted(set(figures) & set(bounds))
        if both:
            raise fail(f"bounds.{both[0]}", "is also a figure: give a value or a bound, not both")
        if figures and "tolerance" not in d:
            raise fail("tolerance", "missing: give a relative tolerance for the figures")
        tolerance = _tolerances("tolerance", d.get("tolerance"), tuple(figures), fail)

        versus = d.get("versus")
        ratio_tolerance: dict[str, float] = {}
        if versus is None:
            if d.get("ratio_tolerance") is not None:
                raise fail("ratio_tolerance", "given without versus")
        else:
            if not isinstance(versus, str) or versus not in available.get(GROUP, ()):
                listing = ", ".join(available.get(GROUP, ())) or "none"
                raise fail("versus", f"unknown measurement {versus!r}; available: {listing}")
            if versus == name:
                raise fail("versus", "a measurement cannot be compared with itself")
            if d.get("ratio_tolerance") is None:
                raise fail("ratio_tolerance", "missing: versus needs a tolerance for the ratios")
            # expanded against this file's figures; narrowed to the common ones on loading
            ratio_tolerance = _tolerances(
                "ratio_tolerance", d["ratio_tolerance"], tuple(figures), fail
            )
        return cls(
            name=name,
            source=" ".join(source.split()),
            role=role,
            point=point,
            figures=MappingProxyType(figures),
            bounds=MappingProxyType(bounds),
            tolerance=MappingProxyType(tolerance),
            versus=versus,
            ratio_tolerance=MappingProxyType(ratio_tolerance),
            not_modelled=not_modelled,
        )

    def params(self, presets: Presets) -> dict[str, dict[str, Any]]:
        """The point's resolved ``{"machine": {...}, "mix": {...}, "variant": {...}}``.

        ``presets`` may differ from the files (a fit's trial values); the measurement's own
        ``point.set`` is applied last, so what was measured (``make -j16``) always holds.
        """
        if not self.modelled:
            raise StudyError(f"{self.file}: not yet modelled: {self.not_modelled}")
        p = self.point
        out: dict[str, dict[str, Any]] = {}
        for group, preset in (("machine", p.machine), ("mix", p.mix), ("variant", p.variant)):
            try:
                out[group] = apply_overrides(
                    group, presets[group][preset], p.overrides.get(group) or {}, f"{group}."
                )
            except StudyError as exc:
                raise StudyError(f"{self.file}: point.{exc}") from None
        return out

    def point_specs(self, presets: Presets, seeds: Sequence[int]) -> list[PointSpec]:
        """One :class:`~sweep.pipeline.PointSpec` per seed (none when not modelled)."""
        from sweep.pipeline import PointSpec

        if not self.modelled:
            return []
        params = self.params(presets)
        p = self.point
        return [
            PointSpec(
                machine=p.machine,
                mix=p.mix,
                variant=p.variant,
                cores=p.cores,
                seed=seed,
                params=params,
            )
            for seed in seeds
        ]


def _point(
    value: Any,
    role: str,
    available: Mapping[str, Sequence[str]],
    presets: Presets,
    fail: Callable[[str, str], StudyError],
) -> tuple[MeasuredPoint, str | None]:
    if not isinstance(value, Mapping):
        raise fail("point", f"a mapping of {', '.join(POINT_FIELDS)}")
    unknown = sorted(set(value) - set(POINT_FIELDS))
    if unknown:
        raise fail(f"point.{unknown[0]}", f"unknown field; allowed: {', '.join(POINT_FIELDS)}")
    for key in ("machine", "mix", "variant", "cores"):
        if value.get(key) is None:
            raise fail(f"point.{key}", "missing")
    not_modelled = None
    for group in GROUPS:
        preset = value[group]
        if isinstance(preset, str) and preset in available.get(group, ()):
            continue
        if group == "variant" and role == "check" and isinstance(preset, str):
            not_modelled = f"no variant {preset!r} in the model"
            continue
        listing = ", ".join(available.get(group, ()))
        raise fail(f"point.{group}", f"unknown {group} {preset!r}; available: {listing}")
    cores = value["cores"]
    if isinstance(cores, bool) or not isinstance(cores, int) or cores < 1:
        raise fail("point.cores", f"{cores!r} is not an integer >= 1")
    overrides = value.get("set") or {}
    if not isinstance(overrides, Mapping):
        raise fail("point.set", f"a mapping of {', '.join(GROUPS)} to parameters")
    for group, params in overrides.items():
        if group not in GROUPS:
            raise fail(f"point.set.{group}", f"unknown group; allowed: {', '.join(GROUPS)}")
        if not isinstance(params, Mapping):
            raise fail(f"point.set.{group}", "a mapping of parameter names to values")
    point = MeasuredPoint(
        machine=value["machine"],
        mix=value["mix"],
        variant=value["variant"],
        cores=cores,
        overrides={g: dict(p) for g, p in overrides.items() if p},
    )
    for group in GROUPS:
        if not_modelled is not None and group == "variant":
            continue
        base = presets[group][getattr(point, group)]
        missing = _unknown_key(base, point.overrides.get(group) or {})
        if missing is not None and role == "check" and not_modelled is None:
            not_modelled = f"no {group} parameter {missing!r} in the model"
            continue
        try:
            apply_overrides(group, base, point.overrides.get(group) or {}, f"{group}.")
        except StudyError as exc:  # "set.mix.slotz: unknown mix parameter; allowed: ..."
            key, _, message = str(exc).partition(": ")
            raise fail(f"point.{key}", message) from None
    if not_modelled is None:
        _check_with_model(point, presets, fail)
    return point, not_modelled


def _unknown_key(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> str | None:
    """The dotted name of the first overridden key ``base`` does not have, or None."""
    for key, value in overrides.items():
        if key not in base:
            return str(key)
        if isinstance(value, Mapping) and isinstance(base[key], Mapping):
            inner = _unknown_key(base[key], value)
            if inner is not None:
                return f"{key}.{inner}"
    return None


def _check_with_model(
    point: MeasuredPoint, presets: Presets, fail: Callable[[str, str], StudyError]
) -> None:
    """The model's own validation of the resolved point (bad values, core counts)."""
    from exitcore.simulate import PointParams

    resolved = {
        group: apply_overrides(group, presets[group][name], point.overrides.get(group) or {}, "")
        for group, name in (
            ("machine", point.machine),
            ("mix", point.mix),
            ("variant", point.variant),
        )
    }
    try:
        PointParams.from_dicts(cores=point.cores, **resolved)
    except (ValueError, TypeError) as exc:
        raise fail("point", str(exc)) from None


def _figures(value: Any, fail: Callable[[str, str], StudyError]) -> dict[str, float]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise fail("figures", "a mapping of point columns to published values")
    figures: dict[str, float] = {}
    for figure, number in value.items():
        _check_column(f"figures.{figure}", figure, fail)
        if isinstance(number, bool) or not isinstance(number, int | float) or not number > 0:
            raise fail(f"figures.{figure}", f"{number!r} is not a positive number")
        figures[figure] = float(number)
    return figures


def _bounds(value: Any, fail: Callable[[str, str], StudyError]) -> dict[str, tuple[float, float]]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise fail("bounds", "a mapping of point columns to [lo, hi]")
    bounds: dict[str, tuple[float, float]] = {}
    for figure, pair in value.items():
        key = f"bounds.{figure}"
        _check_column(key, figure, fail)
        if (
            not isinstance(pair, Sequence)
            or isinstance(pair, str)
            or len(pair) != 2
            or any(isinstance(x, bool) or not isinstance(x, int | float) for x in pair)
        ):
            raise fail(key, f"{pair!r} is not a pair of numbers [lo, hi]")
        lo, hi = float(pair[0]), float(pair[1])
        if lo > hi:
            raise fail(key, f"lo {lo:g} > hi {hi:g}")
        bounds[figure] = (lo, hi)
    return bounds


def _check_column(key: str, figure: Any, fail: Callable[[str, str], StudyError]) -> None:
    if figure not in METRIC_NAMES:
        raise fail(key, f"{figure!r} is not a point column; columns: {', '.join(METRIC_NAMES)}")


def _tolerances(
    key: str, value: Any, figures: tuple[str, ...], fail: Callable[[str, str], StudyError]
) -> dict[str, float]:
    def number(where: str, x: Any) -> float:
        if isinstance(x, bool) or not isinstance(x, int | float) or not x >= 0:
            raise fail(where, f"{x!r} is not a relative tolerance >= 0 (0.03 = 3 %)")
        return float(x)

    if value is None:
        return {}
    if not isinstance(value, Mapping):
        tol = number(key, value)
        return {figure: tol for figure in figures}
    for figure in value:
        if figure not in figures:
            raise fail(f"{key}.{figure}", f"not a figure of this file ({', '.join(figures)})")
    missing = [f for f in figures if f not in value]
    if missing:
        raise fail(key, f"no tolerance for figure {missing[0]!r}")
    return {figure: number(f"{key}.{figure}", value[figure]) for figure in figures}


@dataclass(frozen=True)
class MeasurementSet:
    """The measurements a command works on, and the presets their points start from.

    ``selected`` are the ones asked for (in name order); ``all`` adds those they are compared
    ``versus``, whose points are computed too (a ratio needs both).
    """

    selected: tuple[Measurement, ...]
    by_name: Mapping[str, Measurement]
    presets: Presets

    @property
    def all(self) -> tuple[Measurement, ...]:
        return tuple(self.by_name[n] for n in sorted(self.by_name))

    def point_specs(
        self, seeds: Sequence[int], presets: Presets | None = None
    ) -> tuple[list[PointSpec], list[tuple[str, int]]]:
        """Every modelled measurement's point at every seed, and ``(measurement, seed)`` of each."""
        specs: list[PointSpec] = []
        index: list[tuple[str, int]] = []
        for m in self.all:
            for spec in m.point_specs(presets or self.presets, seeds):
                specs.append(spec)
                index.append((m.name, spec.seed))
        return specs, index


def load_measurements(
    names: Sequence[str] | None,
    role: str,
    load: Callable[[str, str], Mapping[str, Any]],
    available: Mapping[str, Sequence[str]],
) -> MeasurementSet:
    """Load and validate measurement files and the presets their points name.

    Parameters
    ----------
    names : sequence of str or None
        Measurement names; None = every file on the search path.
    role : ``"all"``, ``"calibrate"`` or ``"check"``
        Keep only measurements of this role.
    load : callable ``(group, name) -> dict``
        Reads ``conf/<group>/<name>.yaml`` from the search path.
    available : mapping group -> names
        Names offered by ``measurement`` and by each group of :data:`sweep.spec.GROUPS`.

    Raises
    ------
    StudyError
        An unknown name or role, a malformed file, no measurement left after the role filter.
    """
    if role not in ("all", *ROLES):
        raise StudyError(f"role: {role!r}; allowed: all, {', '.join(ROLES)}")
    offered = list(available.get(GROUP, ()))
    if names is None:
        wanted = offered
    else:
        if isinstance(names, str):
            names = [names]
        if not isinstance(names, Sequence):
            raise StudyError(f"measurements: {names!r} is not a list of measurement names")
        wanted = []
        for item in names:
            if not isinstance(item, str) or item not in offered:
                listing = ", ".join(offered) or "none"
                raise StudyError(
                    f"measurements: unknown measurement {item!r}; available: {listing}"
                )
            wanted.append(item)
    if not wanted:
        raise StudyError("measurements: no measurement files on the config search path")

    preset_cache: dict[str, dict[str, Mapping[str, Any]]] = {g: {} for g in GROUPS}

    def presets_for(d: Any) -> Presets:
        point = d.get("point") if isinstance(d, Mapping) else None
        if isinstance(point, Mapping):
            for group in GROUPS:
                name = point.get(group)
                if (
                    isinstance(name, str)
                    and name in available.get(group, ())
                    and name not in preset_cache[group]
                ):
                    preset_cache[group][name] = load(group, name)
        return preset_cache

    loaded: dict[str, Measurement] = {}
    queue = list(dict.fromkeys(wanted))
    while queue:
        name = queue.pop(0)
        if name in loaded:
            continue
        d = load(GROUP, name)
        m = Measurement.from_dict(d, name, available, presets_for(d))
        loaded[name] = m
        if m.versus is not None and m.versus not in loaded:
            queue.append(m.versus)
    by_name = {name: _with_ratios(m, loaded) for name, m in loaded.items()}
    selected = tuple(
        by_name[n] for n in sorted(dict.fromkeys(wanted)) if role in ("all", by_name[n].role)
    )
    if not selected:
        raise StudyError(f"role={role}: none of the selected measurements has that role")
    return MeasurementSet(selected=selected, by_name=by_name, presets=preset_cache)


def _with_ratios(m: Measurement, loaded: Mapping[str, Measurement]) -> Measurement:
    if m.versus is None:
        return m
    other = loaded[m.versus]
    common = tuple(f for f in m.figures if f in other.figures)
    if not common:
        raise StudyError(
            f"{m.file}: versus: {m.versus!r} has none of this file's figures "
            f"({', '.join(m.figures)}), so there is no ratio to compare"
        )
    if not other.modelled and m.modelled:
        raise StudyError(f"{m.file}: versus: {m.versus!r} is not modelled: {other.not_modelled}")
    from dataclasses import replace

    return replace(
        m,
        ratio_figures=common,
        ratio_tolerance=MappingProxyType({f: m.ratio_tolerance[f] for f in common}),
    )
