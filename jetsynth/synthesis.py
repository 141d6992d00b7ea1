"""Offspring synthesis (seed 001 eq. 3; seed 000 eq. 3 for m parents): sample which clusters and
synapses live on under the environmental factors, then drop the units that died with them.

With one parent the probabilities come from its weights; with m parents from the mated strengths
of the aligned parents (see `mating`), within the intersection (or tagged union) of their
structures, and the offspring inherits the α-weighted mean of the weights of the parents that
carry each synapse.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .compact import propagate_dead
from .encoding import encode_clusters
from .environment import layer_factors, layer_targets
from .errors import JetsynthError
from .genome import Genome, Lineage
from .mating import align, equal_alphas, mate, rate_for_factor, structure
from .network import Layer, cluster_view, synapse_grid

MAX_DRAWS = 20
MAX_CORRECTIONS = 3
BUDGET_TOLERANCE = 0.97


@dataclass(frozen=True)
class SynthesisConfig:
    """cluster: 'kernel' or 'filter'; keep: seed 000's environmental factor R, the share of
    synapses a generation keeps (see `share`);
    balance: how much the big layers carry the pressure (0 = equal rates, 1 = equal counts);
    truncation: ⌊w⌋ threshold as a fraction of the layer's largest |w|; cluster_pressure: the
    share of the pressure that removes whole clusters rather than thinning them; mating: 'sum' (seed 000)
    or 'product' (seed 002); structure: 'intersection' or 'union' of the parents' clusters;
    alignment: match clusters by 'tag' or by compacted 'position'; alphas: mating weights
    (None: equal); mates: the run's m, how many siblings a later offspring intersects."""

    cluster: str = "kernel"
    keep: float = 0.8
    balance: float = 0.5
    truncation: float = 0.1
    cluster_pressure: float = 0.5
    mating: str = "sum"
    structure: str = "intersection"
    alignment: str = "tag"
    alphas: tuple[float, ...] | None = None
    mates: int = 1

    @property
    def share(self) -> float:
        """1 − r of seed 000 eq. 6: the share of its parents' common structure one offspring
        keeps, keep^(1/m). Siblings draw independently, so the m of them a later offspring
        intersects keep about (1 − r)^m = R = keep between them: the pressure per generation is
        alike for every m, and the intersection keeps the clusters all m parents agree on."""
        return 1.0 - rate_for_factor(self.keep, self.mates)


def sample_masks(
    layers: list[Layer],
    strengths: dict[str, torch.Tensor],
    allowed: dict[str, torch.Tensor],
    base: float,
    config: SynthesisConfig,
    generator: torch.Generator,
    scale: float = 1.0,
) -> dict[str, torch.Tensor]:
    """One stochastic draw of the offspring's synapse masks (dead units already removed).
    `strengths` are the (mated) synaptic strengths, `allowed` where synapses may exist,
    `base` the synapse count the `share` applies to, `scale` a correction of that share.
    The output layer's neurons are the classes: they are not clusters that can be dropped, and a
    class whose every synapse was drawn away keeps its most probable one."""
    alive = [int(allowed[layer.name].sum()) for layer in layers]
    floors = [layer.out_units for layer in layers]
    targets = layer_targets(alive, floors, min(1.0, config.share * scale), config.balance, base)
    masks = {}
    for index, (layer, target) in enumerate(zip(layers, targets, strict=True)):
        mask = cluster_view(allowed[layer.name], layer, config.cluster)
        weights = cluster_view(strengths[layer.name], layer, config.cluster)
        p_cluster, p_synapse = encode_clusters(weights, mask, config.truncation)
        if index + 1 == len(layers):
            p_cluster = mask.any(dim=1).float()
        f_cluster, f_synapse = layer_factors(p_cluster, p_synapse, target, config.cluster_pressure)
        if math.isinf(f_cluster) and math.isinf(f_synapse):
            masks[layer.name] = allowed[layer.name].clone()
            continue
        keep_cluster = torch.rand(p_cluster.shape, generator=generator) < f_cluster * p_cluster
        keep_synapse = torch.rand(p_synapse.shape, generator=generator) < f_synapse * p_synapse
        child = mask & keep_cluster[:, None] & keep_synapse
        if index + 1 == len(layers) and index > 0:
            live = _live_units(masks, layers[:index]).repeat_interleave(layer.kernel)
            reachable = p_synapse * live
            lost = mask.any(dim=1) & ~(child & live).any(dim=1)
            strongest = reachable.argmax(dim=1)
            child[lost, strongest[lost]] = True
        masks[layer.name] = child.reshape(allowed[layer.name].shape)
    return propagate_dead(masks, layers)


def _live_units(masks: dict[str, torch.Tensor], layers: list[Layer]) -> torch.Tensor:
    """Which output units of the last of `layers` stay alive once the units that lost all their
    inputs have died: a class rescued onto a unit that dies with its inputs is lost after all."""
    settled = propagate_dead(masks, layers)
    return synapse_grid(settled[layers[-1].name], layers[-1]).flatten(1).any(dim=1)


