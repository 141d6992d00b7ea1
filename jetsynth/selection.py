"""Who mates with whom: parent-selection policies over the previous generation.

- `random` (seeds 000/002): m parents drawn uniformly without replacement;
- `fitness`: each parent won by a tournament of `tournament` candidates on fitness =
  accuracy + weight · log2(synaptic efficiency) (so, by default, halving the synapses is worth
  one point of accuracy);
- `similarity`: the first parent by tournament, the mates among those whose cluster overlap with
  it lies in [low, high] (closest to the band when too few do), which keeps mates compatible
  without making them clones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

POLICIES = ("random", "fitness", "similarity")


@dataclass(frozen=True)
class SelectionConfig:
    policy: str = "random"
    tournament: int = 3
    efficiency_weight: float = 0.01
    band: tuple[float, float] = (0.5, 0.9)


def fitness(record: dict, efficiency_weight: float) -> float:
    return record["accuracy"] + efficiency_weight * math.log2(max(record["synaptic_efficiency"], 1e-12))


def _pick(count: int, pool: list[int], generator: torch.Generator) -> list[int]:
    order = torch.randperm(len(pool), generator=generator)[:count]
    return [pool[int(i)] for i in order]


def _tournament(pool: list[int], scores: list[float], size: int, generator: torch.Generator) -> int:
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
    scores = [fitness(r, config.efficiency_weight) for r in records]
    first = _tournament(pool, scores, config.tournament, generator)
    chosen = [first]
    pool.remove(first)
    if config.policy == "fitness":
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
