"""Single-parent offspring synthesis (seed 001, eq. 3): sample which clusters and synapses of the
parent live on, under the environmental factors, then drop the units that died with them."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .compact import propagate_dead
from .encoding import encode_clusters
from .environment import layer_factor, layer_targets
from .errors import JetsynthError
from .genome import Genome, Lineage
from .network import cluster_view, synapse_grid

MAX_DRAWS = 20


@dataclass(frozen=True)
class SynthesisConfig:
    """cluster: 'kernel' or 'filter'; keep: offspring's share of its parent's synapses;
    balance: how much the big layers carry the pressure (0 = equal rates, 1 = equal counts);
    truncation: ⌊w⌋ threshold as a fraction of the layer's largest |w|."""

    cluster: str = "kernel"
    keep: float = 0.8
    balance: float = 0.5
    truncation: float = 0.1


def sample_masks(
    parent: Genome, config: SynthesisConfig, generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """One stochastic draw of the offspring's synapse masks (dead units already removed). The
    output layer's neurons are the classes: they are not clusters that can be dropped, and a
    class whose every synapse was drawn away keeps its most probable one."""
    layers = parent.layers
    alive = [int(parent.masks[layer.name].sum()) for layer in layers]
    floors = [layer.out_units for layer in layers]
    targets = layer_targets(alive, floors, config.keep, config.balance)
    masks = {}
    for index, (layer, target) in enumerate(zip(layers, targets, strict=False)):
        mask = cluster_view(parent.masks[layer.name], layer, config.cluster)
        weights = cluster_view(parent.state[f"{layer.name}.weight"], layer, config.cluster)
        p_cluster, p_synapse = encode_clusters(weights, mask, config.truncation)
        if index + 1 == len(layers):
            p_cluster = mask.any(dim=1).float()
        factor = layer_factor(p_cluster, p_synapse, target)
        if math.isinf(factor):
            masks[layer.name] = parent.masks[layer.name].clone()
            continue
        root = math.sqrt(factor)
        keep_cluster = torch.rand(p_cluster.shape, generator=generator) < root * p_cluster
        keep_synapse = torch.rand(p_synapse.shape, generator=generator) < root * p_synapse
        child = mask & keep_cluster[:, None] & keep_synapse
        if index + 1 == len(layers) and index > 0:
            previous = layers[index - 1]
            fed = synapse_grid(masks[previous.name], previous).flatten(1).any(dim=1)
            reachable = p_synapse * fed.repeat_interleave(layer.kernel)
            lost = mask.any(dim=1) & ~child.any(dim=1)
            strongest = reachable.argmax(dim=1)
            child[lost, strongest[lost]] = True
        masks[layer.name] = child.reshape(parent.masks[layer.name].shape)
    return propagate_dead(masks, layers)


def _viable(parent: Genome, masks: dict[str, torch.Tensor]) -> bool:
    """Every layer keeps a synapse and every class the parent could predict keeps one."""
    last = parent.layers[-1].name
    rows = parent.layers[-1].out_units
    classes_kept = torch.equal(
        masks[last].reshape(rows, -1).any(dim=1), parent.masks[last].reshape(rows, -1).any(dim=1)
    )
    return classes_kept and all(bool(masks[layer.name].any()) for layer in parent.layers)


def synthesize(
    parent: Genome, config: SynthesisConfig, generator: torch.Generator, lineage: Lineage
) -> Genome:
    """An offspring inheriting the parent's surviving weights. A draw that kills a whole layer
    or a class is drawn again; masks only ever lose synapses."""
    for _ in range(MAX_DRAWS):
        masks = sample_masks(parent, config, generator)
        if _viable(parent, masks):
            return parent.with_masks(masks, lineage)
    raise JetsynthError(
        f"every draw of offspring {lineage.id} lost a whole layer; the parent is too sparse "
        "for more pressure: raise --keep or evolve fewer generations"
    )
