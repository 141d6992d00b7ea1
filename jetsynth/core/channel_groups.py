"""Channel groups (`--channel-multiple N`): every channel space of an offspring keeps a multiple
of N live channels, so the widths the network trains, is counted, timed and shipped at are the
widths accelerators and CPU kernels like (they compute channels in blocks of 8 or 16; a remainder
runs at a fraction of its MAC promise, and padding it with dead channels spends the speed on
zeros).

A space is a set of channels that live or die together (`nn.structure`): a residual stream
written by several layers, or a conv's outputs with the depthwise conv that reads them, counts
once. After a draw, a space whose live channels are not a multiple of N either revives its
strongest dead channels (ones its parents carried) to fill the last group (`fill`), or loses its
weakest live ones down to the group below (`trim`). A space that died whole stays dead; a space
smaller than N keeps its size; one whose parents carried too few channels to fill the group is
trimmed instead, unless that would cost a class its last reader. Strength is a
channel's summed mated |w| over the layers that write it.
"""

from __future__ import annotations

import torch

from jetsynth.nn.structure import Topology, cluster_view, grid, row_alive, settle

ROUNDING = ("fill", "trim")
MAX_PASSES = 4


def channel_strengths(topology: Topology, strengths: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """Per space, each channel's summed |w| (or mated strength) over the layers that write it."""
    out = []
    for space in topology.spaces:
        total = torch.zeros(space.size)
        for layer in topology.producers(space.index):
            rows = cluster_view(strengths[layer.name], layer, "filter").abs().sum(dim=1).float()
            total.index_add_(0, layer.out_channel_tensor, rows)
        out.append(total)
    return out


def live_in_space(topology: Topology, masks: dict[str, torch.Tensor], index: int) -> torch.Tensor:
    """Which channels of space `index` some producer writes through a live synapse."""
    flags = torch.zeros(topology.spaces[index].size, dtype=torch.bool)
    for layer in topology.producers(index):
        flags[layer.out_channel_tensor[row_alive(masks[layer.name], layer)]] = True
    return flags


def group_size(live: int, size: int, multiple: int) -> int:
    """The live channels a space of `size` channels with `live` of them alive should have when
    filling the group: `live` rounded up to a multiple, at most the whole space; 0 stays 0."""
    if live == 0 or multiple <= 1:
        return live
    return min(size, -(-live // multiple) * multiple)


def _allowed_channels(topology: Topology, allowed: dict[str, torch.Tensor], index: int) -> torch.Tensor:
    return live_in_space(topology, allowed, index)


def _revive(topology: Topology, masks: dict[str, torch.Tensor], allowed: dict[str, torch.Tensor],
            index: int, channels: torch.Tensor) -> dict[str, torch.Tensor]:
    """`masks` with `channels` of space `index` written again through their parents' synapses
    and read again by the live units that may read them."""
    space = topology.spaces[index]
    out = {name: mask.clone() for name, mask in masks.items()}
    wanted = torch.zeros(space.size, dtype=torch.bool)
    wanted[channels] = True
    for layer in topology.producers(index):
        rows = wanted[layer.out_channel_tensor]
        grid(out[layer.name], layer)[rows] = grid(allowed[layer.name], layer)[rows]
    for name in space.readers:
        layer = topology.layer(name)
        if layer.depthwise:
            continue
        cols = (layer.in_space_tensor == index) & wanted.index_select(
            0, layer.in_channel_tensor.clamp(0, space.size - 1))
        live_rows = row_alive(out[name], layer)
        view = grid(out[name], layer)
        view[live_rows[:, None] & cols[None, :]] |= grid(allowed[name], layer)[
            live_rows[:, None] & cols[None, :]]
    return out


def _kill(topology: Topology, masks: dict[str, torch.Tensor], index: int,
          channels: torch.Tensor) -> dict[str, torch.Tensor]:
    """`masks` without the filters that write `channels` of space `index`."""
    out = {name: mask.clone() for name, mask in masks.items()}
    dead = torch.zeros(topology.spaces[index].size, dtype=torch.bool)
    dead[channels] = True
    for layer in topology.producers(index):
        grid(out[layer.name], layer)[dead[layer.out_channel_tensor]] = False
    return out


def _fill(topology, masks, allowed, strength, index, multiple):
    """Revive the strongest dead channels of space `index` its parents carried until its live
    channels fill their last group (a revived channel whose inputs died stays dead; then the
    next strongest is tried)."""
    live = live_in_space(topology, masks, index)
    size = len(live)
    want = group_size(int(live.sum()), size, multiple)
    candidates = _allowed_channels(topology, allowed, index) & ~live
    order = [int(c) for c in torch.argsort(strength.masked_fill(~candidates, -1.0), descending=True)
             if candidates[c]]
    while int(live.sum()) < want and order:
        take, order = order[: want - int(live.sum())], order[want - int(live.sum()):]
        masks = settle(topology, _revive(topology, masks, allowed, index, torch.tensor(take)))
        live = live_in_space(topology, masks, index)
    return masks


def _trim(topology, masks, strength, index, multiple):
    """Kill the weakest live channels of space `index` down to the group below (never to none:
    a space with fewer live channels than `multiple` keeps them; nor when a class would lose
    its last live synapse with them)."""
    live = live_in_space(topology, masks, index)
    count = int(live.sum())
    excess = count % multiple
    if count < multiple or excess == 0 or count == len(live):
        return masks
    weakest = torch.argsort(strength.masked_fill(~live, float("inf")))[:excess]
    trimmed = settle(topology, _kill(topology, masks, index, weakest))
    output = topology.output
    if not torch.equal(row_alive(trimmed[output.name], output), row_alive(masks[output.name], output)):
        return masks  # a class read only through these channels: the group stays short
    return trimmed


def grouped(topology: Topology, masks: dict[str, torch.Tensor], allowed: dict[str, torch.Tensor],
            strengths: list[torch.Tensor], multiple: int, rounding: str = "fill") -> dict[str, torch.Tensor]:
    """Settled masks whose every live space has a multiple of `multiple` live channels (or its
    whole size, or, where its parents carried too few, as many as they did; see the module
    docstring). `allowed`: the parents' structure a revived channel takes its synapses from;
    `strengths`: `channel_strengths` of the parents. Trimming a channel can starve a unit of
    another space, so the spaces are visited until none changes (at most MAX_PASSES times)."""
    masks = settle(topology, masks)
    if multiple <= 1:
        return masks
    for _ in range(MAX_PASSES):
        before = [int(live_in_space(topology, masks, s.index).sum()) for s in topology.spaces]
        for space in topology.spaces:
            if rounding == "trim":
                masks = _trim(topology, masks, strengths[space.index], space.index, multiple)
                live = int(live_in_space(topology, masks, space.index).sum())
                if 0 < live < multiple:
                    masks = _fill(topology, masks, allowed, strengths[space.index], space.index,
                                  multiple)
            else:
                masks = _fill(topology, masks, allowed, strengths[space.index], space.index, multiple)
                live = int(live_in_space(topology, masks, space.index).sum())
                if live % multiple and live not in (0, space.size):
                    masks = _trim(topology, masks, strengths[space.index], space.index, multiple)
        after = [int(live_in_space(topology, masks, s.index).sum()) for s in topology.spaces]
        if after == before:
            break
    return masks


def off_group(topology: Topology, masks: dict[str, torch.Tensor], multiple: int) -> list[int]:
    """The spaces whose live channels are neither none, the whole space nor a multiple of
    `multiple` (what a check of an evolved network's widths reports)."""
    settled = settle(topology, masks)
    found = []
    for space in topology.spaces:
        live = int(live_in_space(topology, settled, space.index).sum())
        if live not in (0, space.size) and live % multiple:
            found.append(space.index)
    return found
