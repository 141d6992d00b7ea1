"""Model factories used by tests through `--arch user_models:NAME`."""

import torch
from torch import nn


def tiny_bn(input_shape, num_classes):
    return nn.Sequential(
        nn.Conv2d(input_shape[0], 6, 3),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 8, 3),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(3),
        nn.Flatten(),
        nn.Linear(8 * 9, 16),
        nn.BatchNorm1d(16),
        nn.ReLU(),
        nn.Linear(16, num_classes),
    )


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(1, 4, 3, padding=1)
        self.b = nn.Conv2d(4, 4, 3, padding=1)
        self.c = nn.Conv2d(4, 4, 3, padding=1)
        self.head = nn.Linear(4 * 28 * 28, 10)

    def forward(self, x):
        y = self.a(x)
        z = self.c(self.b(y)) + self.b(y)
        return self.head(z.flatten(1))


def residual(input_shape, num_classes):
    return Residual()


def not_a_module(input_shape, num_classes):
    return 42


class Inception(nn.Module):
    """Two branches concatenated, then read by one conv: a concatenation coupling."""

    def __init__(self, channels, num_classes):
        super().__init__()
        self.stem = nn.Conv2d(channels, 8, 3, padding=1)
        self.a = nn.Conv2d(8, 6, 1)
        self.b = nn.Conv2d(8, 10, 3, padding=1)
        self.mix = nn.Conv2d(16, 12, 3, padding=1)
        self.head = nn.Linear(12 * 4 * 4, num_classes)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        x = torch.cat([torch.relu(self.a(x)), torch.relu(self.b(x))], dim=1)
        x = nn.functional.adaptive_avg_pool2d(torch.relu(self.mix(x)), 4)
        return self.head(torch.flatten(x, 1))


def inception(input_shape, num_classes):
    return Inception(input_shape[0], num_classes)


class InvertedResidual(nn.Module):
    """A stem, one inverted-residual block (expand 1×1, depthwise 3×3, project 1×1, batch norms,
    added back into the stem's stream) and a linear head: depthwise and residual couplings."""

    def __init__(self, channels, num_classes):
        super().__init__()
        self.stem = nn.Conv2d(channels, 8, 3, padding=1, bias=False)
        self.bn0 = nn.BatchNorm2d(8)
        self.expand = nn.Conv2d(8, 16, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.dw = nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False)
        self.bn2 = nn.BatchNorm2d(16)
        self.project = nn.Conv2d(16, 8, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(8)
        self.head = nn.Linear(8, num_classes)

    def forward(self, x):
        x = torch.relu(self.bn0(self.stem(x)))
        y = torch.relu(self.bn1(self.expand(x)))
        y = torch.relu(self.bn2(self.dw(y)))
        x = x + self.bn3(self.project(y))
        return self.head(x.mean(dim=(2, 3)))


def inverted_residual(input_shape, num_classes):
    return InvertedResidual(input_shape[0], num_classes)


def grouped(input_shape, num_classes):
    return nn.Sequential(nn.Conv2d(input_shape[0], 4, 3), nn.Conv2d(4, 8, 3, groups=2),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, num_classes))


def blind(input_shape, num_classes):
    """Sees nothing of its input: learns at best the most common class (chance)."""

    class Blind(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(input_shape[0], 4, 3)
            self.fc = nn.Linear(4, num_classes)

        def forward(self, x):
            return self.fc(self.conv(x * 0).mean(dim=(2, 3)))

    return Blind()


def thousand(input_shape, num_classes):
    """Built for 1000 classes whatever the data has."""
    return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[0] * input_shape[1] * input_shape[2], 1000))


class _LayerScaleBlock(nn.Module):
    """ConvNeXt's block in NCHW: depthwise 7×7, norm, 1×1 up, GELU, 1×1 down, scaled per channel
    by `gamma` (a parameter outside any module), added to the stream."""

    def __init__(self, channels):
        super().__init__()
        self.dwconv = nn.Conv2d(channels, channels, 7, padding=3, groups=channels)
        self.norm = nn.BatchNorm2d(channels)
        self.pwconv1 = nn.Conv2d(channels, 4 * channels, 1)
        self.act = nn.GELU()
        self.pwconv2 = nn.Conv2d(4 * channels, channels, 1)
        self.gamma = nn.Parameter(torch.full((channels,), 0.5))

    def forward(self, x):
        y = self.pwconv2(self.act(self.pwconv1(self.norm(self.dwconv(x)))))
        return x + self.gamma.reshape(1, -1, 1, 1) * y


def convnext_block(input_shape, num_classes):
    """A stem, two layer-scaled ConvNeXt blocks on one residual stream, a linear head."""
    return nn.Sequential(nn.Conv2d(input_shape[0], 16, 4, stride=4), nn.BatchNorm2d(16),
                         _LayerScaleBlock(16), _LayerScaleBlock(16), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(16, num_classes))


class _Mixer(nn.Module):
    """A parameter mixing channels by matrix product, outside any module."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3)
        self.mix = nn.Parameter(torch.eye(8))
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        y = self.conv(x).mean(dim=(2, 3))
        return self.fc(y @ self.mix)


def mixer(input_shape, num_classes):
    return _Mixer()
