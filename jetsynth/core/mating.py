"""m-parent mating (seeds 000 and 002) as pure functions of stacked parent tensors.

Parents are stacked along a leading axis of size m. Strengths are weight magnitudes. Two mating
functions combine them per cluster and per synapse:

- `mate_sum` (seed 000, eqs. 4–5): M = Σ_k α_k · w_k;
- `mate_product` (seed 002, eqs. 2–3): M = Π_{k∈K_c} α_k · w_k over the parents K_c that carry
  the cluster.

Which clusters are matched is the alignment: by gene tag (the cluster's origin in the ancestor,
like with like) or by position in each parent's compacted network (the architectural-mismatch
baseline of seed 002).
"""

from __future__ import annotations

import torch

from jetsynth.core.genome import Genome
from jetsynth.nn.structure import INPUT, Layer, Topology, grid, live_channels

MATING_FUNCTIONS = ("sum", "product")
STRUCTURES = ("intersection", "union")
ALIGNMENTS = ("tag", "position")


def equal_alphas(m: int) -> torch.Tensor:
    """Equal mating weights α_k = 1/m (seed 000's setting)."""
    return torch.full((m,), 1.0 / m)


def _broadcast(alphas: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return alphas.reshape(-1, *([1] * (like.dim() - 1)))


def mate_sum(strengths: torch.Tensor, alphas: torch.Tensor) -> torch.Tensor:
    """Σ_k α_k s_k over the leading (parent) axis; a parent that lacks a synapse adds 0."""
    return (strengths * _broadcast(alphas, strengths)).sum(dim=0)


def mate_product(strengths: torch.Tensor, alphas: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Π_{k∈K_c} α_k s_k where `present` marks the parents carrying each synapse; 0 where none."""
    factors = torch.where(present, strengths * _broadcast(alphas, strengths), torch.ones_like(strengths))
    return factors.prod(dim=0) * present.any(dim=0)


def mate(strengths: torch.Tensor, present: torch.Tensor, alphas: torch.Tensor, function: str) -> torch.Tensor:
    if function == "sum":
        return mate_sum(strengths * present, alphas)
    return mate_product(strengths, alphas, present)


def structure(present: torch.Tensor, mode: str) -> torch.Tensor:
    """Where the offspring may have synapses: in every parent (seed 000's intersection) or in
    any of them (the tagged union of seed 002, mating over K_c)."""
    return present.all(dim=0) if mode == "intersection" else present.any(dim=0)


def environmental_factor(rate: float, m: int) -> float:
    """Seed 000: R = (1 − r)^m, the share of synapses an m-parent offspring keeps."""
    return (1.0 - rate) ** m


def rate_for_factor(factor: float, m: int) -> float:
    """The r that gives R = `factor` for m parents, so that R stays equal across m."""
    return 1.0 - factor ** (1.0 / m)


def _unit_pairs(topology: Topology, layer: Layer, matched: list[dict[int, int]]):
    """(destination, source) index pairs of `layer`'s output and input units under a matching
    of each space's channels (destination channel → source channel)."""
    if layer.out_space < 0:
        rows = torch.arange(layer.out_units)
        out_pairs = (rows, rows)
    else:
        unit = {int(c): o for o, c in enumerate(layer.out_channels)}
        pairs = [(unit[d], unit[s]) for d, s in matched[layer.out_space].items()
                 if d in unit and s in unit]
        out_pairs = _split(pairs)
    if layer.depthwise:
        return out_pairs, (torch.zeros(1, dtype=torch.long),) * 2
    where = {(int(s), int(c)): u for u, (s, c) in enumerate(zip(layer.in_spaces, layer.in_channels,
                                                                strict=True))}
    pairs = []
    for u, (space, channel) in enumerate(zip(layer.in_spaces, layer.in_channels, strict=True)):
        if space == INPUT:
            pairs.append((u, u))
        elif channel in matched[space] and (space, matched[space][channel]) in where:
            pairs.append((u, where[(space, matched[space][channel])]))
    return out_pairs, _split(pairs)


def _split(pairs: list[tuple[int, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    if not pairs:
        return torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)
    dst, src = zip(*pairs, strict=True)
    return torch.tensor(dst), torch.tensor(src)


def _position_matching(reference: Genome, parent: Genome) -> list[dict[int, int]]:
    """Per space, the reference's j-th live channel ↔ the parent's j-th live channel."""
    topology = reference.topology
    matched = []
    for dst, src in zip(live_channels(topology, reference.masks), live_channels(topology, parent.masks),
                        strict=True):
        dst_idx, src_idx = dst.nonzero()[:, 0].tolist(), src.nonzero()[:, 0].tolist()
        matched.append(dict(zip(dst_idx, src_idx, strict=False)))
    return matched


def align(parents: list[Genome], alignment: str) -> tuple[dict, dict]:
    """Each parent's weights and masks per layer, stacked (m, *weight shape), in the ancestor
    coordinates of the clusters they are matched to. With 'tag' that is every parent's own
    coordinates; with 'position' parent k's j-th live channel of each space is laid onto parent
    0's j-th live channel (channels beyond the shorter list stay unmatched); classes and the
    network's input channels match themselves."""
    reference = parents[0]
    topology = reference.topology
    weights: dict[str, list[torch.Tensor]] = {layer.name: [] for layer in topology.layers}
    masks: dict[str, list[torch.Tensor]] = {layer.name: [] for layer in topology.layers}
    for parent in parents:
        matched = None
        if alignment != "tag" and parent is not reference:
            matched = _position_matching(reference, parent)
        for layer in topology.layers:
            weight = parent.state[f"{layer.name}.weight"]
            mask = parent.masks[layer.name]
            if matched is None:
                weights[layer.name].append(weight)
                masks[layer.name].append(mask)
                continue
            (row_dst, row_src), (col_dst, col_src) = _unit_pairs(topology, layer, matched)
            placed_w = torch.zeros(layer.out_units, layer.in_units, layer.kernel)
            placed_m = torch.zeros(layer.out_units, layer.in_units, layer.kernel, dtype=torch.bool)
            rows, cols = row_dst[:, None], col_dst[None, :]
            placed_w[rows, cols] = grid(weight, layer)[row_src[:, None], col_src[None, :]]
            placed_m[rows, cols] = grid(mask, layer)[row_src[:, None], col_src[None, :]]
            weights[layer.name].append(placed_w.reshape(weight.shape))
            masks[layer.name].append(placed_m.reshape(mask.shape))
    return (
        {k: torch.stack(v) for k, v in weights.items()},
        {k: torch.stack(v) for k, v in masks.items()},
    )
