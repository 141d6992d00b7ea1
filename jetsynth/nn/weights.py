"""Starting weights for the ancestor (`--ancestor-weights FILE`): a state dict read from
safetensors, or from a torch file with `torch.load(weights_only=True)` (never plain unpickling:
a checkpoint that holds Python objects is refused), checked against the model key by key.

Checkpoints wrapped as {"state_dict": ...} or {"model": ...} are unwrapped, and the "module."
prefix that DataParallel adds (and the "_orig_mod." prefix of a `torch.compile`d model) is
stripped, so a torchvision-style checkpoint loads as it is.

Transfer (`transfer_state`): a checkpoint for other classes gets a fresh head, and a first conv
for other colour channels is adapted (RGB summed to one channel, one channel spread over three),
each said in one line and recorded with the run.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from jetsynth.errors import JetsynthError
from jetsynth.nn.finite import all_finite

WRAPPERS = ("state_dict", "model")
PREFIXES = ("module.", "_orig_mod.")
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
    leading "module." or "_orig_mod." stripped."""
    path = Path(path)
    if not path.is_file():
        raise JetsynthError(f"`ancestor_weights`: no file {path}", setting="ancestor_weights")
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
    for prefix in PREFIXES:  # DataParallel's, torch.compile's, or both
        if loaded and all(k.startswith(prefix) for k in loaded):
            loaded = {k[len(prefix):]: v for k, v in loaded.items()}
    return dict(loaded)


def _listed(names: list[str]) -> str:
    more = f" and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
    return ", ".join(names[:SHOWN]) + more


def _shape(shape) -> str:
    return "(" + ",".join(str(d) for d in shape) + ")"


def _problems(given: dict[str, torch.Tensor], wanted: dict[str, torch.Tensor],
              skip: frozenset[str] = frozenset()) -> list[str]:
    """Missing and unexpected keys and wrong shapes (but those of `skip`), the first few each."""
    missing = [k for k in wanted if k not in given and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in given if k not in wanted]
    shapes = [f"shape of {k} is {_shape(given[k].shape)}, the model wants {_shape(wanted[k].shape)}"
              for k in wanted if k in given and k not in skip and given[k].shape != wanted[k].shape]
    problems = []
    if missing:
        problems.append(f"missing {_listed(missing)}")
    if unexpected:
        problems.append(f"unexpected {_listed(unexpected)}")
    if shapes:
        more = f" (and {len(shapes) - SHOWN} more shapes)" if len(shapes) > SHOWN else ""
        problems.append("; ".join(shapes[:SHOWN]) + more)
    return problems


def fit_state(given: dict[str, torch.Tensor], wanted: dict[str, torch.Tensor], source: str,
              arch: str) -> dict[str, torch.Tensor]:
    """`wanted` (the fresh model's state dict) with every tensor replaced by `given`'s, cast to
    the model's dtypes. Missing or unexpected keys and wrong shapes are one line naming the
    first few. BatchNorm's step counters (num_batches_tracked), which older checkpoints lack,
    keep the model's value."""
    problems = _problems(given, wanted)
    if problems:
        raise JetsynthError(f"{source} does not fit {arch}: {'; '.join(problems)}")
    return _filled(given, wanted, source, arch)


def _filled(given: dict[str, torch.Tensor], wanted: dict[str, torch.Tensor], source: str,
            arch: str) -> dict[str, torch.Tensor]:
    """`wanted` with `given`'s tensors cast to the model's dtypes, after checking that the cast
    keeps their kind (float for float) and that every value stays finite."""
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


@dataclass(frozen=True)
class HeadChange:
    """The checkpoint's head (`layer`, writing `given` classes) replaced by a fresh one for the
    data's `classes`."""

    layer: str
    given: int
    classes: int

    def line(self, data: str) -> str:
        return (f"{self.layer}: {self.given} classes → {self.classes} classes of {data} "
                "(new head, trained first)")


@dataclass(frozen=True)
class ChannelChange:
    """A first conv's weights for `given` input channels adapted to the data's `channels`:
    'summed' (to one channel: a gray image x gives what the RGB image (x, x, x) gave) or
    'averaged' (one channel spread over `channels`, each a 1/channels share: an image of equal
    channels gives what the gray image gave)."""

    layer: str
    given: int
    channels: int
    how: str

    def line(self) -> str:
        if self.how == "summed":
            colour = "RGB" if self.given == 3 else f"{self.given}-channel"
            return f"{self.layer}: {colour} weights summed to 1 channel"
        return (f"{self.layer}: 1-channel weights spread over {self.channels} channels "
                f"(each 1/{self.channels} of them)")


@dataclass(frozen=True)
class Transfer:
    """What `transfer_state` changed to make a checkpoint fit; recorded with the run."""

    head: HeadChange | None = None
    channels: tuple[ChannelChange, ...] = ()

    def lines(self, data: str) -> list[str]:
        """One line per change, for the user; `data` names the dataset ('photos/')."""
        found = [change.line() for change in self.channels]
        return found + ([self.head.line(data)] if self.head is not None else [])

    def to_json(self) -> dict:
        from dataclasses import asdict

        return {"head": asdict(self.head) if self.head else None,
                "channels": [asdict(change) for change in self.channels]}


