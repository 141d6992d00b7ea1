"""Compaction of any network for deployment: dead filters, channels and neurons physically removed
across residual and concatenation couplings, with Torch-Pruning's dependency graph finding which
layers share a channel.

Training compacts chain networks with `compact` (which also keeps the ancestor indices needed to
write weights back); this module is the export path and works on any graph Torch-Pruning traces.

A channel of a coupling group (e.g. one channel of a residual stream: the producers that add into
it, their norms, and every layer that reads it) is dead when no producer writes it through a live
weight or no consumer reads it through one. A dead channel's constant part (a bias or a norm's
shift, which a filter without live weights still emits) is dropped with it: that is the genome's
meaning of a dead unit, which evolution never trained with. `settle` makes this explicit on the
full-size network, so the compacted network computes exactly what the settled one computes.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from .errors import JetsynthError

PRUNABLE = (nn.Conv2d, nn.Linear)


@dataclass
class GraphCompaction:
    """The compacted network and its size before and after (multiply-accumulates per image,
    parameters), and the channels removed from each coupling group's root layer."""

    model: nn.Module
    macs_before: int
    macs_after: int
    params_before: int
    params_after: int
    removed: dict[str, int]


def _graph(model: nn.Module, example: torch.Tensor):
    import torch_pruning as tp

    try:
        with torch.enable_grad():
            return tp.DependencyGraph().build_dependency(model, example_inputs=example, verbose=False)
    except Exception as exc:  # tracing a user's model may fail in many ways
        raise JetsynthError(f"cannot trace the network's channel couplings: {exc}") from None


def _output_layers(model: nn.Module, example: torch.Tensor) -> set[nn.Module]:
    """The last conv/linear layer to run: its outputs are the network's answer and stay."""
    order: list[nn.Module] = []
    handles = [m.register_forward_hook(lambda mod, _i, _o: order.append(mod))
               for m in model.modules() if isinstance(m, PRUNABLE)]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for handle in handles:
            handle.remove()
    return {order[-1]} if order else set()


def _groups(graph, keep: set[nn.Module]) -> Iterator:
    yield from graph.get_all_groups(ignored_layers=list(keep), root_module_types=PRUNABLE)


def _roles(graph, group) -> tuple[list, list]:
    """(producers, readers): (layer, its indices, their root channels) of the group's conv and
    linear layers whose outputs, resp. inputs, are the group's channels."""
    producers, readers = [], []
    for item in group:
        layer = item.dep.target.module
        if not isinstance(layer, PRUNABLE):
            continue
        entry = (layer, torch.as_tensor(item.idxs, dtype=torch.long),
                 torch.as_tensor(item.root_idxs, dtype=torch.long))
        if graph.is_out_channel_pruning_fn(item.dep.handler):
            producers.append(entry)
        elif graph.is_in_channel_pruning_fn(item.dep.handler):
            readers.append(entry)
    return producers, readers


def _dead_channels(producers: list, readers: list, channels: int) -> torch.Tensor:
    """Boolean per root channel: written by no live weight or read by no live weight."""
    written = torch.zeros(channels, dtype=torch.bool)
    read = torch.zeros(channels, dtype=torch.bool)
    for layer, idxs, roots in producers:
        written[roots[layer.weight[idxs].flatten(1).ne(0).any(dim=1)]] = True
    for layer, idxs, roots in readers:
        read[roots[layer.weight[:, idxs].transpose(0, 1).flatten(1).ne(0).any(dim=1)]] = True
    return ~(written & read)


def _root_channels(group) -> int:
    return len(group[0].root_idxs)


@torch.no_grad()
def _silence(producers: list, readers: list, dead: torch.Tensor) -> bool:
    """Zero every weight and bias of the dead channels; True if anything non-zero was zeroed."""
    changed = False
    for layer, idxs, roots in producers:
        rows = idxs[dead[roots]]
        changed |= bool(layer.weight[rows].ne(0).any())
        layer.weight[rows] = 0
        if layer.bias is not None:
            changed |= bool(layer.bias[rows].ne(0).any())
            layer.bias[rows] = 0
    for layer, idxs, roots in readers:
        cols = idxs[dead[roots]]
        changed |= bool(layer.weight[:, cols].ne(0).any())
        layer.weight[:, cols] = 0
    return changed


@torch.no_grad()
def _settled(model: nn.Module, masks: dict[str, torch.Tensor], example: torch.Tensor):
    """The settled copy (see `settle`) with its dependency graph and kept output layers, so
    that compaction prunes on the graph it settled with."""
    net = copy.deepcopy(model).eval()
    modules = dict(net.named_modules())
    for name, mask in masks.items():
        if name not in modules or not isinstance(modules[name], PRUNABLE):
            raise JetsynthError(f"mask for '{name}', which is not a conv or linear layer of the network")
        weight = modules[name].weight
        if tuple(mask.shape) != tuple(weight.shape):
            raise JetsynthError(
                f"mask for '{name}' has shape {tuple(mask.shape)}, its weight {tuple(weight.shape)}"
            )
        weight.mul_(mask.to(weight.dtype))
    graph = _graph(net, example)
    keep = _output_layers(net, example)
    changed = True
    while changed:
        changed = False
        for group in _groups(graph, keep):
            producers, readers = _roles(graph, group)
            if readers:
                dead = _dead_channels(producers, readers, _root_channels(group))
                changed |= _silence(producers, readers, dead)
    return net, graph, keep


def settle(model: nn.Module, masks: dict[str, torch.Tensor], example: torch.Tensor) -> nn.Module:
    """A full-size copy of `model` with `masks` (module name → bool mask of its weight) applied
    and every dead channel silenced everywhere, repeated until nothing changes."""
    return _settled(model, masks, example)[0]


def _size(model: nn.Module, example: torch.Tensor) -> tuple[int, int]:
    import torch_pruning as tp

    macs, params = tp.utils.count_ops_and_params(model, example)
    return int(macs), int(params)


@torch.no_grad()
def compact_graph(
    model: nn.Module, masks: dict[str, torch.Tensor], example: torch.Tensor
) -> GraphCompaction:
    """The settled network with its dead channels removed. `example` is one input batch
    (N, C, H, W) used to trace the graph. A group whose every channel is dead keeps one channel
    (all zero) so the layers stay well-formed."""
    net, graph, keep = _settled(model, masks, example)
    macs_before, params_before = _size(net, example)
    names = {module: name for name, module in net.named_modules()}
    removed: dict[str, int] = {}
    for group in _groups(graph, keep):
        producers, readers = _roles(graph, group)
        if not readers:
            continue
        dead = _dead_channels(producers, readers, _root_channels(group))
        if dead.all():
            dead[0] = False
        if dead.any():
            root = group[0].dep.target.module
            removed[names.get(root, "?")] = int(dead.sum())
            group.prune(idxs=dead.nonzero()[:, 0].tolist())
    macs_after, params_after = _size(net, example)
    return GraphCompaction(net, macs_before, macs_after, params_before, params_after, removed)
