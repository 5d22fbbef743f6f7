from __future__ import annotations

import subprocess
import sys

FORBIDDEN = ("ray", "hydra", "omegaconf", "pyarrow", "polars", "matplotlib")


def test_import_exitcore_loads_no_framework():
    code = (
        "import sys, exitcore, exitcore.teardown, exitcore.pagetable, exitcore.variant\n"
        f"print(','.join(m for m in {FORBIDDEN!r} if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == ""
