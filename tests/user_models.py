"""Model factories used by tests through `--arch user_models:NAME`."""

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
