"""Architectural similarity of a population (seed 002): the percentage overlap of the clusters
two networks keep, clusters being identified by their gene tags.

%overlap_AB = |C_A ∩ C_B| / |C_A| (eq. 4): not symmetric; the matrix row is A, the column B.
"""

from __future__ import annotations

import numpy as np
import torch

from jetsynth.nn.growth import canonical_layer


def cluster_presence(masks: dict[str, torch.Tensor], mode: str = "kernel") -> torch.Tensor:
    """One flag per ancestor cluster, layers by name: does a genome with these masks keep it?
    Kernel clusters: every conv kernel (out, in) and linear neuron; filter clusters: every
    filter and neuron of every layer. It reads the masks alone (their shapes are the weights'),
    so a run's similarity needs no code to build its architecture."""
    flags = []
    for name in sorted(masks):
        mask = masks[name]
        rows = mask.shape[0] * mask.shape[1] if mode == "kernel" and mask.dim() > 2 else mask.shape[0]
        flags.append(mask.reshape(rows, -1).any(dim=1))
    return torch.cat(flags)


def aligned_presences(masks: list[dict[str, torch.Tensor]], mode: str = "kernel") -> list[torch.Tensor]:
    """`cluster_presence` of several genomes over the union of their layers, so networks grown
    by different R2R transforms compare: a layer is matched by its name without `.base` (a grown
    block's name carries its transform id, like its gene tags), and a layer a network lacks
    counts as clusters it does not keep."""
    canonical = [{canonical_layer(k): v for k, v in m.items()} for m in masks]
    sizes: dict[str, int] = {}
    for table in canonical:
        for name, mask in table.items():
            sizes[name] = len(cluster_presence({name: mask}, mode))
    out = []
    for table in canonical:
        out.append(torch.cat([cluster_presence({n: table[n]}, mode) if n in table
                              else torch.zeros(sizes[n], dtype=torch.bool) for n in sorted(sizes)]))
    return out


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
