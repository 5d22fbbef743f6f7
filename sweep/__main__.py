"""``python -m sweep``: the Hydra glue of a study; the pipeline is :mod:`sweep.pipeline`.

Config -> :class:`~sweep.spec.StudySpec` (validated; nothing below this module sees Hydra) ->
:func:`~sweep.pipeline.run_study` (plan -> execute -> store -> curves -> report).

Errors in the user's input print one line on stderr and exit with status 2 before anything is
written; a study whose points partly failed completes, then exits with status 1.
"""

from __future__ import annotations

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from sweep.config import group_loader, hydra_entry, resolved
from sweep.spec import GROUPS, StudySpec


def spec_from_config(cfg: DictConfig) -> StudySpec:
    """The one place a study's DictConfig becomes typed: resolve, load groups, validate."""
    container = resolved(cfg)
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode == RunMode.MULTIRUN and not any(
        o.lstrip("+").startswith("study.name=") for o in hydra_cfg.overrides.task
    ):
        # Each multirun job is its own study: NAME-<job number> unless study.name is swept.
        container["study"]["name"] = f"{container['study']['name']}-{hydra_cfg.job.num}"
    load, available = group_loader(GROUPS)
    return StudySpec.from_dicts(container, load, available)


def _study(cfg: DictConfig) -> int:
    from sweep.pipeline import run_study

    return run_study(spec_from_config(cfg))


main = hydra_entry(_study, config_name="config", prog="sweep")

if __name__ == "__main__":
    main()
