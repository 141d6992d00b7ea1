"""Fitting a checkpoint as a transfer: a new head for other classes, a first conv adapted to other
colour channels, and one line for everything that cannot fit."""

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from jetsynth.errors import JetsynthError
from jetsynth.nn.models import architectures_with_keys, build_model
from jetsynth.nn.weights import ChannelChange, HeadChange, load_state_dict, transfer_state


def _resnet(channels: int, classes: int) -> dict:
    return build_model("resnet18", (channels, 32, 32), classes).state_dict()


def _fit(given: dict, wanted: dict, arch: str = "resnet18", head_module: nn.Module | None = None):
    return transfer_state(given, wanted, "imagenet.safetensors", arch, "fc",
                          head_module or nn.Linear(512, 10), ("conv1",), architectures_with_keys)


def test_a_head_for_other_classes_is_replaced_and_the_trunk_kept():
    given, wanted = _resnet(3, 1000), _resnet(3, 10)
    state, transfer = _fit(given, wanted)
    assert transfer.head == HeadChange("fc", 1000, 10) and transfer.channels == ()
    assert torch.equal(state["fc.weight"], wanted["fc.weight"])  # the fresh head
    assert torch.equal(state["layer4.1.conv2.weight"], given["layer4.1.conv2.weight"])
    assert transfer.lines("photos/") == ["fc: 1000 classes → 10 classes of photos/ (new head, trained first)"]


def test_rgb_weights_sum_to_one_channel_and_one_channel_spreads_over_three():
    conv = {"conv1.weight": torch.tensor([1.0, 2.0, 3.0]).reshape(1, 3, 1, 1)}
    state, transfer = _fit(conv, {"conv1.weight": torch.zeros(1, 1, 1, 1)})
    assert state["conv1.weight"].flatten().tolist() == [6.0]  # 1 + 2 + 3: gray x acts as (x, x, x)
    assert transfer.channels == (ChannelChange("conv1", 3, 1, "summed"),)
    assert transfer.lines("xrays/") == ["conv1: RGB weights summed to 1 channel"]
    state, transfer = _fit({"conv1.weight": torch.tensor([6.0]).reshape(1, 1, 1, 1)},
                           {"conv1.weight": torch.zeros(1, 3, 1, 1)})
    assert state["conv1.weight"].flatten().tolist() == [2.0, 2.0, 2.0]  # 6 / 3 each
    assert transfer.channels[0].how == "averaged"


def test_other_classes_and_another_trunk_is_one_line():
    given = _resnet(3, 1000)
    given["layer2.0.conv1.weight"] = torch.zeros(128, 64, 5, 5)
    with pytest.raises(JetsynthError) as error:
        _fit(given, _resnet(3, 10))
    assert str(error.value) == (
        "imagenet.safetensors has 1000 classes and its trunk does not fit resnet18 either (shape of "
        "layer2.0.conv1.weight is (128,64,5,5), the model wants (128,64,3,3)): only the head may "
        "differ; give weights of resnet18 itself (for any number of classes)")


def test_a_head_that_is_not_linear_or_pointwise_is_refused():
    given = {"fc.weight": torch.zeros(1000, 4, 3, 3)}
    with pytest.raises(JetsynthError, match=r"the head 'fc' is a 3×3 conv: jetsynth replaces only a "
                                            r"linear or 1×1 conv head; give weights for 10 classes"):
        _fit(given, {"fc.weight": torch.zeros(10, 4, 3, 3)}, head_module=nn.Conv2d(4, 10, 3))


def test_a_checkpoint_of_another_architecture_names_the_one_it_fits():
    given = build_model("mobilenet-v2", (3, 32, 32), 1000).state_dict()
    with pytest.raises(JetsynthError) as error:
        _fit(given, _resnet(3, 10))
    message = str(error.value)
    assert message.startswith("imagenet.safetensors does not fit resnet18: missing conv1.weight")
    assert message.endswith("; these are the tensors of --arch mobilenet-v2")
    with pytest.raises(JetsynthError, match="looks like a checkpoint of another architecture"):
        _fit({"encoder.weight": torch.zeros(3)}, _resnet(3, 10))


def test_nan_weights_are_refused():
    given = _resnet(3, 10)
    given["layer1.0.conv1.weight"][0, 0, 0, :2] = float("nan")
    with pytest.raises(JetsynthError, match=r"layer1.0.conv1.weight hold NaN or infinite values"):
        _fit(given, _resnet(3, 10))


def test_torch_compile_prefix_is_unwrapped(tmp_path):
    model = nn.Sequential(nn.Linear(2, 3))
    path = tmp_path / "compiled.safetensors"
    save_file({f"_orig_mod.{k}": v for k, v in model.state_dict().items()}, str(path))
    assert sorted(load_state_dict(path)) == ["0.bias", "0.weight"]
    torch.save({f"module._orig_mod.{k}": v for k, v in model.state_dict().items()}, tmp_path / "both.pt")
    assert sorted(load_state_dict(tmp_path / "both.pt")) == ["0.bias", "0.weight"]
