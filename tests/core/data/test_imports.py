"""The API validates uploads with core.data and must not import torch to do it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

# Stands in an empty `core` package, so only core.data's own imports are measured.
SCRIPT = f"""
import sys, types
core = types.ModuleType("core")
core.__path__ = [{str(ROOT / "core")!r}]
sys.modules["core"] = core
import core.data
from core.data import validate
assert validate(b'{{"prompt": "a", "completion": "b"}}').ok
assert "torch" not in sys.modules, "core.data imported torch"
core.data.epoch_order
assert "torch" in sys.modules
"""


def test_core_data_validates_without_importing_torch() -> None:
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
