import json
import subprocess
import sys

from click.testing import CliRunner

from jetsynth.cli.main import cli


def _run(args, tmp_path):
    return CliRunner().invoke(cli, args, env={"XDG_CONFIG_HOME": str(tmp_path / "config")})


def _add_local(sshd, tmp_path):
    remote = tmp_path / "remote"
    remote.mkdir(exist_ok=True)
    return _run(["devices", "add", "local", "--host", f"{sshd.user}@127.0.0.1:{sshd.port}",
                 "--identity", sshd.identity, "--known-hosts", sshd.known_hosts, "--python", sys.executable,
                 "--remote-dir", str(remote), "--profile", "tx1"], tmp_path)


def test_devices_add_list_remove(tmp_path):
    added = _run(["devices", "add", "tx1", "--host", "ubuntu@192.168.55.1", "--profile", "tx1"], tmp_path)
    assert added.exit_code == 0 and "stored tx1 (ubuntu@192.168.55.1, port 22)" in added.output
    listed = json.loads(_run(["devices", "list", "--json"], tmp_path).output)
    assert listed == {"tx1": {"name": "tx1", "host": "192.168.55.1", "user": "ubuntu", "port": 22,
                              "python": "python3", "profile": "tx1", "remote_dir": "/tmp"}}
    assert "192.168.55.1" in _run(["devices", "list"], tmp_path).output
    again = _run(["devices", "add", "tx1", "--host", "10.0.0.1"], tmp_path)
    assert again.exit_code == 2 and "--replace" in again.output
    assert _run(["devices", "remove", "tx1"], tmp_path).exit_code == 0
    assert "no devices in" in _run(["devices", "list"], tmp_path).output


def test_probe_and_deploy_through_the_command_line(sshd, member_onnx, tmp_path):
    assert _add_local(sshd, tmp_path).exit_code == 0
    probed = _run(["devices", "probe", "local"], tmp_path)
    assert probed.exit_code == 0 and "onnxruntime" in probed.output and "free disk" in probed.output
    quick = ["--duration", "0.2", "--warmup", "0.05", "--iterations", "5", "--threads", "1",
             "--min-free", "1"]
    shown = _run(["deploy", str(member_onnx), "--device", "local", *quick], tmp_path)
    assert shown.exit_code == 0, shown.output
    assert "images/s at batch 1 (onnxruntime, fp16)" in shown.output
    assert "latency per query" in shown.output
    as_json = _run(["deploy", str(member_onnx), "-d", "local", "--json", "--batch", "2", *quick], tmp_path)
    result = json.loads(as_json.output)
    assert result["batch"] == 2 and result["target"]["profile"]["name"] == "tx1"


def test_deploy_to_several_devices_reports_each_failure_on_one_line(sshd, member_onnx, tmp_path):
    assert _add_local(sshd, tmp_path).exit_code == 0
    empty = tmp_path / "known_hosts_without_the_key"
    empty.write_text("")
    _run(["devices", "add", "stranger", "--host", f"{sshd.user}@127.0.0.1:{sshd.port}",
          "--identity", sshd.identity, "--known-hosts", str(empty), "--python", sys.executable], tmp_path)
    out = _run(["deploy", str(member_onnx), "-d", "local", "-d", "stranger", "--json", "--duration", "0.1",
                "--iterations", "3", "--min-free", "1"], tmp_path)
    assert out.exit_code == 2
    error_lines = [line for line in out.output.splitlines() if line.startswith("error:")]
    assert error_lines == [error_lines[0]] and "stranger" in error_lines[0] and "not in known_hosts" in (
        error_lines[0])


def test_bad_deploy_input_is_one_line_through_the_real_program(member_onnx, tmp_path):
    env = {"XDG_CONFIG_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    for args, expected in (
        (["deploy", str(tmp_path / "absent.onnx"), "--device", "tx1"], "no such file"),
        (["deploy", str(member_onnx), "--device", "nowhere"], "no device named 'nowhere'"),
        (["build", str(tmp_path / "absent.onnx"), "-o", str(tmp_path / "e.engine")], "no such file"),
        (["devices", "add", "x", "--host", "-oProxyCommand=sh"], "not a host"),
        (["deploy", str(tmp_path / "m.onnx"), "--device", "tx1", "--batch", "0"], "--batch"),
    ):
        done = subprocess.run([sys.executable, "-m", "jetsynth", *args], capture_output=True, text=True,
                              env=env)
        assert done.returncode == 2, (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1 and expected in done.stderr, done.stderr



def test_an_unknown_device_does_not_stop_the_others(sshd, member_onnx, tmp_path):
    assert _add_local(sshd, tmp_path).exit_code == 0
    out = _run(["deploy", str(member_onnx), "-d", "local", "-d", "nowhere", "--duration", "0.1",
                "--iterations", "3", "--min-free", "1", "--threads", "1"], tmp_path)
    assert out.exit_code == 2
    assert "local: " in out.output and "images/s at batch 1" in out.output
    error_lines = [line for line in out.output.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and "no device named 'nowhere'" in error_lines[0]
    as_json = _run(["deploy", str(member_onnx), "-d", "nowhere", "-d", "local", "--json", "--duration",
                    "0.1", "--iterations", "3", "--min-free", "1", "--threads", "1"], tmp_path)
    lines = as_json.output.splitlines()
    results = json.loads("\n".join(lines[:lines.index("]") + 1]))
    assert [r["target"]["name"] for r in results] == ["nowhere", "local"]
    assert "error" in results[0] and results[1]["fps"] > 0
