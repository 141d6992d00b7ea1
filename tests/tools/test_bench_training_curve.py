"""The training curve follows an ancestor's checkpoints; on a finished run it has nothing left to
follow and says the ancestor's own validation accuracy, and it refuses what is no ancestor."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_finished_ancestor_gives_its_final_accuracy_and_a_non_ancestor_is_refused(tmp_path):
    from jetsynth.run.config import EvolveConfig
    from jetsynth.run.evolve import evolve

    run_dir = tmp_path / "run"
    (ancestor,) = evolve(EvolveConfig(data="digits", subset=0.2, generations=1, ancestor_epochs=1), run_dir)
    command = [sys.executable, str(ROOT / "tools" / "bench_training_curve.py"), str(run_dir),
               "--poll", "0.01"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["curve"] == [] and result["final_val_accuracy"] == ancestor["val_accuracy"]
    refused = subprocess.run([*command, "--member", "g02-m00"], capture_output=True, text=True, timeout=300,
                             env=env, check=False)
    assert refused.returncode == 2 and refused.stderr.startswith("error: ")
