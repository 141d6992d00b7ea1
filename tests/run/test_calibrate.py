import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from jetsynth.calibration.features import features
from jetsynth.calibration.model import FORMAT_VERSION, load_model, relative_errors
from jetsynth.cli.main import cli
from jetsynth.errors import JetsynthError
from jetsynth.report.calibration_plot import write_calibration_plot
from jetsynth.run.calibrate import Sample, calibrate

SETTINGS = {"count": 5, "seconds": 0.02}
NETWORKS = "ort-cpu-networks"


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    """One small calibration on onnxruntime CPU: 5 variants each of LeNet-5 and AlexNet-CIFAR."""
    folder = tmp_path_factory.mktemp("calibration")
    progress = []
    model, path = calibrate("ort-cpu", folder=folder, progress=lambda *call: progress.append(call),
                            **SETTINGS)
    return {"folder": folder, "model": model, "path": path, "progress": progress}


def with_networks(calibrated, folder: Path) -> Path:
    """A fresh calibration folder holding the already exported networks (exporting is slow), but
    no measurements."""
    shutil.copytree(calibrated["folder"] / NETWORKS, folder / NETWORKS)
    return folder


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines())


def test_calibrate_writes_a_loadable_model(calibrated):
    folder, path = calibrated["folder"], calibrated["path"]
    assert path == folder / "ort-cpu.json"
    data = json.loads(path.read_text())
    assert data["format"] == FORMAT_VERSION == 1
    model = load_model(path)
    assert model == calibrated["model"]
    assert (model.device, model.backend, model.precision, model.batch, model.samples) == (
        "ort-cpu", "ort-cpu", "fp16", 1, 10)
    assert model.error["all"]["count"] == 10 and model.error["holdout"]["count"] == 2
    assert all(c >= 0 for c in model.coefficients)
    assert _lines(folder / "ort-cpu.measurements.jsonl") == 10
    assert len(list((folder / NETWORKS).glob("*-fp16.onnx"))) == 10


def test_calibrate_reports_each_sample_in_sweep_order(calibrated):
    progress = calibrated["progress"]
    assert [(done, total) for _, done, total in progress] == [(i, 10) for i in range(1, 11)]
    samples = [sample for sample, _, _ in progress]
    assert [s.variant.name for s in samples[:4]] == ["lenet5-s0", "alexnet-cifar-s0", "lenet5-s1",
                                                     "alexnet-cifar-s1"]
    assert not any(s.cached for s in samples)
    for sample in samples:
        assert sample.seconds > 0 and sample.fps == pytest.approx(1 / sample.seconds)


def test_error_summary_matches_the_samples(calibrated):
    model, samples = calibrated["model"], [s for s, _, _ in calibrated["progress"]]
    vectors = np.array([features(s.layers, 1) for s in samples])
    errors = relative_errors(np.array(model.coefficients), vectors, np.array([s.seconds for s in samples]))
    assert model.error["all"]["median"] == pytest.approx(float(np.median(errors)))
    assert model.error["all"]["max"] == pytest.approx(float(errors.max()))


def test_second_calibration_times_nothing_new(calibrated, tmp_path):
    measurements = calibrated["folder"] / "ort-cpu.measurements.jsonl"
    before = _lines(measurements)
    again = []
    model, path = calibrate("ort-cpu", folder=calibrated["folder"], out=tmp_path / "again.json",
                            progress=lambda sample, *_: again.append(sample), **SETTINGS)
    assert _lines(measurements) == before
    assert len(again) == 10 and all(s.cached for s in again)
    assert path == tmp_path / "again.json" and load_model(path).samples == 10
    assert model.coefficients == calibrated["model"].coefficients


def test_calibrate_on_an_unknown_architecture(tmp_path):
    with pytest.raises(JetsynthError, match="cannot calibrate on 'resnet'"):
        calibrate("ort-cpu", archs=("resnet",), folder=tmp_path, **SETTINGS)
    assert list(tmp_path.iterdir()) == []


def test_calibrate_needs_enough_networks_before_timing_any(tmp_path):
    with pytest.raises(JetsynthError, match="at least 8 networks.*5 per architecture × 1: raise `variants`"):
        calibrate("ort-cpu", archs=("lenet5",), folder=tmp_path, **SETTINGS)
    assert list(tmp_path.iterdir()) == []


