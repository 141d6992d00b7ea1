import pytest
import torch

from jetsynth.errors import JetsynthError
from jetsynth.models import build_model
from jetsynth.network import chain_layers, cluster_view


def test_lenet5_chain():
    layers = chain_layers(build_model("lenet5", (1, 28, 28), 10), (1, 28, 28))
    summary = [(x.kind, x.out_units, x.in_units, x.kernel, x.out_positions) for x in layers]
    assert summary == [
        ("conv", 20, 1, 25, 576),
        ("conv", 50, 20, 25, 64),
        ("linear", 500, 50, 16, 1),
        ("linear", 10, 500, 1, 1),
    ]


def test_batch_norms_are_attached():
    layers = chain_layers(build_model("user_models:tiny_bn", (1, 28, 28), 10), (1, 28, 28))
    assert [x.norm for x in layers] == ["1", None, "9", None]


def test_non_chain_model_is_refused():
    with pytest.raises(JetsynthError, match="only chain networks"):
        chain_layers(build_model("user_models:residual", (1, 28, 28), 10), (1, 28, 28))


def test_cluster_views():
    layer = chain_layers(build_model("lenet5", (1, 28, 28), 10), (1, 28, 28))[1]
    weight = torch.zeros(50, 20, 5, 5)
    assert cluster_view(weight, layer, "kernel").shape == (1000, 25)
    assert cluster_view(weight, layer, "filter").shape == (50, 500)
    mask = torch.zeros(50, 20, 5, 5, dtype=torch.bool)
    mask[3, 4, 0, 0] = True
    kernels = cluster_view(mask, layer, "kernel").any(dim=1)
    assert kernels.sum() == 1 and kernels[3 * 20 + 4]
