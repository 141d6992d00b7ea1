import os
import stat

import pytest

from jetsynth.agent.errors import AgentError
from jetsynth.agent.trtexec import parse_trtexec

TRTEXEC_82 = """\
[03/11/2022-14:57:03] [I] === Performance summary ===
[03/11/2022-14:57:03] [I] Throughput: 400.5 qps
[03/11/2022-14:57:03] [I] Latency: min = 2.25 ms, max = 3.5 ms, mean = 2.5 ms, median = 2.4 ms, percentile(99%) = 3.25 ms
[03/11/2022-14:57:03] [I] End-to-End Host Latency: min = 4 ms, max = 7 ms, mean = 5 ms, median = 5 ms, percentile(99%) = 6 ms
[03/11/2022-14:57:03] [I] GPU Compute Time: min = 1.5 ms, max = 2.5 ms, mean = 2 ms, median = 2 ms, percentile(99%) = 2.4 ms
[03/11/2022-14:57:03] [I] Total Host Walltime: 3.0 s
&&&& PASSED TensorRT.trtexec [TensorRT v8201]
"""
TRTEXEC_10 = TRTEXEC_82.replace(
    "percentile(99%) = 3.25 ms",
    "percentile(90%) = 3 ms, percentile(95%) = 3.1 ms, percentile(99%) = 3.25 ms")


def test_trtexec_summary_parsed_for_82_and_later():
    old = parse_trtexec(TRTEXEC_82, batch=4)
    assert old["throughput_qps"] == 400.5 and old["fps"] == 1602.0
    assert old["latency_ms"] == {"mean": 2.5, "min": 2.25, "p50": 2.4, "p90": None, "p99": 3.25, "max": 3.5}
    assert old["wall_seconds"] == 3.0 and old["queries"] == 1202
    assert parse_trtexec(TRTEXEC_10, batch=1)["latency_ms"]["p90"] == 3.0
    with pytest.raises(AgentError, match="no performance summary"):
        parse_trtexec("[E] Error[4]: engine failed", 1)


def test_agent_trtexec_path_builds_then_times(member_onnx, tmp_path, agent):
    """trtexec itself is TensorRT, which this machine lacks: a stand-in program on PATH answers
    with a recorded 8.2 summary, and the agent's argument building and parsing are checked."""
    program = tmp_path / "bin" / "trtexec"
    program.parent.mkdir()
    log = tmp_path / "calls.txt"
    program.write_text(
        "#!/bin/sh\n"
        f"echo \"$@\" >> {log}\n"
        "case \"$1\" in --help) echo '&&&& RUNNING TensorRT.trtexec [TensorRT v8201]';; "
        "--onnx=*) for a in \"$@\"; do case $a in --saveEngine=*) echo engine > \"${a#--saveEngine=}\";; "
        "--timingCacheFile=*) echo timed >> \"${a#--timingCacheFile=}\";; esac; done;; "
        f"*) cat {tmp_path / 'summary.txt'};; esac\n")
    program.chmod(program.stat().st_mode | stat.S_IEXEC)
    (tmp_path / "summary.txt").write_text(TRTEXEC_82)
    env = {**os.environ, "PATH": f"{program.parent}{os.pathsep}{os.environ['PATH']}"}
    code, result = agent("run", str(member_onnx), "--backend", "trtexec", "--batch", "4",
                          "--input-name", "image", "--input-shape", "1x28x28", "--workdir", str(tmp_path),
                          "--timing-cache", str(tmp_path / "cache" / "t.cache"), env=env)
    assert code == 0, result
    assert result["fps"] == 1602.0 and result["precision"] == "fp16" and result["engine_bytes"] == 7
    calls = log.read_text().splitlines()
    build = calls[1].split()
    assert "--buildOnly" in build and "--fp16" in build and "--workspace=256" in build
    assert "--optShapes=image:4x1x28x28" in build and "--minShapes=image:1x1x28x28" in build
    assert calls[2].split()[0].startswith("--loadEngine=") and "--shapes=image:4x1x28x28" in calls[2]
    # trtexec rewrote a private copy of the timing cache, which then replaced the cache
    assert os.listdir(tmp_path / "cache") == ["t.cache"]
    assert (tmp_path / "cache" / "t.cache").read_text() == "timed\n"
