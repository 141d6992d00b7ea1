import pytest
import torch

from jetsynth.compact import alive_outputs, compact, expand_state, propagate_dead
from jetsynth.genome import ancestor_genome
from jetsynth.network import Layer


def _linear_chain():
    return [
        Layer("a", "linear", 3, 2, 1, 1),
        Layer("b", "linear", 2, 3, 1, 1),
    ]


def test_propagate_dead_by_hand():
    layers = _linear_chain()
    masks = {
        "a": torch.tensor([[1, 1], [0, 0], [1, 0]], dtype=torch.bool),  # unit 1 has no input
        "b": torch.tensor([[1, 1, 0], [0, 1, 0]], dtype=torch.bool),  # unit 2 is read by nobody
    }
    out = propagate_dead(masks, layers)
    assert out["a"].tolist() == [[True, True], [False, False], [False, False]]
    assert out["b"].tolist() == [[True, False, False], [False, False, False]]
    assert [o.tolist() for o in alive_outputs(out, layers)] == [[0], [0, 1]]


def _random_masks(genome, seed, drop_units=0.4, drop_synapses=0.3):
    gen = torch.Generator().manual_seed(seed)
    masks = {}
    for layer in genome.layers:
        shape = genome.masks[layer.name].shape
        mask = torch.rand(shape, generator=gen) > drop_synapses
        if layer is not genome.layers[-1]:
            dead = torch.rand(layer.out_units, generator=gen) < drop_units
            dead[0] = False
            mask[dead] = False
        mask.view(layer.out_units, -1)[0, 0] = True
        masks[layer.name] = mask
    return propagate_dead(masks, genome.layers)


@pytest.mark.parametrize(
    ("arch", "shape"),
    [("lenet5", (1, 28, 28)), ("alexnet-cifar", (3, 32, 32)), ("user_models:tiny_bn", (1, 28, 28))],
)
def test_compacted_net_computes_what_the_masked_net_computes(arch, shape):
    genome = ancestor_genome(arch, shape, 10, seed=0)
    child = genome.with_masks(_random_masks(genome, 1), genome.lineage)
    full = child.build().eval()
    for module in full.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
    result = compact(full, child.masks, child.layers)
    small = result.model.eval()
    x = torch.randn(4, *shape)
    with torch.no_grad():
        assert torch.allclose(full(x), small(x), atol=1e-5)
    params = sum(p.numel() for p in small.parameters())
    assert params < sum(p.numel() for p in full.parameters())


def test_expand_state_round_trips():
    genome = ancestor_genome("user_models:tiny_bn", (1, 28, 28), 10, seed=0)
    child = genome.with_masks(_random_masks(genome, 2), genome.lineage)
    result = compact(child.build(), child.masks, child.layers)
    state = expand_state(result, child.layers, child.state)
    for key, value in child.state.items():
        if key.endswith("weight") or key.endswith("bias"):
            assert torch.equal(state[key], value), key
