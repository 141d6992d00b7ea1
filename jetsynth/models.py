"""Ancestor networks. Every factory takes `(input_shape, num_classes)` and returns an nn.Module,
so a user's own model plugs in the same way through `--arch module:function`."""

from __future__ import annotations

import importlib
from collections.abc import Callable

import torch
from torch import nn

from .errors import JetsynthError


def _flat_features(features: nn.Module, input_shape: tuple[int, int, int]) -> int:
    with torch.no_grad():
        return int(features(torch.zeros(1, *input_shape)).numel())


def lenet5(input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """LeNet-5 as in seed 001 (Caffe's variant): conv 20@5×5 → pool → conv 50@5×5 → pool →
    fc 500 → fc classes, with ReLU after each hidden layer."""
    features = nn.Sequential(
        nn.Conv2d(input_shape[0], 20, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(20, 50, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
    )
    flat = _flat_features(features, input_shape)
    return nn.Sequential(
        *features, nn.Linear(flat, 500), nn.ReLU(), nn.Linear(500, num_classes)
    )


def alexnet_cifar(input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """AlexNet for 32×32 inputs with a 5×5×3 first layer (seed 001): five conv layers
    (64, 192, 384, 256, 256 filters) and three fully-connected layers (1024, 1024, classes).
    The fully-connected widths are smaller than ImageNet AlexNet's 4096 to suit small images."""
    features = nn.Sequential(
        nn.Conv2d(input_shape[0], 64, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(256, 256, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(3, 2),
        nn.Flatten(),
    )
    flat = _flat_features(features, input_shape)
    return nn.Sequential(
        *features,
        nn.Dropout(0.5),
        nn.Linear(flat, 1024),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(1024, 1024),
        nn.ReLU(),
        nn.Linear(1024, num_classes),
    )


class _BasicBlock(nn.Module):
    """Two 3×3 convs with batch norm and an identity shortcut (a 1×1 conv where the shape
    changes): the residual coupling the export-time compactor must respect."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


def resnet_small(input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """A small ResNet (stem 16 → blocks 16, 32, 64 → global pool → classes). Not a chain, so
    it does not evolve yet; it is the residual case for compaction and export."""
    return nn.Sequential(
        nn.Conv2d(input_shape[0], 16, 3, padding=1, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        _BasicBlock(16, 16, 1),
        _BasicBlock(16, 32, 2),
        _BasicBlock(32, 64, 2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(64, num_classes),
    )


ARCHITECTURES: dict[str, Callable[[tuple[int, int, int], int], nn.Module]] = {
    "lenet5": lenet5,
    "alexnet-cifar": alexnet_cifar,
    "resnet-small": resnet_small,
}


def resolve_factory(arch: str) -> Callable[[tuple[int, int, int], int], nn.Module]:
    """A built-in name, or `module:function` naming an importable factory."""
    if arch in ARCHITECTURES:
        return ARCHITECTURES[arch]
    module_name, sep, func_name = arch.partition(":")
    if not sep or not module_name or not func_name:
        names = ", ".join(ARCHITECTURES)
        raise JetsynthError(f"unknown architecture '{arch}': use one of {names} or module:function")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise JetsynthError(
            f"cannot import '{module_name}' for --arch {arch} ({exc}); check PYTHONPATH"
        ) from None
    factory = getattr(module, func_name, None)
    if not callable(factory):
        raise JetsynthError(f"'{module_name}' has no callable '{func_name}' (from --arch {arch})")
    return factory


def instantiate(factory: Callable[[tuple[int, int, int], int], nn.Module], arch: str,
                input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """Call a resolved factory; one that fails or returns a non-module is a user error."""
    try:
        model = factory(tuple(input_shape), int(num_classes))
    except Exception as exc:  # a user's factory may raise anything
        raise JetsynthError(f"--arch {arch} failed to build a model: {exc}") from None
    if not isinstance(model, nn.Module):
        raise JetsynthError(f"--arch {arch} returned {type(model).__name__}, not a torch nn.Module")
    return model


def build_model(arch: str, input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """Instantiate an ancestor by name."""
    return instantiate(resolve_factory(arch), arch, input_shape, num_classes)
