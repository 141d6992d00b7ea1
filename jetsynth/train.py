"""Training one individual: a self-contained task (genome, data, config, seed) → trained genome
and its metrics, so an executor can run it in this process or elsewhere.

The network is trained *compacted* (dead units physically removed): it costs what survives, not
what the ancestor was. Masks inside surviving filters are re-applied after every step.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import nn

from .compact import compact, expand_state
from .data import Dataset, DataSpec, load_dataset
from .genome import Genome
from .metrics import size_metrics

PRECISIONS = ("fp32", "fp16")


@dataclass(frozen=True)
class TrainConfig:
    """epochs over the training split; lr: Adam's initial learning rate, annealed by a cosine
    to 5 % over the run; precision: 'fp16' restricts the trained weights to half precision
    (seed 004) before evaluation and before the next generation inherits them."""

    epochs: int = 2
    batch_size: int = 128
    lr: float = 1e-3
    precision: str = "fp32"


@dataclass
class TrainResult:
    genome: Genome
    metrics: dict


def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy in [0, 1]."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(images), 1000):
            logits = model(images[start : start + 1000])
            correct += int((logits.argmax(dim=1) == labels[start : start + 1000]).sum())
    return correct / len(images)


def restrict_precision(state: dict[str, torch.Tensor], precision: str) -> dict[str, torch.Tensor]:
    """Round floating tensors to fp16 and back (values exactly representable in half)."""
    if precision == "fp32":
        return state
    return {k: v.half().float() if v.is_floating_point() else v for k, v in state.items()}


def train_genome(
    genome: Genome,
    data: Dataset | DataSpec,
    config: TrainConfig,
    seed: int,
    on_step: Callable[[int, int], None] | None = None,
) -> TrainResult:
    """Train `genome` for `config.epochs` epochs and evaluate it on the whole test split.
    `on_step(done, total)` is called after every optimiser step (for progress displays)."""
    dataset = data if isinstance(data, Dataset) else load_dataset(data)
    started = time.perf_counter()
    torch.manual_seed(seed)
    compacted = compact(genome.build(), genome.masks, genome.layers)
    net = compacted.model
    masked = [(net.get_submodule(name).weight, mask) for name, mask in compacted.masks.items()]
    n = len(dataset.train_x)
    steps_per_epoch = (n + config.batch_size - 1) // config.batch_size
    total = steps_per_epoch * config.epochs
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=max(total, 1), eta_min=0.05 * config.lr
    )
    order = torch.Generator().manual_seed(seed)
    step = 0
    net.train()
    for _ in range(config.epochs):
        permutation = torch.randperm(n, generator=order)
        for start in range(0, n, config.batch_size):
            batch = permutation[start : start + config.batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(net(dataset.train_x[batch]), dataset.train_y[batch])
            loss.backward()
            optimizer.step()
            schedule.step()
            with torch.no_grad():
                for weight, mask in masked:
                    weight.mul_(mask)
            step += 1
            if on_step is not None:
                on_step(step, total)
    state = restrict_precision(expand_state(compacted, genome.layers, genome.state), config.precision)
    trained = replace(genome, state=state, precision=config.precision)
    evaluated = compact(trained.build(), trained.masks, trained.layers).model
    accuracy = evaluate(evaluated, dataset.test_x, dataset.test_y)
    metrics = {
        "accuracy": accuracy,
        "train_seconds": round(time.perf_counter() - started, 3),
        "epochs": config.epochs,
        **size_metrics(trained),
    }
    return TrainResult(trained, metrics)
