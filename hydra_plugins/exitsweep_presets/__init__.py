"""Hydra search-path plugin: the built-in presets of ``exitcore`` (``pkg://exitcore.presets``).

A plugin, not a ``hydra.searchpath`` entry in conf/config.yaml, so that a user's
``hydra.searchpath=[file:///their/presets]`` adds to the built-ins instead of replacing them.
"""

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin


class ExitcorePresets(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        search_path.append(provider="exitcore", path="pkg://exitcore.presets")
