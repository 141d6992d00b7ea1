"""The side-by-side comparison runs end to end on the bundled digits (a few seconds)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_bench_vs_pruning_prints_both_frontiers_and_a_plot(tmp_path):
    pytest.importorskip("torch_pruning")
    out = tmp_path / "vs"
    command = [sys.executable, str(ROOT / "tools" / "bench_vs_pruning.py"), "--data", "digits",
               "--steps", "2", "--epochs", "1", "--ancestor-epochs", "2", "--importance", "l1",
               "--importance", "l1-round8", "--out", str(out), "--repeats", "1", "--fps-seconds", "0.02"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert set(result["points"]) == {"jetsynth", "tp-l1", "tp-l1-round8"}
    assert len(result["points"]["jetsynth"]) == len(result["points"]["tp-l1"]) == 2
    for points in result["points"].values():
        for point in points:
            assert 0.0 <= point["accuracy"] <= 1.0
            assert point["mac_reduction"] >= 1.0
            assert point["fps"] > 0
    assert set(result["summary"]) == {"jetsynth", "tp-l1", "tp-l1-round8"}
    assert set(result["fps_dominance"]) == {"tp-l1", "tp-l1-round8"}
    assert result["summary"]["tp-l1"]["cpu_seconds"] > 0
    assert (out / "frontiers.png").stat().st_size > 10_000
