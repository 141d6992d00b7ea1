"""Seed 001's cluster-driven genetic encoding (eqs. 4–5), as pure functions of tensors.

Synaptic strength is the weight's magnitude: a strongly negative synapse is as much a trait worth
inheriting as a strongly positive one.
"""

from __future__ import annotations

import torch


def synapse_probability(weights: torch.Tensor, z: float) -> torch.Tensor:
    """Eq. 5: P(s_i = 1 | w_i) = exp(|w_i| / z − 1); with z = the layer's largest |w| it lies in
    [1/e, 1]."""
    return torch.exp(weights.abs() / z - 1.0)


def truncate(weights: torch.Tensor, threshold: float) -> torch.Tensor:
    """⌊w⌋ of eq. 4: the magnitude of each synapse, or 0 where it is weaker than `threshold`, so
    that many weak synapses cannot add up to a strong cluster."""
    magnitude = weights.abs()
    return torch.where(magnitude >= threshold, magnitude, torch.zeros_like(magnitude))


def cluster_probability(strengths: torch.Tensor, normaliser: float) -> torch.Tensor:
    """Eq. 4: P(cluster c = 1 | W) = exp(Σ_{i∈c} ⌊w_i⌋ / Z − 1), `strengths` holding the
    truncated sums per cluster; with Z = the layer's largest sum it lies in [1/e, 1]."""
    return torch.exp(strengths / normaliser - 1.0)


def layer_normaliser(values: torch.Tensor) -> float:
    """The largest value (z or Z of eqs. 4–5), or 1 where everything is zero."""
    top = float(values.max()) if values.numel() else 0.0
    return top if top > 0.0 else 1.0


def encode_clusters(
    clustered_weights: torch.Tensor, clustered_mask: torch.Tensor, truncation: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cluster and synapse probabilities of one layer whose weights are viewed as
    (clusters, synapses per cluster). Dead synapses and clusters get probability 0; the
    truncation threshold is `truncation` × z."""
    live = clustered_weights * clustered_mask
    z = layer_normaliser(live.abs())
    p_synapse = synapse_probability(live, z) * clustered_mask
    strengths = truncate(live, truncation * z).sum(dim=1)
    p_cluster = cluster_probability(strengths, layer_normaliser(strengths))
    return p_cluster * clustered_mask.any(dim=1), p_synapse
