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

from jetsynth.core.channel_groups import channel_strengths, grouped
from jetsynth.core.encoding import encode_clusters
from jetsynth.core.environment import cost_targets, layer_factors, layer_targets
from jetsynth.core.genome import Genome, Lineage
from jetsynth.core.mating import align, equal_alphas, mate, rate_for_factor, structure
from jetsynth.core.pressure_costs import mac_costs
from jetsynth.errors import JetsynthError
from jetsynth.nn.structure import Topology, cluster_view, delivered_inputs, settle

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
    (None: equal); mates: the run's m, how many siblings a later offspring intersects;
    pressure_on: what the budget counts, 'synapses' (seed 001), 'macs' (each synapse weighs
    the multiply-accumulates it does per image, see `environment.cost_targets`) or 'latency';
    layer_costs: (layer, cost of one synapse) pairs for 'latency' (`pressure_costs`);
    channel_multiple: every channel space keeps a multiple of this many live channels, filled
    by reviving its strongest dead channels or trimmed by removing its weakest
    (`channel_rounding` 'fill' or 'trim'; see `channel_groups`)."""

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
    pressure_on: str = "synapses"
    layer_costs: tuple[tuple[str, float], ...] | None = None
    channel_multiple: int = 1
    channel_rounding: str = "fill"

    @property
    def share(self) -> float:
        """1 − r of seed 000 eq. 6: the share of its parents' common structure one offspring
        keeps, keep^(1/m). Siblings draw independently, so the m of them a later offspring
        intersects keep about (1 − r)^m = R = keep between them: the pressure per generation is
        alike for every m, and the intersection keeps the clusters all m parents agree on."""
        return 1.0 - rate_for_factor(self.keep, self.mates)


@dataclass(frozen=True)
class Pool:
    """The clusters one environmental target governs: one layer's own (conv kernels, linear
    neurons, the output layer's classes) or, with filter clusters, one channel space's, where a
    cluster is a channel across every layer that writes it (the producers of a residual stream,
    a conv and the depthwise conv after it), its strength summed over all of them. A residual
    channel therefore lives or dies as one."""

    layers: tuple[str, ...]
    space: int | None = None
    floor: int = 1


def pools(topology: Topology, mode: str) -> list[Pool]:
    """The pools in the order the network runs them, the output layer last."""
    order = {layer.name: i for i, layer in enumerate(topology.layers)}
    output = topology.output
    found = [Pool((output.name,), None, output.out_units)]
    if mode == "filter":
        found += [Pool(space.producers, space.index, space.size) for space in topology.spaces]
    else:
        found += [Pool((layer.name,), None, layer.out_units)
                  for layer in topology.layers if layer is not output]
    return sorted(found, key=lambda pool: (pool.layers == (output.name,),
                                           min(order[name] for name in pool.layers)))


def pool_view(tensors: dict[str, torch.Tensor], topology: Topology, pool: Pool,
              mode: str) -> torch.Tensor:
    """The pool's weight-shaped tensors as (clusters, synapses per cluster); a space's rows are
    its channels, each producer's filter laid at the channel it writes."""
    if pool.space is None:
        layer = topology.layer(pool.layers[0])
        view_mode = "filter" if layer is topology.output else mode
        return cluster_view(tensors[layer.name], layer, view_mode)
    size = topology.spaces[pool.space].size
    parts = []
    for name in pool.layers:
        layer = topology.layer(name)
        rows = cluster_view(tensors[name], layer, "filter")
        placed = torch.zeros(size, rows.shape[1], dtype=rows.dtype)
        placed[layer.out_channel_tensor] = rows
        parts.append(placed)
    return torch.cat(parts, dim=1)