def test_calibration_plot(calibrated, tmp_path):
    samples: list[Sample] = [s for s, _, _ in calibrated["progress"]]
    path = write_calibration_plot(samples, calibrated["model"], tmp_path / "plots" / "ort-cpu.png")
    assert path == tmp_path / "plots" / "ort-cpu.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_calibration_plot_marks_the_held_out_networks(calibrated):
    from jetsynth.report.calibration_plot import calibration_figure, held_out

    samples: list[Sample] = [s for s, _, _ in calibrated["progress"]]
    fig = calibration_figure(samples, calibrated["model"])
    ax = fig.axes[0]
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert any(label.endswith(", held out") for label in labels) and "lenet5, fitted" in labels
    assert "held-out median error" in ax.get_title()
    timed = [s for s in samples if s.fps]
    assert held_out(timed) == {i for i in range(len(timed)) if i % 4 == 3}
    hollow = [c for c in ax.collections if c.get_label().endswith("held out")]
    assert sum(len(c.get_offsets()) for c in hollow) == len(held_out(timed))


def _run(*args):
    return CliRunner().invoke(cli, list(args))


def test_cli_calibrate_prints_the_model_as_json(calibrated, tmp_path):
    folder = with_networks(calibrated, tmp_path)
    result = _run("calibrate", "ort", "--variants", "5", "--seconds", "0.02", "--precision", "fp16",
                  "--dir", str(folder), "--json",
                  "--precision", "fp16")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["path"] == str(folder / "ort-cpu.json") and data["plot"] == str(folder / "ort-cpu.png")
    assert data["format"] == 1 and data["samples"] == 10 and data["device"] == "ort-cpu"
    assert Path(data["plot"]).read_bytes()[:4] == b"\x89PNG"
    assert load_model(Path(data["path"])).coefficients == tuple(data["coefficients"])
    assert _lines(folder / "ort-cpu.measurements.jsonl") == 10


def test_cli_calibrate_summarises_the_errors(calibrated, tmp_path):
    folder = calibrated["folder"]
    output = tmp_path / "model.json"
    result = _run("calibrate", "ort", "--variants", "5", "--seconds", "0.02", "--precision", "fp16",
                  "--dir", str(folder),
                  "-o", str(output))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "timed 10 networks on ort"
    assert lines[1].startswith("held-out error: median ") and lines[1].endswith("(2 networks)")
    assert lines[2].startswith("all samples error: median ") and lines[2].endswith("(10 networks)")
    assert lines[3:] == [f"latency model: {output}", f"plot: {tmp_path / 'model.png'}"]
    assert (tmp_path / "model.png").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nowhere"], "no device named 'nowhere'"),
        (["none"], "calibrate needs somewhere to time networks"),
        (["ort", "--batch", "0"], "--batch must be an integer in [1, 4096]"),
        (["ort", "--seconds", "0"], "--seconds must be a finite number in (0, "),
        (["ort", "--arch", "resnet"], "cannot calibrate on 'resnet'"),
        (["ort", "--variants", "0"], "--variants must be an integer in [1, "),
    ],
)
def test_cli_calibrate_bad_input_is_one_line_and_exit_2(tmp_path, monkeypatch, args, message):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    result = _run("calibrate", *args, "--dir", str(tmp_path / "calibration"))
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and message in lines[-1]
    assert "Traceback" not in result.output and result.stdout == ""


def test_cli_calibrate_an_unknown_device_in_a_real_process(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    process = subprocess.run([sys.executable, "-m", "jetsynth", "calibrate", "nowhere", "--dir",
                              str(tmp_path / "calibration")], capture_output=True, text=True, timeout=120,
                             env=dict(os.environ))
    assert process.returncode == 2
    lines = process.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no device named 'nowhere'")
    assert not (tmp_path / "calibration").exists()


def test_calibrate_and_evolve_default_to_the_same_precision():
    from jetsynth.cli.calibrate import calibrate as command
    from jetsynth.run.config import EvolveConfig

    option = next(p for p in command.params if p.name == "precision")
    assert option.default == EvolveConfig().precision == "fp32"
