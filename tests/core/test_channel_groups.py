import pytest
import torch

from jetsynth.core.channel_groups import channel_strengths, group_size, grouped, live_in_space, off_group
from jetsynth.core.genome import Lineage, ancestor_genome, topology_for
from jetsynth.core.synthesis import SynthesisConfig, synthesize
from jetsynth.nn.compact import compact
from jetsynth.nn.models import resolve_factory
from jetsynth.nn.structure import grid, kept_channels, macs, settle


def _trace(arch, input_shape, classes):
    return topology_for(arch, input_shape, classes, resolve_factory(arch, trusted=True))


def _full(topology):
    return {layer.name: torch.ones(layer.out_units, layer.in_units * layer.kernel, dtype=torch.bool)
            for layer in topology.layers}


def _by_index(topology):
    """Channel strengths by hand: channel c of every space weighs c, so the weakest is the lowest."""
    return [torch.arange(space.size, dtype=torch.float32) for space in topology.spaces]


def test_group_size_by_hand():
    assert [group_size(n, 16, 8) for n in (0, 1, 8, 9, 15)] == [0, 8, 8, 16, 16]
    assert group_size(81, 84, 8) == 84  # never more than the whole space
    assert group_size(5, 6, 8) == 6
    assert group_size(13, 16, 1) == 13


@pytest.fixture(scope="module")
def depthwise():
    return _trace("user_models:inverted_residual", (3, 8, 8), 5)


def test_depthwise_space_counts_once_and_fills_with_its_strongest_dead_channels(depthwise):
    inner = depthwise.layer("expand").out_space
    masks = _full(depthwise)
    masks["expand"][:5] = False  # channels 0-4 of expand/dw die: 11 of 16 live
    assert int(live_in_space(depthwise, settle(depthwise, masks), inner).sum()) == 11
    out = grouped(depthwise, masks, _full(depthwise), _by_index(depthwise), 4, "fill")
    live = live_in_space(depthwise, out, inner)
    # 11 -> 12: channel 4, the strongest dead one, comes back through expand, dw and project
    assert live.tolist() == [False] * 4 + [True] * 12
    assert out["expand"][4].all() and out["dw"][4].all()
    assert grid(out["project"], depthwise.layer("project"))[:, 4].all()
    assert off_group(depthwise, out, 4) == []


def test_depthwise_space_trims_its_weakest_live_channels(depthwise):
    inner = depthwise.layer("expand").out_space
    masks = _full(depthwise)
    masks["expand"][:5] = False
    out = grouped(depthwise, masks, _full(depthwise), _by_index(depthwise), 4, "trim")
    # 11 -> 8: the three weakest live channels (5, 6, 7) go, with their depthwise filters
    assert live_in_space(depthwise, out, inner).tolist() == [False] * 8 + [True] * 8
    assert not out["dw"][5:8].any()
    assert not grid(out["project"], depthwise.layer("project"))[:, 5:8].any()


@pytest.fixture(scope="module")
def residual():
    return _trace("resnet-small", (3, 16, 16), 4)


def test_residual_stream_counts_once(residual):
    stream = residual.layer("0").out_space
    masks = _full(residual)
    masks["0"][:3] = False  # the stem drops channels 0-2 but the block still writes them:
    out = grouped(residual, masks, _full(residual), _by_index(residual), 8, "fill")
    assert int(live_in_space(residual, out, stream).sum()) == 16  # one space, still whole
    masks["3.conv2"][:3] = False  # now neither producer writes them: 13 live channels
    out = grouped(residual, masks, _full(residual), _by_index(residual), 8, "trim")
    live = live_in_space(residual, out, stream)
    assert live.tolist() == [False] * 8 + [True] * 8  # 13 -> 8, both producers lose 3-7
    assert not out["0"][3:8].any() and not out["3.conv2"][3:8].any()
    out = grouped(residual, masks, _full(residual), _by_index(residual), 8, "fill")
    assert int(live_in_space(residual, out, stream).sum()) == 16  # 13 -> 16: all three back
    assert out["0"][:3].all() and out["3.conv2"][:3].all()


def test_a_channel_the_parents_never_had_is_not_revived(depthwise):
    inner = depthwise.layer("expand").out_space
    masks = _full(depthwise)
    masks["expand"][:5] = False
    parents = _full(depthwise)
    parents["expand"][:5] = False  # the parents carried only 11: fill cannot reach 12, so trim
    out = grouped(depthwise, masks, parents, _by_index(depthwise), 4, "fill")
    assert int(live_in_space(depthwise, out, inner).sum()) == 8


def test_synthesis_widths_are_what_compaction_and_macs_see(residual):
    factory = resolve_factory("resnet-small", trusted=True)
    parent = ancestor_genome("resnet-small", (3, 16, 16), 4, 0, topology_for(
        "resnet-small", (3, 16, 16), 4, factory))
    config = SynthesisConfig(cluster="filter", keep=0.5, balance=0.0, cluster_pressure=0.9,
                             pressure_on="macs", channel_multiple=8)
    child = synthesize(parent, config, torch.Generator().manual_seed(1), Lineage("g02-m00", 2, 0, ()))
    topology = child.topology
    assert off_group(topology, child.masks, 8) == []
    kept = kept_channels(topology, settle(topology, child.masks))
    assert all(int(k.sum()) % 8 == 0 or int(k.sum()) == 1 for k in kept)
    compacted = compact(child.build().eval(), topology, child.masks)
    assert compacted.macs == sum(macs(topology, child.masks).values())
    widths = [m.out_channels for m in compacted.model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(w % 8 == 0 for w in widths)
    assert compacted.macs < sum(macs(topology, parent.masks).values())


def test_channel_strengths_sum_the_producers(residual):
    masks = _full(residual)
    strengths = channel_strengths(residual, {k: v.float() for k, v in masks.items()})
    stream = residual.layer("0").out_space
    # the stem's filter reads 3 inputs × 9, the block's conv2 16 × 9: every channel weighs 171
    assert strengths[stream].tolist() == [3 * 9 + 16 * 9] * 16


def test_a_trim_that_would_cost_a_class_its_last_reader_is_not_made():
    topology = _trace("lenet5", (1, 28, 28), 10)
    fc1 = topology.layer("7")
    masks = _full(topology)
    masks["7"][10:] = False  # ten fc1 neurons, each the only reader of one class
    masks["9"][:] = False
    masks["9"][torch.arange(10), torch.arange(10)] = True
    out = grouped(topology, masks, masks, _by_index(topology), 8, "fill")
    assert int(live_in_space(topology, out, fc1.out_space).sum()) == 10
    assert off_group(topology, out, 8) == [fc1.out_space]