def pool_split(view: torch.Tensor, topology: Topology, pool: Pool,
               like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse of `pool_view`: each layer's weight-shaped part."""
    if pool.space is None:
        name = pool.layers[0]
        return {name: view.reshape(like[name].shape)}
    out, start = {}, 0
    for name in pool.layers:
        layer = topology.layer(name)
        width = layer.in_units * layer.kernel
        out[name] = view[layer.out_channel_tensor, start:start + width].reshape(like[name].shape)
        start += width
    return out


def synapse_costs(topology: Topology, config: SynthesisConfig) -> dict[str, float] | None:
    """What one synapse of each layer costs under `config.pressure_on`; None for synapses
    (every synapse costs 1: seed 001's budget, computed exactly as before)."""
    if config.pressure_on == "synapses":
        return None
    if config.pressure_on == "macs":
        return mac_costs(topology)
    if config.layer_costs is None:
        raise JetsynthError("`pressure_on` latency needs the latency model's per-layer costs",
                            setting="pressure_on")
    return dict(config.layer_costs)


def pool_cost(pool: Pool, allowed: dict[str, torch.Tensor], costs: dict[str, float]) -> float:
    """The mean cost per allowed synapse of a pool (its layers' costs weighted by their synapses)."""
    counts = [float(allowed[name].sum()) for name in pool.layers]
    total = sum(counts)
    if total == 0:
        return costs[pool.layers[0]]
    return sum(n * costs[name] for n, name in zip(counts, pool.layers, strict=True)) / total


def masks_cost(masks: dict[str, torch.Tensor], costs: dict[str, float] | None) -> float:
    """The cost of a set of masks: live synapses, or their summed costs."""
    if costs is None:
        return sum(float(mask.sum()) for mask in masks.values())
    return sum(float(mask.sum()) * costs[name] for name, mask in masks.items())


@dataclass(frozen=True)
class PoolEncoding:
    """One pool as a draw needs it: its allowed synapses and seed 001's probabilities (eqs. 4–5)
    as (clusters, synapses per cluster), how many synapses are alive in it, its floor and the
    mean cost of one of its synapses (None under the synapse budget)."""

    pool: Pool
    mask: torch.Tensor
    p_cluster: torch.Tensor
    p_synapse: torch.Tensor
    alive: int
    floor: int
    cost: float | None


def encode_pools(topology: Topology, strengths: dict[str, torch.Tensor],
                 allowed: dict[str, torch.Tensor], config: SynthesisConfig) -> list[PoolEncoding]:
    """Every pool's encoding for `sample_masks`; it depends on the parents and `config`, not on a
    draw, so the draws of one offspring share it. The output layer's neurons are the classes:
    not clusters that can be dropped (P_c = 1 wherever a synapse is allowed)."""
    costs = synapse_costs(topology, config)
    output = topology.output
    encoded = []
    for pool in pools(topology, config.cluster):
        mask = pool_view(allowed, topology, pool, config.cluster)
        weights = pool_view(strengths, topology, pool, config.cluster)
        p_cluster, p_synapse = encode_clusters(weights, mask, config.truncation)
        if pool.layers == (output.name,):
            p_cluster = mask.any(dim=1).float()
        encoded.append(PoolEncoding(pool, mask, p_cluster, p_synapse, int(mask.sum()), pool.floor,
                                    None if costs is None else pool_cost(pool, allowed, costs)))
    return encoded


def sample_masks(
    topology: Topology,
    encoded: list[PoolEncoding],
    allowed: dict[str, torch.Tensor],
    base: float,
    config: SynthesisConfig,
    generator: torch.Generator,
    scale: float = 1.0,
    channels: list[torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """One stochastic draw of the offspring's synapse masks (dead units already removed).
    `encoded` are the pools' probabilities (`encode_pools`), `allowed` where synapses may exist,
    `base` the synapse count the `share` applies to, `scale` a correction of that share.
    A class whose every synapse was drawn away keeps its most probable one that reads a live
    unit. With `config.channel_multiple` > 1 the draw's channel spaces are then rounded to whole
    groups (`channel_groups.grouped`), by `channels`: the parents' channel strengths."""
    share = min(1.0, config.share * scale)
    alive = [pool.alive for pool in encoded]
    floors = [pool.floor for pool in encoded]
    if encoded and encoded[0].cost is None:
        targets = layer_targets(alive, floors, share, config.balance, base)
    else:
        targets = cost_targets(alive, floors, [pool.cost for pool in encoded], share, config.balance,
                               base)
    output = topology.output
    masks: dict[str, torch.Tensor] = {}
    for encoding, target in zip(encoded, targets, strict=True):
        pool, mask = encoding.pool, encoding.mask
        p_cluster, p_synapse = encoding.p_cluster, encoding.p_synapse
        f_cluster, f_synapse = layer_factors(p_cluster, p_synapse, target, config.cluster_pressure)
        if math.isinf(f_cluster) and math.isinf(f_synapse):
            masks.update(pool_split(mask.clone(), topology, pool, allowed))
            continue
        keep_cluster = torch.rand(p_cluster.shape, generator=generator) < f_cluster * p_cluster
        keep_synapse = torch.rand(p_synapse.shape, generator=generator) < f_synapse * p_synapse
        child = mask & keep_cluster[:, None] & keep_synapse
        if pool.layers == (output.name,) and len(encoded) > 1:
            live = _delivered_to_output(topology, masks, allowed)
            reachable = p_synapse * live
            lost = mask.any(dim=1) & ~(child & live).any(dim=1)
            strongest = reachable.argmax(dim=1)
            child[lost, strongest[lost]] = True
        masks.update(pool_split(child, topology, pool, allowed))
    if config.channel_multiple > 1 and channels is not None:
        return grouped(topology, masks, allowed, channels, config.channel_multiple,
                       config.channel_rounding)
    return settle(topology, masks)


def _delivered_to_output(topology: Topology, masks: dict[str, torch.Tensor],
                         allowed: dict[str, torch.Tensor]) -> torch.Tensor:
    """Which synapse columns of the output layer read a unit that stays alive once the units
    that lost all their inputs have died: a class rescued onto a dead unit is lost after all."""
    output = topology.output
    delivered = delivered_inputs(topology, {**masks, output.name: allowed[output.name]})
    return delivered[output.name].repeat_interleave(output.kernel)


def _viable(topology: Topology, allowed: dict, masks: dict) -> bool:
    """Every class the parents could predict keeps a synapse reading a live unit (in a chain,
    a layer that lost every synapse takes every class with it; in a residual network a block
    may die while the stream carries on)."""
    last = topology.output
    rows = last.out_units
    predictable = allowed[last.name].reshape(rows, -1).any(dim=1)
    return bool(predictable.any()) and torch.equal(masks[last.name].reshape(rows, -1).any(dim=1),
                                                   predictable)


def _keep_classes(present: torch.Tensor, allowed: torch.Tensor, rows: int) -> torch.Tensor:
    """The output layer's allowed synapses, with the union of the parents' for any class the
    intersection left without one: parents that each read a class through different synapses
    must not breed an offspring that cannot predict it."""
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


@dataclass(frozen=True)
class Breeding:
    """What a synthesis computes from its parents before it draws (alignment, mating, the
    budget, the pools' probabilities, the inherited weights): the same for every draw from the
    same parents under the same config, so --screen computes it once per member."""

    parents: tuple[Genome, ...]
    allowed: dict[str, torch.Tensor]
    encoded: list[PoolEncoding]
    base: float
    wanted: float
    costs: dict[str, float] | None
    state: dict[str, torch.Tensor]
    channels: list[torch.Tensor] | None = None


def prepare(parents: Genome | list[Genome], config: SynthesisConfig) -> Breeding:
    """The draw-independent part of `synthesize` for these parents and `config`."""
    parents = [parents] if isinstance(parents, Genome) else list(parents)
    m = len(parents)
    alphas = torch.tensor(config.alphas, dtype=torch.float32) if config.alphas else equal_alphas(m)
    if len(alphas) != m:
        raise JetsynthError(f"{len(alphas)} mating weights (`alphas`) for {m} parents", setting="alphas")
    topology = parents[0].topology
    layers = topology.layers
    weights, present = align(parents, config.alignment)
    strengths = {k: mate(w.abs(), present[k], alphas, config.mating) for k, w in weights.items()}
    allowed = {k: structure(p, config.structure) for k, p in present.items()}
    output = topology.output
    allowed[output.name] = _keep_classes(present[output.name], allowed[output.name], output.out_units)
    mean_size = sum(float(p.masks[layer.name].sum()) for p in parents for layer in layers) / m
    base = min(mean_size, sum(float(a.sum()) for a in allowed.values()))
    wanted = config.share * base
    costs = synapse_costs(topology, config)
    if costs is not None:
        allowed_synapses = sum(float(a.sum()) for a in allowed.values())
        wanted *= masks_cost(allowed, costs) / max(allowed_synapses, 1.0)
    state = _inherited_state(parents, weights, present, alphas, config.alignment)
    channels = channel_strengths(topology, strengths) if config.channel_multiple > 1 else None
    return Breeding(tuple(parents), allowed, encode_pools(topology, strengths, allowed, config), base,
                    wanted, costs, state, channels)


def synthesize(
    parents: Genome | list[Genome],
    config: SynthesisConfig,
    generator: torch.Generator,
    lineage: Lineage,
    breeding: Breeding | None = None,
) -> Genome:
    """An offspring of one or m parents. A draw that kills a whole layer or a class is drawn
    again; the offspring's synapses always lie within its parents' structure. Units that die
    with their inputs or readers take synapses beyond the budget with them, so a draw that ends
    more than 3 % under `share` × the parents' common structure (their intersection; with a
    union, their mean size) is drawn again with the share raised by the shortfall (at most 3
    times), and the draw closest to the budget is kept. The raised share never exceeds
    √share: with few large clusters (filters) one draw's shortfall is mostly chance
    and coupling between layers, and correcting it fully would let an offspring keep
    everything. `breeding`: `prepare(parents, config)` when the caller already has it."""
    breeding = breeding if breeding is not None else prepare(parents, config)
    topology = breeding.parents[0].topology
    allowed, wanted, costs = breeding.allowed, breeding.wanted, breeding.costs
    ceiling = 1.0 / math.sqrt(config.share)
    scale, corrections, chosen, miss = 1.0, 0, None, math.inf
    for _ in range(MAX_DRAWS):
        masks = sample_masks(topology, breeding.encoded, allowed, breeding.base, config, generator,
                             scale, breeding.channels)
        if not _viable(topology, allowed, masks):
            continue
        realized = masks_cost(masks, costs)
        distance = abs(math.log(max(realized, 1.0) / max(wanted, 1.0)))
        if distance < miss:
            chosen, miss = masks, distance
        if realized >= BUDGET_TOLERANCE * wanted or corrections == MAX_CORRECTIONS:
            break
        scale = min(ceiling, scale * wanted / max(realized, 1.0))
        corrections += 1
    if chosen is not None:
        return breeding.parents[0].with_state(breeding.state).with_masks(chosen, lineage)
    raise JetsynthError(
        f"every draw of offspring {lineage.id} lost a whole layer or a class; the parents are too "
        "sparse (or too different) for more pressure: raise `keep` or evolve fewer generations",
        setting="keep",
    )
