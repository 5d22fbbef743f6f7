from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    if importlib.util.find_spec(tool) is None:
        pytest.skip(f"{tool} is not installed")
    return subprocess.run(
        [sys.executable, "-m", tool, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_ruff_clean_on_exitcore():
    result = _run("ruff", "check", "exitcore")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_clean_on_exitcore():
    result = _run("mypy", "exitcore")
    assert result.returncode == 0, result.stdout + result.stderr
