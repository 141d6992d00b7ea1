"""Growth as repair (`evolve --grow-on-drop D`): an offspring whose validation accuracy fell more
than D below its best parent's is widened by R2WiderR in the layer it lost the largest share of
its parent's synapses in (a 3×3 block for a conv, 1×1 for a linear layer, `PAIRS` filter pairs),
retrained as long as any offspring, and kept in place of the unrepaired one when it recovers
(validation accuracy above the unrepaired offspring's). When the layer cannot be widened (no
block aligns with its kernel) or the widened offspring does not recover, the unrepaired offspring
is deepened instead: R2DeeperR, a residual layer of the same width right after that layer (same
kernels and pairs), retrained and kept on the same rule. The growth is function-preserving, so
every try starts from the offspring it repairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from jetsynth.core.genome import Genome
from jetsynth.core.grow_genome import grow_genome
from jetsynth.errors import JetsynthError
from jetsynth.nn.growth import Transform, canonical_layer, growable_layers, next_uid

PAIRS = 4
KINDS = ("wide", "deep")


@dataclass(frozen=True)
class RepairTry:
    """One growth tried: the transform (or, when it could not be made, `kind(layer)`), the
    validation accuracy after retraining (None when not made) and why it was not made."""

    transform: str
    val_after: float | None
    refused: str = ""


@dataclass(frozen=True)
class Repair:
    """What a repair did: the drop that triggered it, the layer and its lost share, the
    transform (the kept one, else the last tried), and the validation accuracy before and after
    it (`kept`: it recovered); `tries` lists every growth tried, in order."""

    drop: float
    layer: str
    lost_share: float
    transform: str
    val_before: float
    val_after: float
    kept: bool
    tries: tuple[RepairTry, ...] = ()


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


def grow_where_lost(child: Genome, parent: Genome, kind: str = "wide") -> tuple[Genome, Transform, float]:
    """`child` grown by R2WiderR (`kind` 'wide') or R2DeeperR ('deep', same width) in the layer
    it lost most in. Raises JetsynthError when that layer cannot grow that way."""
    layer, share = most_lost_layer(child, parent)
    conv = child.topology.layer(_layer_name(child, layer)).kind == "conv"
    uid = max(next_uid(child.arch), repair_uid(child.lineage.generation, child.lineage.member))
    transform = Transform(kind, layer, 3 if conv else 1, PAIRS, uid + KINDS.index(kind))
    return grow_genome(child, [transform]), transform, share


def widen_where_lost(child: Genome, parent: Genome) -> tuple[Genome, Transform, float]:
    """`child` grown by R2WiderR in the layer it lost most in."""
    return grow_where_lost(child, parent, "wide")


def _layer_name(genome: Genome, path: str) -> str:
    names = {canonical_layer(layer.name): layer.name for layer in genome.topology.layers}
    return names[path]


def repair_offspring(trained, parent: Genome, reference: float, drop_limit: float, retrain) -> tuple:
    """(TrainResult, Repair | None): `trained` (a TrainResult) unchanged when its validation
    accuracy is within `drop_limit` of `reference`; else widened, retrained by
    `retrain(genome)` → TrainResult and kept when it recovers; when it cannot be widened or does
    not recover, deepened, retrained and kept on the same rule."""
    before = trained.metrics.get("val_accuracy")
    if before is None or reference - before <= drop_limit:
        return trained, None
    layer, share = most_lost_layer(trained.genome, parent)
    tries: list[RepairTry] = []
    last = None
    for kind in KINDS:
        try:
            with torch.no_grad():
                grown, transform, share = grow_where_lost(trained.genome, parent, kind)
        except JetsynthError as error:
            tries.append(RepairTry(f"{kind}({layer})", None, str(error)))
            continue
        repaired = retrain(grown)
        after = repaired.metrics["val_accuracy"]
        tries.append(RepairTry(str(transform), after))
        last = (repaired, transform, after)
        if after > before:
            break
    if last is None:
        info = Repair(round(reference - before, 6), layer, round(share, 4), tries[-1].transform,
                      before, before, False, tuple(tries))
        return trained, info
    repaired, transform, after = last
    kept = after > before
    info = Repair(round(reference - before, 6), transform.layer, round(share, 4), str(transform),
                  before, after, kept, tuple(tries))
    return (repaired if kept else trained), info
