"""`export --format state-dict`: the compacted member as a plain safetensors state dict that loads
without jetsynth, into a torch module built from the architecture in its metadata."""

import json

import torch
from click.testing import CliRunner
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn

from jetsynth.cli.main import cli
from jetsynth.run.rundir import RunDirectory
from jetsynth.ship.export import compact_genome


def plain_lenet5(channels: int, classes: int) -> nn.Module:
    """LeNet-5 as a user writes it, without jetsynth (28×28 inputs)."""
    return nn.Sequential(nn.Conv2d(channels, 20, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(20, 50, 5),
                         nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(800, 500), nn.ReLU(),
                         nn.Linear(500, classes))


def load_member(path, model: nn.Module) -> nn.Module:
    """The recipe of docs/guide.md (*Bring your model*): give `model` the member's widths from
    the metadata, then its tensors."""
    with safe_open(str(path), "pt") as handle:
        meta = handle.metadata()
    for name, arguments in json.loads(meta["modules"]).items():
        arguments = dict(arguments)
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent), child, getattr(nn, arguments.pop("type"))(**arguments))
    for name, shape in json.loads(meta["parameters"]).items():
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent), child, nn.Parameter(torch.empty(shape)))
    model.load_state_dict(load_file(str(path)))
    return model.eval()


def test_a_member_as_a_state_dict_loads_into_a_plain_torch_module(tmp_path):
    run_dir = tmp_path / "run"
    evolved = CliRunner().invoke(cli, ["evolve", "--run-dir", str(run_dir), "--subset", "0.2",
                                       "--generations", "2", "--ancestor-epochs", "1", "--epochs", "1",
                                       "--keep", "0.5", "--cluster", "filter"])
    assert evolved.exit_code == 0, evolved.output
    out = tmp_path / "member.safetensors"
    result = CliRunner().invoke(cli, ["export", str(run_dir), "-g", "2", "-m", "0", "--format",
                                      "state-dict", "--precision", "fp32", "--channel-multiple", "1",
                                      "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert f"{out}: member g02-m00 as a state dict" in result.output
    with safe_open(str(out), "pt") as handle:
        meta = handle.metadata()
    facts = json.loads(meta["jetsynth"])
    assert facts["member"] == "g02-m00" and facts["arch"] == "lenet5" and facts["precision"] == "fp32"
    modules = json.loads(meta["modules"])
    assert modules["0"]["type"] == "Conv2d" and modules["9"]["out_features"] == 10
    widths = ("in_channels", "out_channels", "in_features", "out_features")
    ancestor = dict(plain_lenet5(1, 10).named_modules())
    shrunk = [name for name, args in modules.items()
              if any(getattr(ancestor[name], k) != v for k, v in args.items() if k in widths)]
    assert shrunk  # the member is compacted: some widths are not the ancestor's
    model = load_member(out, plain_lenet5(1, 10))
    genome = RunDirectory(run_dir).genome("g02-m00")
    reference = compact_genome(genome).model.eval()
    images = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(model(images), reference(images), atol=1e-5)
    onnx = CliRunner().invoke(cli, ["export", str(run_dir), "-g", "2", "-m", "0", "--no-parity",
                                    "--channel-multiple", "16", "-o", str(tmp_path / "member.onnx")])
    assert onnx.exit_code == 0, onnx.output
    own = RunDirectory(run_dir).record("g02-m00").macs
    assert "padded to multiples of 16 channels (--channel-multiple, zeros: same outputs): " in onnx.output
    assert f"MACs per image exported, {own:,} in the member itself (the report's count)" in onnx.output
