import importlib
import importlib.util
import json
from pathlib import Path

import pytest
import torch

from jetsynth.errors import JetsynthError
from jetsynth.nn.models import (
    ARCHITECTURES,
    build_model,
    canonical_arch,
    check_input_shape,
    resolve_factory,
    stored_factories,
)


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
        ("user_models:", "unknown architecture"),
        ("no_such_module:f", "cannot import"),
        ("user_models:missing", "no callable"),
        ("user_models:not_a_module", "not a torch nn.Module"),
    ],
)
def test_bad_architectures(arch, message):
    with pytest.raises(JetsynthError, match=message):
        build_model(arch, (1, 28, 28), 10)


KEYS = Path(__file__).parents[1] / "torchvision_keys.json"
TORCHVISION = {"resnet18": "resnet18", "mobilenet-v2": "mobilenet_v2"}


def _keys(model: torch.nn.Module) -> list[list]:
    return [[k, list(v.shape)] for k, v in model.state_dict().items()]


@pytest.mark.parametrize("arch", ["resnet18", "mobilenet-v2"])
def test_state_dict_matches_the_checked_in_torchvision_layout(arch):
    assert _keys(build_model(arch, (3, 224, 224), 1000)) == json.loads(KEYS.read_text())[arch]


@pytest.mark.parametrize(("arch", "params", "entries"),
                         [("resnet18", 11_689_512, 122), ("mobilenet-v2", 3_504_872, 314)])
def test_torchvision_facts_by_hand(arch, params, entries):
    model = build_model(arch, (3, 224, 224), 1000)
    assert sum(p.numel() for p in model.parameters()) == params
    assert len(model.state_dict()) == entries
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    expected = {
        "resnet18": {"conv1.weight": (64, 3, 7, 7), "layer1.1.conv2.weight": (64, 64, 3, 3),
                     "layer2.0.downsample.0.weight": (128, 64, 1, 1),
                     "layer4.1.bn2.running_var": (512,), "fc.weight": (1000, 512), "fc.bias": (1000,)},
        "mobilenet-v2": {"features.0.0.weight": (32, 3, 3, 3), "features.1.conv.0.0.weight": (32, 1, 3, 3),
                         "features.1.conv.1.weight": (16, 32, 1, 1), "features.1.conv.2.weight": (16,),
                         "features.2.conv.0.0.weight": (96, 16, 1, 1),
                         "features.2.conv.1.0.weight": (96, 1, 3, 3), "features.2.conv.3.bias": (24,),
                         "features.17.conv.2.weight": (320, 960, 1, 1),
                         "features.18.0.weight": (1280, 320, 1, 1), "classifier.1.weight": (1000, 1280)},
    }[arch]
    assert {k: shapes.get(k) for k in expected} == expected
    assert "layer1.0.downsample.0.weight" not in shapes


@pytest.mark.parametrize("arch", ["resnet18", "mobilenet-v2"])
def test_keys_and_shapes_equal_torchvision(arch):
    try:
        import torchvision
    except ImportError:
        pytest.skip("torchvision is not installed here; the checked-in key list stands in for it")
    theirs = getattr(torchvision.models, TORCHVISION[arch])(num_classes=7)
    ours = build_model(arch, (3, 64, 64), 7)
    assert _keys(ours) == _keys(theirs)
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    ours.load_state_dict(theirs.state_dict())


@pytest.mark.parametrize("arch", ["resnet18", "mobilenet-v2"])
def test_adapts_channels_and_classes_and_runs_on_32x32(arch):
    model = build_model(arch, (1, 32, 32), 10)
    first = next(v for k, v in model.state_dict().items() if k.endswith("weight"))
    assert first.shape[1] == 1
    model.eval()
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 10)


def test_initialised_like_torchvision():
    torch.manual_seed(0)
    model = build_model("mobilenet-v2", (3, 32, 32), 10)
    assert torch.all(model.features[0][1].weight == 1) and torch.all(model.features[0][1].bias == 0)
    assert torch.all(model.classifier[1].bias == 0)
    assert float(model.classifier[1].weight.detach().std()) == pytest.approx(0.01, rel=0.1)
    conv = build_model("resnet18", (3, 32, 32), 10).layer3[0].conv1.weight  # fan out 256·9
    assert float(conv.detach().std()) == pytest.approx((2 / (256 * 9)) ** 0.5, rel=0.1)


