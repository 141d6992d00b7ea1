"""A member as a plain state dict (`export --format state-dict`): the compacted network's tensors
in a safetensors file, with its architecture in the file's metadata, so that it loads without
jetsynth into the network the run started from.

Metadata (all strings, as safetensors keeps them): `jetsynth`, the JSON of the export's facts
(member, accuracy, preprocessing, MACs); `modules`, the JSON of every conv, linear and norm
module by name with the constructor arguments of its compacted width (`{"layer1.0.conv1":
{"type": "Conv2d", "in_channels": 64, "out_channels": 23, ...}}`); `parameters`, the shapes of
parameters held outside those modules (a layer scale). To load it: build the architecture the
run started from, replace each named module by `getattr(torch.nn, type)(**arguments)` and each
named parameter by one of that shape, then `load_state_dict` (docs/guide.md, *Bring your model*).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from safetensors.torch import save_file
from torch import nn

from jetsynth.core.genome import Genome
from jetsynth.storage import atomic_write

_CONV = ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups")
_NORMS = {
    nn.BatchNorm1d: ("num_features", "eps", "momentum", "affine", "track_running_stats"),
    nn.BatchNorm2d: ("num_features", "eps", "momentum", "affine", "track_running_stats"),
    nn.GroupNorm: ("num_groups", "num_channels", "eps", "affine"),
    nn.LayerNorm: ("normalized_shape", "eps", "elementwise_affine"),
}


@dataclass(frozen=True)
class StateDictResult:
    """Where the member went, its size (bytes, parameters) and per-image multiply-accumulates."""

    path: Path
    precision: str
    bytes: int
    macs: int
    params: int
    metadata: dict


def module_arguments(model: nn.Module) -> dict[str, dict]:
    """The constructor arguments, by module name, of every conv, linear and norm module of
    `model`: the widths a plain torch module needs to take the compacted state dict."""
    found: dict[str, dict] = {}
    for name, module in model.named_modules():
        if type(module) is nn.Conv2d:
            found[name] = {"type": "Conv2d", **{k: getattr(module, k) for k in _CONV},
                           "bias": module.bias is not None}
        elif type(module) is nn.Linear:
            found[name] = {"type": "Linear", "in_features": module.in_features,
                           "out_features": module.out_features, "bias": module.bias is not None}
        elif type(module) in _NORMS:
            found[name] = {"type": type(module).__name__,
                           **{k: getattr(module, k) for k in _NORMS[type(module)]}}
    return found


def loose_parameters(model: nn.Module, modules: dict[str, dict]) -> dict[str, list[int]]:
    """Shapes of the parameters that no module of `modules` holds (e.g. ConvNeXt's `gamma`)."""
    return {name: list(p.shape) for name, p in model.named_parameters()
            if name.rpartition(".")[0] not in modules}


def export_state_dict(genome: Genome, model: nn.Module, out: Path, precision: str, macs: int,
                      metadata: dict) -> StateDictResult:
    """Write compacted `model` (of `genome`) to `out` as safetensors, in `precision` ('fp16'
    halves floating tensors), its architecture and `metadata` in the file's metadata."""
    modules = module_arguments(model)
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    if precision == "fp16":
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    facts = {**metadata, "precision": precision, "macs": macs,
             "params": sum(p.numel() for p in model.parameters())}
    header = {"format": "pt", "jetsynth": json.dumps(facts), "modules": json.dumps(modules),
              "parameters": json.dumps(loose_parameters(model, modules))}
    out = Path(out)
    atomic_write(out, lambda tmp: save_file(state, str(tmp), metadata=header))
    return StateDictResult(out, precision, out.stat().st_size, macs, facts["params"], facts)
