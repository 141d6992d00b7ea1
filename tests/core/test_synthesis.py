import pytest
import torch

from jetsynth.core.genome import Lineage, ancestor_genome
from jetsynth.core.synthesis import SynthesisConfig, synthesize
from jetsynth.errors import JetsynthError
from jetsynth.nn.structure import delivered_inputs

CHILD = Lineage("g02-m00", 2, 0, ("g01-m00",))


@pytest.fixture(scope="module")
def parent():
    return ancestor_genome("lenet5", (1, 28, 28), 10, seed=0)


def test_offspring_masks_are_a_subset_of_the_parent(parent):
    child = synthesize(parent, SynthesisConfig(keep=0.5), torch.Generator().manual_seed(1), CHILD)
    grandchild = synthesize(child, SynthesisConfig(keep=0.5), torch.Generator().manual_seed(2),
                            CHILD)
    for name in parent.masks:
        assert not (child.masks[name] & ~parent.masks[name]).any()
        assert not (grandchild.masks[name] & ~child.masks[name]).any()
    for layer in parent.layers:
        weight = grandchild.state[f"{layer.name}.weight"]
        assert (weight[~grandchild.masks[layer.name]] == 0).all()


def test_budget_is_met_in_expectation(parent):
    for keep in (0.8, 0.5):
        child = synthesize(parent, SynthesisConfig(keep=keep), torch.Generator().manual_seed(0),
                           CHILD)
        kept = sum(int(m.sum()) for m in child.masks.values()) / 430500
        assert kept <= keep + 0.01
        assert kept > keep - 0.05  # a few more die with dead units


def test_same_seed_same_offspring(parent):
    a = synthesize(parent, SynthesisConfig(), torch.Generator().manual_seed(7), CHILD).masks
    b = synthesize(parent, SynthesisConfig(), torch.Generator().manual_seed(7), CHILD).masks
    c = synthesize(parent, SynthesisConfig(), torch.Generator().manual_seed(8), CHILD).masks
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_filter_clusters_remove_whole_filters(parent):
    config = SynthesisConfig(cluster="filter", keep=0.3, balance=0.0)
    masks = synthesize(parent, config, torch.Generator().manual_seed(0), CHILD).masks
    conv2 = masks["3"].reshape(50, -1)
    alive_filters = conv2.any(dim=1)
    assert alive_filters.sum() < 50
    kept_share = conv2[alive_filters].float().mean()
    assert kept_share > 0.3  # pressure lands on whole filters, not only scattered synapses


def test_output_classes_survive(parent):
    for seed in range(5):
        child = synthesize(parent, SynthesisConfig(keep=0.02), torch.Generator().manual_seed(seed),
                           CHILD)
        assert child.masks["9"].any(dim=1).all()


def test_stronger_synapses_survive_more_often(parent):
    weights = parent.state["7.weight"]
    masks = synthesize(parent, SynthesisConfig(keep=0.5), torch.Generator().manual_seed(0), CHILD).masks
    ranked = weights.abs().flatten().sort().values
    strong = weights.abs() > ranked[int(0.9 * len(ranked))]
    weak = weights.abs() < ranked[int(0.1 * len(ranked))]
    assert masks["7"][strong].float().mean() > masks["7"][weak].float().mean()


def test_hopeless_parent_is_a_clear_error(parent):
    masks = {k: torch.zeros_like(v) for k, v in parent.masks.items()}
    masks["0"].view(20, -1)[0, 0] = True
    empty = parent.with_masks(masks, parent.lineage)
    with pytest.raises(JetsynthError, match="lost a whole layer"):
        synthesize(empty, SynthesisConfig(), torch.Generator().manual_seed(0), CHILD)


def test_filter_draws_stay_near_the_budget_and_never_keep_everything(parent):
    """With few large clusters one draw can fall far under the budget; the correction must not
    swing the next draw to keeping every synapse."""
    config = SynthesisConfig(cluster="filter", keep=0.75, balance=0.0, cluster_pressure=0.9)
    for seed in range(6):
        child = synthesize(parent, config, torch.Generator().manual_seed(seed), CHILD)
        kept = sum(int(m.sum()) for m in child.masks.values()) / 430500
        assert 0.6 < kept <= 0.75 ** 0.5 + 0.01, (seed, kept)