@pytest.mark.parametrize("arch", ["resnet18", "mobilenet-v2"])
def test_torch_pruning_traces_and_prunes_every_group(arch):
    tp = pytest.importorskip("torch_pruning")
    model = build_model(arch, (3, 32, 32), 10).eval()
    example = torch.randn(1, 3, 32, 32)
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=example)
    head = model.fc if arch == "resnet18" else model.classifier[1]
    before = sum(p.numel() for p in model.parameters())
    pruned = 0
    for group in graph.get_all_groups(ignored_layers=[head],
                                      root_module_types=[torch.nn.Conv2d, torch.nn.Linear]):
        group.prune(idxs=[0, 1])
        pruned += 1
    assert pruned == {"resnet18": 12, "mobilenet-v2": 25}[arch]
    assert sum(p.numel() for p in model.parameters()) < before
    assert model(example).shape == (1, 10)


def test_file_factory(tmp_path):
    path = tmp_path / "my_nets.py"
    path.write_text("from torch import nn\n\n"
                    "def small(input_shape, num_classes):\n"
                    "    return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, num_classes))\n\n"
                    "def broken(input_shape, num_classes):\n"
                    "    raise ValueError('no such size')\n\n"
                    "def number(input_shape, num_classes):\n"
                    "    return 3\n")
    assert build_model(f"{path}:small", (1, 28, 28), 10)(torch.zeros(1, 1, 28, 28)).shape == (1, 10)
    with pytest.raises(JetsynthError, match="failed to build a model: no such size"):
        build_model(f"{path}:broken", (1, 28, 28), 10)
    with pytest.raises(JetsynthError, match="returned int, not a torch nn.Module"):
        build_model(f"{path}:number", (1, 28, 28), 10)
    with pytest.raises(JetsynthError, match="no callable 'missing'"):
        build_model(f"{path}:missing", (1, 28, 28), 10)
    with pytest.raises(JetsynthError, match="no file"):
        build_model(f"{tmp_path / 'absent.py'}:small", (1, 28, 28), 10)
    (tmp_path / "bad.py").write_text("raise RuntimeError('boom')\n")
    with pytest.raises(JetsynthError, match="failed: RuntimeError: boom"):
        build_model(f"{tmp_path / 'bad.py'}:f", (1, 28, 28), 10)
    assert canonical_arch("my_nets.py:small").startswith("/")


def test_untrusted_user_code_is_never_imported(tmp_path):
    marker = tmp_path / "imported"
    (tmp_path / "side_effect.py").write_text(f"open({str(marker)!r}, 'w').close()\n"
                                             "def f(shape, classes): ...\n")
    for arch in (f"{tmp_path / 'side_effect.py'}:f", "subprocess:call"):
        with pytest.raises(JetsynthError, match="user code.*--trust-code") as error:
            resolve_factory(arch, trusted=False)
        assert "\n" not in str(error.value)
    assert not marker.exists()
    assert resolve_factory("resnet18", trusted=False) is ARCHITECTURES["resnet18"]


def test_builtins_are_a_lookup(monkeypatch):
    def no_import(*args, **kwargs):
        raise AssertionError("a built-in architecture imported something")

    monkeypatch.setattr(importlib, "import_module", no_import)
    monkeypatch.setattr(importlib.util, "spec_from_file_location", no_import)
    for arch in ARCHITECTURES:
        assert resolve_factory(arch, trusted=False) is ARCHITECTURES[arch]
        assert resolve_factory(arch, trusted=True) is ARCHITECTURES[arch]


def test_stored_factories_follow_the_command_line():
    assert stored_factories("lenet5", None, False, "RUN") == {"lenet5": ARCHITECTURES["lenet5"]}
    with pytest.raises(JetsynthError, match="user code"):
        stored_factories("user_models:tiny_bn", None, False, "RUN")
    assert "user_models:tiny_bn" in stored_factories("user_models:tiny_bn", None, True, "RUN")
    assert "user_models:tiny_bn" in stored_factories("user_models:tiny_bn", "user_models:tiny_bn", False,
                                                     "RUN")
    with pytest.raises(JetsynthError, match="RUN was made with `arch` user_models:tiny_bn, not lenet5"):
        stored_factories("user_models:tiny_bn", "lenet5", False, "RUN")


@pytest.mark.parametrize(("shape", "classes"), [(["touch", "x"], 10), ([1, 28], 10), ([1, 0, 28], 10),
                                                ([True, 28, 28], 10), ((1, 28, 28), "10"), ((1, 28, 28), 0)])
def test_stored_shapes_are_checked_as_data(shape, classes):
    with pytest.raises(JetsynthError, match="genome.json: (input_shape|num_classes) must be"):
        check_input_shape(shape, classes, "genome.json")
