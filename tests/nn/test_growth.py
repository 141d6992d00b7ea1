"""R2R transforms (seed 003): zero-output blocks, function preservation, learning new weights."""

import copy

import pytest
import torch
from torch import nn

from jetsynth.errors import JetsynthError
from jetsynth.nn.growth import (
    GrownLayer,
    PaddedDeeperBlock,
    R2RBlock,
    Transform,
    apply_transform,
    join_arch,
    random_transform,
    split_arch,
)
from jetsynth.nn.models import lenet5, resolve_factory, small_cnn


def _chain(model, transforms):
    for t in transforms:
        apply_transform(model, t)
    return model


CASES = [
    [Transform("wide", "0", 1, 2, 1)],
    [Transform("wide", "4", 3, 3, 1)],
    [Transform("wide", "8", 5, 2, 1)],
    [Transform("deep", "0", 1, 2, 1)],
    [Transform("deep", "4", 3, 2, 1)],
    [Transform("deep", "8", 5, 4, 1)],
    [Transform("deep", "4", 3, 2, 1, 48)],  # a wider layer (48 channels) in front of a 32-input conv
    [Transform("deep", "0", 5, 2, 1, 3)],  # in front of the first conv: the image zero-padded
    [Transform("wide", "0", 5, 2, 1), Transform("deep", "0", 3, 2, 2), Transform("wide", "0", 1, 1, 3),
     Transform("wide", "0.wide1.expand", 3, 2, 4), Transform("deep", "0.deep2.project", 1, 2, 5),
     Transform("deep", "8", 3, 2, 6), Transform("wide", "4", 5, 2, 7)],
    [Transform("deep", "8", 5, 2, 1, 40), Transform("wide", "8", 3, 2, 2), Transform("deep", "8", 1, 2, 3),
     Transform("deep", "8.deep1.feed", 1, 2, 4, 12), Transform("wide", "8.deep1.expand", 3, 2, 5),
     Transform("deep", "4", 3, 2, 6, 36)],
]


@pytest.mark.parametrize("transforms", CASES)
@pytest.mark.parametrize("train", [True, False])
def test_transforms_preserve_the_function(transforms, train):
    torch.manual_seed(0)
    before = small_cnn((1, 16, 16), 10)
    with torch.no_grad():  # non-trivial batch-norm statistics for eval mode
        for module in before.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    after = _chain(copy.deepcopy(before), transforms)
    before.train(train)
    after.train(train)
    x = torch.randn(16, 1, 16, 16)
    assert torch.allclose(before(x), after(x), atol=1e-5, rtol=0)


def test_existing_weights_are_the_same_tensors():
    model = small_cnn((1, 16, 16), 10)
    weight = model[0].weight
    values = weight.detach().clone()
    apply_transform(model, Transform("wide", "0", 3, 2, 1))
    assert isinstance(model[0], GrownLayer) and model[0].base.weight is weight
    assert torch.equal(model[0].base.weight, values)


def test_linear_layers_and_cropping_hosts_grow_too():
    torch.manual_seed(1)
    before = lenet5((1, 28, 28), 10)  # 5x5 convs without padding: a 1x1 block crops 2 pixels
    after = _chain(copy.deepcopy(before), [Transform("wide", "0", 1, 2, 1), Transform("wide", "3", 3, 2, 2),
                                           Transform("wide", "7", 1, 4, 3), Transform("deep", "7", 1, 4, 4)])
    x = torch.randn(8, 1, 28, 28)
    assert torch.allclose(before.train()(x), after.train()(x), atol=1e-5, rtol=0)


def test_block_outputs_zero_yet_every_weight_gets_a_gradient():
    block = R2RBlock(True, 3, 5, 3, 4, padding=1).zero_init(torch.Generator().manual_seed(0))
    x = torch.randn(8, 3, 6, 6)
    out = block(x)
    assert out.abs().max() < 1e-6
    (out * torch.randn_like(out)).sum().backward()
    assert block.expand.weight.grad.abs().sum() > 0
    assert block.project.weight.grad.abs().sum() > 0
    g = block.expand.weight.grad
    assert torch.allclose(g[:4], -g[4:], atol=1e-6)  # the pair's gradients are opposite


def test_symmetry_breaks_after_a_few_updates():
    torch.manual_seed(0)
    model = _chain(small_cnn((1, 12, 12), 4), [Transform("wide", "4", 3, 3, 1)])
    block = model[4].wide1
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(32, 1, 12, 12), torch.randint(0, 4, (32,))
    for _ in range(3):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    w, beta = block.expand.weight, block.project.weight
    assert (w[:3] - w[3:]).abs().max() > 1e-4
    assert (beta[:, :3] + beta[:, 3:]).abs().max() > 1e-4
    assert block.norm.running_mean.abs().sum() > 0


def test_the_architecture_name_rebuilds_the_grown_network():
    arch = join_arch("small-cnn", CASES[-1])
    assert "deep(8,5,2,1,40)" in arch
    assert split_arch(arch) == ("small-cnn", tuple(CASES[-1]))
    a = resolve_factory(arch, trusted=False)((1, 16, 16), 10)
    b = resolve_factory(arch, trusted=False)((1, 16, 16), 10)
    state_a, state_b = a.state_dict(), b.state_dict()
    new = [k for k in state_a if "wide" in k or "deep" in k]
    assert new and all(torch.equal(state_a[k], state_b[k]) for k in new)  # seeded by the id


