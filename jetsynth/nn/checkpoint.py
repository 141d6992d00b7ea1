"""Epoch checkpoints of one member's training, so a kill loses at most the epoch in progress.

Everything that decides the rest of the training is saved: the compact network, Adam's moments,
both random generators (batch order and dropout) and, in fp16 mixed precision, the gradient
scaler's scale and growth count (a step whose scaled gradients overflow is skipped, so the scale
decides which later steps happen). Resuming from a checkpoint therefore ends in the same weights
as an uninterrupted training. safetensors for tensors, JSON for the rest (never a pickle).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from jetsynth.nn.finite import all_finite
from jetsynth.storage import atomic_write, read_json, write_json

TENSORS_FILE = "checkpoint.safetensors"
META_FILE = "checkpoint.json"


def save_checkpoint(
    directory: Path,
    key: dict,
    epoch: int,
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    order: torch.Generator,
    scaler: torch.amp.GradScaler | None = None,
) -> None:
    """Record the state after `epoch` completed epochs; `key` identifies the training
    (member, seed, configuration) so a stale checkpoint is never resumed. `scaler`: fp16's
    gradient scaler, None without one."""
    directory = Path(directory)
    tensors = {f"model/{k}": v.detach().cpu().clone().contiguous() for k, v in net.state_dict().items()}
    optim = optimizer.state_dict()
    for index, slots in optim["state"].items():
        for name, value in slots.items():
            tensors[f"optim/{index}/{name}"] = torch.as_tensor(value).cpu().clone().contiguous()
    tensors["rng/order"] = order.get_state()
    tensors["rng/torch"] = torch.get_rng_state()
    atomic_write(directory / TENSORS_FILE, lambda tmp: save_file(tensors, str(tmp)))
    meta = {"key": key, "epoch": epoch, "param_groups": optim["param_groups"]}
    if scaler is not None:
        meta["scaler"] = scaler.state_dict()
    write_json(directory / META_FILE, meta)


def load_checkpoint(
    directory: Path,
    key: dict,
    net: nn.Module,
    optimizer: torch.optim.Optimizer,
    order: torch.Generator,
    scaler: torch.amp.GradScaler | None = None,
) -> int:
    """Restore a matching checkpoint into `net`, `optimizer`, the generators and `scaler` (fp16's
    gradient scaler, None without one); return the number of epochs it had completed (0 when
    there is none to use: a checkpoint of a training with a scaler whose scaler state is missing
    or malformed is not used either)."""
    directory = Path(directory)
    meta_path, tensor_path = directory / META_FILE, directory / TENSORS_FILE
    if not meta_path.is_file() or not tensor_path.is_file():
        return 0
    try:
        meta = read_json(meta_path)
        tensors = load_file(str(tensor_path))
    except (SafetensorError, OSError, ValueError):
        return 0
    if (not isinstance(meta, dict) or meta.get("key") != key or not _fits(tensors, net)
            or not isinstance(meta.get("epoch"), int) or isinstance(meta.get("epoch"), bool)
            or not isinstance(meta.get("param_groups"), list)
            or (scaler is not None and scaler.is_enabled() and not _scaler_state(meta.get("scaler")))):
        return 0
    net.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model/")})
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        if name.startswith("optim/"):
            _, index, slot = name.split("/", 2)
            state.setdefault(int(index), {})[slot] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    order.set_state(tensors["rng/order"])
    torch.set_rng_state(tensors["rng/torch"])
    if scaler is not None and scaler.is_enabled():
        scaler.load_state_dict(meta["scaler"])
    return int(meta["epoch"])


def _scaler_state(state: object) -> bool:
    """Whether `state` is a gradient scaler's state as `save_checkpoint` wrote it: a finite
    positive scale and growth factor, a backoff factor in (0, 1), counts that are whole numbers."""
    if not isinstance(state, dict):
        return False
    numbers = [state.get(k) for k in ("scale", "growth_factor", "backoff_factor")]
    counts = [state.get(k) for k in ("growth_interval", "_growth_tracker")]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
               for v in numbers):
        return False
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts):
        return False
    scale, growth, backoff = numbers
    return scale > 0 and growth > 1 and 0 < backoff < 1 and counts[0] > 0


def _fits(tensors: dict[str, torch.Tensor], net: nn.Module) -> bool:
    """Whether the checkpoint's weights are the network's: every key, each of its shape and
    dtype, all finite (a checkpoint that is not is ignored and the member trains from its start)."""
    wanted = net.state_dict()
    if any(tensors.get(name) is None or tensors[name].dtype != torch.uint8
           for name in ("rng/order", "rng/torch")):
        return False
    model = {k[6:]: v for k, v in tensors.items() if k.startswith("model/")}
    if set(model) != set(wanted):
        return False
    return all(v.shape == wanted[k].shape and v.dtype == wanted[k].dtype
               and all_finite(v)
               for k, v in model.items()) and all(
        all_finite(v) for k, v in tensors.items() if k.startswith("optim/"))


def remove_checkpoint(directory: Path) -> None:
    for name in (TENSORS_FILE, META_FILE):
        path = Path(directory) / name
        if path.exists():
            path.unlink()
