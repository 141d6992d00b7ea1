"""The architecture trust rule: code is imported on the command line's word, never a file's."""

import json
import sys

import pytest
from click.testing import CliRunner

from jetsynth.cli.main import cli

QUICK = ["--subset", "0.2", "--ancestor-epochs", "1", "--epochs", "1"]
FACTORY = """
from pathlib import Path

from torch import nn

Path(__file__).with_name("imported").touch()


def tiny(input_shape, num_classes):
    return nn.Sequential(nn.Conv2d(input_shape[0], 4, 5), nn.ReLU(), nn.MaxPool2d(4), nn.Flatten(),
                         nn.Linear(4 * 6 * 6, num_classes))
"""


def _run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def _one_line_error(result, *words):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("error: ")
    for word in words:
        assert word in line
    return line


@pytest.fixture(scope="module")
def builtin_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("trust") / "run"
    result = _run("evolve", "--run-dir", run_dir, "--generations", "1", *QUICK)
    assert result.exit_code == 0, result.output
    return run_dir


def _tampered(builtin_run, tmp_path, in_config: bool, shape):
    """A copy of the run whose ancestor's genome.json (and maybe config.json) names
    subprocess:call, with `shape` as the input shape."""
    import shutil

    run_dir = tmp_path / "tampered"
    shutil.copytree(builtin_run, run_dir)
    meta_path = run_dir / "members" / "g01-m00" / "genome.json"
    meta = json.loads(meta_path.read_text())
    meta.update(arch="subprocess:call", input_shape=shape)
    meta_path.write_text(json.dumps(meta))
    if in_config:
        config_path = run_dir / "config.json"
        config = json.loads(config_path.read_text())
        config["config"]["model"]["arch"] = "subprocess:call"
        config_path.write_text(json.dumps(config))
    return run_dir


@pytest.mark.parametrize("in_config", [True, False])
@pytest.mark.parametrize("touch", [True, False])
def test_a_tampered_genome_runs_nothing(builtin_run, tmp_path, in_config, touch):
    victim = tmp_path / "created-by-the-genome"
    shape = ["touch", str(victim)] if touch else [1, 28, 28]
    run_dir = _tampered(builtin_run, tmp_path, in_config, shape)
    member = run_dir / "members" / "g01-m00"
    expected = ("user code", "subprocess:call", "--trust-code") if (in_config or not touch) else (
        "input_shape must be three positive integers",)
    _one_line_error(_run("evolve", "--run-dir", run_dir, "--resume", "--generations", "2"), *expected)
    _one_line_error(_run("export", run_dir, "-g", "1", "-m", "0", "-o", tmp_path / "m.onnx",
                         "--no-parity"), *expected)
    if touch:
        _one_line_error(_run("bench", member), "input_shape must be three positive integers")
    else:
        _one_line_error(_run("bench", member), "user code", "subprocess:call")
    assert _run("report", run_dir, "--json").exit_code in (0, 2)
    assert not victim.exists()
    assert not (tmp_path / "m.onnx").exists()


def test_a_user_code_run_resumes_and_exports_on_the_users_word(tmp_path):
    factory = tmp_path / "nets.py"
    factory.write_text(FACTORY)
    marker = tmp_path / "imported"
    arch = f"{factory}:tiny"
    run_dir = tmp_path / "run"
    assert _run("evolve", "--run-dir", run_dir, "--arch", arch, "--generations", "1", *QUICK).exit_code == 0
    assert marker.exists()
    assert json.loads((run_dir / "config.json").read_text())["config"]["model"]["arch"] == arch
    marker.unlink()
    for name in [n for n in sys.modules if n.startswith("jetsynth_user_")]:
        del sys.modules[name]  # as in a new process: a later import runs the file again

    _one_line_error(_run("evolve", "--run-dir", run_dir, "--resume", "--generations", "2"),
                    f"give --arch {arch} again, or --trust-code", f"run the file {factory}")
    _one_line_error(_run("export", run_dir, "-g", "1", "-m", "0", "-o", tmp_path / "m.onnx", "--no-parity"),
                    "user code")
    _one_line_error(_run("bench", run_dir / "members" / "g01-m00"), "user code")
    report = _run("report", run_dir, "--json")  # reading records and masks builds nothing
    assert report.exit_code == 0, report.output
    assert not marker.exists()

    resumed = _run("evolve", "--run-dir", run_dir, "--resume", "--generations", "2", "--trust-code")
    assert resumed.exit_code == 0, resumed.output
    assert marker.exists()
    again = _run("evolve", "--run-dir", run_dir, "--resume", "--generations", "3", "--arch", arch)
    assert again.exit_code == 0, again.output
    _one_line_error(_run("evolve", "--run-dir", run_dir, "--resume", "--generations", "4", "--arch",
                         "lenet5"), "other settings (arch)")
    exported = _run("export", run_dir, "-g", "3", "-m", "0", "-o", tmp_path / "m.onnx", "--no-parity",
                    "--trust-code")
    assert exported.exit_code == 0, exported.output
    _one_line_error(_run("export", run_dir, "-g", "3", "-m", "0", "-o", tmp_path / "n.onnx",
                         "--arch", "lenet5"), "was made with --arch", "not lenet5")
    assert _run("bench", run_dir / "members" / "g01-m00", "--arch", arch, "--iterations", "1",
                "--duration", "0.01", "--warmup", "0").exit_code == 0
