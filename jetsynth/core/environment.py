"""Environmental factors (seed 001, eq. 3): the pressure that makes each generation smaller.

The offspring of a parent with N live synapses is allowed `keep`·N of them in expectation.
That global budget is spread over layers as targets T_l = clip(F · n_l^(1−balance), floor_l, n_l)
with one F for the whole network: balance 0 gives every layer the same survival rate, balance 1
the same number of survivors, so large layers carry most of the pressure and small layers are
spared. Inside a layer the cluster factor F_c and the synapse factor F_s are chosen so that
Σ_c min(1, F_c·p_c) · Σ_{i∈c} min(1, F_s·p_i) = T_l, with a set share of the pressure falling on
whole clusters (`layer_factors`).

Cost-aware pressure (`--pressure-on macs`): the budget and the spread are counted in what a
synapse costs rather than in synapses. A layer whose synapses each cost c_l (multiply-accumulates
per image: the output positions of a conv, 1 for a linear layer) and number n_l costs
C_l = c_l·n_l; the targets are T_l = clip(F · C_l^(1−balance), floor_l·c_l, C_l) / c_l synapses
with one F for the whole network (`cost_targets`). A cluster of layer l then survives with
probability min(1, F_l·p_c), where F_l ∝ n_l^(−balance) · c_l^(−balance): its strength p_c is
weighed against its layer's cost per synapse, so at balance > 0 the expensive convolutions,
not the big cheap fully-connected layers, carry the pressure. With every c_l = 1 this is
seed 001's synapse budget exactly.
"""

from __future__ import annotations

import math

import torch


def _bisect(func, target: float, low: float, high: float, steps: int = 100) -> float:
    """The x in [low, high] where the increasing `func` reaches `target`."""
    for _ in range(steps):
        mid = 0.5 * (low + high)
        if mid in (low, high):  # adjacent floats: further steps change nothing
            break
        if func(mid) < target:
            low = mid
        else:
            high = mid
    return high


def layer_targets(
    alive: list[int], floors: list[int], keep: float, balance: float, base: float | None = None
) -> list[float]:
    """Expected live synapses allowed to each layer of the offspring (see module docstring).
    `alive` caps each layer; the budget is `keep` × `base` (default: the sum of `alive`, the
    parents' common structure; with a union of m parents, their mean size)."""
    lows = [min(n, f) for n, f in zip(alive, floors, strict=False)]
    return _spread(alive, lows, keep, balance, base)


def cost_targets(
    alive: list[int], floors: list[int], costs: list[float], keep: float, balance: float,
    base: float | None = None,
) -> list[float]:
    """Expected live synapses of each layer under a budget of `keep` × the parents' cost (see
    module docstring): `costs[l]` is what one synapse of layer l costs, `base` the parents'
    synapse count the keep applies to (default: the sum of `alive`), scaled to cost by the
    layers' mean cost per synapse."""
    weighted = [c * n for c, n in zip(costs, alive, strict=True)]
    lows = [c * min(n, f) for c, n, f in zip(costs, alive, floors, strict=True)]
    total = sum(alive)
    base_cost = None if base is None else base * sum(weighted) / max(total, 1)
    spread = _spread(weighted, lows, keep, balance, base_cost)
    return [t / c if c > 0 else float(n) for t, c, n in zip(spread, costs, alive, strict=True)]


def _spread(sizes: list[float], lows: list[float], keep: float, balance: float,
            base: float | None) -> list[float]:
    """T_l = clip(F · size_l^(1−balance), low_l, size_l) with Σ T_l = keep × base."""
    budget = keep * (sum(sizes) if base is None else base)

    def targets(scale: float) -> list[float]:
        return [min(float(n), max(float(lo), scale * n ** (1.0 - balance)))
                for n, lo in zip(sizes, lows, strict=False)]

    if sum(lows) >= budget:
        return [float(lo) for lo in lows]
    high = max((n ** balance for n in sizes if n > 0), default=1.0)
    return targets(_bisect(lambda s: sum(targets(s)), budget, 0.0, high))


