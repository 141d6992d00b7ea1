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

from .compact import alive_outputs
from .genome import Genome
from .network import synapse_grid

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


def align(parents: list[Genome], alignment: str) -> tuple[dict, dict]:
    """Each parent's weights and masks per layer, stacked (m, *weight shape), in the ancestor
    coordinates of the clusters they are matched to. With 'tag' that is every parent's own
    coordinates; with 'position' parent k's j-th live unit is laid onto parent 0's j-th live
    unit (units beyond the shorter list stay unmatched)."""
    reference = parents[0]
    layers = reference.layers
    weights: dict[str, list[torch.Tensor]] = {layer.name: [] for layer in layers}
    masks: dict[str, list[torch.Tensor]] = {layer.name: [] for layer in layers}
    ref_out = alive_outputs(reference.masks, layers)
    for parent in parents:
        outs = alive_outputs(parent.masks, layers)
        for i, layer in enumerate(layers):
            weight = parent.state[f"{layer.name}.weight"]
            mask = parent.masks[layer.name]
            if alignment == "tag" or parent is reference:
                weights[layer.name].append(weight)
                masks[layer.name].append(mask)
                continue
            src_out, dst_out = outs[i], ref_out[i]
            src_in = outs[i - 1] if i else torch.arange(layer.in_units)
            dst_in = ref_out[i - 1] if i else torch.arange(layer.in_units)
            n_out, n_in = min(len(src_out), len(dst_out)), min(len(src_in), len(dst_in))
            placed_w = torch.zeros(layer.out_units, layer.in_units, layer.kernel)
            placed_m = torch.zeros(layer.out_units, layer.in_units, layer.kernel, dtype=torch.bool)
            rows, cols = dst_out[:n_out, None], dst_in[None, :n_in]
            placed_w[rows, cols] = synapse_grid(weight, layer)[src_out[:n_out, None], src_in[None, :n_in]]
            placed_m[rows, cols] = synapse_grid(mask, layer)[src_out[:n_out, None], src_in[None, :n_in]]
            weights[layer.name].append(placed_w.reshape(weight.shape))
            masks[layer.name].append(placed_m.reshape(mask.shape))
    return (
        {k: torch.stack(v) for k, v in weights.items()},
        {k: torch.stack(v) for k, v in masks.items()},
    )
