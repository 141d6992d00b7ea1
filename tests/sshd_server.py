"""A throw-away OpenSSH server on 127.0.0.1 for deploy tests and the deploy benchmark.

Fresh host and client keys in a temporary folder, key-only login for the current user, a
known_hosts file that holds the host key: a real sshd, talked to by the real ssh client.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

SSHD_PATHS = ("/usr/sbin/sshd", "/usr/local/sbin/sshd")


def find_sshd() -> str | None:
    for path in SSHD_PATHS:
        if os.access(path, os.X_OK):
            return path
    return shutil.which("sshd")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path.with_suffix(".pub").read_text().strip()


class LocalSshd:
    """`with LocalSshd(folder) as server:` — server.port, server.user, server.identity,
    server.known_hosts (with the host key), server.host_key_line."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.process = None

    def __enter__(self) -> LocalSshd:
        sshd = find_sshd()
        if sshd is None:
            raise RuntimeError("no sshd here (apt-get install openssh-server)")
        self.folder.mkdir(parents=True, exist_ok=True)
        host_pub = _keygen(self.folder / "host_ed25519")
        client_pub = _keygen(self.folder / "client_ed25519")
        (self.folder / "authorized_keys").write_text(client_pub + "\n")
        self.port = free_port()
        self.user = getpass.getuser()
        self.identity = str(self.folder / "client_ed25519")
        self.host_key_line = f"[127.0.0.1]:{self.port} {' '.join(host_pub.split()[:2])}"
        self.known_hosts = str(self.folder / "known_hosts")
        Path(self.known_hosts).write_text(self.host_key_line + "\n")
        config = self.folder / "sshd_config"
        config.write_text("\n".join([
            f"Port {self.port}", "ListenAddress 127.0.0.1",
            f"HostKey {self.folder / 'host_ed25519'}", f"PidFile {self.folder / 'sshd.pid'}",
            f"AuthorizedKeysFile {self.folder / 'authorized_keys'}", "StrictModes no", "UsePAM no",
            "PasswordAuthentication no", "KbdInteractiveAuthentication no", "PubkeyAuthentication yes",
            "PermitRootLogin prohibit-password", "LogLevel ERROR", "MaxStartups 50:30:100",
            "MaxSessions 50", "",
        ]))
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(parents=True, exist_ok=True)
        check = subprocess.run([sshd, "-t", "-f", str(config)], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"sshd refused its test configuration: {check.stderr.strip()}")
        self.log = open(self.folder / "sshd.log", "wb")  # noqa: SIM115 (closed in __exit__)
        self.process = subprocess.Popen([sshd, "-D", "-e", "-f", str(config)], stdout=self.log,
                                        stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.__exit__()
        raise RuntimeError(f"sshd did not start; see {self.folder / 'sshd.log'}")

    def __exit__(self, *exc) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None
            self.log.close()

    def device_fields(self) -> dict:
        """Keyword arguments for a jetsynth Device that logs in to this server with the test's
        own Python as the device's."""
        return {"host": "127.0.0.1", "user": self.user, "port": self.port, "identity": self.identity,
                "known_hosts": self.known_hosts, "python": sys.executable}


if __name__ == "__main__":
    import tempfile

    with LocalSshd(Path(tempfile.mkdtemp(prefix="jetsynth-sshd."))) as server:
        print(server.device_fields(), flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            server.process.wait()
