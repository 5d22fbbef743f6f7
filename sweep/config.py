"""Hydra glue shared by every entry point (``sweep``, ``sweep.validate``, ``sweep.fit``).

Only this module and the entry points themselves know Hydra. It loads group files
(``conf/<group>/<name>.yaml``) from the search path Hydra composed with, so a user's own
directory added with ``hydra.searchpath=[file:///path/to/conf]`` offers machines, mixes,
variants, measurements and fit specs exactly like the shipped ones; and it turns every Hydra,
OmegaConf or :class:`~sweep.errors.StudyError` failure into one line on stderr and exit status 2.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.object_type import ObjectType
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from sweep.errors import StudyError

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


def register_presets() -> None:
    """Put the built-in presets (``pkg://exitcore.presets``) on every app's search path.

    Hydra finds search-path plugins by walking the directories of the ``hydra_plugins``
    namespace package; an editable install (the Quick start's ``pip install -e .``) exposes that
    package through an import hook, not a directory, so the walk misses it. Registering the
    plugin class by hand works for every kind of install (Hydra skips a class it already has).
    """
    from hydra.core.plugins import Plugins

    from hydra_plugins.exitsweep_presets import ExitcorePresets

    Plugins.instance().register(ExitcorePresets)


GroupLoader = Callable[[str, str], dict[str, Any]]


def group_loader(groups: Iterable[str]) -> tuple[GroupLoader, dict[str, list[str]]]:
    """``(load, available)`` for ``groups`` on the composed search path (``hydra.searchpath`` too).

    ``load(group, name)`` returns the file's mapping (its ``defaults`` list removed) or raises
    :class:`StudyError` naming the file; ``available[group]`` lists the names each group offers.
    Call inside a running Hydra app.
    """
    from hydra._internal.sources_registry import SourcesRegistry  # no public equivalent in 1.3

    sources = [
        SourcesRegistry.instance().resolve(entry.schema)(
            entry.provider, f"{entry.schema}://{entry.path}"
        )
        for entry in HydraConfig.get().runtime.config_sources
    ]
    available: dict[str, list[str]] = {}
    for group in groups:
        names: set[str] = set()
        for source in sources:
            if source.available() and source.exists(group):
                names.update(source.list(group, ObjectType.CONFIG))
        available[group] = sorted(names)

    def load(group: str, name: str) -> dict[str, Any]:
        for source in sources:
            if source.available() and source.is_config(f"{group}/{name}"):
                try:
                    loaded = source.load_config(f"{group}/{name}.yaml").config
                    container = OmegaConf.to_container(loaded, resolve=True)
                except Exception as exc:  # a YAML or interpolation error in the user's file
                    raise StudyError(
                        f"{group}/{name}.yaml cannot be read: {one_line(exc)}"
                    ) from None
                if not isinstance(container, dict):
                    raise StudyError(f"{group}/{name}.yaml must hold a mapping")
                container.pop("defaults", None)
                return container
        raise StudyError(f"no {group}/{name}.yaml on the config search path")

    return load, available


def resolved(cfg: DictConfig) -> dict[str, Any]:
    """The composed config as plain containers, interpolation errors as one line."""
    try:
        container = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as exc:
        raise StudyError(one_line(exc)) from None
    assert isinstance(container, dict)
    return container


def one_line(exc: BaseException) -> str:
    """First line of an exception and of its cause."""
    lines = [str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__]
    cause = exc.__cause__
    if cause is not None and str(cause).strip():
        lines.append(str(cause).strip().splitlines()[0])
    return " ".join(lines)


def _unknown_key_message(exc: BaseException, config_name: str) -> str | None:
    match = re.search(r"Could not override '([^']+)'", str(exc))
    if match is None or "not in struct" not in str(exc.__cause__ or ""):
        return None
    key = match.group(1)
    parent, _, leaf = key.rpartition(".")
    node: Any = _root_keys(config_name)
    for part in parent.split(".") if parent else []:
        node = node.get(part) if isinstance(node, Mapping | DictConfig) else None
    allowed = (
        sorted(k for k in node if k not in ("defaults", "hydra"))
        if isinstance(node, Mapping | DictConfig)
        else []
    )
    where = f"under '{parent}'" if parent else "at the top level"
    listing = ", ".join(str(k) for k in allowed) or "none"
    return f"unknown config key '{key}'; keys {where}: {listing}"


def _root_keys(config_name: str) -> Any:
    """The root config with the root configs its defaults list names merged in (the keys of a
    study that ``conf/sensitivity.yaml`` takes over with ``- config``)."""
    node: Any = OmegaConf.load(CONF_DIR / f"{config_name}.yaml")
    for entry in node.get("defaults") or []:
        if isinstance(entry, str) and (CONF_DIR / f"{entry}.yaml").is_file():
            node = OmegaConf.merge(_root_keys(entry), node)
    return node


def _rewrite(arg: str) -> str:
    # set.<group>.<param> targets free-form dicts: add the key (Hydra's ++) so the user need not;
    # sweep.spec validates it against the group's own parameters.
    return "++" + arg if arg.startswith("set.") else arg


def hydra_entry(
    task: Callable[[DictConfig], int], config_name: str, prog: str
) -> Callable[[], None]:
    """A console entry point running ``task(cfg) -> exit status`` as a Hydra app.

    A :class:`StudyError` from ``task`` and every Hydra or OmegaConf error (an unknown key, a
    malformed override) print ``<prog>: error: <one line>`` and exit with status 2; with
    ``HYDRA_FULL_ERROR=1`` in the environment Hydra's own traceback is shown instead.
    A multirun exits with the largest status of its jobs.
    """
    status = [0]

    @hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name=config_name)
    def _app(cfg: DictConfig) -> None:
        try:
            code = task(cfg)
        except StudyError as exc:
            print(f"{prog}: error: {exc}", file=sys.stderr)
            sys.exit(2)
        status[0] = max(status[0], code)

    def main() -> None:
        status[0] = 0
        register_presets()
        sys.argv = [sys.argv[0], *(_rewrite(arg) for arg in sys.argv[1:])]
        full_error = bool(os.environ.get("HYDRA_FULL_ERROR"))
        os.environ["HYDRA_FULL_ERROR"] = "1"  # let Hydra's errors reach us instead of printing them
        try:
            _app()
        except (HydraException, OmegaConfBaseException) as exc:
            if full_error:
                raise
            message = _unknown_key_message(exc, config_name) or one_line(exc)
            print(f"{prog}: error: {message}", file=sys.stderr)
            sys.exit(2)
        finally:
            if not full_error:
                os.environ.pop("HYDRA_FULL_ERROR", None)
        sys.exit(status[0])

    return main
