import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from jetsynth.devices.deploy import DeployOptions, deploy, deploy_many, probe
from jetsynth.devices.inventory import Device
from jetsynth.devices.ssh import Ssh, SshOptions
from jetsynth.errors import JetsynthError
from jetsynth.ship.onnxfile import model_facts

QUICK = DeployOptions(duration=0.2, warmup=0.05, min_queries=5, threads=1, min_free_mib=1)


def _leftovers(device: Device) -> list[str]:
    return sorted(p.name for p in Path(device.remote_dir).iterdir() if p.name.startswith("jetsynth."))


def test_deploy_end_to_end_on_the_onnxruntime_path(local_device, member_onnx):
    result = deploy(member_onnx, local_device, QUICK)
    assert result.backend == "onnxruntime" and result.precision == "fp16"
    assert result.fps > 0 and result.agent["queries"] >= 5 and result.batch == 1
    assert result.agent["model_sha256"] == hashlib.sha256(member_onnx.read_bytes()).hexdigest()
    assert result.model["input_shape"] == [1, 28, 28]
    assert set(result.host_seconds) == {"connect", "prepare", "copy", "agent", "cleanup", "total"}
    assert result.build_seconds >= 0 and "onnxruntime" in result.device
    assert result.target.name == "local" and result.warnings == ()
    written = result.to_json()  # what `deploy --json` prints: the agent's reply, then the host's
    assert list(written)[-5:] == ["target", "model", "host_seconds", "warnings", "produced_by"]
    assert written["fps"] == result.fps and written["target"]["port"] == local_device.port
    assert _leftovers(local_device) == []


def test_batch_reaches_the_device(local_device, member_onnx):
    result = deploy(member_onnx, local_device, DeployOptions(**{**QUICK.__dict__, "batch": 4}))
    assert result.batch == 4 and result.fps == pytest.approx(4 * result.agent["throughput_qps"])


def test_wrong_python_path_is_one_line(local_device, member_onnx):
    wrong = Device(**{**local_device.as_dict(), "python": "/opt/nowhere/python3"})
    with pytest.raises(JetsynthError, match="no Python at /opt/nowhere/python3 .*--python PATH"):
        deploy(member_onnx, wrong, QUICK)
    assert _leftovers(wrong) == []
    with pytest.raises(JetsynthError, match="no Python at"):
        probe(wrong)


def _custom_op_model(tmp_path) -> Path:
    graph = helper.make_graph(
        [helper.make_node("Frobnicate", ["x"], ["y"], domain="com.example")], "custom",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1, 8, 8])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                    helper.make_opsetid("com.example", 1)], ir_version=8)
    path = tmp_path / "custom.onnx"
    onnx.save(model, str(path))
    return path


def test_model_the_device_cannot_parse_is_one_line(local_device, tmp_path):
    with pytest.raises(JetsynthError, match=r"^local: onnxruntime .* cannot load the model: .*Frobnicate"):
        deploy(_custom_op_model(tmp_path), local_device, QUICK)
    assert _leftovers(local_device) == []


