"""Who mates with whom: parent-selection policies over the previous generation.

Every policy that compares accuracies compares `selection_accuracy`: validation accuracy, never
the test accuracy the run reports.

- `random` (seeds 000/002): m parents drawn uniformly without replacement;
- `fitness`: each parent won by a tournament of `tournament` candidates on fitness =
  accuracy + weight · log2(synaptic efficiency) (so, by default, halving the synapses is worth
  one point of accuracy);
- `fps` (the closed loop): tournaments on speed among members that keep the accuracy floor;
  a member below the floor loses to any member above it, and among themselves such members
  compete on accuracy (speed: measured FPS, else the latency model's prediction);
- `similarity`: the first parent by tournament, the mates among those whose cluster overlap with
  it lies in [low, high] (closest to the band when too few do), which keeps mates compatible
  without making them clones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .errors import JetsynthError

POLICIES = ("random", "fitness", "fps", "similarity")


@dataclass(frozen=True)
class SelectionConfig:
    policy: str = "random"
    tournament: int = 3
    efficiency_weight: float = 0.01
    band: tuple[float, float] = (0.5, 0.9)
    floor: float = 0.0


def selection_accuracy(record: dict) -> float:
    """The accuracy that chooses (parents, pressure, floors, the target, the best member):
    the validation accuracy. Records without one (written before the validation split existed,
    or by a run with --val-split 0) fall back to their test `accuracy`."""
    value = record.get("val_accuracy")
    return record["accuracy"] if value is None else value


def speed(record: dict) -> float | None:
    """A member's images per second: measured, else predicted, else None."""
    return record.get("fps") or record.get("fps_predicted")


def fps_score(record: dict, floor: float) -> tuple[int, float]:
    """(1, speed) for a member at or above the accuracy floor, (0, accuracy) below it (validation
    accuracy, see `selection_accuracy`): compared as tuples, any member that keeps the floor
    beats any that does not."""
    accuracy = selection_accuracy(record)
    if accuracy >= floor:
        return 1, float(speed(record) or 0.0)
    return 0, accuracy


def fitness(record: dict, efficiency_weight: float) -> float:
    efficiency = math.log2(max(record["synaptic_efficiency"], 1e-12))
    return selection_accuracy(record) + efficiency_weight * efficiency


def _pick(count: int, pool: list[int], generator: torch.Generator) -> list[int]:
    order = torch.randperm(len(pool), generator=generator)[:count]
    return [pool[int(i)] for i in order]


def _tournament(pool: list[int], scores: list, size: int, generator: torch.Generator) -> int:
    entrants = _pick(min(size, len(pool)), pool, generator)
    return max(entrants, key=lambda i: scores[i])


def select_parents(
    records: list[dict],
    m: int,
    config: SelectionConfig,
    generator: torch.Generator,
    overlaps: np.ndarray | None = None,
) -> list[int]:
    """Indices into `records` of min(m, len(records)) distinct parents; the first is the
    reference parent (whose coordinates position alignment uses)."""
    m = min(m, len(records))
    pool = list(range(len(records)))
    if config.policy == "random":
        return _pick(m, pool, generator)
    if config.policy == "fps":
        scores = [fps_score(r, config.floor) for r in records]
    else:
        scores = [fitness(r, config.efficiency_weight) for r in records]
    first = _tournament(pool, scores, config.tournament, generator)
    chosen = [first]
    pool.remove(first)
    if config.policy in ("fitness", "fps"):
        while len(chosen) < m:
            winner = _tournament(pool, scores, config.tournament, generator)
            chosen.append(winner)
            pool.remove(winner)
        return chosen
    low, high = config.band
    in_band = [i for i in pool if low <= overlaps[first, i] <= high]
    mates = _pick(min(m - 1, len(in_band)), in_band, generator)
    rest = sorted((i for i in pool if i not in mates),
                  key=lambda i: min(abs(overlaps[first, i] - low), abs(overlaps[first, i] - high)))
    return chosen + mates + rest[: m - 1 - len(mates)]


def pick_member(records: list[dict], generation: int | None = None, member: int | None = None,
                max_drop: float = 0.01, floor: float | None = None) -> dict:
    """One member's record: the given generation/member (the ancestor is generation 1, member 0),
    or by default the deployment pick: among members within `max_drop` (a fraction: 0.01 = one
    point) of the ancestor's validation accuracy (`selection_accuracy`), or at least `floor`
    where given, the fastest (highest measured fps where every candidate has one, else fewest
    multiply-accumulates, then fewest synapses, then the best on validation)."""
    if generation is not None or member is not None:
        generation = 1 if generation is None else generation
        member = 0 if member is None else member
        for record in records:
            if record["generation"] == generation and record["member"] == member:
                return record
        raise JetsynthError(
            f"no finished member {member} in generation {generation}; see `jetsynth report`"
        )
    floor = selection_accuracy(records[0]) - max_drop if floor is None else floor
    candidates = [r for r in records if selection_accuracy(r) >= floor] or records[:1]
    if all(r.get("fps") for r in candidates):
        return max(candidates, key=lambda r: (r["fps"], -r["generation"]))
    return min(candidates, key=lambda r: (r["macs"], r["synapses"], -selection_accuracy(r)))
