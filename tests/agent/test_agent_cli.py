"""The shipped agent (the bundled file) run as a program, as `jetsynth deploy` runs it."""

import os
import stat
import subprocess
import sys
import time


def test_agent_runs_a_model_on_onnxruntime(member_onnx, tmp_path, agent):
    code, result = agent("run", str(member_onnx), "--duration", "0.2", "--warmup", "0.05",
                          "--min-queries", "5", "--threads", "1", "--workdir", str(tmp_path))
    assert code == 0, result
    assert result["backend"] == "onnxruntime" and result["precision"] == "fp16"
    assert result["queries"] >= 5 and result["fps"] > 0
    assert result["latency_ms"]["p50"] <= result["latency_ms"]["p99"]
    assert result["device"]["onnxruntime"] and result["device"]["free_disk_mib"] > 0
    assert result["power"] is None


def test_agent_errors_are_one_json_line(tmp_path, agent):
    code, result = agent("run", str(tmp_path / "absent.onnx"))
    assert code == 2 and result == {"error": f"no model at {tmp_path / 'absent.onnx'}"}
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"not a model")
    code, result = agent("run", str(corrupt), "--backend", "onnxruntime")
    assert code == 2 and result["error"].startswith("onnxruntime")
    assert "cannot load the model" in result["error"]


def _slow_agent(agent_file, member_onnx, tmp_path, *extra):
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
    process = subprocess.Popen([sys.executable, str(agent_file), "run", str(work / "model.onnx"),
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


def test_the_agent_ends_with_its_children_and_folder_when_stdin_closes(agent_file, member_onnx, tmp_path):
    process, work, child = _slow_agent(agent_file, member_onnx, tmp_path, "--watch-stdin")
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


def test_the_agent_ends_at_its_deadline(agent_file, member_onnx, tmp_path):
    started = time.monotonic()
    process, work, child = _slow_agent(agent_file, member_onnx, tmp_path, "--max-seconds", "3")
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
