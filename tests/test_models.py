import pytest
import torch

from jetsynth.errors import JetsynthError
from jetsynth.models import build_model


def test_lenet5_matches_seed_001_shape():
    model = build_model("lenet5", (1, 28, 28), 10)
    weights = sum(p.numel() for n, p in model.named_parameters() if n.endswith("weight"))
    assert weights == 20 * 25 + 50 * 20 * 25 + 800 * 500 + 500 * 10
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_lenet5_adapts_to_colour_and_size():
    assert build_model("lenet5", (3, 96, 96), 10)(torch.zeros(1, 3, 96, 96)).shape == (1, 10)


def test_alexnet_cifar_has_5x5x3_first_layer():
    model = build_model("alexnet-cifar", (3, 32, 32), 10)
    assert model[0].weight.shape == (64, 3, 5, 5)
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 10)


def test_user_factory_hook():
    model = build_model("user_models:tiny_bn", (1, 28, 28), 10)
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.parametrize(
    ("arch", "message"),
    [
        ("vgg", "unknown architecture"),
        ("no_such_module:f", "cannot import"),
        ("user_models:missing", "no callable"),
        ("user_models:not_a_module", "not a torch nn.Module"),
    ],
)
def test_bad_architectures(arch, message):
    with pytest.raises(JetsynthError, match=message):
        build_model(arch, (1, 28, 28), 10)
