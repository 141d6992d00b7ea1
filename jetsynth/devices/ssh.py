"""Talking to a device through the system OpenSSH client, so that ~/.ssh/config, agents and jump
hosts work as they do in a terminal.

Every remote command is an argument list; it is joined with `shlex.join`, so every word (paths
included) reaches the remote shell quoted. BatchMode is on (no password prompts that would hang);
host keys are checked against known_hosts and an unknown or changed key is refused — accepting a
new key is an explicit option (`accept-new`, which still refuses a changed one).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from jetsynth.devices.inventory import Device
from jetsynth.errors import JetsynthError

_UNREACHABLE = ("Connection refused", "Connection timed out", "No route to host", "Network is unreachable",
                "Could not resolve hostname", "Name or service not known", "Operation timed out",
                "Connection closed by", "Connection reset by")


@dataclass(frozen=True)
class SshOptions:
    """Timeouts in seconds: `connect_timeout` for the TCP+SSH handshake, `command_timeout` for
    each remote command (an engine build on a TX1 can take minutes)."""

    connect_timeout: int = 10
    command_timeout: float = 900.0
    accept_new_host_key: bool = False


def explain_failure(device: Device, stderr: str) -> str:
    """One line for an ssh failure (exit 255): what went wrong and what to do."""
    where = f"{device.label} ({device.destination}, port {device.port})"
    if "REMOTE HOST IDENTIFICATION HAS CHANGED" in stderr or "Host key for" in stderr and "changed" in stderr:
        return (f"the host key of {where} has CHANGED since it was recorded; this can be an attack. If the "
                f"device was reinstalled, remove the old key with `ssh-keygen -R {_known_name(device)}` "
                "and check the new fingerprint")
    if "Host key verification failed" in stderr or "No ED25519 host key is known" in stderr or (
            "host key is known" in stderr):
        return (f"the host key of {where} is not in known_hosts; check its fingerprint (`ssh-keyscan -p "
                f"{device.port} {device.host} | ssh-keygen -lf -`) and add it, or pass --accept-new-host-key")
    if "Permission denied" in stderr:
        return (f"{where} refused the login (permission denied); check the user, --identity or your "
                "ssh agent")
    for marker in _UNREACHABLE:
        if marker in stderr:
            return f"cannot reach {where}: {marker.lower()}; check that the device is on and the address"
    last = [line for line in stderr.strip().splitlines() if line.strip()]
    return f"ssh to {where} failed: {last[-1] if last else 'no message'}"


def _known_name(device: Device) -> str:
    return device.host if device.port == 22 else f"[{device.host}]:{device.port}"


def _run_holding_stdin(argv: list[str], timeout: float) -> subprocess.CompletedProcess:
    """subprocess.run with stdin a pipe whose write end only this process holds (not inherited
    by other children), closed when the command ends or this process stops waiting for it."""
    read_end, write_end = os.pipe()
    try:
        try:
            process = subprocess.Popen(argv, stdin=read_end, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE)
        finally:
            os.close(read_end)
        with process:
            try:
                out, err = process.communicate(timeout=timeout)
            except BaseException:
                process.kill()
                process.wait()
                raise
    finally:
        os.close(write_end)
    return subprocess.CompletedProcess(argv, process.returncode, out, err)


class Ssh:
    """Runs argument lists on one device. Used as a context manager it opens one master
    connection that later commands share (one handshake per deployment instead of one per
    command), and closes it on exit."""

    def __init__(self, device: Device, options: SshOptions | None = None) -> None:
        self.device = device
        self.options = options or SshOptions()
        self.control_dir = None
        if shutil.which("ssh") is None:
            raise JetsynthError("the OpenSSH client `ssh` is not installed here; install openssh-client")

    def __enter__(self) -> Ssh:
        self.control_dir = tempfile.mkdtemp(prefix="jetsynth-ssh.")
        master = ["ssh", "-M", "-N", "-f", *self._options(master=True), "--", self.device.destination]
        with tempfile.TemporaryFile() as errors:
            # stdout/stderr go to a file: the backgrounded master keeps them open for its lifetime
            try:
                code = subprocess.run(master, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=errors, timeout=self.options.connect_timeout + 30).returncode
            except subprocess.TimeoutExpired:
                code = 255
            errors.seek(0)
            message = errors.read().decode("utf-8", "replace")
        if code != 0:
            self._drop_control_dir()
            raise JetsynthError(explain_failure(self.device, message or "connection timed out"))
        return self

    def __exit__(self, *exc) -> None:
        if self.control_dir is None:
            return
        # the same options as the master: the control path's %C hashes the port and user too
        subprocess.run(["ssh", *self._options(), "-O", "exit", "--", self.device.destination],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=30, check=False)
        self._drop_control_dir()

    def _control_path(self) -> str:
        return f"{self.control_dir}/%C"

    def _drop_control_dir(self) -> None:
        shutil.rmtree(self.control_dir, ignore_errors=True)
        self.control_dir = None

    def argv(self, remote: list[str]) -> list[str]:
        """The local ssh command line for one remote argument list."""
        return ["ssh", *self._options(), "--", self.device.destination, shlex.join(remote)]

    def _options(self, master: bool = False) -> list[str]:
        """ssh's options for this device; with a shared connection open (or being opened, when
        `master`), the control socket too."""
        opts = self.options
        argv = ["-o", "BatchMode=yes",
                "-o", f"StrictHostKeyChecking={'accept-new' if opts.accept_new_host_key else 'yes'}",
                "-o", f"ConnectTimeout={int(opts.connect_timeout)}",
                "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4",
                "-o", "LogLevel=ERROR", "-p", str(self.device.port)]
        if self.control_dir is not None:
            argv += ["-o", f"ControlPath={self._control_path()}",
                     "-o", f"ControlMaster={'yes' if master else 'no'}"]
        if self.device.identity:
            argv += ["-i", str(Path(self.device.identity).expanduser()), "-o", "IdentitiesOnly=yes"]
        if self.device.known_hosts:
            argv += ["-o", f"UserKnownHostsFile={Path(self.device.known_hosts).expanduser()}"]
        return argv

    def run(self, remote: list[str], stdin: bytes | None = None, timeout: float | None = None,
            what: str | None = None, hold_stdin: bool = False) -> subprocess.CompletedProcess:
        """Run `remote` on the device; ssh's own failures become one clear JetsynthError, the
        command's exit status and output are returned for the caller to judge. With
        `hold_stdin`, the command's stdin stays open until it ends and reaches end-of-file as
        soon as this process stops waiting for it, however it stops (timeout, Ctrl-C, kill):
        the device agent watches it to end with its host."""
        timeout = timeout or self.options.command_timeout
        try:
            if hold_stdin:
                done = _run_holding_stdin(self.argv(remote), timeout)
            else:
                done = subprocess.run(self.argv(remote), input=stdin or b"", capture_output=True,
                                      timeout=timeout)
        except subprocess.TimeoutExpired:
            raise JetsynthError(f"{self.device.label}: {what or remote[0]} did not finish within "
                                f"{timeout:g} s; raise `timeout` or check the device",
                                setting="timeout") from None
        if done.returncode == 255:
            raise JetsynthError(explain_failure(self.device, done.stderr.decode("utf-8", "replace")))
        return done

    def put(self, data: bytes, remote_path: str) -> None:
        """Write `data` to `remote_path` through the connection (no scp/sftp needed)."""
        done = self.run(["sh", "-c", 'cat > "$1"', "sh", remote_path], stdin=data, what="copying")
        if done.returncode != 0:
            message = done.stderr.decode("utf-8", "replace").strip()
            if "No space left" in message:
                raise JetsynthError(f"{self.device.label}: the device's disk is full while copying to "
                                    f"{remote_path}; free space there or choose another `remote_dir`",
                                    setting="remote_dir")
            raise JetsynthError(f"{self.device.label}: cannot write {remote_path}: "
                                f"{message.splitlines()[-1] if message else 'unknown error'}")
