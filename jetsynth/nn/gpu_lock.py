"""One GPU, one user at a time: a member that trains and a network that is timed on the same GPU
take turns, so a timing never shares the GPU with a training step (it would measure the training
as much as the network) and a training never slows because a timing runs.

The turn is an exclusive `flock` on one file per GPU, in a folder of this user's
(`$JETSYNTH_GPU_LOCKS`, else the user cache folder's `gpu-locks`): it serves the local executor's
threads (each turn opens the file anew, and flock locks of separate opens exclude each other in
one process too), Ray workers and any other jetsynth process of this user on the machine (a
`jetsynth calibrate ort-cuda` beside an `evolve`), and the OS drops it when its holder dies. A
trainer holds it for one optimiser step at a time, and waits for its GPU to finish that step
before letting go; a timing holds it for the whole measurement. The file is named after the
GPU's UUID where torch can read it (Ray hands each worker its GPUs renumbered from 0, so the
index alone would name different GPUs alike), else after the index. The CPU takes no turns:
timing on the CPU is kept apart from training by `run.recording` and the timing thread count.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from jetsynth.storage import locked

LOCKS_ENV = "JETSYNTH_GPU_LOCKS"
GPU_BACKENDS = {"ort-cuda": "cuda:0", "ort-trt": "cuda:0", "torch-cuda": "cuda:0", "trt": "cuda:0"}
"""The GPU each timing backend of this host times on: onnxruntime's CUDA and TensorRT providers,
torch and TensorRT all use the first visible GPU unless told otherwise, and jetsynth does not
tell them."""


def lock_folder() -> Path:
    """Where the GPUs' lock files are: $JETSYNTH_GPU_LOCKS, else the user cache folder."""
    given = os.environ.get(LOCKS_ENV)
    if given:
        return Path(given)
    import platformdirs

    return Path(platformdirs.user_cache_dir("jetsynth")) / "gpu-locks"


def gpu_name(device: str) -> str | None:
    """The lock name of the GPU `device` ('cuda', 'cuda:N') is, None for any other device: 'gpu-'
    and its UUID when torch can read it, else 'cuda-N' (this process's numbering)."""
    where = torch.device(device)
    if where.type != "cuda":
        return None
    index = where.index if where.index is not None else 0
    try:
        return f"gpu-{torch.cuda.get_device_properties(index).uuid}"
    except (AssertionError, RuntimeError, AttributeError):  # no CUDA here, or an older torch
        return f"cuda-{index}"


@contextmanager
def gpu_turn(device: str, folder: Path | None = None) -> Iterator[None]:
    """Hold `device`'s GPU alone for the block (waiting for whoever holds it now); on leaving,
    wait for the work queued on it to finish, so the next holder starts on an idle GPU. Nothing
    to hold for the CPU."""
    name = gpu_name(device)
    if name is None:
        yield
        return
    folder = Path(folder) if folder is not None else lock_folder()
    with locked(folder / f"{name}.lock", root=folder.parent):
        try:
            yield
        finally:
            if torch.cuda.is_available():
                torch.cuda.synchronize(torch.device(device))


def backend_turn(backend: str, folder: Path | None = None):
    """`gpu_turn` on the GPU timing backend `backend` times on; nothing held for a CPU backend."""
    return gpu_turn(GPU_BACKENDS.get(backend, "cpu"), folder)