def test_bad_transforms_are_refused_with_one_line():
    model = small_cnn((1, 16, 16), 10)
    with pytest.raises(JetsynthError, match="kernels"):
        apply_transform(model, Transform("wide", "0", 7, 2, 1))
    with pytest.raises(JetsynthError, match="no layer"):
        apply_transform(model, Transform("wide", "99", 3, 2, 1))
    with pytest.raises(JetsynthError, match="not an R2R transform"):
        split_arch("small-cnn|grow(0,3,2,1)")
    with pytest.raises(JetsynthError, match="only deep transforms take a channel count"):
        split_arch("small-cnn|wide(0,3,2,1,40)")
    with pytest.raises(JetsynthError, match="needs more than the 16 channels it reads, not 16"):
        apply_transform(model, Transform("deep", "4", 3, 2, 1, 16))
    apply_transform(model, Transform("deep", "4", 3, 2, 2, 20))
    with pytest.raises(JetsynthError, match="already has a wider layer in front"):
        apply_transform(model, Transform("deep", "4", 3, 2, 3, 24))


def test_random_transforms_never_touch_the_output_layer():
    model = small_cnn((1, 16, 16), 10)
    generator = torch.Generator().manual_seed(0)
    layers = {random_transform(model, "13", uid, generator).layer for uid in range(50)}
    assert layers <= {"0", "4", "8"} and len(layers) == 3


def test_a_linear_block_trains_on_a_batch_of_one():
    model = _chain(lenet5((1, 28, 28), 10), [Transform("wide", "7", 1, 2, 1)]).train()
    model(torch.randn(1, 1, 28, 28)).sum().backward()
    assert model[7].wide1.expand.weight.grad is not None


def test_a_wider_deeper_layer_zero_pads_its_residual_and_every_new_weight_learns():
    torch.manual_seed(0)
    model = _chain(small_cnn((1, 12, 12), 4), [Transform("deep", "4", 3, 2, 1, 24)]).train()
    layer = model[4]
    block = layer.deep1
    assert isinstance(block, PaddedDeeperBlock) and block.grow.weight.shape[0] == 8
    assert block.feed.weight.shape == (layer.base.out_channels, 8, 3, 3)
    x = torch.randn(8, 16, 12, 12)
    old, new = block.split(x)
    assert old.shape == x.shape
    assert torch.allclose(old, x, atol=1e-6) and new.abs().max() < 1e-6  # z = pad(x) at init
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    images, labels = torch.randn(32, 1, 12, 12), torch.randint(0, 4, (32,))
    for step in range(2):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(images), labels).backward()
        for weight in (block.expand.weight, block.project.weight, block.grow.weight):
            assert weight.grad.abs().sum() > 1e-4
        # feed reads the new channels, zero until the first update makes them live
        assert (block.feed.weight.grad.abs().sum() > 1e-4) == (step > 0)
        optimizer.step()
    beta = block.grow.weight
    assert (beta[:, :2] + beta[:, 2:]).abs().max() > 1e-4  # the pairs no longer cancel
    assert block.split(x)[1].abs().max() > 1e-4


def test_random_transforms_include_wider_deeper_layers_and_keep_the_function():
    torch.manual_seed(0)
    before = small_cnn((1, 16, 16), 10).eval()
    after = copy.deepcopy(before)
    generator = torch.Generator().manual_seed(3)
    drawn = []
    for uid in range(1, 41):
        transform = random_transform(after, "13", uid, generator)
        apply_transform(after, transform)
        drawn.append(transform)
    shapes = {(t.kind, bool(t.channels)) for t in drawn}
    assert shapes == {("wide", False), ("deep", False), ("deep", True)}
    assert {t.kernel for t in drawn} == {1, 3, 5}
    for t in drawn:
        if t.channels:  # the block's own width is added to what the host reads
            host = _resolve_host(after, t.layer)
            assert t.channels == host + 2 * t.pairs
    x = torch.randn(8, 1, 16, 16)
    assert (before(x) - after.eval()(x)).abs().max() < 1e-5


def _resolve_host(after, layer):
    from jetsynth.nn.growth import _host, _resolve
    module = _host(_resolve(after, layer)[2])
    return module.in_channels if isinstance(module, nn.Conv2d) else module.in_features


def test_a_wider_deeper_layer_keeps_a_hand_computed_output():
    """y = 2·x through a 1×1 conv; a 3-channel layer in front (the image zero-padded by 2
    channels) leaves y = 2·x for any x."""
    conv = nn.Conv2d(1, 1, 1, bias=False)
    with torch.no_grad():
        conv.weight.fill_(2.0)
    model = nn.Sequential(conv, nn.Flatten()).eval()
    apply_transform(model, Transform("deep", "0", 3, 1, 1, 3))
    x = torch.tensor([[[[1.0, -2.0], [0.5, 3.0]]]])
    assert torch.allclose(model(x), torch.tensor([[2.0, -4.0, 1.0, 6.0]]), atol=1e-5)
    assert model[0].deep1.feed.weight.shape == (1, 2, 1, 1)


def test_a_host_with_a_wider_layer_in_front_is_deepened_at_its_width_instead():
    model = small_cnn((1, 16, 16), 10)
    apply_transform(model, Transform("deep", "4", 3, 2, 1, 20))
    generator = torch.Generator().manual_seed(0)
    for uid in range(2, 60):
        t = random_transform(model, "13", uid, generator, shapes=("wider-deep",))
        assert t.kind == "deep"
        assert (t.channels == 0) == (t.layer == "4")
