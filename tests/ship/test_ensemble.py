"""The stacked (hierarchical) ensemble: starts as the members' average, learns on the training split."""

import torch
from torch import nn

from jetsynth.ship.ensemble import StackedEnsemble, train_combiner


class _Fixed(nn.Module):
    def __init__(self, logits):
        super().__init__()
        self.logits = torch.tensor(logits)

    def forward(self, x):
        return self.logits.expand(x.shape[0], -1)


def test_the_combiner_starts_as_the_average_of_log_probabilities():
    a, b = [2.0, 0.0, 0.0], [0.0, 1.0, 0.0]
    model = StackedEnsemble([_Fixed(a), _Fixed(b)], 3)
    out = model(torch.zeros(1, 1))
    expected = (torch.log_softmax(torch.tensor(a), 0) + torch.log_softmax(torch.tensor(b), 0)) / 2
    assert torch.allclose(out[0], expected)


def test_training_moves_the_vote_toward_the_member_that_is_right():
    # member 0 always says class 0, member 1 class 1; the labels are always 1
    model = StackedEnsemble([_Fixed([3.0, 0.0]), _Fixed([0.0, 1.0])], 2)
    assert model(torch.zeros(1, 1)).argmax(1).item() == 0
    features = model.features(torch.zeros(8, 1)).detach()
    train_combiner(model, features, torch.ones(8, dtype=torch.long), epochs=100)
    assert model(torch.zeros(1, 1)).argmax(1).item() == 1
