"""Bringing a trained model: ImageNet-shaped ResNet-18 weights on a 10-class RGB folder and on a
grayscale folder, through the command line, and the edges a new user hits first."""

import json
import shlex

import pytest
import torch
from click.testing import CliRunner
from conftest import write_image_tree
from safetensors.torch import save_file

from jetsynth.cli.main import cli
from jetsynth.nn.models import build_model
from jetsynth.run.rundir import RunDirectory


def _run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def imagenet(tmp_path_factory):
    """Weights shaped as torchvision's ImageNet ResNet-18 (3 channels, 1000 classes, same keys)."""
    path = tmp_path_factory.mktemp("weights") / "imagenet.safetensors"
    save_file(build_model("resnet18", (3, 32, 32), 1000).state_dict(), str(path))
    return path


def _events(run_dir):
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]


def test_imagenet_weights_on_ten_rgb_classes_get_a_new_head_trained_first(tmp_path, imagenet):
    photos = write_image_tree(tmp_path / "photos", classes=tuple("abcdefghij"), per_class=5,
                              size=(16, 16), mode="RGB")
    run_dir = tmp_path / "run"
    result = _run("evolve", "--arch", "resnet18", "--ancestor-weights", imagenet, "--data",
                  f"folder:{photos}", "--generations", "2", "--ancestor-epochs", "1", "--epochs", "1",
                  "--screen", "1", "--run-dir", run_dir)
    assert result.exit_code == 0, result.output
    assert "fc: 1000 classes → 10 classes of photos/ (new head, trained first)" in result.stderr
    assert "training g01-m00: step 2/2" in result.stderr  # one epoch of the head, one of the whole
    weights = next(e for e in _events(run_dir) if e["event"] == "ancestor_weights")
    assert weights["head"] == {"layer": "fc", "given": 1000, "classes": 10} and weights["channels"] == []
    genome = RunDirectory(run_dir).genome("g01-m00")
    assert genome.extra["transfer"]["head"]["given"] == 1000
    given = build_model("resnet18", (3, 32, 32), 1000).state_dict()
    assert genome.state["layer1.0.conv1.weight"].shape == given["layer1.0.conv1.weight"].shape
    assert RunDirectory(run_dir).record("g02-m00") is not None


def test_rgb_weights_on_grayscale_images_are_summed_to_one_channel(tmp_path, imagenet):
    xrays = write_image_tree(tmp_path / "xrays", classes=("lung", "bone", "skull"), per_class=8,
                             size=(16, 16), mode="L")
    run_dir = tmp_path / "run"
    result = _run("evolve", "--arch", "resnet18", "--ancestor-weights", imagenet, "--data",
                  f"folder:{xrays}", "--generations", "2", "--ancestor-epochs", "1", "--epochs", "1",
                  "--head-epochs", "2", "--screen", "1", "--run-dir", run_dir)
    assert result.exit_code == 0, result.output
    assert "conv1: RGB weights summed to 1 channel" in result.stderr
    assert "fc: 1000 classes → 3 classes of xrays/ (new head, trained first)" in result.stderr
    assert "training g01-m00: step 3/3" in result.stderr
    weights = next(e for e in _events(run_dir) if e["event"] == "ancestor_weights")
    assert weights["channels"] == [{"layer": "conv1", "given": 3, "channels": 1, "how": "summed"}]
    assert RunDirectory(run_dir).genome("g01-m00").state["conv1.weight"].shape == (64, 1, 7, 7)


def test_an_untrained_new_head_is_refused_and_leaves_nothing(tmp_path, imagenet):
    photos = write_image_tree(tmp_path / "photos", classes=("a", "b"), per_class=6, mode="RGB")
    run_dir = tmp_path / "run"
    result = _run("evolve", "--arch", "resnet18", "--ancestor-weights", imagenet, "--data",
                  f"folder:{photos}", "--ancestor-epochs", "0", "--run-dir", run_dir)
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1] == (
        "error: --ancestor-epochs 0 would keep the new head 'fc' untrained (the weights have 1000 "
        "classes, photos/ 2): give --ancestor-epochs 1 or more")
    assert not run_dir.exists()


