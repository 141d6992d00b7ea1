import pytest
import torch
from torch import nn

from jetsynth.compact_graph import compact_graph, settle
from jetsynth.errors import JetsynthError
from jetsynth.models import build_model


def _random_masks(model: nn.Module, generator: torch.Generator, dead_filters: float = 0.4,
                  kernel_keep: float = 0.7) -> dict[str, torch.Tensor]:
    """Random kernel masks plus whole filters and whole input channels switched off."""
    masks = {}
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            shape = module.weight.shape
            mask = torch.rand(shape[:2], generator=generator) < kernel_keep
            mask[torch.rand(shape[0], generator=generator) < dead_filters] = False
            mask[:, torch.rand(shape[1], generator=generator) < dead_filters / 2] = False
            masks[name] = mask.reshape(*shape[:2], *([1] * (len(shape) - 2))).expand(shape).clone()
    return masks


def _randomise_norms(model: nn.Module, generator: torch.Generator) -> None:
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            with torch.no_grad():
                module.running_mean.copy_(torch.randn(module.num_features, generator=generator))
                module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
                module.weight.copy_(torch.randn(module.num_features, generator=generator))
                module.bias.copy_(torch.randn(module.num_features, generator=generator))


class Inception(nn.Module):
    """Two branches concatenated, then read by one conv: a concatenation coupling."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.a = nn.Conv2d(8, 6, 1)
        self.b = nn.Conv2d(8, 10, 3, padding=1)
        self.mix = nn.Conv2d(16, 12, 3, padding=1)
        self.head = nn.Linear(12 * 8 * 8, 5)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        x = torch.cat([torch.relu(self.a(x)), torch.relu(self.b(x))], dim=1)
        x = torch.relu(self.mix(x))
        return self.head(torch.flatten(x, 1))


CASES = [
    ("lenet5", (1, 28, 28), 10),
    ("alexnet-cifar", (3, 32, 32), 10),
    ("resnet-small", (3, 32, 32), 10),
]


@pytest.mark.parametrize(("arch", "shape", "classes"), CASES)
def test_compacted_network_computes_what_the_masked_one_computes(arch, shape, classes):
    generator = torch.Generator().manual_seed(0)
    model = build_model(arch, shape, classes).eval()
    _randomise_norms(model, generator)
    example = torch.randn(2, *shape, generator=generator)
    masks = _random_masks(model, generator)
    result = compact_graph(model, masks, example)
    reference = settle(model, masks, example)
    x = torch.randn(8, *shape, generator=generator)
    with torch.no_grad():
        torch.testing.assert_close(result.model(x), reference(x), atol=1e-5, rtol=1e-5)
    assert result.macs_after < result.macs_before
    assert result.params_after < result.params_before
    assert sum(result.removed.values()) > 0


def test_concatenation_coupling():
    generator = torch.Generator().manual_seed(1)
    model = Inception().eval()
    masks = {n: torch.ones_like(m.weight, dtype=torch.bool) for n, m in model.named_modules()
             if isinstance(m, (nn.Conv2d, nn.Linear))}
    masks["a"][2] = False  # branch a's filter 2 → concat channel 2
    masks["mix"][:, 6 + 4] = False  # nobody reads branch b's channel 4 → concat channel 10
    example = torch.randn(1, 3, 8, 8, generator=generator)
    result = compact_graph(model, masks, example)
    assert result.model.a.out_channels == 5
    assert result.model.b.out_channels == 9
    assert result.model.mix.in_channels == 14
    x = torch.randn(4, 3, 8, 8, generator=generator)
    with torch.no_grad():
        torch.testing.assert_close(result.model(x), settle(model, masks, example)(x), atol=1e-5, rtol=1e-5)


def test_residual_channel_stays_while_any_branch_writes_it():
    model = build_model("resnet-small", (3, 16, 16), 4).eval()
    masks = {n: torch.ones_like(m.weight, dtype=torch.bool) for n, m in model.named_modules()
             if isinstance(m, (nn.Conv2d, nn.Linear))}
    masks["3.conv2"][5] = False  # the block's branch stops writing stream channel 5 ...
    example = torch.zeros(1, 3, 16, 16)
    assert compact_graph(model, masks, example).model[3].conv2.out_channels == 16  # ... the stem still does
    masks["0"][5] = False  # now neither writes it: the whole stream channel goes
    compacted = compact_graph(model, masks, example).model
    assert compacted[0].out_channels == 15
    assert compacted[3].conv2.out_channels == 15
    assert compacted[4].conv1.in_channels == 15


def test_settle_keeps_masks_already_closed_under_dead_units():
    model = build_model("lenet5", (1, 28, 28), 10).eval()
    masks = {n: torch.ones_like(m.weight, dtype=torch.bool) for n, m in model.named_modules()
             if isinstance(m, (nn.Conv2d, nn.Linear))}
    masks["0"][3] = False
    masks["3"][:, 3] = False
    settled = settle(model, masks, torch.zeros(1, 1, 28, 28))
    for name, mask in masks.items():
        module = dict(settled.named_modules())[name]
        assert torch.equal(module.weight, dict(model.named_modules())[name].weight * mask)
    assert settled[0].bias[3] == 0


def test_wrong_mask_shape_is_a_clear_error():
    model = build_model("lenet5", (1, 28, 28), 10)
    with pytest.raises(JetsynthError, match="shape"):
        settle(model, {"0": torch.ones(3, 3, dtype=torch.bool)}, torch.zeros(1, 1, 28, 28))
