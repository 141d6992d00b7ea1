"""The one compactor: a network without its dead units, for training and for export alike.

Given an ancestor-shaped network carrying masked weights, the masks are settled (see
`structure.settle`), each channel space keeps the channels some producer still writes, and
Torch-Pruning's pruning functions remove the rest from every module the space couples (convs,
linears, batch norms, layer norms, ...), residual streams, concatenations and depthwise convs
included. Kernel-level masks inside surviving filters stay masks. The compaction keeps, per
module, the ancestor indices of the rows and columns it kept, so a trained compact network can
be written back into ancestor coordinates (`expand_state`), where an index is a gene tag.

A dead channel's constant part (a bias or a norm's shift, which a filter without live weights
still emits) goes with it: no live synapse reads it, so the network computes the same.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from dataclasses import dataclass, field

import torch
from torch import nn

from jetsynth.errors import JetsynthError
from jetsynth.nn.structure import PRUNABLE, Topology, is_depthwise, kept_channels, macs, settle


@dataclass
class Compacted:
    """A compacted network, its masks in compact coordinates, and per module the ancestor
    indices kept along its output (dim 0) and input (dim 1) dimensions where they shrank;
    `macs`: multiply-accumulates per image (see `structure.macs`)."""

    model: nn.Module
    masks: dict[str, torch.Tensor]
    kept_out: dict[str, torch.Tensor]
    kept_in: dict[str, torch.Tensor]
    macs: int
    kept_params: dict[str, tuple[int, torch.Tensor]] = field(default_factory=dict)
    """Parameters outside modules (a layer scale) that shrank: (dim, ancestor indices kept)."""

    @property
    def params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


def _pruner(module: nn.Module):
    from torch_pruning import ops
    from torch_pruning.pruner.function import PrunerBox

    pruner = PrunerBox.get(ops.module2type(module))
    if pruner is None:
        raise JetsynthError(f"torch-pruning cannot shrink a {type(module).__name__}")
    return pruner


def _removals(topology: Topology, kept: list[torch.Tensor]) -> dict[tuple[str, str], list[int]]:
    """Per (module, role), the indices to remove, in the ancestor's coordinates; a module read
    from several spaces (a concatenation) gathers them all, so it is shrunk once."""
    removals: dict[tuple[str, str], set[int]] = defaultdict(set)
    layers = topology.by_name
    for space, flags in zip(topology.spaces, kept, strict=True):
        dead = ~flags
        if not dead.any():
            continue
        for member in space.members:
            roots = torch.tensor(member.roots, dtype=torch.long)
            idxs = torch.tensor(member.idxs, dtype=torch.long)
            role = member.role if member.module in layers or member.role == "param" else "out"
            removals[(member.module, role)].update(idxs[dead[roots]].tolist())
    return {key: sorted(value) for key, value in removals.items() if value}


def _kept(size: int, removed: list[int]) -> torch.Tensor:
    flags = torch.ones(size, dtype=torch.bool)
    flags[removed] = False
    return flags.nonzero()[:, 0]


@torch.no_grad()
def compact(model: nn.Module, topology: Topology, masks: dict[str, torch.Tensor],
            multiple: int = 1) -> Compacted:
    """A copy of `model` (ancestor-shaped, its weights already masked) without the channels no
    live synapse writes or reads; with `multiple` > 1 each space keeps a multiple of that many
    channels (see `structure.aligned`)."""
    settled = settle(topology, masks)
    kept = kept_channels(topology, settled, multiple)
    net = copy.deepcopy(model)
    modules = dict(net.named_modules())
    kept_out: dict[str, torch.Tensor] = {}
    kept_in: dict[str, torch.Tensor] = {}
    kept_params: dict[str, tuple[int, torch.Tensor]] = {}
    dims = {m.module: m.dim for space in topology.spaces for m in space.members if m.role == "param"}
    for (name, role), removed in _removals(topology, kept).items():
        if role == "param":
            kept_params[name] = _shrink_parameter(net, name, dims[name], removed)
            continue
        module = modules[name]
        if role == "in" and is_depthwise(module):
            continue
        pruner = _pruner(module)
        if role == "out":
            kept_out[name] = _kept(_dimension(module, role), removed)
            pruner.prune_out_channels(module, removed)
        else:
            kept_in[name] = _kept(_dimension(module, role), removed)
            pruner.prune_in_channels(module, removed)
    compact_masks = {}
    for layer in topology.layers:
        mask = settled[layer.name]
        if layer.name in kept_out:
            mask = mask[kept_out[layer.name]]
        if layer.name in kept_in:
            mask = mask[:, kept_in[layer.name]]
        compact_masks[layer.name] = mask.clone()
        if compact_masks[layer.name].shape != modules[layer.name].weight.shape:
            raise JetsynthError(f"compaction of '{layer.name}' went wrong: mask "
                                f"{tuple(mask.shape)}, weight {tuple(modules[layer.name].weight.shape)}")
    return Compacted(net, compact_masks, kept_out, kept_in, sum(macs(topology, settled, kept).values()),
                     kept_params)


def _shrink_parameter(net: nn.Module, name: str, dim: int, removed: list[int]) -> tuple[int, torch.Tensor]:
    """Parameter `name` of `net` without the channels `removed` along `dim`; returns (dim, the
    ancestor indices kept)."""
    owner, _, attribute = name.rpartition(".")
    holder = net.get_submodule(owner)
    parameter = getattr(holder, attribute)
    keep = _kept(parameter.shape[dim], removed)
    setattr(holder, attribute, nn.Parameter(parameter.detach().index_select(dim, keep).clone(),
                                            requires_grad=parameter.requires_grad))
    return dim, keep


def _dimension(module: nn.Module, role: str) -> int:
    """How long the dimension `role` of `module` is: a layer's outputs or inputs, or the
    channels of a per-channel module (a norm, a PReLU: its first parameter's length)."""
    if isinstance(module, PRUNABLE):
        return module.weight.shape[0 if role == "out" else 1]
    for tensor in list(module.parameters()) + list(module.buffers()):
        if tensor.dim() >= 1:
            return tensor.shape[0]
    raise JetsynthError(f"cannot tell how many channels a {type(module).__name__} has")


def expand_state(compacted: Compacted, topology: Topology,
                 full_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The ancestor-shaped state dict with the compact network's values written back. Removed
    units of conv and linear layers hold zero weights and biases; other modules' removed
    entries (a norm's statistics) keep their previous values."""
    state = {k: v.clone() for k, v in full_state.items()}
    layers = set(topology.by_name)
    for key, value in compacted.model.state_dict().items():
        if key not in state:
            continue
        module, _, _ = key.rpartition(".")
        target = state[key]
        if target.shape == value.shape:
            state[key] = value.clone()
            continue
        if key in compacted.kept_params:
            dim, kept = compacted.kept_params[key]
            target.index_copy_(dim, kept, value)
            continue
        if module in layers:
            target.zero_()
        index: list = [slice(None)] * value.dim()
        if module in compacted.kept_out and target.shape[0] != value.shape[0]:
            index[0] = compacted.kept_out[module]
        if value.dim() > 1 and module in compacted.kept_in and target.shape[1] != value.shape[1]:
            index[1] = compacted.kept_in[module]
        if len([i for i in index if not isinstance(i, slice)]) == 2:
            target[index[0][:, None], index[1][None, :]] = value
        else:
            target[tuple(index)] = value
    return state
