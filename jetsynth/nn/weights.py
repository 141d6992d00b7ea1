"""Starting weights for the ancestor (`--ancestor-weights FILE`): a state dict read from
safetensors, or from a torch file with `torch.load(weights_only=True)` (never plain unpickling:
a checkpoint that holds Python objects is refused), checked against the model key by key.

Checkpoints wrapped as {"state_dict": ...} or {"model": ...} are unwrapped, and the "module."
prefix that DataParallel adds is stripped, so a torchvision-style checkpoint loads as it is.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from jetsynth.errors import JetsynthError
from jetsynth.nn.finite import all_finite

WRAPPERS = ("state_dict", "model")
SHOWN = 3


PICKLE_STARTS = (b"PK", b"\x80")  # torch's zip format, a bare pickle


def _refusal(text: str) -> str:
    """What weights_only loading refused, in a few words."""
    for pattern in (r"Unsupported global: GLOBAL ([\w.]+)", r"([\w.]+) was not an allowed global",
                    r"(Unsupported operand \d+)"):
        found = re.search(pattern, text)
        if found:
            return found.group(1)
    return "an object it does not rebuild"


def _torch_load(path: Path):
    """torch.load with weights_only=True; a refusal is the one line that says so."""
    import pickle

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise JetsynthError(
            f"{path} holds Python objects that jetsynth will not unpickle (torch.load with "
            f"weights_only=True refuses {_refusal(str(exc))}): save a plain state dict, best as "
            "safetensors: safetensors.torch.save_file(model.state_dict(), 'weights.safetensors')"
        ) from None


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file or a torch state-dict file, unwrapped and with any
    leading "module." stripped."""
    path = Path(path)
    if not path.is_file():
        raise JetsynthError(f"--ancestor-weights: no file {path}")
    try:
        with open(path, "rb") as handle:
            start = handle.read(2)
        if path.suffix != ".safetensors" and start.startswith(PICKLE_STARTS):
            loaded = _torch_load(path)
        else:
            loaded = load_file(str(path))
    except (SafetensorError, ValueError, RuntimeError, EOFError, OSError) as exc:
        raise JetsynthError(f"{path} is neither a safetensors file nor a torch state dict ({exc})") from None
    for key in WRAPPERS:
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            loaded = loaded[key]
            break
    if not isinstance(loaded, dict) or not all(isinstance(k, str) for k in loaded):
        raise JetsynthError(f"{path} does not hold a state dict (names to tensors)")
    others = [k for k, v in loaded.items() if not isinstance(v, torch.Tensor)]
    if others:
        raise JetsynthError(f"{path}: {', '.join(others[:SHOWN])} are not tensors; save model.state_dict()")
    if loaded and all(k.startswith("module.") for k in loaded):
        loaded = {k[len("module."):]: v for k, v in loaded.items()}
    return dict(loaded)


def _listed(names: list[str]) -> str:
    more = f" and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
    return ", ".join(names[:SHOWN]) + more


def _shape(shape) -> str:
    return "(" + ",".join(str(d) for d in shape) + ")"


def fit_state(given: dict[str, torch.Tensor], wanted: dict[str, torch.Tensor], source: str,
              arch: str) -> dict[str, torch.Tensor]:
    """`wanted` (the fresh model's state dict) with every tensor replaced by `given`'s, cast to
    the model's dtypes. Missing or unexpected keys and wrong shapes are one line naming the
    first few. BatchNorm's step counters (num_batches_tracked), which older checkpoints lack,
    keep the model's value."""
    missing = [k for k in wanted if k not in given and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in given if k not in wanted]
    shapes = [f"shape of {k} is {_shape(given[k].shape)}, the model wants {_shape(wanted[k].shape)}"
              for k in wanted if k in given and given[k].shape != wanted[k].shape]
    problems = []
    if missing:
        problems.append(f"missing {_listed(missing)}")
    if unexpected:
        problems.append(f"unexpected {_listed(unexpected)}")
    if shapes:
        more = f" (and {len(shapes) - SHOWN} more shapes)" if len(shapes) > SHOWN else ""
        problems.append("; ".join(shapes[:SHOWN]) + more)
    if problems:
        raise JetsynthError(f"{source} does not fit {arch}: {'; '.join(problems)}")
    kinds = [f"{k} is {given[k].dtype}, the model wants {v.dtype}" for k, v in wanted.items()
             if k in given and not _castable(given[k].dtype, v.dtype)]
    if kinds:
        raise JetsynthError(f"{source} does not fit {arch}: {'; '.join(kinds[:SHOWN])} (jetsynth "
                            "casts between float types only); save the float weights")
    broken = [k for k, v in wanted.items() if k in given and v.is_floating_point()
              and not all_finite(given[k].to(v.dtype))]
    if broken:
        raise JetsynthError(f"{source}: {_listed(broken)} hold NaN or infinite values (or values "
                            f"too large for {arch}'s dtype); the weights are damaged or diverged: "
                            "start from other weights")
    return {k: given[k].to(v.dtype).clone() if k in given else v.clone() for k, v in wanted.items()}


def _castable(given: torch.dtype, wanted: torch.dtype) -> bool:
    """Whether a tensor of dtype `given` may stand for one of `wanted`: float for float (fp16,
    bf16, fp64 into fp32), integer for integer (step counters); never int8, bool or complex for
    a float, whose values a cast would silently change."""
    if wanted.is_floating_point:
        return given.is_floating_point
    if wanted == torch.bool or given == torch.bool:
        return given == wanted
    return not (given.is_floating_point or given.is_complex)


def file_digest(path: Path) -> str:
    """sha256 of the file, recorded with the run so the weights it started from are known."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
