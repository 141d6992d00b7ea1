"""`--arch timm:NAME` and `--arch torchvision:NAME`: a library's model by name, built for the data's
classes and channels. Neither library imports on this machine (torchvision does not fit the CPU
torch, timm needs it), so the command-line tests stand them in with two thin packages of the same
calling convention; the real libraries are tried where importable."""

import importlib
import sys
import textwrap

import pytest
from click.testing import CliRunner

from jetsynth.cli.main import cli
from jetsynth.errors import JetsynthError
from jetsynth.nn.models import resolve_factory
from jetsynth.run.rundir import RunDirectory

NET = """
from torch import nn


def _net(channels, classes):
    return nn.Sequential(nn.Conv2d(channels, 6, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(6 * 13 * 13, classes))
"""
TIMM = NET + """

def list_models(pretrained=False):
    return ["tiny"]


def create_model(name, pretrained=False, num_classes=1000, in_chans=3):
    return _net(in_chans, num_classes)
"""
TORCHVISION_MODELS = NET + """

def list_models():
    return ["tiny"]


def get_model(name, weights=None, num_classes=1000):
    assert weights is None
    return _net(3, num_classes)
"""


@pytest.fixture
def libraries(tmp_path, monkeypatch):
    """Stand-ins for timm and torchvision on sys.path (after Torch-Pruning is imported: it reads
    the real timm's internals when timm imports)."""
    import torch_pruning  # noqa: F401

    root = tmp_path / "site"
    (root / "timm").mkdir(parents=True)
    (root / "timm" / "__init__.py").write_text(textwrap.dedent(TIMM))
    (root / "torchvision" / "models").mkdir(parents=True)
    (root / "torchvision" / "__init__.py").write_text("")
    (root / "torchvision" / "models" / "__init__.py").write_text(textwrap.dedent(TORCHVISION_MODELS))
    monkeypatch.syspath_prepend(str(root))
    importlib.invalidate_caches()
    yield root
    for name in [n for n in sys.modules if n.split(".")[0] in ("timm", "torchvision")]:
        del sys.modules[name]


def _evolve(arch, run_dir):
    return CliRunner().invoke(cli, ["evolve", "--arch", arch, "--run-dir", str(run_dir), "--subset", "0.2",
                                    "--generations", "2", "--ancestor-epochs", "1", "--epochs", "1"])


@pytest.mark.parametrize("arch", ["timm:tiny", "torchvision:tiny"])
def test_a_library_model_by_name_evolves_on_gray_digits(libraries, tmp_path, arch):
    result = _evolve(arch, tmp_path / "run")
    assert result.exit_code == 0, result.output
    genome = RunDirectory(tmp_path / "run").genome("g02-m00")
    assert genome.arch == arch and genome.state["0.weight"].shape[1] == 1  # the digits' one channel
    assert "--arch" not in result.output.strip().splitlines()[-1]  # no user code to allow


def test_library_names_give_one_clear_line(libraries, tmp_path):
    cases = {
        "timm:create_model": "timm has no model 'create_model' (--arch timm:create_model): give a name "
                             "from timm.list_models(), e.g. --arch timm:resnet18",
        "torchvision.models:resnet18": "--arch torchvision.models:resnet18 names torchvision's own "
                                       "constructor, which does not take jetsynth's (input_shape, "
                                       "num_classes): give --arch torchvision:MODEL, e.g. --arch "
                                       "torchvision:resnet18",
    }
    for arch, line in cases.items():
        result = _evolve(arch, tmp_path / arch)
        assert result.exit_code == 2 and result.output.strip().splitlines()[-1] == f"error: {line}"
        assert not (tmp_path / arch).exists()


def test_a_missing_library_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(JetsynthError, match=r"^`arch` timm:resnet18 needs timm, which is not installed "
                                            r"here: pip install timm \(an optional extra\)"):
        resolve_factory("timm:resnet18", trusted=False)


def test_module_function_finds_modules_in_the_current_directory(tmp_path, monkeypatch):
    (tmp_path / "here_net.py").write_text(textwrap.dedent(NET) + "\n\ndef net(shape, classes):\n"
                                          "    return _net(shape[0], classes)\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    result = _evolve("here_net:net", tmp_path / "run")
    assert result.exit_code == 0, result.output
    sys.modules.pop("here_net", None)


def test_real_timm_models_build_for_the_data():
    timm = pytest.importorskip("timm", reason="timm is not importable here (it needs torchvision)")
    model = resolve_factory("timm:resnet18", trusted=False)((1, 32, 32), 10)
    assert model.fc.out_features == 10 and model.conv1.in_channels == 1 and timm is not None
