"""Measurement files for tests: the shipped presets and conf/measurement, plus files as dicts."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from exitcore import presets

CONF = Path(__file__).resolve().parents[2] / "conf"
GROUPS = ("machine", "mix", "variant", "measurement")


def shipped() -> tuple[Any, dict[str, list[str]]]:
    def load(group: str, name: str) -> dict[str, Any]:
        if group in presets.GROUPS:
            return presets.load(group, name)
        return yaml.safe_load((CONF / group / f"{name}.yaml").read_text())

    available = {g: presets.names(g) for g in presets.GROUPS}
    available["measurement"] = sorted(p.stem for p in (CONF / "measurement").glob("*.yaml"))
    return load, available


def with_files(extra: dict[str, dict[str, Any]]) -> tuple[Any, dict[str, list[str]]]:
    """The shipped groups plus ``extra`` measurement files (name -> content)."""
    load_shipped, available = shipped()

    def load(group: str, name: str) -> dict[str, Any]:
        if group == "measurement" and name in extra:
            return copy.deepcopy(extra[name])
        return load_shipped(group, name)

    available = {**available, "measurement": sorted({*available["measurement"], *extra})}
    return load, available


GOOD = {
    "name": "mine",
    "source": "me, my laptop, today",
    "role": "calibrate",
    "point": {"machine": "arm64_m2", "mix": "fork_exit", "variant": "baseline", "cores": 4},
    "figures": {"wall_s": 0.08, "sys_s": 0.05},
    "tolerance": 0.05,
}