def _kept(probabilities: torch.Tensor, factor: float) -> torch.Tensor:
    """min(1, F·p), with F = ∞ keeping everything that has p > 0."""
    if math.isinf(factor):
        return (probabilities > 0).float()
    return (factor * probabilities).clamp(max=1.0)


def expected_survivors(
    p_cluster: torch.Tensor, p_synapse: torch.Tensor, f_cluster: float, f_synapse: float
) -> float:
    """E[live synapses] = Σ_c min(1, F_c·p_c) · Σ_{i∈c} min(1, F_s·p_i)."""
    return float((_kept(p_cluster, f_cluster) * _kept(p_synapse, f_synapse).sum(dim=1)).sum())


def _solve(func, target: float, probabilities: torch.Tensor) -> float:
    """The factor F at which the increasing func(F) reaches `target` (∞ if only all does)."""
    live = probabilities[probabilities > 0]
    if live.numel() == 0 or func(math.inf) <= target:
        return math.inf
    return _bisect(func, target, 0.0, 1.0 / max(float(live.min()), 1e-12))


def layer_factors(
    p_cluster: torch.Tensor, p_synapse: torch.Tensor, target: float, cluster_pressure: float
) -> tuple[float, float]:
    """Environmental factors (F_c, F_s) of one layer whose clusters are the rows of
    `p_synapse`. A share `cluster_pressure` (a) of the pressure, on a log scale, acts on
    clusters: F_c makes the synapses of the surviving clusters number n·(T/n)^a in
    expectation, then F_s thins them to the target T. a = 1 removes whole clusters only; a = 0
    thins synapses only (cluster probabilities still apply at F_c = 1)."""
    sizes = (p_synapse > 0).sum(dim=1).float()
    live = float(sizes.sum())
    if live == 0 or target >= live:
        return math.inf, math.inf
    cluster_target = live * (target / live) ** cluster_pressure
    f_cluster = _solve(lambda f: float((_kept(p_cluster, f) * sizes).sum()), cluster_target, p_cluster)
    if cluster_pressure >= 1.0:  # whole clusters only: no thinning of the survivors to solve for
        return f_cluster, math.inf
    f_synapse = _solve(lambda f: expected_survivors(p_cluster, p_synapse, f_cluster, f), target,
                       p_synapse)
    return f_cluster, f_synapse


def adaptive_keep(keep: float, fps: float | None, target_fps: float | None, accuracy: float,
                  floor: float, ancestor_accuracy: float) -> tuple[float, dict]:
    """The adaptive environmental pressure for the next generation: keep^(s·a), with

    - s = clip(target_fps / fps, 1, 2): up to twice the pressure (on a log scale) while the
      fastest member that keeps the floor runs below the target (s = 1 when none keeps it, or
      with no target: then the pressure follows accuracy alone);
    - a = 1/4 + 3/4 · clip((accuracy − floor) / (ancestor_accuracy − floor), 0, 1): full
      pressure while the best accuracy stands at the ancestor's, easing to a quarter as it
      approaches the floor, so a generation near the floor mostly retrains;
    - and no pressure at all (keep 1) when the best member is below the floor: the next
      generation retrains what it has, to climb back (evolve breeds from an earlier generation at
      the floor where there is one: see `evolve.parent_pool`).

    `fps` in images per second; accuracies as fractions (the best member's, on validation).
    Returns the keep share and the terms."""
    speed_term = 1.0 if not fps or not target_fps else min(2.0, max(1.0, target_fps / fps))
    if accuracy < floor:
        return 1.0, {"keep": 1.0, "speed_term": speed_term, "accuracy_term": 0.0,
                     "below_floor": True}
    headroom = ancestor_accuracy - floor
    margin = min(1.0, max(0.0, (accuracy - floor) / headroom)) if headroom > 0 else 1.0
    accuracy_term = 0.25 + 0.75 * margin
    adapted = keep ** (speed_term * accuracy_term)
    return adapted, {"keep": adapted, "speed_term": speed_term, "accuracy_term": accuracy_term}
