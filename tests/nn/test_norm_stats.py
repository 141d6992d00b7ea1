"""A network's own batch-norm statistics, re-estimated on its activations (seed 003's shared
population)."""

import torch
from torch import nn

from jetsynth.nn.norm_stats import with_own_statistics


def test_statistics_are_the_average_over_the_batches_and_the_model_is_left_alone():
    """Batches [1, 3] and [5, 7]: means 2 and 6 → 4; unbiased variances 2 and 2 → 2."""
    model = nn.Sequential(nn.BatchNorm1d(1))
    model[0].running_mean.fill_(10.0)
    own = with_own_statistics(model, [torch.tensor([[1.0], [3.0]]), torch.tensor([[5.0], [7.0]])])
    assert torch.allclose(own[0].running_mean, torch.tensor([4.0]))
    assert torch.allclose(own[0].running_var, torch.tensor([2.0]))
    assert not own.training and own[0].momentum == model[0].momentum == 0.1
    assert model[0].running_mean.item() == 10.0 and model[0].num_batches_tracked.item() == 0
    x = torch.tensor([[4.0], [4.0 + 2.0 ** 0.5]])
    assert torch.allclose(own(x), torch.tensor([[0.0], [1.0]]), atol=1e-4)


def test_shared_buffers_stay_shared_in_the_model_and_not_in_the_copy():
    norm = nn.BatchNorm1d(2)
    a, b = nn.Sequential(nn.Linear(3, 2), norm), nn.Sequential(nn.Linear(3, 2), norm)
    own = with_own_statistics(a, [torch.randn(8, 3)])
    assert a[1].running_mean is b[1].running_mean
    assert own[1].running_mean is not a[1].running_mean
    assert torch.equal(own[0].weight, a[0].weight)
