"""Architectural similarity of a population (seed 002): the percentage overlap of the clusters
two networks keep, clusters being identified by their gene tags.

%overlap_AB = |C_A ∩ C_B| / |C_A| (eq. 4): not symmetric; the matrix row is A, the column B.
"""

from __future__ import annotations

import numpy as np
import torch

from .genome import Genome
from .structure import cluster_view, live_channels


def cluster_presence(genome: Genome, mode: str = "kernel") -> torch.Tensor:
    """One flag per ancestor cluster, in tag order: does this genome keep it? Kernel clusters:
    every conv kernel and linear neuron of every layer. Filter clusters: every channel of every
    channel space (one cluster however many layers write it), then the output layer's classes."""
    if mode == "filter":
        output = genome.topology.output
        flags = live_channels(genome.topology, genome.masks)
        flags.append(cluster_view(genome.masks[output.name], output, "filter").any(dim=1))
    else:
        flags = [cluster_view(genome.masks[layer.name], layer, mode).any(dim=1)
                 for layer in genome.layers]
    return torch.cat(flags)


def overlap(a: torch.Tensor, b: torch.Tensor) -> float:
    """|C_A ∩ C_B| / |C_A| for two presence vectors (0 when A keeps nothing)."""
    kept = int(a.sum())
    return int((a & b).sum()) / kept if kept else 0.0


def overlap_matrix(presences: list[torch.Tensor]) -> np.ndarray:
    n = len(presences)
    matrix = np.ones((n, n))
    for i in range(n):
        for j in range(n):
            if i != j:
                matrix[i, j] = overlap(presences[i], presences[j])
    return matrix


def average_overlap(matrix: np.ndarray) -> float:
    """Mean over ordered pairs A ≠ B (seed 002, Table 1); 1 for a single network."""
    n = len(matrix)
    if n < 2:
        return 1.0
    return float((matrix.sum() - np.trace(matrix)) / (n * (n - 1)))
