import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fake_tensorrt import make_tensorrt

from jetsynth import device_agent
from jetsynth.device_agent import (
    AgentError,
    build_engine,
    nearest_rank,
    parse_l4t,
    parse_nvpmodel,
    parse_tegrastats,
    parse_trtexec,
    power_summary,
    summarize,
)

AGENT = Path(device_agent.__file__)


def test_nearest_rank_percentiles_by_hand():
    values = [float(v) for v in range(1, 11)]
    assert nearest_rank(values, 50) == 5.0
    assert nearest_rank(values, 90) == 9.0
    assert nearest_rank(values, 99) == 10.0
    assert nearest_rank(values, 0) == 1.0
    assert nearest_rank([3.0], 99) == 3.0


def test_summarize_follows_trtexec_definitions_by_hand():
    stats = summarize([4.0, 1.0, 3.0, 2.0], wall_seconds=0.5, batch=8)
    assert stats["queries"] == 4
    assert stats["throughput_qps"] == 8.0
    assert stats["fps"] == 64.0
    assert stats["latency_ms"] == {"mean": 2.5, "min": 1.0, "p50": 2.0, "p90": 4.0, "p99": 4.0, "max": 4.0}


def test_agent_is_python_36_compatible():
    vermin = shutil.which("vermin")
    if vermin is None:
        pytest.skip("vermin is not installed (pip install -e '.[test]' brings it)")
    done = subprocess.run([vermin, "-t=3.6-", "--no-tips", "--violations", "--eval-annotations", str(AGENT)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_agent_imports_nothing_from_jetsynth():
    text = AGENT.read_text()
    assert "from ." not in text and "import jetsynth" not in text and "from jetsynth" not in text


def test_device_fact_parsers_on_real_formats():
    release = "# R32 (release), REVISION: 7.1, GCID: 29818004, BOARD: t210ref, EABI: aarch64, DATE: Sat Feb 19"
    assert parse_l4t(release) == "32.7.1"
    assert parse_l4t("") is None
    assert parse_nvpmodel("NV Fan Mode:quiet\nNV Power Mode: MAXN\n0\n") == {"name": "MAXN", "id": 0}
    assert parse_nvpmodel("NV Power Mode: 5W\n1\n") == {"name": "5W", "id": 1}
    assert parse_nvpmodel(None) is None


def test_tegrastats_rails_old_and_new_formats():
    tx1 = ("RAM 1461/3964MB (lfb 395x4MB) SWAP 0/1982MB (cached 0MB) CPU [2%@102,1%@102] "
           "EMC_FREQ 0% GR3D_FREQ 0% PLL@22C CPU@24.5C POM_5V_IN 2984/3012 POM_5V_GPU 120/118 "
           "POM_5V_CPU 409/400")
    assert parse_tegrastats(tx1) == {"POM_5V_IN": 2984, "POM_5V_GPU": 120, "POM_5V_CPU": 409}
    orin = "RAM 2000/7620MB GR3D_FREQ 0% VDD_IN 5012mW/5012mW VDD_CPU_GPU_CV 801mW/801mW VDD_SOC 1441mW/1441mW"
    assert parse_tegrastats(orin) == {"VDD_IN": 5012, "VDD_CPU_GPU_CV": 801, "VDD_SOC": 1441}


def test_power_summary_means_and_energy_per_image_by_hand():
    samples = [{"POM_5V_IN": 3000, "POM_5V_GPU": 100}, {"POM_5V_IN": 5000, "POM_5V_GPU": 300}]
    power = power_summary(samples, fps=400.0)
    assert power["rails_mw"] == {"POM_5V_IN": 4000.0, "POM_5V_GPU": 200.0}
    assert power["input_rail"] == "POM_5V_IN"
    assert power["mj_per_image"] == 10.0
    assert power_summary([], 100.0) is None


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


def _onnx(tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"\x08\x07onnx-bytes")
    return path


def test_build_engine_on_tensorrt_8_uses_workspace_size_and_explicit_batch(tmp_path):
    trt = make_tensorrt("8.2.1.8", fast_fp16=True)
    cache = tmp_path / "timing.cache"
    facts = build_engine(trt, str(_onnx(tmp_path)), str(tmp_path / "m.engine"), fp16=True,
                         workspace_mib=64, timing_cache=str(cache), batch=4, max_batch=8)
    assert trt.calls["network_flags"] == 1
    assert trt.calls["max_workspace_size"] == 64 << 20 and "memory_pool_limit" not in trt.calls
    assert trt.calls["flags"] == ["FP16"]
    assert trt.calls["profile"] == ("image", (1, 1, 28, 28), (4, 1, 28, 28), (8, 1, 28, 28))
    assert (tmp_path / "m.engine").read_bytes() == b"ENGINE"
    assert facts["precision"] == "fp16" and facts["engine_bytes"] == 6
    assert cache.read_bytes() == b"+timed" and facts["timing_cache_bytes"] == 6
    build_engine(trt, str(_onnx(tmp_path)), str(tmp_path / "m.engine"), timing_cache=str(cache))
    assert trt.calls["cache_in"] == b"+timed"


def test_build_engine_on_tensorrt_10_uses_memory_pools(tmp_path):
    trt = make_tensorrt("10.3.0", fast_fp16=True)
    build_engine(trt, str(_onnx(tmp_path)), str(tmp_path / "m.engine"), workspace_mib=32)
    assert trt.calls["network_flags"] == 0
    assert trt.calls["memory_pool_limit"] == ("WORKSPACE", 32 << 20)
    assert "max_workspace_size" not in trt.calls


def test_fp16_only_where_fast_and_sparse_only_on_ampere(tmp_path):
    maxwell = make_tensorrt("8.2.1.8", fast_fp16=False)
    facts = build_engine(maxwell, str(_onnx(tmp_path)), str(tmp_path / "e"), fp16=True, sparse=True)
    assert "flags" not in maxwell.calls
    assert facts["precision"] == "fp32" and facts["fp16_requested"] and not facts["sparse_applied"]
    assert "does nothing here" in facts["sparse_note"]
    orin = make_tensorrt("10.3.0", fast_fp16=True, tf32=True)
    facts = build_engine(orin, str(_onnx(tmp_path)), str(tmp_path / "e"), fp16=True, sparse=True)
    assert orin.calls["flags"] == ["FP16", "SPARSE_WEIGHTS"]
    assert facts["sparse_applied"] and "sparse_note" not in facts


def test_build_engine_failures_are_one_line(tmp_path):
    with pytest.raises(AgentError, match="cannot parse m.onnx: In node 3 .*Foo"):
        build_engine(make_tensorrt(parse_ok=False), str(_onnx(tmp_path)), str(tmp_path / "e"))
    with pytest.raises(AgentError, match="could not build"):
        build_engine(make_tensorrt(build_ok=False), str(_onnx(tmp_path)), str(tmp_path / "e"))
    with pytest.raises(AgentError, match="batch size is fixed at 1"):
        build_engine(make_tensorrt(input_shape=(1, 1, 28, 28)), str(_onnx(tmp_path)), str(tmp_path / "e"),
                     batch=4)
    with pytest.raises(AgentError, match="only the batch axis"):
        build_engine(make_tensorrt(input_shape=(-1, 1, -1, 28)), str(_onnx(tmp_path)), str(tmp_path / "e"))


def _agent(*args, env=None):
    done = subprocess.run([sys.executable, str(AGENT), *args], capture_output=True, text=True, env=env)
    return done.returncode, json.loads(done.stdout)


def test_agent_runs_a_model_on_onnxruntime(member_onnx, tmp_path):
    code, result = _agent("run", str(member_onnx), "--duration", "0.2", "--warmup", "0.05",
                          "--min-queries", "5", "--threads", "1", "--workdir", str(tmp_path))
    assert code == 0, result
    assert result["backend"] == "onnxruntime" and result["precision"] == "fp16"
    assert result["queries"] >= 5 and result["fps"] > 0
    assert result["latency_ms"]["p50"] <= result["latency_ms"]["p99"]
    assert result["device"]["onnxruntime"] and result["device"]["free_disk_mib"] > 0
    assert result["power"] is None


def test_agent_errors_are_one_json_line(tmp_path):
    code, result = _agent("run", str(tmp_path / "absent.onnx"))
    assert code == 2 and result == {"error": f"no model at {tmp_path / 'absent.onnx'}"}
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"not a model")
    code, result = _agent("run", str(corrupt), "--backend", "onnxruntime")
    assert code == 2 and result["error"].startswith("onnxruntime")
    assert "cannot load the model" in result["error"]


def test_agent_trtexec_path_builds_then_times(member_onnx, tmp_path):
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
    code, result = _agent("run", str(member_onnx), "--backend", "trtexec", "--batch", "4",
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


@pytest.mark.parametrize("bad_cache", ["none", "raise"])
def test_a_timing_cache_tensorrt_cannot_load_is_ignored_and_replaced(tmp_path, bad_cache):
    trt = make_tensorrt("8.2.1.8", bad_cache=bad_cache)
    cache = tmp_path / "timing.cache"
    cache.write_bytes(b"bad blob from another TensorRT")
    facts = build_engine(trt, str(_onnx(tmp_path)), str(tmp_path / "m.engine"), timing_cache=str(cache))
    assert trt.calls["cache_rejected"] == b"bad blob from another TensorRT"
    assert trt.calls["cache_in"] == b"" and facts["timing_cache_bytes"] == 6
    assert cache.read_bytes() == b"+timed"
    assert sorted(os.listdir(tmp_path)) == ["m.engine", "m.onnx", "timing.cache"]


def test_the_timing_cache_is_replaced_not_written_through(tmp_path):
    """A link planted at the cache's path is replaced by the new cache; its target is untouched."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    cache = tmp_path / "cache" / "timing.cache"
    cache.parent.mkdir()
    cache.symlink_to(victim)
    build_engine(make_tensorrt(), str(_onnx(tmp_path)), str(tmp_path / "m.engine"), timing_cache=str(cache))
    assert victim.read_text() == "precious"
    assert not cache.is_symlink() and cache.read_bytes() == b"+timed"
    assert os.listdir(cache.parent) == ["timing.cache"]


def test_the_timing_cache_is_per_user(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    options = device_agent.parse_args(["run", "m.onnx", "--timing-cache", "user"])
    assert options.timing_cache == str(tmp_path / "xdg" / "jetsynth" / "tensorrt-timing.cache")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert device_agent.default_timing_cache() == str(tmp_path / "home" / ".cache" / "jetsynth" /
                                                      "tensorrt-timing.cache")
    build_engine(make_tensorrt(), str(_onnx(tmp_path)), str(tmp_path / "m.engine"),
                 timing_cache=device_agent.default_timing_cache())
    folder = tmp_path / "home" / ".cache" / "jetsynth"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def _slow_agent(member_onnx, tmp_path, *extra):
    """The agent timing for a minute in tmp_path/jetsynth.work, with a stand-in tegrastats that
    records its pid; returns (process, work folder, tegrastats pid file)."""
    work = tmp_path / "jetsynth.work"
    work.mkdir()
    (work / "model.onnx").write_bytes(member_onnx.read_bytes())
    tools = tmp_path / "bin"
    tools.mkdir()
    pidfile = tmp_path / "tegrastats.pid"
    program = tools / "tegrastats"
    program.write_text(f"#!/bin/sh\necho $$ > {pidfile}\nexec sleep 600\n")
    program.chmod(program.stat().st_mode | stat.S_IEXEC)
    env = {**os.environ, "PATH": f"{tools}{os.pathsep}{os.environ['PATH']}"}
    process = subprocess.Popen([sys.executable, str(AGENT), "run", str(work / "model.onnx"),
                                "--backend", "onnxruntime", "--duration", "60", "--threads", "1",
                                "--workdir", str(work), *extra], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 60
    while not (pidfile.is_file() and pidfile.read_text().strip()):
        assert time.monotonic() < deadline and process.poll() is None, "the agent never timed"
        time.sleep(0.05)
    return process, work, int(pidfile.read_text())


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with open(f"/proc/{pid}/stat") as handle:  # a zombie has ended
        return handle.read().rsplit(")", 1)[1].split()[0] == "Z"


def test_the_agent_ends_with_its_children_and_folder_when_stdin_closes(member_onnx, tmp_path):
    process, work, child = _slow_agent(member_onnx, tmp_path, "--watch-stdin")
    try:
        process.stdin.close()
        assert process.wait(timeout=10) == 3
        assert not work.exists()
        deadline = time.monotonic() + 5
        while not _gone(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _gone(child)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        process.stdout.close()
        if not _gone(child):
            os.kill(child, 9)


def test_the_agent_ends_at_its_deadline(member_onnx, tmp_path):
    started = time.monotonic()
    process, work, child = _slow_agent(member_onnx, tmp_path, "--max-seconds", "3")
    try:
        assert process.wait(timeout=20) == 4 and time.monotonic() - started < 20
        assert not work.exists()
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        process.stdin.close()
        process.stdout.close()
        if not _gone(child):
            os.kill(child, 9)


@pytest.mark.parametrize("seconds", [float("nan"), float("inf"), -1.0])
def test_timing_refuses_a_duration_it_would_never_reach(seconds):
    from jetsynth.device_agent import AgentError, time_queries

    with pytest.raises(AgentError, match="must be finite and not negative"):
        time_queries(lambda: None, 0.0, seconds, 1)