def _head_kind(module: torch.nn.Module) -> str | None:
    """None for a head jetsynth can replace (linear, 1×1 conv), else what it is, in words."""
    if isinstance(module, torch.nn.Linear):
        return None
    if isinstance(module, torch.nn.Conv2d):
        if tuple(module.kernel_size) == (1, 1):
            return None
        return f"a {module.kernel_size[0]}×{module.kernel_size[1]} conv"
    return f"a {type(module).__name__}"


def _adapted_input(given: torch.Tensor, wanted: torch.Tensor) -> tuple[torch.Tensor, str] | None:
    """A conv weight (out, in, kh, kw) for other input channels adapted to `wanted`'s, or None."""
    g, w = given.shape, wanted.shape
    if len(g) != 4 or g[0] != w[0] or g[2:] != w[2:]:
        return None
    if w[1] == 1:
        return given.sum(dim=1, keepdim=True), "summed"
    if g[1] == 1:
        return given.repeat(1, w[1], 1, 1) / w[1], "averaged"
    return None


def transfer_state(given: dict[str, torch.Tensor], wanted: dict[str, torch.Tensor], source: str,
                   arch: str, head: str, head_module: torch.nn.Module, first: tuple[str, ...],
                   others: Callable[[set[str]], list[str]] | None = None
                   ) -> tuple[dict[str, torch.Tensor], Transfer]:
    """`given` made to fit `wanted` (the fresh model's state dict) as a transfer: when only the
    head's class count differs, the head (`head`, the layer writing the classes, found by the
    structure model) keeps its fresh initialisation; when a first conv (`first`: the layers that
    read the image) was trained on other colour channels, its weights are adapted (see
    ChannelChange). Anything else that does not fit is one line: the first few missing,
    unexpected and wrongly shaped tensors, and, when `others(keys)` names architectures with
    exactly the checkpoint's keys, those."""
    head_keys = {f"{head}.weight", f"{head}.bias"}
    problems = _problems(given, wanted)
    if any(p.startswith(("missing", "unexpected")) for p in problems):
        fits = others(set(given)) if others is not None else []
        hint = ""
        if fits:
            hint = f"; these are the tensors of --arch {' or --arch '.join(fits)}"
        else:
            shared = len(set(given) & set(wanted))
            if shared < len(wanted) / 2:
                hint = (f"; only {shared} of its {len(given)} tensors have the model's names: it "
                        "looks like a checkpoint of another architecture")
        raise JetsynthError(f"{source} does not fit {arch}: {'; '.join(problems)}{hint}")
    state = dict(given)
    head_change, channel_changes, skip = None, [], set()
    for key in wanted:
        if key not in given or given[key].shape == wanted[key].shape:
            continue
        g, w = given[key].shape, wanted[key].shape
        if key in head_keys and g[0] != w[0] and g[1:] == w[1:]:
            kind = _head_kind(head_module)
            if kind is not None:
                raise JetsynthError(
                    f"{source} has {g[0]} classes and the data {w[0]}, but the head '{head}' is "
                    f"{kind}: jetsynth replaces only a linear or 1×1 conv head; give weights for "
                    f"{w[0]} classes, or a model whose last layer is linear")
            head_change = HeadChange(head, int(g[0]), int(w[0]))
            state[key] = wanted[key]
            skip.add(key)
        elif key.endswith(".weight") and key[: -len(".weight")] in first:
            adapted = _adapted_input(given[key], wanted[key])
            if adapted is None:
                continue
            state[key], how = adapted
            channel_changes.append(ChannelChange(key[: -len(".weight")], int(g[1]), int(w[1]), how))
            skip.add(key)
    trunk = _problems(given, wanted, frozenset(skip))
    if trunk and head_change is not None:
        raise JetsynthError(
            f"{source} has {head_change.given} classes and its trunk does not fit {arch} either "
            f"({'; '.join(trunk)}): only the head may differ; give weights of {arch} itself "
            "(for any number of classes)")
    if trunk:
        raise JetsynthError(f"{source} does not fit {arch}: {'; '.join(trunk)}")
    return _filled(state, wanted, source, arch), Transfer(head_change, tuple(channel_changes))


def _castable(given: torch.dtype, wanted: torch.dtype) -> bool:
    """Whether a tensor of dtype `given` may stand for one of `wanted`: float for float (fp16,
    bf16, fp64 into fp32), integer for integer (step counters); never int8, bool or complex for
    a float, whose values a cast would silently change."""
    if wanted.is_floating_point:
        return given.is_floating_point
    if wanted == torch.bool or given == torch.bool:
        return given == wanted
    return not (given.is_floating_point or given.is_complex)
