"""R2R growth of a genome: a new individual whose architecture is its parent's plus transforms
(see `growth`), traced like any other so it evolves, compacts and exports the same way.

Existing weights, masks and gene tags carry over unchanged (a layer wrapped by its first
transform is renamed `LAYER.base`, nothing else); the new layers get all-live masks and fresh
gene tags: transform u's layers are numbered from u·2³² (`TAG_BLOCK`), so a block has the same
tags in every network that carries it, and similarity, mating and compaction never confuse a new
cluster with an ancestor's (whose tags stay far below 2³²).
"""

from __future__ import annotations

import re
from dataclasses import replace

import torch

from jetsynth.core.genome import Genome, Lineage, topology_for
from jetsynth.nn.growth import Transform, apply_transform, canonical_layer, join_arch, split_arch

TAG_BLOCK = 2**32


def transform_of(name: str) -> int:
    """The id of the innermost transform a new layer belongs to (`0.wide3.expand` → 3)."""
    for part in reversed(name.split(".")):
        match = re.fullmatch(r"(?:wide|deep)(\d+)", part)
        if match:
            return int(match.group(1))
    raise ValueError(f"'{name}' is no layer of an R2R block")


def _by_canonical(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {canonical_layer(k): v for k, v in tensors.items()}


def grow_genome(genome: Genome, transforms: list[Transform] | tuple[Transform, ...],
                lineage: Lineage | None = None, live: bool = True) -> Genome:
    """`genome` grown by `transforms` (applied in the order of their ids). The grown network
    computes what the parent computes (R2R blocks output zero) in train and eval mode. With
    `live` False the new blocks are there with all-zero masks: clusters this genome lacks
    (see `harmonize`)."""
    parent_factory = genome.topology.factory
    base, existing = split_arch(genome.arch)
    transforms = sorted(transforms, key=lambda t: t.uid)

    def factory(input_shape, num_classes):
        model = parent_factory(input_shape, num_classes)
        for transform in transforms:
            apply_transform(model, transform)
        return model

    arch = join_arch(base, [*existing, *transforms])
    topology = topology_for(arch, genome.input_shape, genome.num_classes, factory)
    fresh = topology.build().state_dict()
    old_state = _by_canonical(genome.state)
    old_masks = _by_canonical(genome.masks)
    old_tags = _by_canonical(genome.tags)
    state = {k: old_state.get(canonical_layer(k), v).detach().clone() for k, v in fresh.items()}
    offsets: dict[int, int] = {}
    masks, tags = {}, {}
    for layer in topology.layers:
        key = canonical_layer(layer.name)
        if key in old_masks:
            masks[layer.name] = old_masks[key].clone()
            tags[layer.name] = old_tags[key].clone()
            continue
        masks[layer.name] = torch.full_like(state[f"{layer.name}.weight"], live, dtype=torch.bool)
        if not live:
            state[f"{layer.name}.weight"].zero_()
        uid = transform_of(layer.name)
        start = offsets.get(uid, uid * TAG_BLOCK)
        count = layer.out_units * layer.in_units
        tags[layer.name] = torch.arange(start, start + count).reshape(layer.out_units, layer.in_units)
        offsets[uid] = start + count
    return replace(genome, topology=topology, state=state, masks=masks, tags=tags,
                   lineage=lineage or genome.lineage)


def harmonize(genomes: list[Genome]) -> list[Genome]:
    """Genomes grown from one base by different transforms, each grown by the transforms it
    lacks (their masks all zero), so all share one architecture and mate cluster by cluster:
    a block's tags are the same in every genome, and a genome that lacks a block carries none
    of its clusters. Genomes of one architecture come back unchanged."""
    if len({g.arch for g in genomes}) == 1:
        return list(genomes)
    bases = {split_arch(g.arch)[0] for g in genomes}
    if len(bases) != 1:
        raise ValueError(f"genomes of different base architectures cannot mate: {sorted(bases)}")
    union = {t for g in genomes for t in split_arch(g.arch)[1]}
    out = []
    for genome in genomes:
        missing = union - set(split_arch(genome.arch)[1])
        out.append(grow_genome(genome, sorted(missing, key=lambda t: t.uid), live=False)
                   if missing else genome)
    return out
