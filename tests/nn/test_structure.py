import pytest
import torch
from torch import nn

from jetsynth.core.genome import topology_for
from jetsynth.errors import JetsynthError
from jetsynth.nn.models import resolve_factory
from jetsynth.nn.structure import CLASSES, INPUT, delivered_inputs, kept_channels, macs, settle


def _trace(arch, input_shape, num_classes):
    return topology_for(arch, input_shape, num_classes, resolve_factory(arch, trusted=True))


def _chain(input_shape, num_classes):
    return nn.Sequential(nn.Flatten(), nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, num_classes))


@pytest.fixture(scope="module")
def chain():
    return topology_for("test:chain", (2, 1, 1), 2, _chain)


def test_chain_topology_by_hand(chain):
    first, last = chain.layers
    assert (first.name, first.out_units, first.in_units, first.kernel) == ("1", 3, 2, 1)
    assert first.in_spaces == (INPUT, INPUT)
    assert last.out_space == CLASSES
    assert [(s.size, s.producers, s.readers) for s in chain.spaces] == [(3, ("1",), ("3",))]
    assert last.in_spaces == (first.out_space,) * 3
    assert last.upstream == ("1",)


def test_settle_by_hand(chain):
    masks = {
        "1": torch.tensor([[1, 1], [0, 0], [1, 0]], dtype=torch.bool),  # unit 1 has no input
        "3": torch.tensor([[1, 1, 0], [0, 1, 0]], dtype=torch.bool),  # unit 2 is read by nobody
    }
    out = settle(chain, masks)
    assert out["1"].tolist() == [[True, True], [False, False], [False, False]]
    assert out["3"].tolist() == [[True, False, False], [False, False, False]]
    assert kept_channels(chain, out)[0].tolist() == [True, False, False]
    # MACs of the compacted dense net: 1 unit × 2 inputs, then 2 classes × 1 unit.
    assert macs(chain, out) == {"1": 2, "3": 2}


def test_lenet5_fc1_reads_flattened_channels():
    topology = _trace("lenet5", (1, 28, 28), 10)
    conv1, conv2, fc1, fc2 = topology.layers
    assert (conv2.out_units, conv2.in_units, conv2.kernel, conv2.out_positions) == (50, 20, 25, 64)
    assert (fc1.in_units, fc1.kernel) == (50, 16)
    assert fc1.in_spaces == (conv2.out_space,) * 50 and fc1.in_channels == tuple(range(50))
    assert sum(macs(topology, _full(topology)).values()) == (
        20 * 25 * 576 + 50 * 20 * 25 * 64 + 500 * 800 + 10 * 500)


def _full(topology):
    return {layer.name: torch.ones(layer.out_units, layer.in_units * layer.kernel, dtype=torch.bool)
            for layer in topology.layers}


def test_residual_stream_is_one_space_shared_by_its_producers():
    topology = _trace("resnet-small", (3, 16, 16), 4)
    stream = topology.layer("0").out_space
    assert set(topology.spaces[stream].producers) == {"0", "3.conv2"}
    assert set(topology.spaces[stream].readers) == {"3.conv1", "4.conv1", "4.shortcut.0"}
    assert topology.layer("4.conv1").upstream in (("3.conv2", "0"), ("0", "3.conv2"))


def test_a_residual_channel_dies_only_when_every_producer_drops_it():
    topology = _trace("resnet-small", (3, 16, 16), 4)
    stream = topology.layer("0").out_space
    masks = _full(topology)
    masks["3.conv2"][5] = False
    settled = settle(topology, masks)
    assert kept_channels(topology, settled)[stream][5]
    # the block's own conv1 reads the stem alone, which still writes channel 5
    assert delivered_inputs(topology, settled)["3.conv1"][5]
    masks["0"][5] = False
    settled = settle(topology, masks)
    assert not kept_channels(topology, settled)[stream][5]
    assert not settled["4.conv1"].reshape(32, 16, 9)[:, 5].any()
    assert not delivered_inputs(topology, settled)["3.conv1"][5]


