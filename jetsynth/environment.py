"""Environmental factors (seed 001, eq. 3): the pressure that makes each generation smaller.

The offspring of a parent with N live synapses is allowed `keep`·N of them in expectation.
That global budget is spread over layers as targets T_l = clip(F · n_l^(1−balance), floor_l, n_l)
with one F for the whole network: balance 0 gives every layer the same survival rate, balance 1
the same number of survivors, so large layers carry most of the pressure and small layers are
spared. Inside a layer the cluster and synapse factors are F_c = F_s = √f_l, with f_l chosen so
that Σ_c min(1, F_c·p_c) · Σ_{i∈c} min(1, F_s·p_i) = T_l.
"""

from __future__ import annotations

import math

import torch


def _bisect(func, target: float, low: float, high: float, steps: int = 100) -> float:
    """The x in [low, high] where the increasing `func` reaches `target`."""
    for _ in range(steps):
        mid = 0.5 * (low + high)
        if func(mid) < target:
            low = mid
        else:
            high = mid
    return high


def layer_targets(
    alive: list[int], floors: list[int], keep: float, balance: float, base: float | None = None
) -> list[float]:
    """Expected live synapses allowed to each layer of the offspring (see module docstring).
    `alive` caps each layer; the budget is `keep` × `base` (default: the sum of `alive`); with m
    parents `base` is their mean size, so the intersection of their structures does not by
    itself speed up sparsification."""
    budget = keep * (sum(alive) if base is None else base)
    lows = [min(n, f) for n, f in zip(alive, floors, strict=False)]

    def targets(scale: float) -> list[float]:
        return [
            min(float(n), max(float(lo), scale * n ** (1.0 - balance)))
            for n, lo in zip(alive, lows, strict=False)
        ]

    if sum(lows) >= budget:
        return [float(lo) for lo in lows]
    high = max((n ** balance for n in alive if n > 0), default=1.0)
    return targets(_bisect(lambda s: sum(targets(s)), budget, 0.0, high))


def expected_survivors(p_cluster: torch.Tensor, p_synapse: torch.Tensor, factor: float) -> float:
    root = math.sqrt(factor)
    per_cluster = (root * p_synapse).clamp(max=1.0).sum(dim=1)
    return float(((root * p_cluster).clamp(max=1.0) * per_cluster).sum())


def layer_factor(p_cluster: torch.Tensor, p_synapse: torch.Tensor, target: float) -> float:
    """f_l such that the expected number of survivors equals `target` (all survive if the
    target is at least the number of live synapses)."""
    live = int((p_synapse > 0).sum())
    if target >= live:
        return math.inf
    smallest = min(float(p_synapse[p_synapse > 0].min()), float(p_cluster[p_cluster > 0].min()))
    high = 1.0 / max(smallest, 1e-12) ** 2
    return _bisect(lambda f: expected_survivors(p_cluster, p_synapse, f), target, 0.0, high)
