import pytest

from jetsynth.devices.inventory import (
    Device,
    add_device,
    inventory_path,
    load_devices,
    remove_device,
    resolve_device,
    split_destination,
)
from jetsynth.devices.profiles import PROFILES, disagreements, get_profile
from jetsynth.errors import JetsynthError


def test_split_destination_forms():
    assert split_destination("ubuntu@192.168.55.1") == ("ubuntu", "192.168.55.1", None)
    assert split_destination("ubuntu@tx1.local:2222") == ("ubuntu", "tx1.local", 2222)
    assert split_destination("nano") == (None, "nano", None)
    assert split_destination("me@[fe80::1]:22") == ("me", "fe80::1", 22)
    with pytest.raises(JetsynthError, match="names no host"):
        split_destination("me@")


def test_inventory_round_trip_in_the_user_config_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert inventory_path() == tmp_path / "jetsynth" / "devices.toml"
    tx1 = Device(name="tx1", host="192.168.55.1", user="ubuntu", identity="~/.ssh/id_ed25519",
                 python="/usr/bin/python3", profile="tx1")
    add_device(tx1)
    add_device(Device(name="nano", host="nano.local", port=2222))
    assert load_devices() == {"tx1": tx1, "nano": Device(name="nano", host="nano.local", port=2222)}
    text = inventory_path().read_text()
    assert "[devices.tx1]" in text and 'profile = "tx1"' in text
    with pytest.raises(JetsynthError, match="`replace`"):
        add_device(tx1)
    remove_device("nano")
    assert list(load_devices()) == ["tx1"]
    with pytest.raises(JetsynthError, match="no device named 'nano'"):
        remove_device("nano")


def test_resolve_by_name_or_destination(tmp_path):
    path = tmp_path / "devices.toml"
    add_device(Device(name="tx1", host="10.0.0.5", user="ubuntu"), path)
    assert resolve_device("tx1", path).host == "10.0.0.5"
    adhoc = resolve_device("nvidia@10.0.0.9:2200", path)
    assert (adhoc.user, adhoc.host, adhoc.port) == ("nvidia", "10.0.0.9", 2200)
    with pytest.raises(JetsynthError, match="jetsynth devices add orin"):
        resolve_device("orin", path)


def test_bad_entries_are_refused(tmp_path):
    with pytest.raises(JetsynthError, match="not a host"):
        Device(name="x", host="-oProxyCommand=evil")
    with pytest.raises(JetsynthError, match="out of range"):
        Device(name="x", host="h", port=70000)
    with pytest.raises(JetsynthError, match="known profiles: tx1, nano"):
        Device(name="x", host="h", profile="tx2")
    with pytest.raises(JetsynthError, match="absolute path"):
        Device(name="x", host="h", remote_dir="tmp")
    with pytest.raises(JetsynthError, match="absolute path on the device \\(one line\\)"):
        Device(name="x", host="h", remote_dir="/tmp/a\nb")
    broken = tmp_path / "devices.toml"
    broken.write_text("[devices.tx1\n")
    with pytest.raises(JetsynthError, match="not valid TOML"):
        load_devices(broken)
    broken.write_text('[devices.tx1]\nhost = "h"\ncolour = "red"\n')
    with pytest.raises(JetsynthError, match="unknown keys"):
        load_devices(broken)


def test_profiles_carry_the_hard_facts():
    tx1 = get_profile("tx1")
    assert tx1.compute_capability == (5, 3) and tx1.fp16 and not tx1.int8 and not tx1.sparse
    assert tx1.tensorrt_major == 8 and tx1.python == "3.6"
    assert get_profile("orin-nano").sparse and set(PROFILES) == {"tx1", "nano", "xavier-nx", "orin-nano"}
    assert disagreements(tx1, {"tensorrt": "8.2.1.8", "gpu": {"compute_capability": "5.3"}}) == []
    warnings = disagreements(tx1, {"tensorrt": "10.3.0", "gpu": {"compute_capability": "8.7"}})
    assert len(warnings) == 2 and "TensorRT 8.x" in warnings[0]


