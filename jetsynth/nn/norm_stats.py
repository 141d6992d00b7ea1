"""A network's own batch-norm statistics, for networks that share their buffers (seed 003's
population): every member's batch-norm layers hold the *same* running mean and variance
tensors, which jointTrain updates with whichever member was drawn last, so in eval mode a
member normalises with statistics of the others' activations (an R2WiderR block changes its
host's output, and with it what every later batch norm sees). A copy whose statistics are
re-estimated on its own activations evaluates the network the member is.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

import torch
from torch import nn


@torch.no_grad()
def with_own_statistics(model: nn.Module, batches: Iterable[torch.Tensor]) -> nn.Module:
    """A copy of `model` (weights the same values, not the same tensors) in eval mode whose
    batch-norm running mean and variance are the plain average over `batches` (training-mode
    forward passes, no gradient); `model` is left as it was."""
    own = copy.deepcopy(model)
    norms = [m for m in own.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over the batches
    own.train()
    for images in batches:
        own(images)
    for norm, original in zip(norms, [m for m in model.modules()
                                      if isinstance(m, nn.modules.batchnorm._BatchNorm)],
                              strict=True):
        norm.momentum = original.momentum
    return own.eval()
