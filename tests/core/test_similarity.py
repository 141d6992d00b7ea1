import numpy as np
import pytest
import torch

from jetsynth.core.genome import ancestor_genome
from jetsynth.core.similarity import average_overlap, cluster_presence, overlap, overlap_matrix


def test_overlap_by_hand():
    a = torch.tensor([True, True, True, True, False])
    b = torch.tensor([True, True, False, False, True])
    assert overlap(a, b) == 0.5  # |{0,1}| / |{0,1,2,3}|
    assert overlap(b, a) == pytest.approx(2 / 3)
    assert overlap(torch.zeros(3, dtype=torch.bool), b) == 0.0


def test_matrix_and_average_by_hand():
    a = torch.tensor([True, True, True, True])
    b = torch.tensor([True, True, False, False])
    c = torch.tensor([False, False, True, True])
    matrix = overlap_matrix([a, b, c])
    assert matrix.tolist() == [[1.0, 0.5, 0.5], [1.0, 1.0, 0.0], [1.0, 0.0, 1.0]]
    assert average_overlap(matrix) == pytest.approx(3.0 / 6)
    assert average_overlap(np.ones((1, 1))) == 1.0


def test_cluster_presence_counts_kernels_or_filters():
    genome = ancestor_genome("lenet5", (1, 28, 28), 10, seed=0)
    assert len(cluster_presence(genome.masks, "kernel")) == 20 + 1000 + 500 + 10
    assert len(cluster_presence(genome.masks, "filter")) == 20 + 50 + 500 + 10
