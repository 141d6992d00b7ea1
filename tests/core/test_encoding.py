import math

import torch

from jetsynth.core.encoding import (
    cluster_probability,
    encode_clusters,
    layer_normaliser,
    synapse_probability,
    truncate,
)


def test_synapse_probability_eq5_by_hand():
    p = synapse_probability(torch.tensor([0.0, 1.0, -2.0]), z=2.0)
    expected = [math.exp(-1.0), math.exp(-0.5), 1.0]
    assert torch.allclose(p, torch.tensor(expected))


def test_truncation_zeroes_weak_weights_and_takes_magnitude():
    out = truncate(torch.tensor([0.05, -0.3, 0.2, -0.1]), 0.1)
    assert out.tolist() == [0.0, 0.30000001192092896, 0.20000000298023224, 0.10000000149011612]


def test_cluster_probability_eq4_by_hand():
    p = cluster_probability(torch.tensor([0.0, 1.0, 2.0]), normaliser=2.0)
    assert torch.allclose(p, torch.tensor([math.exp(-1.0), math.exp(-0.5), 1.0]))


def test_layer_normaliser_is_max_or_one():
    assert layer_normaliser(torch.tensor([0.5, 3.0])) == 3.0
    assert layer_normaliser(torch.zeros(3)) == 1.0


def test_encode_clusters_by_hand():
    weights = torch.tensor([[1.0, -2.0], [0.5, 0.0]])
    mask = torch.ones_like(weights, dtype=torch.bool)
    p_cluster, p_synapse = encode_clusters(weights, mask, truncation=0.3)
    # z = 2; threshold 0.6 keeps 1 and 2 (sum 3) and drops 0.5 (sum 0); Z = 3
    assert torch.allclose(
        p_synapse, torch.tensor([[math.exp(-0.5), 1.0], [math.exp(-0.75), math.exp(-1.0)]])
    )
    assert torch.allclose(p_cluster, torch.tensor([1.0, math.exp(-1.0)]))


def test_dead_synapses_and_clusters_get_probability_zero():
    weights = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    mask = torch.tensor([[True, False], [False, False]])
    p_cluster, p_synapse = encode_clusters(weights, mask, truncation=0.0)
    assert p_synapse[0, 1] == 0 and (p_synapse[1] == 0).all()
    assert p_cluster[1] == 0 and p_cluster[0] == 1.0
