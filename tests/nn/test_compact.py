import pytest
import torch
from torch import nn

from jetsynth.core.genome import ancestor_genome
from jetsynth.nn.compact import compact, expand_state
from jetsynth.nn.structure import grid, settle

CASES = [
    ("lenet5", (1, 28, 28)),
    ("alexnet-cifar", (3, 32, 32)),
    ("resnet-small", (3, 16, 16)),
    ("resnet18", (3, 32, 32)),
    ("mobilenet-v2", (3, 32, 32)),
    ("user_models:tiny_bn", (1, 28, 28)),
    ("user_models:inception", (3, 8, 8)),
    ("user_models:inverted_residual", (3, 8, 8)),
]


def random_masks(genome, seed, mode, dead_units=0.4, keep=0.6):
    """Random kernel masks, or whole filters switched off, then settled."""
    generator = torch.Generator().manual_seed(seed)
    masks = {}
    for layer in genome.layers:
        if mode == "filter":
            alive = (torch.rand(layer.out_units, generator=generator) > dead_units)[:, None]
            alive = alive.expand(layer.out_units, layer.in_units)
        else:
            alive = torch.rand(layer.out_units, layer.in_units, generator=generator) < keep
        if layer is genome.topology.output:
            alive = torch.ones_like(alive)
        masks[layer.name] = alive[:, :, None].expand(-1, -1, layer.kernel).reshape(
            genome.masks[layer.name].shape).clone()
    return settle(genome.topology, masks)


def _randomise_norms(model, seed):
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            with torch.no_grad():
                module.running_mean.copy_(torch.randn(module.num_features, generator=generator))
                module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
                module.weight.copy_(torch.randn(module.num_features, generator=generator))
                module.bias.copy_(torch.randn(module.num_features, generator=generator))


@pytest.mark.parametrize("mode", ["kernel", "filter"])
@pytest.mark.parametrize(("arch", "shape"), CASES)
def test_compacted_net_computes_what_the_masked_net_computes(arch, shape, mode):
    genome = ancestor_genome(arch, shape, 10, seed=0)
    child = genome.with_masks(random_masks(genome, 1, mode), genome.lineage)
    full = child.build()
    _randomise_norms(full, 2)
    result = compact(full, child.topology, child.masks)
    x = torch.randn(6, *shape)
    for training in (False, True):
        for net in (full, result.model):
            net.train(training)
            for module in net.modules():
                if isinstance(module, nn.Dropout):
                    module.eval()  # its random draws depend on the layer's width
        with torch.no_grad():
            expected, got = full(x), result.model(x)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    if mode == "filter":
        assert result.params < sum(p.numel() for p in full.parameters())
        assert result.macs < sum(p.numel() for p in full.parameters()) * shape[1] * shape[2]


@pytest.mark.parametrize(("arch", "shape"), CASES)
def test_expanding_and_compacting_again_is_the_identity(arch, shape):
    genome = ancestor_genome(arch, shape, 10, seed=0)
    child = genome.with_masks(random_masks(genome, 4, "filter"), genome.lineage)
    first = compact(child.build(), child.topology, child.masks)
    with torch.no_grad():
        for p in first.model.parameters():
            p.add_(0.5)  # "training": every kept value changes
    state = expand_state(first, child.topology, child.state)
    again = compact(child.with_state(state).build(), child.topology, child.masks)
    mine, theirs = first.model.state_dict(), again.model.state_dict()
    assert mine.keys() == theirs.keys()
    for key in mine:
        assert torch.equal(mine[key], theirs[key]), key


def test_expanded_state_keeps_removed_units_at_zero():
    genome = ancestor_genome("user_models:tiny_bn", (1, 28, 28), 10, seed=0)
    child = genome.with_masks(random_masks(genome, 2, "filter"), genome.lineage)
    result = compact(child.build(), child.topology, child.masks)
    state = expand_state(result, child.topology, child.state)
    for key, value in child.state.items():
        if key.endswith("weight") or key.endswith("bias"):
            assert torch.equal(state[key], value), key


def test_tags_survive_compaction():
    """The compact network's rows and columns are the ancestor units named by the kept indices,
    so the gene tags of what survives can be read off the index maps."""
    genome = ancestor_genome("resnet-small", (3, 16, 16), 4, seed=0)
    child = genome.with_masks(random_masks(genome, 5, "filter"), genome.lineage)
    result = compact(child.build(), child.topology, child.masks)
    for layer in child.layers:
        rows = result.kept_out.get(layer.name, torch.arange(layer.out_units))
        cols = result.kept_in.get(layer.name, torch.arange(layer.in_units))
        tags = child.tags[layer.name][rows][:, cols]
        kept = grid(child.masks[layer.name], layer)[rows][:, cols]
        assert torch.equal(result.masks[layer.name].reshape(kept.shape), kept)
        assert tags.shape == result.masks[layer.name].reshape(len(rows), len(cols), -1).shape[:2]
        assert len(set(tags.flatten().tolist())) == tags.numel()


def test_residual_channel_stays_while_any_branch_writes_it():
    genome = ancestor_genome("resnet-small", (3, 16, 16), 4, seed=0)
    masks = {k: v.clone() for k, v in genome.masks.items()}
    masks["3.conv2"][5] = False  # the block's branch stops writing stream channel 5 ...
    model = compact(genome.build(), genome.topology, settle(genome.topology, masks)).model
    assert model[3].conv2.out_channels == 16  # ... the stem still does
    masks["0"][5] = False  # now neither writes it: the whole stream channel goes
    model = compact(genome.build(), genome.topology, settle(genome.topology, masks)).model
    assert (model[0].out_channels, model[3].conv2.out_channels, model[4].conv1.in_channels) == (15, 15, 15)
    assert model[1].num_features == 15


def test_concatenation_coupling():
    genome = ancestor_genome("user_models:inception", (3, 8, 8), 5, seed=0)
    masks = {k: v.clone() for k, v in genome.masks.items()}
    masks["a"][2] = False  # branch a's filter 2 → concat channel 2
    masks["mix"].view(12, 16, 9)[:, 6 + 4] = False  # nobody reads branch b's channel 4
    model = compact(genome.build(), genome.topology, settle(genome.topology, masks)).model
    assert (model.a.out_channels, model.b.out_channels, model.mix.in_channels) == (5, 9, 14)


@pytest.mark.parametrize(("arch", "shape"), [("resnet-small", (3, 16, 16)),
                                              ("user_models:inverted_residual", (3, 8, 8))])
def test_channels_padded_to_a_multiple_compute_the_same(arch, shape):
    genome = ancestor_genome(arch, shape, 10, seed=0)
    child = genome.with_masks(random_masks(genome, 6, "filter"), genome.lineage)
    full = child.build().eval()
    _randomise_norms(full, 2)
    plain = compact(full, child.topology, child.masks)
    padded = compact(full, child.topology, child.masks, multiple=8)
    convs = [m for m in padded.model.modules() if isinstance(m, nn.Conv2d)]
    assert all(m.out_channels % 8 == 0 or m.out_channels == full.get_submodule(n).out_channels
               for n, m in padded.model.named_modules() if isinstance(m, nn.Conv2d))
    assert convs and padded.macs >= plain.macs and padded.params >= plain.params
    x = torch.randn(4, *shape)
    with torch.no_grad():
        torch.testing.assert_close(padded.model.eval()(x), full(x), atol=1e-5, rtol=1e-5)
