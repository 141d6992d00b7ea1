import json
import re

import onnx
import pytest
import torch
from click.testing import CliRunner
from torch import nn
from torch.utils.data import TensorDataset

import jetsynth
from jetsynth.cli.main import _ship_line, cli
from jetsynth.core.records import MemberRecord
from jetsynth.errors import JetsynthError
from jetsynth.run.rundir import load_records
from jetsynth.ship.export import read_metadata

SMALL = {"subset": 0.5, "epochs": 1, "ancestor_epochs": 1, "seed": 1}


def tiny(input_shape, num_classes):
    """A factory no name imports: it lives in this test module."""
    return nn.Sequential(nn.Conv2d(input_shape[0], 8, 3), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(8 * 13 * 13, 32), nn.ReLU(),
                         nn.Linear(32, num_classes))


TINY = f"<python:{__name__}.tiny>"


class Net(nn.Module):
    """An nn.Module class, built as a factory is: Net(input_shape, num_classes)."""

    def __init__(self, input_shape, num_classes):
        super().__init__()
        self.conv = nn.Conv2d(input_shape[0], 6, 3, padding=1)
        self.fc = nn.Linear(6 * input_shape[1] * input_shape[2], num_classes)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).flatten(1))


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A run from a callable on the built-in digits (3 generations of 2), and its progress."""
    events = []
    run_dir = tmp_path_factory.mktemp("api") / "run"
    run = jetsynth.evolve(tiny, "digits", generations=3, population=2, max_drop=0.05,
                          run_dir=str(run_dir), progress=events.append, **SMALL)
    return run, events


def test_a_run_reads_back_as_typed_members(made):
    run, _ = made
    assert [m.id for m in run.members] == ["g01-m00", "g02-m00", "g02-m01", "g03-m00", "g03-m01"]
    member = run.members[3]
    assert isinstance(member.record, MemberRecord)
    assert (member.generation, member.index, member.fps) == (3, 0, None)
    stored = json.loads((run.dir / "members" / "g03-m00" / "member.json").read_text())
    assert (member.accuracy, member.val_accuracy, member.macs) == (
        stored["accuracy"], stored["val_accuracy"], stored["macs"])
    assert [m.id for m in run.generation(2)] == ["g02-m00", "g02-m01"]
    with pytest.raises(JetsynthError, match="no finished member in generation 7 \\(generations 1 to 3\\)"):
        run.generation(7)
    assert run.config.max_drop == 0.05 and run.config.pressure == "adaptive"


def test_best_is_the_member_the_command_line_ships(made):
    run, _ = made
    config, records = load_records(run.dir)
    best = run.best()
    assert f"ship {best.id} " in _ship_line(run.dir, run.config, records)
    assert run.best(floor=1.0).id == "g01-m00"  # no member keeps it: the ancestor


def test_model_is_the_member_compacted(made):
    run, _ = made
    member = run.members[-1]
    net = member.model()
    images = torch.rand(16, 1, 28, 28)
    with torch.no_grad():
        dense = member.genome().build().eval()(images)
        assert torch.allclose(net(images), dense, atol=1e-5)
    assert sum(p.numel() for p in net.parameters()) < sum(
        p.numel() for p in run.members[0].model().parameters())


def test_export_writes_the_member_as_jetsynth_export_does(made, tmp_path):
    run, _ = made
    best = run.best()
    result = best.export(tmp_path / "best.onnx", precision="fp32", channel_multiple=1)
    assert result.precision == "fp32" and result.parity["top1_agreement"] == 1.0
    meta = read_metadata(onnx.load(str(result.path)))
    assert meta["member"] == best.id and meta["arch"] == TINY
    assert best.export(tmp_path / "half.onnx").precision == "fp16"  # the command's default


def test_a_callable_is_recorded_by_name_and_never_imported(made, tmp_path):
    run, _ = made
    stored = json.loads((run.dir / "config.json").read_text())["config"]
    assert stored["model"]["arch"] == TINY and stored["dataset"]["data"] == "digits"
    with pytest.raises(JetsynthError, match=f"evolved from the Python callable {TINY}"):
        jetsynth.open_run(run.dir)
    reopened = jetsynth.open_run(run.dir, arch=tiny)
    assert [m.id for m in reopened.members] == [m.id for m in run.members]
    assert reopened.best().id == run.best().id
    result = CliRunner().invoke(cli, ["export", str(run.dir), "-o", str(tmp_path / "m.onnx")])
    assert result.exit_code == 2
    assert "was a Python callable given to jetsynth.evolve" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_progress_calls_back_with_typed_events(made):
    _, events = made
    assert events[0].kind == "run_started" and (events[0].done, events[0].total) == (0, 5)
    finished = [e for e in events if e.kind == "member_finished"]
    assert [e.member for e in finished] == ["g01-m00", "g02-m00", "g02-m01", "g03-m00", "g03-m01"]
    assert all(isinstance(e.record, MemberRecord) for e in finished)
    steps = [e for e in events if e.kind == "step"]
    assert steps and {e.member for e in steps} == {e.member for e in finished}
    assert all(0 < e.done <= e.total for e in steps)


def _digits_items():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (torch.tensor(bunch.images) * (255 / 16)).round().to(torch.uint8).unsqueeze(1)
    return TensorDataset(images, torch.tensor(bunch.target))


def test_a_dataset_object_and_a_module_class_run_and_resume(tmp_path):
    data = _digits_items()
    run_dir = tmp_path / "run"
    run = jetsynth.evolve(Net, data, generations=1, run_dir=run_dir, progress=False, **SMALL)
    assert [m.id for m in run.members] == ["g01-m00"]
    assert re.fullmatch("python:TensorDataset@[0-9a-f]{12}", run.config.data)
    assert run.config.arch == f"<python:{__name__}.Net>"
    assert run.members[0].model()(torch.rand(2, 1, 8, 8)).shape == (2, 10)
    longer = jetsynth.evolve(Net, data, generations=2, run_dir=run_dir, resume=True, progress=False)
    assert [m.id for m in longer.members] == ["g01-m00", "g02-m00"]
    assert longer.members[0].record == run.members[0].record  # resumed, not trained again
    assert longer.best().export(tmp_path / "m.onnx").parity["top1_agreement"] >= 0.99
    reopened = jetsynth.open_run(run_dir, arch=Net)
    with pytest.raises(JetsynthError, match="evolved on a Python dataset.*parity=False"):
        reopened.best().export(tmp_path / "n.onnx")
    assert reopened.best().export(tmp_path / "n.onnx", parity=False).parity is None
    assert jetsynth.open_run(run_dir, arch=Net, data=data).best().export(tmp_path / "o.onnx").parity
    other = TensorDataset(data.tensors[0], data.tensors[1].roll(1))
    with pytest.raises(JetsynthError, match="this data is python:TensorDataset@.*other images or labels"):
        jetsynth.open_run(run_dir, arch=Net, data=other)
    with pytest.raises(JetsynthError, match="started with other settings \\(data\\)"):
        jetsynth.evolve(Net, other, generations=3, run_dir=run_dir, resume=True, progress=False)


@pytest.mark.parametrize("call, message", [
    (lambda d: jetsynth.evolve(tiny, generation=3, run_dir=d),
     "unknown setting 'generation' \\(did you mean generations\\?\\)"),
    (lambda d: jetsynth.evolve(tiny, generations="8", run_dir=d),
     "setting generations='8' is not of type int"),
    (lambda d: jetsynth.evolve(tiny, generations=0, run_dir=d), r"`generations` must be an integer in \[1, "),
    (lambda d: jetsynth.evolve(tiny((1, 28, 28), 10), run_dir=d), "arch is a model instance"),
    (lambda d: jetsynth.evolve(5, run_dir=d), "arch must be a name"),
    (lambda d: jetsynth.evolve(jetsynth.EvolveConfig(), run_dir=d), "jetsynth.run.evolve.evolve"),
    (lambda d: jetsynth.evolve(tiny, progress="bars", run_dir=d), "progress must be a function"),
    (lambda d: jetsynth.evolve(tiny, executor="ray", run_dir=d), "cannot travel to Ray workers"),
    (lambda d: jetsynth.evolve(tiny, 42, run_dir=d), "has no len"),
    (lambda d: jetsynth.open_run(d), "not a jetsynth run directory"),
])
def test_bad_arguments_end_with_one_clear_error_and_write_nothing(tmp_path, call, message):
    with pytest.raises(JetsynthError, match=message):
        call(tmp_path / "run")
    assert not (tmp_path / "run").exists()