def test_depthwise_conv_sits_in_the_space_it_reads():
    topology = _trace("user_models:inverted_residual", (3, 8, 8), 5)
    dw, expand = topology.layer("dw"), topology.layer("expand")
    assert dw.depthwise and (dw.in_units, dw.kernel) == (1, 9)
    assert dw.out_space == expand.out_space and dw.in_spaces == (expand.out_space,) * 16
    masks = _full(topology)
    masks["expand"][3] = False  # nothing feeds depthwise filter 3 ...
    settled = settle(topology, masks)
    assert not settled["dw"][3].any()  # ... so it dies, and project stops reading channel 3
    assert not settled["project"][:, 3].any()
    assert not kept_channels(topology, settled)[expand.out_space][3]
    masks = _full(topology)
    masks["dw"][7] = False  # a dead depthwise filter: expand's filter 7 is read by nobody
    settled = settle(topology, masks)
    assert not settled["expand"][7].any()


def test_concatenation_maps_back_to_its_branches():
    topology = _trace("user_models:inception", (3, 8, 8), 5)
    a, b, mix = topology.layer("a"), topology.layer("b"), topology.layer("mix")
    assert a.out_space != b.out_space
    assert mix.in_spaces == (a.out_space,) * 6 + (b.out_space,) * 10
    assert mix.in_channels == tuple(range(6)) + tuple(range(10))
    assert set(mix.upstream) == {"a", "b"}


@pytest.mark.parametrize(("arch", "message"), [
    ("user_models:residual", "called twice"),
    ("user_models:grouped", "groups=2"),
])
def test_networks_that_cannot_evolve_are_one_clear_error(arch, message):
    with pytest.raises(JetsynthError, match=message):
        _trace(arch, (1, 28, 28), 10)


def test_a_layer_scale_outside_modules_shrinks_with_its_channels():
    import user_models

    from jetsynth.nn.compact import compact, expand_state

    topology = topology_for("user_models:convnext_block", (1, 28, 28), 10, user_models.convnext_block)
    stream = next(s for s in topology.spaces if any(m.module == "2.gamma" for m in s.members))
    assert {(m.module, m.role, m.dim) for m in stream.members if m.role == "param"} == {
        ("2.gamma", "param", 0), ("3.gamma", "param", 0)}
    torch.manual_seed(0)
    model = topology.build()
    masks = {layer.name: torch.ones_like(model.get_submodule(layer.name).weight, dtype=torch.bool)
             for layer in topology.layers}
    masks["0"][[1, 4]] = False  # stem filters 1 and 4 die: the stream loses channels 1 and 4 ...
    for block in ("2", "3"):  # ... once every writer of the stream drops them
        masks[f"{block}.pwconv2"][[1, 4]] = False
        masks[f"{block}.dwconv"][[1, 4]] = False
    compacted = compact(model, topology, masks)
    gamma = compacted.model.get_submodule("2").gamma
    assert gamma.shape == (14,) and compacted.kept_params["2.gamma"][1].tolist() == [
        0, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]
    compacted.model(torch.zeros(2, 1, 28, 28))  # runs at its new width
    with torch.no_grad():
        gamma.fill_(2.0)
    state = expand_state(compacted, topology, model.state_dict())
    assert state["2.gamma"].tolist() == [2.0, 0.5, 2.0, 2.0, 0.5] + [2.0] * 11  # dead ones kept


def test_a_loose_parameter_of_several_dimensions_is_refused_at_trace_time():
    import user_models

    with pytest.raises(JetsynthError, match=r"^parameter 'mix' \(8, 8\) sits outside any conv, linear or "
                                            r"norm module and has several dimensions longer than 1"):
        topology_for("user_models:mixer", (1, 28, 28), 10, user_models.mixer)
