"""Shared fixtures: small IDX folders written on the fly, the built-in digits, the real MNIST."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

MNIST_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "mnist"


def pytest_configure(config):
    """A suite ended by SIGTERM (a CI timeout, `kill`) stops as on Ctrl-C: pytest then tears down
    its fixtures, so the sshd, its sessions and the ssh masters they keep alive end with it."""
    import signal

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)


@pytest.fixture(scope="session", autouse=True)
def _no_leaked_processes(tmp_path_factory):
    """The session fails when it leaves a process running: a child of pytest, or anything whose
    command line names the session's folders. Temporary files (ssh control sockets among them)
    go to a short folder of the session's own, for this process and the programs it starts (a
    socket's path must stay under ~100 bytes)."""
    import os
    import shutil
    import tempfile

    from processes import leaked, ours, processes

    markers = (str(tmp_path_factory.getbasetemp()), tempfile.mkdtemp(prefix="jt", dir="/tmp"))
    before = ours(processes(), os.getpid(), markers)
    saved = tempfile.tempdir, os.environ.get("TMPDIR")
    tempfile.tempdir = markers[1]
    os.environ["TMPDIR"] = markers[1]
    yield
    tempfile.tempdir = saved[0]
    if saved[1] is None:
        os.environ.pop("TMPDIR", None)
    else:
        os.environ["TMPDIR"] = saved[1]
    left = leaked(before, os.getpid(), markers)
    shutil.rmtree(markers[1], ignore_errors=True)
    if left:
        lines = "\n".join(f"  pid {p.pid} (parent {p.ppid}): {p.cmdline[:200]}" for p in left)
        pytest.fail(f"the tests left {len(left)} process(es) running:\n{lines}", pytrace=False)


def write_idx(path: Path, array: np.ndarray, magic: int, compress: bool = False) -> Path:
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    payload = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        payload = gzip.compress(payload)
    path.write_bytes(payload)
    return path


def make_idx_folder(folder: Path, train: int = 60, test: int = 20, compress: bool = False,
                    seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", train), ("t10k", test)):
        labels = np.arange(count) % 10
        images = rng.integers(0, 256, size=(count, 28, 28))
        write_idx(folder / f"{split}-images-idx3-ubyte", images, 0x803, compress)
        write_idx(folder / f"{split}-labels-idx1-ubyte", labels, 0x801, compress)
    return folder


@pytest.fixture(autouse=True)
def _folder_cache(tmp_path_factory, monkeypatch):
    """Decoded `folder:DIR` datasets and GPU lock files go to a temporary cache, never the
    user's."""
    monkeypatch.setenv("JETSYNTH_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "folder-cache"))
    monkeypatch.setenv("JETSYNTH_GPU_LOCKS", str(tmp_path_factory.getbasetemp() / "gpu-locks"))


def write_image_tree(root: Path, classes=("cat", "dog"), per_class: int = 6, size=(8, 8),
                     mode: str = "L", seed: int = 0) -> Path:
    """root/CLASS/NNN.png: tiny images whose brightness tells the class apart."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for label, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            shape = (size[1], size[0]) + ((3,) if mode == "RGB" else ())
            base = 30 + 180 * label // max(len(classes) - 1, 1)
            pixels = (base + rng.integers(0, 40, shape)).astype(np.uint8)
            Image.fromarray(pixels, mode).save(folder / f"{i:03d}.png")
    return root


@pytest.fixture
def idx_folder(tmp_path: Path) -> Path:
    return make_idx_folder(tmp_path / "idx")


@pytest.fixture(scope="session")
def digits():
    from jetsynth.data.load import DataSpec, load_dataset

    return load_dataset(DataSpec.parse("digits"))


@pytest.fixture
def mnist_dir() -> Path:
    if not MNIST_DIR.is_dir():
        pytest.skip(f"real MNIST not found at {MNIST_DIR} (shared datasets folder absent)")
    return MNIST_DIR


@pytest.fixture(scope="session")
def benched_run(tmp_path_factory) -> Path:
    """A three-generation digits run under the fp16 restriction whose members were exported and
    timed (`jetsynth evolve --precision fp16 --bench ort`)."""
    from jetsynth.run.config import EvolveConfig
    from jetsynth.run.evolve import evolve

    path = tmp_path_factory.mktemp("benched") / "run"
    evolve(EvolveConfig(data="digits", subset=0.3, generations=3, ancestor_epochs=2, epochs=1,
                        keep=0.5, precision="fp16", bench="ort", bench_seconds=0.05), path)
    return path


@pytest.fixture(scope="session")
def member_onnx(benched_run) -> Path:
    """One exported fp16 member of `benched_run` (dynamic batch, one 1×28×28 image input)."""
    return sorted(benched_run.glob("members/*/model.onnx"))[-1]


@pytest.fixture(scope="session")
def sshd(tmp_path_factory):
    """A real OpenSSH server on 127.0.0.1 with throw-away keys (see tests/sshd_server.py)."""
    from sshd_server import LocalSshd, find_sshd

    if find_sshd() is None:
        pytest.skip("no sshd on this machine (apt-get install openssh-server; .ci/run does)")
    with LocalSshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


@pytest.fixture
def local_device(sshd, tmp_path):
    """A jetsynth Device that reaches `sshd` with its own known_hosts and a fresh remote_dir."""
    from jetsynth.devices.inventory import Device

    remote = tmp_path / "remote"
    remote.mkdir()
    return Device(name="local", remote_dir=str(remote), **sshd.device_fields())


@pytest.fixture(scope="session")
def ray_cluster():
    """A real local Ray with 2 CPUs, shared by the tests that need one and shut down after them;
    yields its address (HOST:PORT) for drivers in other processes."""
    ray = pytest.importorskip("ray", reason="Ray not installed (pip install 'jetsynth[ray]'; .ci/run does)")
    import logging

    context = ray.init(num_cpus=2, logging_level=logging.WARNING, log_to_driver=False)
    try:
        yield context.address_info["gcs_address"]
    finally:
        ray.shutdown()


@pytest.fixture(scope="session")
def agent_file(tmp_path_factory) -> Path:
    """The device agent as it is shipped: the one file `jetsynth deploy` copies as
    `jetsynth_agent.py`, joined from jetsynth/agent/ by its bundler."""
    from jetsynth.agent.bundle import bundle

    path = tmp_path_factory.mktemp("agent") / "jetsynth_agent.py"
    path.write_text(bundle())
    return path


@pytest.fixture
def agent(agent_file):
    """Run the shipped agent with arguments: (exit status, its one JSON object)."""
    import json
    import subprocess
    import sys

    def run(*args, env=None):
        done = subprocess.run([sys.executable, str(agent_file), *args], capture_output=True, text=True,
                              env=env)
        return done.returncode, json.loads(done.stdout)

    return run
