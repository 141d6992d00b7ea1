import hashlib
import subprocess
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from jetsynth.deploy import DeployOptions, deploy, deploy_many, model_facts, probe
from jetsynth.devices import Device
from jetsynth.errors import JetsynthError
from jetsynth.ssh import Ssh

QUICK = DeployOptions(duration=0.2, warmup=0.05, min_queries=5, threads=1, min_free_mib=1)


def _leftovers(device: Device) -> list[str]:
    return sorted(p.name for p in Path(device.remote_dir).iterdir() if p.name.startswith("jetsynth."))


def test_deploy_end_to_end_on_the_onnxruntime_path(local_device, member_onnx):
    result = deploy(member_onnx, local_device, QUICK)
    assert result["backend"] == "onnxruntime" and result["precision"] == "fp16"
    assert result["fps"] > 0 and result["queries"] >= 5 and result["batch"] == 1
    assert result["model_sha256"] == hashlib.sha256(member_onnx.read_bytes()).hexdigest()
    assert result["model"]["input_shape"] == [1, 28, 28]
    assert set(result["host_seconds"]) == {"connect", "prepare", "copy", "agent", "cleanup", "total"}
    assert result["build_seconds"] >= 0 and "onnxruntime" in result["device"]
    assert result["target"]["name"] == "local" and result["warnings"] == []
    assert _leftovers(local_device) == []


def test_batch_reaches_the_device(local_device, member_onnx):
    result = deploy(member_onnx, local_device, DeployOptions(**{**QUICK.__dict__, "batch": 4}))
    assert result["batch"] == 4 and result["fps"] == pytest.approx(4 * result["throughput_qps"])


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
    assert [r["target"]["name"] for r in results] == ["local", "twin", "dead"]
    assert results[0]["fps"] > 0 and results[1]["fps"] > 0
    assert "cannot reach dead" in results[2]["error"]
    assert _leftovers(local_device) == []


def test_probe_reports_the_device_facts(local_device):
    facts = probe(local_device)
    assert facts["python"] and facts["onnxruntime"] and facts["free_disk_mib"] > 0
    assert facts["l4t"] is None or facts["l4t"].startswith("3")
    tagged = Device(**{**local_device.as_dict(), "profile": "tx1"})
    assert probe(tagged)["warnings"] == []
