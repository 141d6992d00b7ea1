"""What the synthesis sees of a network: its chain of prunable layers (conv and linear), each
viewed as a grid of (output unit, input unit, synapses per pair).

A linear layer after a conv reads `in_units` channels × `kernel` spatial positions (torch flattens
channel-major), so both layer kinds share the view `weight.view(out_units, in_units, kernel)`.
Networks must be chains: every prunable layer reads the output of the one before it. Residual and
concatenation couplings are outside this model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .errors import JetsynthError

CLUSTER_MODES = ("kernel", "filter")


@dataclass(frozen=True)
class Layer:
    name: str
    kind: str
    out_units: int
    in_units: int
    kernel: int
    out_positions: int
    norm: str | None = None

    @property
    def synapses(self) -> int:
        return self.out_units * self.in_units * self.kernel


def chain_layers(model: nn.Module, input_shape: tuple[int, int, int]) -> list[Layer]:
    """Discover the prunable chain by running one zero input through the model."""
    modules = dict(model.named_modules())
    prunable = [n for n, m in modules.items() if isinstance(m, (nn.Conv2d, nn.Linear))]
    if not prunable:
        raise JetsynthError("the model has no Conv2d or Linear layer to evolve")
    calls: dict[str, tuple] = {}

    def recorder(name):
        def hook(_module, _inputs, output):
            if name in calls:
                raise JetsynthError(f"layer '{name}' is called twice; only chain networks evolve")
            calls[name] = tuple(output.shape)

        return hook

    handles = [modules[n].register_forward_hook(recorder(n)) for n in prunable]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_shape))
    except JetsynthError:
        raise
    except Exception as exc:
        raise JetsynthError(f"the model cannot take inputs of shape {tuple(input_shape)}: {exc}") from None
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    unused = [n for n in prunable if n not in calls]
    if unused:
        raise JetsynthError(f"layers never used in forward(): {', '.join(unused)}")

    norms = _norm_after(modules, prunable)
    layers: list[Layer] = []
    previous = input_shape[0]
    for name in calls:
        module = modules[name]
        if isinstance(module, nn.Conv2d):
            if module.groups != 1 or module.in_channels != previous:
                raise JetsynthError(
                    f"conv '{name}' does not read the previous layer's {previous} channels "
                    "(grouped or non-chain network); only chain networks evolve"
                )
            kernel = module.kernel_size[0] * module.kernel_size[1]
            positions = calls[name][2] * calls[name][3]
            out_units = module.out_channels
        else:
            if module.in_features % previous:
                raise JetsynthError(
                    f"linear '{name}' reads {module.in_features} features, not a multiple of the "
                    f"previous layer's {previous} units; only chain networks evolve"
                )
            kernel = module.in_features // previous
            positions = 1
            out_units = module.out_features
        norm = norms.get(name)
        if norm is not None and modules[norm].num_features != out_units:
            norm = None
        layers.append(
            Layer(
                name=name,
                kind="conv" if isinstance(module, nn.Conv2d) else "linear",
                out_units=out_units,
                in_units=previous,
                kernel=kernel,
                out_positions=positions,
                norm=norm,
            )
        )
        previous = out_units
    return layers


def _norm_after(modules: dict[str, nn.Module], prunable: list[str]) -> dict[str, str]:
    """The batch norm (if any) registered between a prunable layer and the next one."""
    found: dict[str, str] = {}
    current = None
    for name, module in modules.items():
        if name in prunable:
            current = name
        elif isinstance(module, nn.modules.batchnorm._BatchNorm) and current is not None:
            found.setdefault(current, name)
    return found


def synapse_grid(tensor: torch.Tensor, layer: Layer) -> torch.Tensor:
    """A weight-shaped tensor viewed as (out_units, in_units, kernel)."""
    return tensor.reshape(layer.out_units, layer.in_units, layer.kernel)


def cluster_view(tensor: torch.Tensor, layer: Layer, mode: str) -> torch.Tensor:
    """A weight-shaped tensor as (clusters, synapses per cluster). A cluster is a conv kernel
    (mode 'kernel') or a whole filter (mode 'filter'); a linear layer always clusters by output
    neuron."""
    if mode not in CLUSTER_MODES:
        raise JetsynthError(f"unknown cluster mode '{mode}': use kernel or filter")
    if layer.kind == "conv" and mode == "kernel":
        return tensor.reshape(layer.out_units * layer.in_units, layer.kernel)
    return tensor.reshape(layer.out_units, layer.in_units * layer.kernel)

