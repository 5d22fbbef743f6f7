"""The presets: every machine, mix and variant composes with Hydra from the package's search path
entry, and is the same mapping exitcore's own loader reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from exitcore import presets
from sweep.plan import plan, validate
from sweep.spec import GROUPS, StudySpec

CONF = Path(__file__).resolve().parents[2] / "conf"
CONTRACT = {
    "machine": {"arm64_m2", "amd64_ryzen8845", "arm64_altra80", "amd64_epyc192"},
    "mix": {"kernel_build", "fork_exit", "configure", "sparse_mmap", "big_rss"},
    "variant": {
        "baseline",
        "uvm_purge",
        "pmap_purge",
        "pmap_deactivate",
        "combined",
        "rip_reaper",
        "linux_fullmm",
        "zap_first",
        "baseline_2024",
    },
}
GROUP_FILES = sorted((g, name) for g in GROUPS for name in presets.names(g))


def composed(*overrides: str) -> Any:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


@pytest.mark.parametrize("group", GROUPS)
def test_every_name_of_the_contract_has_a_yaml_file(group: str) -> None:
    assert {name for g, name in GROUP_FILES if g == group} >= CONTRACT[group]


@pytest.mark.parametrize(("group", "name"), GROUP_FILES)
def test_preset_composes_through_hydras_search_path(group: str, name: str) -> None:
    cfg = composed(f"+{group}={name}")
    loaded = OmegaConf.to_container(cfg[group], resolve=True)
    assert loaded == presets.load(group, name)


def test_the_presets_exist_once() -> None:
    """conf/ holds no copy of a preset: Hydra finds them in the package only."""
    assert not any((CONF / g).exists() for g in GROUPS)


def load_yaml(group: str, name: str) -> dict:
    return presets.load(group, name)


def test_default_study_is_the_headline_question_and_validates() -> None:
    cfg = OmegaConf.to_container(composed(), resolve=True)
    available = {g: sorted(name for gg, name in GROUP_FILES if gg == g) for g in GROUPS}
    spec = StudySpec.from_dicts(cfg, load_yaml, available)
    assert spec.grid.machine == ("arm64_m2", "arm64_altra80")
    assert set(spec.grid.mix) == {"kernel_build", "fork_exit"}
    assert set(spec.grid.variant) == CONTRACT["variant"] - {"baseline_2024"}  # the 2025 question
    assert spec.grid.cores == (1, 2, 4, 8, 16, 32, 64, 128)
    assert spec.name == "default" and str(spec.out) == "results"
    validate(spec)
    assert len(plan(spec)) == 2 * 2 * 8 * 8 * len(spec.grid.seed)


def test_overrides_compose_through_hydra() -> None:
    cfg = composed("grid.cores=[1,8]", "++set.machine.reapers=2", "study.name=x")
    assert list(cfg.grid.cores) == [1, 8] and cfg.set.machine.reapers == 2
