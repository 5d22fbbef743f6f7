"""Built-in presets: machines, mixes and variants as YAML files, the only copy of them.

``exitcore/presets/<group>/<name>.yaml`` (package data), each constant's source commented beside
it. ``python -m sweep`` finds the same files on Hydra's search path (``pkg://exitcore.presets``,
added by the search-path plugin in ``hydra_plugins/``). This small loader reads them for code
that runs without Hydra (tests, benchmarks, notebooks).
"""

from __future__ import annotations

from importlib import resources
from typing import Any, Final

import yaml

GROUPS: Final[tuple[str, ...]] = ("machine", "mix", "variant")


def _group_dir(group: str) -> Any:
    if group not in GROUPS:
        raise ValueError(f"group: {group!r} is not one of {list(GROUPS)}")
    return resources.files(__name__).joinpath(group)


def names(group: str) -> list[str]:
    """Preset names of ``group``, sorted."""
    return sorted(
        p.name[: -len(".yaml")] for p in _group_dir(group).iterdir() if p.name.endswith(".yaml")
    )


def load(group: str, name: str) -> dict[str, Any]:
    """The preset ``group/name`` as a plain mapping."""
    path = _group_dir(group).joinpath(f"{name}.yaml")
    if not path.is_file():
        raise ValueError(f"{group}: no preset {name!r}; available: {names(group)}")
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{group}/{name}.yaml: expected a mapping")
    return data


def load_all(group: str) -> dict[str, dict[str, Any]]:
    """Every preset of ``group`` by name."""
    return {name: load(group, name) for name in names(group)}
