"""Where jetsynth writes and connects is the user's word: every -o is a plain file outside run
directories, a resumed run connects only to devices the command line or the user's inventory
names, ports are 1-65535, SIGTERM saves like Ctrl-C; and valid input (IPv6 targets, ~ in --data)
is accepted."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import make_idx_folder

from jetsynth.cli.main import cli
from jetsynth.run.config import EvolveConfig, unconfirmed_devices
from jetsynth.run.rundir import load_records

QUICK = ["--subset", "0.2", "--generations", "2", "--epochs", "0", "--ancestor-epochs", "0"]
REPO = Path(__file__).resolve().parents[2]


def _run(*args, env=None):
    return CliRunner(env=env).invoke(cli, [str(a) for a in args])


def _one_error_line(result, *fragments):
    assert result.exit_code == 2, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("error: ") and "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in last, last
    return last


@pytest.fixture
def inventory(tmp_path, monkeypatch):
    """An empty device inventory of this test's own (XDG_CONFIG_HOME)."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return tmp_path / "config" / "jetsynth" / "devices.toml"


# ---- -o


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("command", [
    ["export", "{run}", "-g", "1", "-m", "0", "--no-parity"],
    ["build", "model.onnx"],
    ["calibrate", "ort-cpu"],
])
def test_every_output_refuses_a_fifo_a_device_node_and_a_link(command, benched_run, fifo, tmp_path):
    args = [a.replace("{run}", str(benched_run)) for a in command]
    link = tmp_path / "link.onnx"
    link.symlink_to(tmp_path / "elsewhere.onnx")
    for output, what in ((fifo, "is a FIFO"), (Path("/dev/null"), "is a device node"),
                         (link, "is a symbolic link")):
        _one_error_line(_run(*args, "-o", output), str(output), what)
    assert fifo.exists() and not (tmp_path / "elsewhere.onnx").exists()
    assert Path("/dev/null").is_char_device()