def test_a_class_is_rescued_only_onto_a_unit_that_keeps_its_inputs(parent):
    """fc1 neuron 0 reads only conv2 filter 0, whose kernels are all gone: it still has
    synapses of its own but dies with its inputs, so it cannot carry a class; neuron 1 reads
    filter 1 and lives."""
    masks = {k: v.clone() for k, v in parent.masks.items()}
    masks["3"][0] = False
    masks["7"][0] = False
    masks["7"][0, :16] = True
    masks["7"][1] = False
    masks["7"][1, 16:32] = True
    live = delivered_inputs(parent.topology, masks)["9"]
    assert live[:2].tolist() == [False, True]
    assert int(live.sum()) == 499


@pytest.mark.parametrize("arch", ["resnet-small", "user_models:inverted_residual",
                                  "user_models:inception"])
def test_filter_clusters_are_channels_of_a_space(arch):
    """With filter clusters every layer writing a channel keeps or loses it together, so the
    spaces shrink, residual streams and depthwise convs' included (were a residual channel one
    cluster per layer, it would die only when all of them drew it away); two such parents mate
    by tag within their intersection, and by position without error."""
    from jetsynth.nn.structure import live_channels

    ancestor = ancestor_genome(arch, (3, 16, 16), 4, seed=0)
    config = SynthesisConfig(cluster="filter", keep=0.7, cluster_pressure=1.0, balance=0.0)
    generator = torch.Generator().manual_seed(3)
    parents = [synthesize(ancestor, config, generator, Lineage(f"p{i}", 2, i)) for i in range(2)]
    topology = ancestor.topology
    shared = [s.index for s in topology.spaces if len(s.producers) > 1]
    for parent in parents:
        live = [int(flags.sum()) for flags in live_channels(topology, parent.masks)]
        assert sum(live) < 0.9 * sum(space.size for space in topology.spaces)
        assert all(n > 0 for n in live)
        assert not shared or any(live[i] < topology.spaces[i].size for i in shared)
    for alignment in ("tag", "position"):
        mated = SynthesisConfig(cluster="filter", keep=0.9, cluster_pressure=1.0, balance=0.0,
                                mates=2, alignment=alignment)
        child = synthesize(parents, mated, generator, CHILD)
        if alignment == "tag":
            for name, mask in child.masks.items():
                if name != topology.output.name:
                    assert not (mask & ~(parents[0].masks[name] & parents[1].masks[name])).any()


def test_mac_pressure_spares_the_cheap_fully_connected_layer(parent):
    from jetsynth.nn.structure import macs

    def draw(pressure_on):
        config = SynthesisConfig(cluster="filter", keep=0.5, balance=0.5, cluster_pressure=0.9,
                                 pressure_on=pressure_on)
        return synthesize(parent, config, torch.Generator().manual_seed(0), CHILD)

    by_synapses, by_macs = draw("synapses"), draw("macs")
    full = macs(parent.topology, parent.masks)
    cost = {name: sum(macs(child.topology, child.masks).values())
            for name, child in (("synapses", by_synapses), ("macs", by_macs))}
    # the MAC budget keeps about half the ancestor's MACs, cutting conv2 ("3", 70 % of them) and
    # sparing fc1's neurons ("7"); the synapse budget lets fc1 (93 % of the synapses) carry
    # the cut, and keeps every conv MAC
    assert cost["macs"] < 0.6 * sum(full.values()) < cost["synapses"]
    assert by_macs.masks["3"].sum() < by_synapses.masks["3"].sum()
    fc1_neurons = {name: int(child.masks["9"].any(dim=0).sum())
                   for name, child in (("synapses", by_synapses), ("macs", by_macs))}
    assert fc1_neurons["macs"] > fc1_neurons["synapses"]


def test_a_prepared_breeding_draws_what_a_fresh_synthesis_draws(parent):
    """--screen draws K offspring from one `prepare`: each draw equals the one a synthesis that
    prepares for itself makes from the same generator state."""
    from jetsynth.core.synthesis import prepare

    config = SynthesisConfig(cluster="filter", keep=0.5, cluster_pressure=1.0, pressure_on="macs")
    breeding = prepare(parent, config)
    shared, fresh = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    for _ in range(3):
        a = synthesize(parent, config, shared, CHILD, breeding)
        b = synthesize(parent, config, fresh, CHILD)
        for name in parent.masks:
            assert torch.equal(a.masks[name], b.masks[name])
            assert torch.equal(a.state[f"{name}.weight"], b.state[f"{name}.weight"])