def _viable(layers: list[Layer], allowed: dict, masks: dict) -> bool:
    """Every layer keeps a synapse and every class the parents could predict keeps one."""
    last = layers[-1]
    rows = last.out_units
    classes_kept = torch.equal(
        masks[last.name].reshape(rows, -1).any(dim=1), allowed[last.name].reshape(rows, -1).any(dim=1)
    )
    return classes_kept and all(bool(masks[layer.name].any()) for layer in layers)


def _keep_classes(present: torch.Tensor, allowed: torch.Tensor, layer: Layer) -> torch.Tensor:
    """The output layer's allowed synapses, with the union of the parents' for any class the
    intersection left without one: parents that each read a class through different synapses
    must not breed an offspring that cannot predict it."""
    rows = layer.out_units
    orphaned = ~allowed.reshape(rows, -1).any(dim=1)
    if not orphaned.any():
        return allowed
    union = present.any(dim=0).reshape(rows, -1)
    widened = allowed.reshape(rows, -1).clone()
    widened[orphaned] = union[orphaned]
    return widened.reshape(allowed.shape)


def _inherited_state(parents: list[Genome], weights: dict, present: dict, alphas: torch.Tensor,
                     alignment: str) -> dict[str, torch.Tensor]:
    """The offspring's starting weights: per synapse the α-weighted mean over the parents that
    carry it; biases likewise over the parents whose unit is alive (tag alignment), else the
    first parent's. Other state (batch-norm statistics) comes from the first parent."""
    state = {k: v.clone() for k, v in parents[0].state.items()}
    for layer in parents[0].layers:
        carried = present[layer.name].float()
        share = alphas.reshape(-1, *([1] * (carried.dim() - 1))) * carried
        total = share.sum(dim=0)
        mean = (share * weights[layer.name]).sum(dim=0) / total.clamp_min(1e-12)
        state[f"{layer.name}.weight"] = mean
        bias_key = f"{layer.name}.bias"
        if bias_key in state and alignment == "tag" and len(parents) > 1:
            biases = torch.stack([p.state[bias_key] for p in parents])
            unit_alive = torch.stack(
                [p.masks[layer.name].reshape(layer.out_units, -1).any(dim=1) for p in parents]
            ).float() * alphas[:, None]
            state[bias_key] = (unit_alive * biases).sum(dim=0) / unit_alive.sum(dim=0).clamp_min(1e-12)
    return state


def synthesize(
    parents: Genome | list[Genome],
    config: SynthesisConfig,
    generator: torch.Generator,
    lineage: Lineage,
) -> Genome:
    """An offspring of one or m parents. A draw that kills a whole layer or a class is drawn
    again; the offspring's synapses always lie within its parents' structure. Units that die
    with their inputs or readers take synapses beyond the budget with them, so a draw that ends
    more than 3 % under `share` × the parents' common structure (their intersection; with a
    union, their mean size) is drawn again with the share raised by the shortfall (at most 3
    times), and the draw closest to the budget is kept. The raised share never exceeds
    √share: with few large clusters (filters) one draw's shortfall is mostly chance
    and coupling between layers, and correcting it fully would let an offspring keep
    everything."""
    parents = [parents] if isinstance(parents, Genome) else list(parents)
    m = len(parents)
    alphas = torch.tensor(config.alphas, dtype=torch.float32) if config.alphas else equal_alphas(m)
    if len(alphas) != m:
        raise JetsynthError(f"{len(alphas)} mating weights (--alpha) for {m} parents")
    layers = parents[0].layers
    weights, present = align(parents, config.alignment)
    strengths = {k: mate(w.abs(), present[k], alphas, config.mating) for k, w in weights.items()}
    allowed = {k: structure(p, config.structure) for k, p in present.items()}
    allowed[layers[-1].name] = _keep_classes(present[layers[-1].name], allowed[layers[-1].name],
                                             layers[-1])
    mean_size = sum(float(p.masks[layer.name].sum()) for p in parents for layer in layers) / m
    base = min(mean_size, sum(float(a.sum()) for a in allowed.values()))
    wanted = config.share * base
    ceiling = 1.0 / math.sqrt(config.share)
    scale, corrections, chosen, miss = 1.0, 0, None, math.inf
    for _ in range(MAX_DRAWS):
        masks = sample_masks(layers, strengths, allowed, base, config, generator, scale)
        if not _viable(layers, allowed, masks):
            continue
        realized = sum(float(mask.sum()) for mask in masks.values())
        distance = abs(math.log(max(realized, 1.0) / max(wanted, 1.0)))
        if distance < miss:
            chosen, miss = masks, distance
        if realized >= BUDGET_TOLERANCE * wanted or corrections == MAX_CORRECTIONS:
            break
        scale = min(ceiling, scale * wanted / max(realized, 1.0))
        corrections += 1
    if chosen is not None:
        state = _inherited_state(parents, weights, present, alphas, config.alignment)
        return parents[0].with_state(state).with_masks(chosen, lineage)
    raise JetsynthError(
        f"every draw of offspring {lineage.id} lost a whole layer; the parents are too sparse "
        "(or too different) for more pressure: raise --keep or evolve fewer generations"
    )
