import pytest
import torch
from torch import nn

from jetsynth.nn.layout import as_channels_last, channels_last


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))


def test_channels_last_changes_the_layout_only_and_restores_it():
    net = _net()
    images = torch.randn(5, 3, 8, 8)
    expected = net(images)
    conv_weight = net[0].weight
    with channels_last(net):
        assert net[0].weight is conv_weight
        assert net[0].weight.is_contiguous(memory_format=torch.channels_last)
        assert not net[0].weight.is_contiguous()
        torch.testing.assert_close(net(as_channels_last(images)), expected)
    assert net[0].weight.is_contiguous()
    assert all(v.is_contiguous() for v in net.state_dict().values())


def test_channels_last_restores_the_layout_when_the_block_fails():
    net = _net()
    with pytest.raises(RuntimeError), channels_last(net):
        raise RuntimeError("stopped")
    assert net[0].weight.is_contiguous()


def test_as_channels_last_leaves_flat_tensors_alone():
    flat = torch.randn(4, 10)
    assert as_channels_last(flat) is flat
    assert as_channels_last(torch.randn(2, 3, 4, 4)).is_contiguous(memory_format=torch.channels_last)
