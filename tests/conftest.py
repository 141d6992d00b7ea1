"""Shared fixtures: small IDX folders written on the fly, the built-in digits, the real MNIST."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

MNIST_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "mnist"


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
    """Decoded `folder:DIR` datasets go to a temporary cache, never the user's."""
    monkeypatch.setenv("JETSYNTH_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "folder-cache"))


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
    from jetsynth.data import DataSpec, load_dataset

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
    from jetsynth.config import EvolveConfig
    from jetsynth.evolve import evolve

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
    from jetsynth.devices import Device

    remote = tmp_path / "remote"
    remote.mkdir()
    return Device(name="local", remote_dir=str(remote), **sshd.device_fields())


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
