"""A population of R2R-grown networks that share their parameters (seed 003): R2R transforms
never change a weight, so a network and the networks grown from it hold the *same* tensors for
everything they have in common; memory grows with the new blocks' weights, not with the number
of members.

Every parameter and buffer is kept once, under its module path with `.base` left out (a block's
path carries its transform id, so the same key is the same tensor in every member). A member is
its architecture name (see `growth`); its module tree is built from the name and then bound to
the shared tensors, so training any member trains what it shares with the others.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from jetsynth.errors import JetsynthError
from jetsynth.nn.finite import all_finite
from jetsynth.nn.growth import canonical_layer, grown_factory
from jetsynth.storage import atomic_write


class SharedPopulation:
    """The shared tensors and the members (architecture name → module tree) bound to them.
    `base_factory`: the base architecture's factory (input_shape, num_classes) → nn.Module;
    `device`: where every shared tensor lives (members are built there)."""

    def __init__(self, base_factory: Callable, input_shape: tuple[int, int, int], num_classes: int,
                 device: str = "cpu"):
        self.base_factory = base_factory
        self.device = torch.device(device)
        self.input_shape = tuple(input_shape)
        self.num_classes = int(num_classes)
        self.tensors: dict[str, torch.Tensor] = {}

    def build(self, arch: str) -> nn.Module:
        """The network `arch` names, bound to the shared tensors (new ones are added with the
        values the architecture builds them with: R2R blocks start at zero output)."""
        model = grown_factory(self.base_factory, arch)(self.input_shape, self.num_classes)
        self.bind(model.to(self.device))
        return model

    def bind(self, model: nn.Module) -> None:
        for prefix, module in model.named_modules():
            for table in (module._parameters, module._buffers):
                for name, tensor in table.items():
                    if tensor is None:
                        continue
                    key = canonical_layer(f"{prefix}.{name}" if prefix else name)
                    if key in self.tensors:
                        table[name] = self.tensors[key]
                    else:
                        self.tensors[key] = tensor

    def parameters(self) -> list[nn.Parameter]:
        return [t for t in self.tensors.values() if isinstance(t, nn.Parameter)]

    def numel(self) -> int:
        """Scalars held by the population (each shared tensor counted once)."""
        return sum(t.numel() for t in self.tensors.values())

    def save(self, path: Path, optimizer: torch.optim.Optimizer | None = None,
             root: Path | None = None) -> None:
        """The shared tensors (and Adam's moments, per key) as one safetensors file; `root`: the
        folder it belongs in (see storage.confine)."""
        tensors = {f"{'p' if isinstance(v, nn.Parameter) else 'b'}/{k}": v.detach().cpu().contiguous()
                   for k, v in self.tensors.items()}
        if optimizer is not None:
            for key, tensor in self.tensors.items():
                for name, value in optimizer.state.get(tensor, {}).items():
                    if torch.is_tensor(value):
                        tensors[f"opt/{name}/{key}"] = value.detach().cpu().contiguous()
        atomic_write(Path(path), lambda tmp: save_file(tensors, str(tmp)), root)

    def load(self, path: Path) -> dict[str, dict[str, torch.Tensor]]:
        """Values for the shared tensors from `save` (members built afterwards bind to them), on
        the population's device; returns the saved optimiser state per key, on the CPU."""
        try:
            saved = load_file(str(path))
        except (SafetensorError, OSError) as exc:
            raise JetsynthError(f"{path}: unreadable safetensors file ({exc}); the run's population "
                                "is damaged") from None
        for name, value in saved.items():
            if name.startswith(("p/", "opt/")) and not value.is_floating_point():
                raise JetsynthError(f"{path}: {name} is {value.dtype}, not a float tensor; the "
                                    "run's population is damaged")
            if not all_finite(value):
                raise JetsynthError(f"{path}: {name} holds NaN or infinite values; the run's "
                                    "population is damaged")
        for name, value in saved.items():
            if name.startswith("p/"):
                self.tensors[name[2:]] = nn.Parameter(value.to(self.device))
            elif name.startswith("b/"):
                self.tensors[name[2:]] = value.to(self.device)
        moments: dict[str, dict[str, torch.Tensor]] = {}
        for name, value in saved.items():
            if name.startswith("opt/"):
                _, field, key = name.split("/", 2)
                moments.setdefault(key, {})[field] = value
        return moments