def test_host_side_model_checks(tmp_path):
    with pytest.raises(JetsynthError, match="no such file"):
        model_facts(tmp_path / "absent.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"junk")
    with pytest.raises(JetsynthError, match="not a readable ONNX model"):
        model_facts(tmp_path / "junk.onnx")


def _small_tmpfs(path: Path, size: str) -> None:
    path.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here to fill ({done.stderr.strip() or 'not root'})")


def test_full_disk_is_one_line_and_leaves_nothing(local_device, member_onnx, tmp_path):
    full = tmp_path / "full"
    _small_tmpfs(full, "24k")
    try:
        device = Device(**{**local_device.as_dict(), "remote_dir": str(full)})
        with pytest.raises(JetsynthError, match=r"only 0\.0 MiB free in .*needs 64\.\d MiB"):
            deploy(member_onnx, device, DeployOptions(min_free_mib=64))
        with pytest.raises(JetsynthError, match=r"only 0\.0 MiB free in .*needs 0\.\d MiB"):
            deploy(member_onnx, device, DeployOptions(min_free_mib=0))
        assert list(full.iterdir()) == []
        with pytest.raises(JetsynthError, match="disk is full while copying"), Ssh(device) as ssh:
            ssh.put(b"x" * 100_000, f"{full}/big")
    finally:
        subprocess.run(["umount", str(full)], check=False)


def test_unreachable_and_missing_remote_dir(local_device, member_onnx):
    from sshd_server import free_port

    with pytest.raises(JetsynthError, match="cannot reach local"):
        deploy(member_onnx, Device(**{**local_device.as_dict(), "port": free_port()}), QUICK)
    with pytest.raises(JetsynthError, match="cannot make a work directory in /nonexistent/x"):
        deploy(member_onnx, Device(**{**local_device.as_dict(), "remote_dir": "/nonexistent/x"}), QUICK)


def test_several_devices_in_parallel_one_failing(local_device, member_onnx):
    from sshd_server import free_port

    twin = Device(**{**local_device.as_dict(), "name": "twin"})
    dead = Device(**{**local_device.as_dict(), "name": "dead", "port": free_port()})
    results = deploy_many(member_onnx, [local_device, twin, dead], QUICK)
    assert [r.target.name for r in results[:2]] == ["local", "twin"] and results[2].name == "dead"
    assert results[0].fps > 0 and results[1].fps > 0
    assert "cannot reach dead" in results[2].error
    assert results[2].to_json() == {"target": {"name": "dead", "destination": dead.destination},
                                    "error": results[2].error}
    assert _leftovers(local_device) == []


def test_probe_reports_the_device_facts(local_device):
    facts = probe(local_device)
    assert facts["python"] and facts["onnxruntime"] and facts["free_disk_mib"] > 0
    assert facts["l4t"] is None or facts["l4t"].startswith("3")
    tagged = Device(**{**local_device.as_dict(), "profile": "tx1"})
    warnings = probe(tagged)["warnings"]
    if facts["tensorrt"] or facts["trtexec"] or facts["gpu"] or facts["cuda"]:
        pytest.skip("this machine has TensorRT or a GPU")
    assert len(warnings) == 2
    assert "the device has no TensorRT" in warnings[0] and "no GPU and no CUDA" in warnings[1]


def test_a_device_that_contradicts_its_profile_warns_and_says_what_timed_it(local_device, member_onnx):
    tagged = Device(**{**local_device.as_dict(), "profile": "tx1"})
    result = deploy(member_onnx, tagged, QUICK)
    assert result.produced_by == "onnxruntime on the CPU, fp16 weights (not TensorRT)"
    if not (result.device["tensorrt"] or result.device["trtexec"]):
        assert any("has no TensorRT" in w for w in result.warnings)


def test_a_named_backend_fails_rather_than_falls_back(local_device, member_onnx):
    facts = probe(local_device)
    if facts["tensorrt"]:
        pytest.skip("this machine has TensorRT")
    options = DeployOptions(**{**QUICK.__dict__, "backend": "tensorrt"})
    with pytest.raises(JetsynthError, match="--backend tensorrt: TensorRT's Python bindings are not on "
                                            "this device, and a named backend does not fall back"):
        deploy(member_onnx, local_device, options)
    assert _leftovers(local_device) == []


def test_a_remote_dir_with_a_space_deploys(local_device, member_onnx):
    spaced = Path(local_device.remote_dir) / "my models"
    spaced.mkdir()
    device = Device(**{**local_device.as_dict(), "remote_dir": str(spaced)})
    assert deploy(member_onnx, device, QUICK).fps > 0
    assert list(spaced.iterdir()) == []


def test_the_root_as_remote_dir_leaves_nothing(local_device, member_onnx):
    if not os.access("/", os.W_OK):
        pytest.skip("/ is not writable here")
    before = _leftovers(Device(**{**local_device.as_dict(), "remote_dir": "/"}))
    device = Device(**{**local_device.as_dict(), "remote_dir": "/"})
    assert deploy(member_onnx, device, QUICK).fps > 0
    assert _leftovers(device) == before


def test_a_deploy_removes_its_own_work_directories_older_than_a_day(local_device, member_onnx):
    remote = Path(local_device.remote_dir)
    old = time.time() - 2 * 86400
    for name in ("jetsynth.OLDOLD01", "jetsynth.NEWNEW01", "jetsynth.OLD", "other.OLDOLD01"):
        (remote / name).mkdir()
        (remote / name / "model.onnx").write_bytes(b"x")
        if "OLD" in name:
            os.utime(remote / name, (old, old))
    (remote / "jetsynth.FILEFILE").write_bytes(b"a file, not a work directory")
    os.utime(remote / "jetsynth.FILEFILE", (old, old))
    deploy(member_onnx, local_device, QUICK)
    assert sorted(p.name for p in remote.iterdir()) == ["jetsynth.FILEFILE", "jetsynth.NEWNEW01",
                                                       "jetsynth.OLD", "other.OLDOLD01"]


def _processes(*needles: str) -> dict[int, list[str]]:
    """pid -> argv of this machine's processes whose argv contains every needle."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode("utf-8", "replace").split("\0")[:-1]
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and all(any(n in a for a in argv) for n in needles):
            found[int(entry.name)] = argv
    return found


def _wait_for(find, seconds: float = 60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = find()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("not found in time")


def _agents(device: Device) -> dict[int, list[str]]:
    return _processes(f"{device.remote_dir}/jetsynth.", "jetsynth_agent.py", "--watch-stdin")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _gone_within(pids, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not any(_alive(pid) for pid in pids):
            return True
        time.sleep(0.1)
    return False


SLOW = DeployOptions(duration=120, warmup=0.05, min_queries=5, threads=1, min_free_mib=1)


def test_the_agent_ends_when_its_ssh_client_is_killed(local_device, member_onnx):
    outcome = {}

    def run() -> None:
        try:
            outcome["result"] = deploy(member_onnx, local_device, SLOW)
        except JetsynthError as exc:
            outcome["error"] = str(exc)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        agents = _wait_for(lambda: _agents(local_device))
        clients = {pid: argv for pid, argv in _processes(local_device.remote_dir, "jetsynth_agent.py")
                   .items() if argv[0] == "ssh"}
        assert len(clients) == 1
        os.kill(next(iter(clients)), signal.SIGKILL)
        assert _gone_within(agents, 10), "the agent outlived its connection"
    finally:
        thread.join(timeout=60)
    assert "error" in outcome and not thread.is_alive()
    assert _leftovers(local_device) == []


def test_the_agent_ends_after_a_host_timeout(local_device, member_onnx):
    started = time.monotonic()
    with pytest.raises(JetsynthError, match="the agent did not finish within 4 s"):
        deploy(member_onnx, local_device, SLOW, SshOptions(command_timeout=4))
    assert time.monotonic() - started < 60
    assert _gone_within(_agents(local_device), 10)
    assert _leftovers(local_device) == []


def test_the_agent_ends_when_its_host_is_killed(local_device, member_onnx, sshd, tmp_path):
    from jetsynth.devices.inventory import add_device

    config = tmp_path / "config"
    add_device(local_device, config / "jetsynth" / "devices.toml")
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "XDG_CONFIG_HOME": str(config), "PYTHONPATH": str(root)}
    host = subprocess.Popen([sys.executable, "-m", "jetsynth", "deploy", str(member_onnx), "-d", "local",
                             "--duration", "120", "--warmup", "0.05", "--min-free", "1"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        agents = _wait_for(lambda: _agents(local_device))
        host.kill()
        host.wait()
        assert _gone_within(agents, 10), "the agent outlived its host"
        deadline = time.monotonic() + 10
        while _leftovers(local_device) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _leftovers(local_device) == []
    finally:
        if host.poll() is None:
            host.kill()
            host.wait()
        # the killed host's own ssh processes (its shared connection) are ours to end
        for pid, argv in _processes(sshd.identity).items():
            if argv[0] == "ssh":
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
