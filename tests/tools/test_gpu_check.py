"""The GPU check on a machine without a GPU: it says so in its one JSON summary and runs nothing
else (every other check needs the GPU); each check is a function the summary names."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


def test_without_a_gpu_the_check_reports_it_and_stops():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: run tools/gpu_check.sh")
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "gpu_check.py")],
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert "finds no CUDA GPU" in summary["environment"]["failed"]
    assert summary["ok"] is False
    assert set(summary) == {"environment", "seconds", "ok"}


def test_every_gpu_path_has_its_check():
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import gpu_check
    finally:
        sys.path.remove(str(ROOT / "tools"))
    names = [name for name, _ in gpu_check.CHECKS]
    assert {"training", "parity", "loop_speed", "spread", "grow", "timing_lock", "benches",
            "tensorrt"} <= set(names)
    assert all(callable(check) for _, check in gpu_check.CHECKS)