def test_a_failed_start_leaves_nothing_so_the_corrected_command_just_works(tmp_path):
    bad = tmp_path / "bad.safetensors"
    save_file({"0.weight": torch.full((20, 1, 5, 5), float("nan"))}, str(bad))
    run_dir = tmp_path / "run"
    run_dir.mkdir()  # an empty folder given by the user stays, empty
    for arch, weights in (("user_models:not_a_module", None), ("lenet5", bad)):
        args = ["evolve", "--arch", arch, "--run-dir", run_dir, "--subset", "0.2", "--generations", "1",
                "--ancestor-epochs", "0"] + (["--ancestor-weights", weights] if weights else [])
        result = _run(*args)
        assert result.exit_code == 2 and result.output.strip().splitlines()[-1].startswith("error: ")
        assert run_dir.is_dir() and not any(run_dir.iterdir())
    fresh = tmp_path / "fresh"
    result = _run("evolve", "--arch", "user_models:thousand", "--run-dir", fresh, "--subset", "0.2")
    assert result.output.strip().splitlines()[-1] == (
        "error: the model's last layer '1' writes 1000 outputs but the data has 10 classes: build it "
        "with the num_classes your factory is given")
    assert not fresh.exists()
    result = _run("evolve", "--run-dir", run_dir, "--subset", "0.2", "--generations", "1",
                  "--ancestor-epochs", "0")
    assert result.exit_code == 0, result.output


NET = """
from torch import nn


def net(input_shape, num_classes):
    side = (input_shape[1] - 2) // 2
    return nn.Sequential(nn.Conv2d(input_shape[0], 8, 3), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(8 * side * side, num_classes))
"""


def test_the_ship_line_runs_as_printed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my net.py").write_text(NET)
    result = _run("evolve", "--arch", "my net.py:net", "--run-dir", "runs/tiny", "--subset", "0.3",
                  "--generations", "2", "--ancestor-epochs", "3", "--epochs", "1", "--keep", "0.9")
    assert result.exit_code == 0, result.output
    last = result.output.strip().splitlines()[-1]
    command = last.split(" (", 1)[1].split("): ", 1)[0]
    assert command.startswith("jetsynth export runs/tiny -g ")
    assert command.endswith(f" --arch '{tmp_path / 'my net.py'}:net'")
    exported = _run(*shlex.split(command)[1:])
    assert exported.exit_code == 0, exported.output
    assert (tmp_path / command.split(" -o ")[1].split()[0]).is_file()


def test_an_ancestor_at_chance_warns_and_ships_nothing(tmp_path):
    run_dir = tmp_path / "run"
    result = _run("evolve", "--arch", "user_models:blind", "--run-dir", run_dir, "--subset", "0.3",
                  "--generations", "2", "--ancestor-epochs", "1", "--epochs", "1")
    assert result.exit_code == 0, result.output
    assert "warning: the trained ancestor scores" in result.stderr
    assert "nothing to ship: the ancestor's accuracy" in result.output.strip().splitlines()[-1]
    assert RunDirectory(run_dir).record("g01-m00").chance_accuracy > 0


def test_a_convnext_style_block_evolves_with_filter_clusters(tmp_path):
    import user_models

    from jetsynth.nn.compact import compact

    run_dir = tmp_path / "run"
    result = _run("evolve", "--arch", "user_models:convnext_block", "--cluster", "filter", "--generations",
                  "3", "--population", "2", "--ancestor-epochs", "1", "--epochs", "1", "--subset", "0.3",
                  "--keep", "0.6", "--run-dir", run_dir)
    assert result.exit_code == 0, result.output
    run = RunDirectory(run_dir, {"user_models:convnext_block": user_models.convnext_block})
    genome = run.genome("g03-m01")
    net = compact(genome.build(), genome.topology, genome.masks).model
    assert net.get_submodule("2").gamma.shape[0] == net.get_submodule("0").out_channels < 16