def test_concurrent_adds_keep_every_device(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path), "PYTHONPATH": str(root)}
    names = [f"jet{i:02d}" for i in range(12)]
    processes = [subprocess.Popen([sys.executable, "-m", "jetsynth", "devices", "add", name,
                                   "--host", f"ubuntu@10.0.0.{i + 1}"], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for i, name in enumerate(names)]
    outcomes = [(p.wait(timeout=300), p.stderr.read().decode()) for p in processes]
    for process in processes:
        process.stdout.close()
        process.stderr.close()
    assert outcomes == [(0, "")] * 12
    path = tmp_path / "jetsynth" / "devices.toml"
    stored = load_devices(path)
    assert sorted(stored) == names
    assert {d.host for d in stored.values()} == {f"10.0.0.{i}" for i in range(1, 13)}
    assert sorted(p.name for p in path.parent.iterdir()) == ["devices.toml", "devices.toml.lock"]


def test_comments_survive_add_and_remove(tmp_path):
    path = tmp_path / "devices.toml"
    path.write_text("# my Jetsons, keep this note\n\n[devices.tx1]\n# the one on the bench\n"
                    'host = "10.0.0.5"  # static lease\nuser = "ubuntu"\n')
    add_device(Device(name="nano", host="nano.local", port=2222), path)
    remove_device("nano", path)
    add_device(Device(name="orin", host="orin.local"), path)
    text = path.read_text()
    for comment in ("# my Jetsons, keep this note", "# the one on the bench", "# static lease"):
        assert comment in text
    assert sorted(load_devices(path)) == ["orin", "tx1"]
    assert load_devices(path)["tx1"] == Device(name="tx1", host="10.0.0.5", user="ubuntu")


BAD_INVENTORY = """\
[devices.a]
host = 42
[devices.b]
host = "b.local"
port = "2222"
[devices.c]
user = "ubuntu"
[devices.d]
host = "d.local"
port = 0
[devices]
e = "not a table"
"""


def _jetsynth(*args, env=None):
    import os
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "jetsynth", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)


def test_a_damaged_inventory_gives_one_line_per_problem_not_a_traceback(tmp_path):
    folder = tmp_path / "jetsynth"
    folder.mkdir()
    (folder / "devices.toml").write_text(BAD_INVENTORY)
    for command in (["devices", "list"], ["devices", "add", "f", "--host", "f.local"]):
        done = _jetsynth(*command, env={"XDG_CONFIG_HOME": str(tmp_path)})
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr
        lines = done.stderr.strip().splitlines()
        assert any("device 'a': host must be a string, not 42" in line for line in lines)
        assert any("device 'b': port must be an integer, not '2222'" in line for line in lines)
        assert any("device 'c' has no host" in line for line in lines)
        assert any("device 'd': port 0 is out of range" in line for line in lines)
        assert any("devices.e must be a table" in line for line in lines)
        assert len(lines) == 6


def test_port_zero_is_refused_not_turned_into_22(tmp_path):
    done = _jetsynth("devices", "add", "z", "--host", "z.local", "--port", "0",
                     env={"XDG_CONFIG_HOME": str(tmp_path)})
    assert done.returncode == 2
    assert done.stderr.strip() == ("error: --port must be an integer in [1, 65535], got '0' "
                                   "(see jetsynth --help)")
    assert not (tmp_path / "jetsynth" / "devices.toml").exists()


def test_absent_tensorrt_or_gpu_contradicts_a_jetson_profile():
    tx1 = get_profile("tx1")
    bare = {"tensorrt": None, "trtexec": None, "gpu": None, "cuda": None}
    warnings = disagreements(tx1, bare)
    assert len(warnings) == 2
    assert "has TensorRT 8.x, the device has no TensorRT" in warnings[0]
    assert "shows no GPU and no CUDA" in warnings[1]
    # trtexec alone is TensorRT; CUDA without a Python binding to name the GPU is a GPU
    assert disagreements(tx1, {**bare, "trtexec": "/usr/src/tensorrt/bin/trtexec", "cuda": "10.2"}) == []
    assert disagreements(tx1, {}) == []  # facts not gathered say nothing
