import shlex
import time
from pathlib import Path

import pytest

from jetsynth.devices.inventory import Device
from jetsynth.devices.ssh import Ssh, SshOptions, explain_failure
from jetsynth.errors import JetsynthError

NASTY = "dir with space/$(touch pwned);'q'\"x\".bin"


def test_argv_is_a_list_with_every_remote_word_quoted():
    device = Device(name="tx1", host="10.0.0.5", user="ubuntu", port=2222, identity="/k/id",
                    known_hosts="/k/known")
    argv = Ssh(device).argv(["cat", NASTY])
    assert argv[:3] == ["ssh", "-o", "BatchMode=yes"]
    assert "StrictHostKeyChecking=yes" in argv and "UserKnownHostsFile=/k/known" in argv
    assert argv[argv.index("-p") + 1] == "2222" and argv[argv.index("-i") + 1] == "/k/id"
    assert argv[-3:-1] == ["--", "ubuntu@10.0.0.5"]
    assert shlex.split(argv[-1]) == ["cat", NASTY]
    accepting = Ssh(device, SshOptions(accept_new_host_key=True)).argv(["true"])
    assert "StrictHostKeyChecking=accept-new" in accepting


def test_ssh_failures_explained_in_one_line():
    device = Device(name="tx1", host="10.0.0.5", port=22)
    changed = "@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@\nHost key verification failed."
    assert "CHANGED" in explain_failure(device, changed) and "ssh-keygen -R 10.0.0.5" in explain_failure(
        device, changed)
    unknown = "No ED25519 host key is known for 10.0.0.5 and you have requested strict checking.\n"
    assert "--accept-new-host-key" in explain_failure(device, unknown + "Host key verification failed.")
    refused = "ssh: connect to host 10.0.0.5 port 22: Connection refused"
    assert "cannot reach" in explain_failure(device, refused)
    assert "permission denied" in explain_failure(device, "ubuntu@10.0.0.5: Permission denied (publickey).")
    assert all("\n" not in explain_failure(device, text) for text in (changed, unknown, "x\ny"))


def test_put_and_run_on_a_real_sshd_keep_odd_paths_intact(local_device, tmp_path):
    target = f"{local_device.remote_dir}/{NASTY.replace('/', '_')}"
    with Ssh(local_device) as ssh:
        ssh.put(b"payload\x00\xff", target)
        done = ssh.run(["cat", "--", target])
    assert done.returncode == 0 and done.stdout == b"payload\x00\xff"
    assert not list(tmp_path.rglob("pwned")) and not (tmp_path.parent / "pwned").exists()


def test_unknown_and_changed_host_keys_are_refused(sshd, local_device, tmp_path):
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    stranger = Device(**{**local_device.as_dict(), "known_hosts": str(empty)})
    with pytest.raises(JetsynthError, match="not in known_hosts"):
        Ssh(stranger).run(["true"])
    assert empty.read_text() == ""
    Ssh(stranger, SshOptions(accept_new_host_key=True)).run(["true"])
    assert sshd.host_key_line.split()[2] in empty.read_text()
    forged = tmp_path / "forged_known_hosts"
    other = "AAAAC3NzaC1lZDI1NTE5AAAAIMp9lM0b4m8C0zL3o9yfW9fB0dGq3rP2v5vYl1o2xN0k"
    forged.write_text(f"[127.0.0.1]:{sshd.port} ssh-ed25519 {other}\n")
    impostor = Device(**{**local_device.as_dict(), "known_hosts": str(forged)})
    with pytest.raises(JetsynthError, match="CHANGED"):
        Ssh(impostor, SshOptions(accept_new_host_key=True)).run(["true"])


def test_unreachable_device_is_one_line(local_device):
    from sshd_server import free_port

    closed = Device(**{**local_device.as_dict(), "port": free_port()})
    with pytest.raises(JetsynthError, match="cannot reach local .* connection refused"), Ssh(
            closed, SshOptions(connect_timeout=3)):
        pass


def test_the_shared_connection_ends_with_the_context(local_device, sshd):
    def masters() -> list[str]:
        found = []
        for entry in Path("/proc").iterdir():
            try:
                argv = (entry / "cmdline").read_bytes().decode().split("\0")
            except OSError:
                continue
            if argv[0] == "ssh" and "-M" in argv and f"{sshd.folder}/client_ed25519" in argv:
                found.append(entry.name)
        return found

    before = masters()
    with Ssh(local_device) as ssh:
        assert len(masters()) == len(before) + 1
        assert ssh.run(["true"]).returncode == 0
    deadline = time.monotonic() + 10
    while masters() != before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert masters() == before


def test_closing_the_shared_connection_ends_its_master_on_a_port_other_than_22(local_device):
    """`ssh -O exit` must name the port: the control socket's %C hashes it, and a master missed
    that way runs (with its remote session) forever."""
    import os

    from processes import leaked, processes

    assert local_device.port != 22
    with Ssh(local_device) as ssh:
        control = ssh.control_dir
        assert any(control in p.cmdline for p in processes().values())
        assert ssh.run(["true"]).returncode == 0
    assert leaked(set(), -1, (control,), grace_seconds=5) == []
    assert not os.path.exists(control)


def test_the_leak_check_sees_a_process_left_running(tmp_path):
    import os
    import subprocess
    import sys

    from processes import leaked, ours, processes

    before = ours(processes(), os.getpid(), (str(tmp_path),))
    sleeper = [sys.executable, "-c", "import time; time.sleep(30)", str(tmp_path)]
    child = subprocess.Popen(sleeper)
    try:
        assert [p.pid for p in leaked(before, os.getpid(), (str(tmp_path),), grace_seconds=0)] == [child.pid]
        detached = subprocess.Popen(["sh", "-c", f"{shlex.join(sleeper)} >/dev/null & echo $!"],
                                    stdout=subprocess.PIPE, text=True)
        orphan = int(detached.communicate()[0])
        assert orphan in [p.pid for p in leaked(before, -1, (str(tmp_path),), grace_seconds=0)]
        os.kill(orphan, 15)
    finally:
        child.kill()
        child.wait()
    assert leaked(before, os.getpid(), (str(tmp_path),), grace_seconds=5) == []
