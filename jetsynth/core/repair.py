"""Growth as repair (`evolve --grow-on-drop D`): an offspring whose validation accuracy fell more
than D below its best parent's is widened by R2WiderR in the layer it lost the largest share of
its parent's synapses in (a 3×3 block for a conv, 1×1 for a linear layer, `PAIRS` filter pairs),
retrained as long as any offspring, and kept in place of the unrepaired one when it recovers
(validation accuracy above the unrepaired offspring's). The growth is function-preserving, so
the repair starts from the offspring it repairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from jetsynth.core.genome import Genome
from jetsynth.core.grow_genome import grow_genome
from jetsynth.nn.growth import Transform, canonical_layer, growable_layers, next_uid

PAIRS = 4


@dataclass(frozen=True)
class Repair:
    """What a repair did: the drop that triggered it, the layer and its lost share, the
    transform, and the validation accuracy before and after (`kept`: it recovered)."""

    drop: float
    layer: str
    lost_share: float
    transform: str
    val_before: float
    val_after: float
    kept: bool


def most_lost_layer(child: Genome, parent: Genome) -> tuple[str, float]:
    """The growable layer (transform path) with the largest share of its parent's live synapses
    gone in `child`, and that share."""
    parent_masks = {canonical_layer(k): v for k, v in parent.masks.items()}
    model = child.build()
    allowed = set(growable_layers(model, child.topology.output.name))
    best, share = None, -1.0
    for layer in child.topology.layers:
        name = canonical_layer(layer.name)
        if name not in allowed or name not in parent_masks:
            continue
        before = int(parent_masks[name].sum())
        lost = 1.0 - int(child.masks[layer.name].sum()) / before if before else 0.0
        if lost > share:
            best, share = name, lost
    return best, share


def repair_uid(generation: int, member: int) -> int:
    """A transform id no other member of the run uses, and above every id the member's
    ancestors carry (ids grow with the generation)."""
    return (generation * 10_000 + member) * 10 + 1


def widen_where_lost(child: Genome, parent: Genome) -> tuple[Genome, Transform, float]:
    """`child` grown by R2WiderR in the layer it lost most in."""
    layer, share = most_lost_layer(child, parent)
    conv = child.topology.layer(_layer_name(child, layer)).kind == "conv"
    uid = max(next_uid(child.arch), repair_uid(child.lineage.generation, child.lineage.member))
    transform = Transform("wide", layer, 3 if conv else 1, PAIRS, uid)
    return grow_genome(child, [transform]), transform, share


def _layer_name(genome: Genome, path: str) -> str:
    names = {canonical_layer(layer.name): layer.name for layer in genome.topology.layers}
    return names[path]


def repair_offspring(trained, parent: Genome, reference: float, drop_limit: float, retrain) -> tuple:
    """(TrainResult, Repair | None): `trained` (a TrainResult) unchanged when its validation
    accuracy is within `drop_limit` of `reference`; else repaired by `retrain(genome)` →
    TrainResult, kept when it recovers."""
    before = trained.metrics.get("val_accuracy")
    if before is None or reference - before <= drop_limit:
        return trained, None
    with torch.no_grad():
        grown, transform, share = widen_where_lost(trained.genome, parent)
    repaired = retrain(grown)
    after = repaired.metrics["val_accuracy"]
    kept = after > before
    info = Repair(round(reference - before, 6), transform.layer, round(share, 4), str(transform),
                  before, after, kept)
    return (repaired if kept else trained), info
