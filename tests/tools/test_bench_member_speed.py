"""The member speed check runs end to end on a small evolved run, and counts a convolution's
multiply-accumulates from its profiled shapes by hand."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_conv_macs_by_hand():
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        from bench_member_speed import conv_macs
    finally:
        sys.path.remove(str(ROOT / "tools"))
    # batch 2, 8 -> 16 channels, 3x3 kernel, 4x4 output: 2 * 16 * 16 * (8 * 9) = 36,864
    event = {"args": {"op_name": "Conv",
                      "input_type_shape": [{"float": [2, 8, 4, 4]}, {"float": [16, 8, 3, 3]}],
                      "output_type_shape": [{"float": [2, 16, 4, 4]}]}}
    assert conv_macs(event) == 2 * 16 * 16 * 8 * 9
    # a depthwise conv's weight has one input channel per group: 2 * 8 * 16 * (1 * 9)
    event["args"]["input_type_shape"][1] = {"float": [8, 1, 3, 3]}
    event["args"]["output_type_shape"] = [{"float": [2, 8, 4, 4]}]
    assert conv_macs(event) == 2 * 8 * 16 * 9
    assert conv_macs({"args": {"op_name": "Relu", "input_type_shape": [{"float": [2, 8]}]}}) is None


def test_member_speed_alternates_members_with_the_ancestor_and_profiles_them(tmp_path):
    from jetsynth.run.config import EvolveConfig
    from jetsynth.run.evolve import evolve

    run_dir = tmp_path / "run"
    evolve(EvolveConfig(data="digits", subset=0.2, generations=2, ancestor_epochs=1, epochs=1), run_dir)
    command = [sys.executable, str(ROOT / "tools" / "bench_member_speed.py"), str(run_dir),
               "--member", "g02-m00", "--repeats", "2", "--seconds", "0.02", "--profile",
               "--profile-queries", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    (member,) = result["members"]
    assert member["id"] == "g02-m00" and member["mac_reduction"] >= 1.0
    assert member["gain_spread"][0] <= member["gain"] <= member["gain_spread"][1]
    assert set(result["profiles"]) == {"g01-m00", "g02-m00"}
    assert result["profiles"]["g01-m00"]["conv_ns_per_mac"] > 0
    missing = subprocess.run([*command[:3], "--member", "g09-m00"], capture_output=True, text=True,
                             timeout=300, env=env, check=False)
    assert missing.returncode == 2 and missing.stderr.startswith("error: no member g09-m00")
