"""Networks to calibrate on: compacted variants of the built-in ancestors with random widths, the
kind of network evolution produces (whole filters and neurons gone, in every layer at once).

Each variant is an ancestor genome whose masks kill a random set of units per layer, exported
through the same compaction and ONNX path as an evolved member, so the calibration measures what
evolution will ask the model to predict. Weights are random: a dense network's speed does not
depend on their values.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from jetsynth.core.genome import Genome, Lineage, ancestor_genome

ARCH_INPUTS = {"lenet5": ((1, 28, 28), 10), "alexnet-cifar": ((3, 32, 32), 10)}
"""The input shape and classes each built-in ancestor is calibrated at (MNIST, CIFAR-10)."""

MIN_WIDTH = 0.02


@dataclass(frozen=True)
class Variant:
    """One calibration network: its ancestor, the share of units kept in each hidden layer, and
    the seed that chose which."""

    arch: str
    widths: tuple[float, ...]
    seed: int

    @property
    def name(self) -> str:
        return f"{self.arch}-s{self.seed}"


def variants(arch: str, count: int, seed: int) -> list[Variant]:
    """`count` variants of `arch`: a log-uniform overall width in [MIN_WIDTH, 1] per variant,
    jittered per layer, so the sweep spans the ancestor down to ~50× fewer units. The first
    variant is the ancestor itself."""
    input_shape, classes = ARCH_INPUTS[arch]
    hidden = len(ancestor_genome(arch, input_shape, classes, 0).layers) - 1
    rng = np.random.default_rng([seed, sum(map(ord, arch))])
    out = [Variant(arch, (1.0,) * hidden, seed * 1000)]
    for index in range(1, count):
        overall = float(np.exp(rng.uniform(np.log(MIN_WIDTH), 0.0)))
        widths = np.clip(overall * np.exp(rng.normal(0.0, 0.5, hidden)), MIN_WIDTH, 1.0)
        out.append(Variant(arch, tuple(round(float(w), 4) for w in widths), seed * 1000 + index))
    return out


def variant_genome(variant: Variant) -> Genome:
    """The ancestor genome with, in each hidden layer, all but round(width × units) units dead
    (at least one survives)."""
    input_shape, classes = ARCH_INPUTS[variant.arch]
    genome = ancestor_genome(variant.arch, input_shape, classes, variant.seed)
    generator = torch.Generator().manual_seed(variant.seed)
    masks = dict(genome.masks)
    for layer, width in zip(genome.layers[:-1], variant.widths, strict=True):
        keep = max(1, round(width * layer.out_units))
        dead = torch.randperm(layer.out_units, generator=generator)[keep:]
        mask = masks[layer.name].clone()
        mask[dead] = False
        masks[layer.name] = mask
    return genome.with_masks(masks, Lineage(variant.name, 0, 0))


def export_variant(variant: Variant, folder: Path, precision: str) -> Path:
    """The variant compacted and exported to `folder`/NAME.onnx (reused when already there)."""
    from jetsynth.ship.export import export_genome

    path = Path(folder) / f"{variant.name}-{precision}.onnx"
    if not path.is_file():
        export_genome(variant_genome(variant), path, precision)
    return path