def test_export_refuses_to_write_inside_a_run(benched_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(benched_run, run)
    config = (run / "config.json").read_bytes()
    for output in (run / "config.json", run / "report" / "m.onnx"):
        _one_error_line(_run("export", run, "-g", "1", "-m", "0", "-o", output),
                        f"is inside the run directory {run}")
    assert (run / "config.json").read_bytes() == config
    result = _run("export", run, "-g", "1", "-m", "0", "--no-parity", "-o", tmp_path / "m.onnx")
    assert result.exit_code == 0, result.output


# ---- destinations


def _received_run(tmp_path, bench: str, pool=()) -> Path:
    """A finished run whose config.json was edited (as a sender could) to time on `bench`."""
    run = tmp_path / "received"
    assert _run("evolve", "--run-dir", run, *QUICK).exit_code == 0
    stored = json.loads((run / "config.json").read_text())
    stored["config"]["bench"], stored["config"]["bench_pool"] = bench, list(pool)
    (run / "config.json").write_text(json.dumps(stored))
    return run


def test_a_received_run_does_not_choose_where_resume_connects(tmp_path, inventory):
    run = _received_run(tmp_path, "someone@192.0.2.1:22", ["other@192.0.2.2"])
    events = (run / "events.jsonl").read_text()
    _one_error_line(_run("evolve", "--run-dir", run, "--resume"),
                    "someone@192.0.2.1:22, other@192.0.2.2", "a run directory does not choose",
                    "add --bench someone@192.0.2.1:22 --bench other@192.0.2.2 to allow it")
    assert (run / "events.jsonl").read_text() == events  # refused before the run was opened


def test_a_recorded_device_is_used_when_named_again_or_in_the_users_inventory(tmp_path, inventory):
    stored = EvolveConfig(bench="tx1", bench_pool=("someone@192.0.2.1",))
    assert unconfirmed_devices(stored, bench_given=False) == ["tx1", "someone@192.0.2.1"]
    assert unconfirmed_devices(stored, bench_given=True) == []
    assert _run("devices", "add", "tx1", "--host", "ubuntu@192.0.2.5").exit_code == 0
    assert unconfirmed_devices(stored, bench_given=False) == ["someone@192.0.2.1"]
    assert unconfirmed_devices(EvolveConfig(bench="ort"), bench_given=False) == []


@pytest.mark.parametrize("target", ["u@host:0", "u@[::1]:0", "u@host:ssh", "u@host:99999", "u@[::1"])
def test_a_port_that_is_not_1_to_65535_is_refused_everywhere(target, tmp_path, inventory,
                                                                member_onnx):
    _one_error_line(_run("devices", "add", "d", "--host", target), target)
    _one_error_line(_run("evolve", "--run-dir", tmp_path / "r", "--bench", target, *QUICK), target)
    result = _run("deploy", member_onnx, "-d", target, "--json")
    assert result.exit_code != 0 and target in result.output and "Traceback" not in result.output
    assert not inventory.exists()


def test_ipv6_targets_are_accepted(inventory):
    result = _run("devices", "add", "v6", "--host", "ubuntu@[::1]:2222")
    assert result.exit_code == 0, result.output
    result = _run("devices", "list", "--json")
    assert json.loads(result.output)["v6"] == {"name": "v6", "host": "::1", "user": "ubuntu",
                                               "port": 2222, "python": "python3", "remote_dir": "/tmp"}
    from jetsynth.devices.inventory import resolve_device

    assert (resolve_device("u@[fe80::1%eth0]:22").host, resolve_device("u@[::1]").port) == \
        ("fe80::1%eth0", 22)


def test_known_hosts_is_one_line(inventory):
    _one_error_line(_run("devices", "add", "d", "--host", "u@h", "--known-hosts", "/k\nProxyCommand x"),
                    "--known-hosts must be one line")
    assert not inventory.exists()


@pytest.mark.parametrize("kind", ["folder", "fifo", "dev-zero"])
def test_an_inventory_that_is_not_a_file_is_one_line(kind, inventory):
    inventory.parent.mkdir(parents=True)
    if kind == "folder":
        inventory.mkdir()
    elif kind == "fifo":
        os.mkfifo(inventory)
    else:
        inventory.symlink_to("/dev/zero")
    for command in (["devices", "list"], ["devices", "add", "d", "--host", "u@h"]):
        _one_error_line(_run(*command), f"{inventory} is not a file")


def test_tilde_in_data_is_the_home_folder(tmp_path):
    make_idx_folder(tmp_path / "home" / "m")
    result = _run("evolve", "--run-dir", tmp_path / "r", "--data", "mnist:~/m", *QUICK[2:],
                  env={"HOME": str(tmp_path / "home")})
    assert result.exit_code == 0, result.output


# ---- SIGTERM


def _start(args, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "jetsynth", *map(str, args)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _catches_sigterm(pid: int) -> bool:
    """Whether the process has a SIGTERM handler installed (Linux: SigCgt in /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    return False


def _wait_for(condition, process, seconds=240):
    deadline = time.monotonic() + seconds
    while not condition():
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.2)


def test_sigterm_saves_evolve_like_ctrl_c(tmp_path):
    run = tmp_path / "run"
    process = _start(["evolve", "--run-dir", run, "--subset", "0.3", "--generations", "40",
                      "--epochs", "3", "--ancestor-epochs", "1"], tmp_path)
    _wait_for(lambda: (run / "members" / "g02-m00").is_dir(), process)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 143, err
    assert err.strip().splitlines()[-1] == \
        f"terminated: continue with  jetsynth evolve --run-dir {run} --resume"
    assert (run / "members" / "g01-m00" / "member.json").is_file()
    assert load_records(run)[1][0].id == "g01-m00"


def test_sigterm_ends_export_with_143_and_no_file(benched_run, tmp_path):
    out = tmp_path / "m.onnx"
    process = _start(["export", benched_run, "-g", "1", "-m", "0", "--finetune-epochs", "100000",
                      "-o", out], tmp_path)
    _wait_for(lambda: _catches_sigterm(process.pid), process)
    time.sleep(2)  # into the work
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 143, err
    assert err.strip().splitlines()[-1] == "terminated" and "Traceback" not in err
    assert not out.exists()
