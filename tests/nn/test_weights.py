import pickle

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import save_file

from jetsynth.cli.main import cli
from jetsynth.errors import JetsynthError
from jetsynth.nn.models import build_model
from jetsynth.nn.weights import fit_state, load_state_dict
from jetsynth.run.config import EvolveConfig
from jetsynth.run.evolve import evolve
from jetsynth.run.rundir import RunDirectory

QUICK = {"data": "digits", "subset": 0.3, "generations": 1, "seed": 3}


class Custom:
    """A class weights_only loading must refuse to rebuild."""

    def __init__(self):
        self.value = 7


def test_safetensors_round_trip_evaluates_the_given_ancestor(tmp_path):
    trained = evolve(EvolveConfig(**QUICK, ancestor_epochs=1), tmp_path / "a")[0]
    state = RunDirectory(tmp_path / "a").genome("g01-m00").state
    path = tmp_path / "lenet5.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    # another seed: the fresh initialisation differs, the given weights replace it
    given = evolve(EvolveConfig(**{**QUICK, "seed": 4}, ancestor_epochs=0, ancestor_weights=str(path)),
                   tmp_path / "b")[0]
    assert given.epochs == 0
    assert given.accuracy == trained.accuracy
    loaded = RunDirectory(tmp_path / "b").genome("g01-m00").state
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    assert '"event": "ancestor_weights"' in (tmp_path / "b" / "events.jsonl").read_text()


def test_zero_ancestor_epochs_only_evaluates(tmp_path):
    record = evolve(EvolveConfig(**QUICK, ancestor_epochs=0), tmp_path / "r")[0]
    assert record.epochs == 0 and 0.0 <= record.accuracy < 0.5


def test_torch_state_dict_loads_with_weights_only_unwrapped_and_unprefixed(tmp_path):
    model = build_model("lenet5", (1, 28, 28), 10)
    path = tmp_path / "ckpt.pt"
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, path)
    state = load_state_dict(path)
    assert list(state) == list(model.state_dict())
    torch.save({"model": model.state_dict()}, path)
    assert list(load_state_dict(path)) == list(model.state_dict())


def test_pickled_objects_are_refused(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pth"
    torch.save({"weight": torch.zeros(2), "extra": Custom()}, path)
    unpickled = []
    monkeypatch.setattr(Custom, "__setstate__", lambda self, s: unpickled.append(s), raising=False)
    refused = r"will not unpickle.*refuses [\w.]*test_weights\.Custom.*safetensors"
    with pytest.raises(JetsynthError, match=refused) as error:
        load_state_dict(path)
    assert "\n" not in str(error.value) and not unpickled
    with open(path, "wb") as handle:
        pickle.dump({"weight": Custom()}, handle)
    with pytest.raises(JetsynthError, match="will not unpickle"):
        load_state_dict(path)


def test_unreadable_files_are_one_line(tmp_path):
    (tmp_path / "junk.bin").write_bytes(b"junk")
    with pytest.raises(JetsynthError, match="neither a safetensors file nor a torch state dict"):
        load_state_dict(tmp_path / "junk.bin")
    with pytest.raises(JetsynthError, match="no file"):
        load_state_dict(tmp_path / "missing.safetensors")


def test_a_mismatch_lists_keys_and_shapes():
    given = build_model("resnet18", (3, 32, 32), 1000).state_dict()
    del given["fc.weight"], given["fc.bias"]
    given["head.weight"] = torch.zeros(1)
    wanted = build_model("resnet18", (1, 32, 32), 10).state_dict()
    with pytest.raises(JetsynthError) as error:
        fit_state(given, wanted, "my.safetensors", "resnet18")
    assert str(error.value) == ("my.safetensors does not fit resnet18: missing fc.weight, fc.bias; "
                                "unexpected head.weight; shape of conv1.weight is (64,3,7,7), the model "
                                "wants (64,1,7,7)")


def test_checkpoints_without_batch_norm_counters_fit():
    wanted = build_model("resnet18", (3, 32, 32), 10).state_dict()
    given = {k: v + 1 for k, v in wanted.items() if not k.endswith("num_batches_tracked")}
    fitted = fit_state(given, wanted, "old.pth", "resnet18")
    assert torch.equal(fitted["conv1.weight"], wanted["conv1.weight"] + 1)
    assert "bn1.num_batches_tracked" in fitted


def test_cli_bad_weights_are_one_line_and_leave_no_run(tmp_path):
    model = build_model("lenet5", (1, 32, 32), 10)  # 32×32 images: the digits are 28×28
    path = tmp_path / "large.safetensors"
    save_file(model.state_dict(), str(path))
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(cli, ["evolve", "--run-dir", str(run_dir), "--generations", "1",
                                      "--ancestor-epochs", "0", "--subset", "0.2",
                                      "--ancestor-weights", str(path)])
    assert result.exit_code == 2
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("error: ") and "does not fit lenet5: shape of 7.weight is (500,1250)" in line
    assert not (run_dir / "members").exists()


@pytest.mark.parametrize("dtype", [torch.int8, torch.bool, torch.complex64])
def test_weights_of_another_kind_are_never_cast(dtype):
    wanted = build_model("lenet5", (1, 28, 28), 10).state_dict()
    given = {k: v.clone() for k, v in wanted.items()}
    given["0.weight"] = given["0.weight"].to(dtype)
    with pytest.raises(JetsynthError, match=f"0.weight is {dtype}, the model wants torch.float32"):
        fit_state(given, wanted, "w.safetensors", "lenet5")


def test_float_weights_of_other_widths_are_cast():
    wanted = build_model("lenet5", (1, 28, 28), 10).state_dict()
    given = {k: v.to(torch.float64) for k, v in wanted.items()}
    fitted = fit_state(given, wanted, "w.safetensors", "lenet5")
    assert fitted["0.weight"].dtype == torch.float32


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 1e300])
def test_weights_that_are_not_finite_are_refused(value):
    wanted = build_model("lenet5", (1, 28, 28), 10).state_dict()
    given = {k: v.to(torch.float64) for k, v in wanted.items()}
    given["0.bias"][3] = value  # 1e300 is finite in fp64, infinite in the model's fp32
    with pytest.raises(JetsynthError, match="0.bias hold NaN or infinite values"):
        fit_state(given, wanted, "w.safetensors", "lenet5")


def test_cli_nan_ancestor_weights_are_one_line(tmp_path):
    state = build_model("lenet5", (1, 28, 28), 10).state_dict()
    state["0.weight"][0, 0, 0, 0] = float("nan")
    path = tmp_path / "nan.safetensors"
    save_file(state, str(path))
    result = CliRunner().invoke(cli, ["evolve", "--run-dir", str(tmp_path / "run"), "--generations",
                                      "1", "--ancestor-epochs", "0", "--subset", "0.2",
                                      "--ancestor-weights", str(path)])
    assert result.exit_code == 2
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("error: ") and "0.weight hold NaN or infinite values" in line
    assert not (tmp_path / "run" / "members").exists()
