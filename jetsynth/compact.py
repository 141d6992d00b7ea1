"""Dead units and physical compaction of chain networks.

A unit (filter or neuron) is dead when no live synapse feeds it or no live synapse reads it;
its synapses are then removed everywhere (`propagate_dead`). `compact` rebuilds the network
without dead units so training and inference cost what the survivors compute; kernel-level
masks inside surviving filters stay masks. `expand_state` writes a trained compact network back
into the ancestor's coordinates, where the position of a unit is its gene tag.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from .network import Layer, synapse_grid


def propagate_dead(masks: dict[str, torch.Tensor], layers: list[Layer]) -> dict[str, torch.Tensor]:
    """New masks with every synapse of a dead unit removed, iterated to a fixed point. The last
    layer's outputs are the classes and never die."""
    grids = [synapse_grid(masks[layer.name].clone(), layer) for layer in layers]
    changed = True
    while changed:
        changed = False
        for i in range(len(layers)):
            grid = grids[i]
            if i > 0:
                dead_in = ~grids[i - 1].flatten(1).any(dim=1)
                if grid[:, dead_in].any():
                    grid[:, dead_in] = False
                    changed = True
            if i + 1 < len(layers):
                unread = ~grids[i + 1].transpose(0, 1).flatten(1).any(dim=1)
                if grid[unread].any():
                    grid[unread] = False
                    changed = True
    return {
        layer.name: grid.reshape(masks[layer.name].shape) for layer, grid in zip(layers, grids, strict=False)
    }


def alive_outputs(masks: dict[str, torch.Tensor], layers: list[Layer]) -> list[torch.Tensor]:
    """Indices of the live output units of each layer (all classes for the last layer)."""
    out = []
    for i, layer in enumerate(layers):
        if i + 1 == len(layers):
            out.append(torch.arange(layer.out_units))
        else:
            out.append(synapse_grid(masks[layer.name], layer).flatten(1).any(dim=1).nonzero()[:, 0])
    return out


@dataclass
class Compacted:
    """A compacted network, its masks in compact coordinates, and for each layer the ancestor
    indices of the output and input units it kept."""

    model: nn.Module
    masks: dict[str, torch.Tensor]
    out_index: dict[str, torch.Tensor]
    in_index: dict[str, torch.Tensor]


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, module)


def _shrunk_layer(old: nn.Module, n_in: int, n_out: int) -> nn.Module:
    if isinstance(old, nn.Conv2d):
        return nn.Conv2d(
            n_in,
            n_out,
            old.kernel_size,
            stride=old.stride,
            padding=old.padding,
            dilation=old.dilation,
            bias=old.bias is not None,
            padding_mode=old.padding_mode,
        )
    return nn.Linear(n_in, n_out, bias=old.bias is not None)


def _shrunk_norm(old: nn.modules.batchnorm._BatchNorm, index: torch.Tensor) -> nn.Module:
    new = type(old)(len(index), eps=old.eps, momentum=old.momentum, affine=old.affine,
                    track_running_stats=old.track_running_stats)
    new.load_state_dict(
        {k: (v[index] if v.dim() else v) for k, v in old.state_dict().items()}
    )
    return new


def compact(model: nn.Module, masks: dict[str, torch.Tensor], layers: list[Layer]) -> Compacted:
    """A copy of `model` (ancestor-shaped, masked weights) without its dead units."""
    net = copy.deepcopy(model)
    outs = alive_outputs(masks, layers)
    compact_masks, out_index, in_index = {}, {}, {}
    previous = None
    for layer, out_idx in zip(layers, outs, strict=False):
        in_idx = previous if previous is not None else torch.arange(layer.in_units)
        old = net.get_submodule(layer.name)
        n_in = len(in_idx) * (layer.kernel if layer.kind == "linear" else 1)
        new = _shrunk_layer(old, n_in, len(out_idx))
        with torch.no_grad():
            weight = synapse_grid(old.weight, layer)[out_idx][:, in_idx]
            new.weight.copy_(weight.reshape(new.weight.shape))
            if old.bias is not None:
                new.bias.copy_(old.bias[out_idx])
        _replace(net, layer.name, new)
        if layer.norm is not None:
            _replace(net, layer.norm, _shrunk_norm(net.get_submodule(layer.norm), out_idx))
        mask = synapse_grid(masks[layer.name], layer)[out_idx][:, in_idx]
        compact_masks[layer.name] = mask.reshape(new.weight.shape).clone()
        out_index[layer.name], in_index[layer.name] = out_idx, in_idx
        previous = out_idx
    return Compacted(net, compact_masks, out_index, in_index)


def expand_state(
    compacted: Compacted, layers: list[Layer], full_state: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """The ancestor-shaped state dict with the compact network's trained values written back;
    removed units keep zero weights and biases."""
    state = {k: v.clone() for k, v in full_state.items()}
    small = compacted.model.state_dict()
    handled = set()
    for layer in layers:
        out_idx, in_idx = compacted.out_index[layer.name], compacted.in_index[layer.name]
        key = f"{layer.name}.weight"
        grid = torch.zeros(layer.out_units, layer.in_units, layer.kernel)
        small_grid = small[key].reshape(len(out_idx), len(in_idx), layer.kernel)
        grid[out_idx[:, None], in_idx[None, :]] = small_grid
        state[key] = grid.reshape(state[key].shape)
        handled.add(key)
        bias_key = f"{layer.name}.bias"
        if bias_key in small:
            bias = torch.zeros(layer.out_units)
            bias[out_idx] = small[bias_key]
            state[bias_key] = bias
            handled.add(bias_key)
        if layer.norm is not None:
            for key, value in small.items():
                if key.startswith(f"{layer.norm}.") and value.dim():
                    state[key] = state[key].clone()
                    state[key][out_idx] = value
                    handled.add(key)
    for key, value in small.items():
        if key not in handled and key in state and state[key].shape == value.shape:
            state[key] = value.clone()
    return state
