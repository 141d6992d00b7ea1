"""Bad input through the real command line: every case ends with one line on stderr that starts
with 'error: ' and says what is wrong, exit status 2, no traceback and no hang. Grow the table
with every bad input found."""

from __future__ import annotations

import json
import shutil
import signal
import struct
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import make_idx_folder, write_idx

from jetsynth.cli.main import cli

HANG_SECONDS = 120


def _invoke(args: list[str]):
    """The CLI in this process, killed by SIGALRM if it hangs."""

    def hung(*_):
        raise TimeoutError(f"jetsynth {' '.join(args)} still running after {HANG_SECONDS} s")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(HANG_SECONDS)
    try:
        return CliRunner().invoke(cli, args)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def assert_one_line(result, message: str) -> None:
    assert not isinstance(result.exception, TimeoutError), "hang"
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"traceback: {result.exception!r}")
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and message in lines[0], lines[0]
    assert "Traceback" not in result.output


def assert_last_line(result, message: str) -> None:
    """As `assert_one_line`, for a command that reported progress before it met the bad input."""
    assert not isinstance(result.exception, TimeoutError), "hang"
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"traceback: {result.exception!r}")
    assert result.exit_code == 2, result.output
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last, last
    assert "Traceback" not in result.output


# (arguments, what the line says): numbers
NUMBERS = [
    (["evolve", "--lr", "nan"], "--lr must be a finite number in (0, 10], got 'nan'"),
    (["evolve", "--lr", "-1"], "--lr must be"),
    (["evolve", "--lr", "inf"], "--lr must be"),
    (["evolve", "--seed", "-1"], "--seed must be an integer in [0, 4294967295]"),
    (["evolve", "--seed", "99999999999"], "--seed must be"),
    (["evolve", "--parents", "2", "--alpha", "0", "--alpha", "0"], "not all 0"),
    (["evolve", "--alpha", "nan"], "--alpha must be"),
    (["evolve", "--alpha", "-1"], "--alpha must be"),
    (["evolve", "--bench-batch", "1000000000"], "--bench-batch must be an integer in [1, 4096]"),
    (["evolve", "--bench-seconds", "nan"], "--bench-seconds must be a finite number"),
    (["evolve", "--bench-seconds", "inf"], "--bench-seconds must be"),
    (["evolve", "--bench-seconds", "0"], "--bench-seconds must be"),
    (["evolve", "--target-fps", "nan"], "--target-fps must be"),
    (["evolve", "--target-fps", "-5"], "--target-fps must be"),
    (["evolve", "--keep", "nan"], "--keep must be"),
    (["evolve", "--keep", "0"], "--keep must be"),
    (["evolve", "--balance", "inf"], "--balance must be"),
    (["evolve", "--truncation", "1"], "--truncation must be"),
    (["evolve", "--cluster-pressure", "-0.1"], "--cluster-pressure must be"),
    (["evolve", "--subset", "nan"], "--subset must be"),
    (["evolve", "--subset", "0"], "--subset must be"),
    (["evolve", "--val-split", "1.5"], "--val-split must be a finite number in [0, 1)"),
    (["evolve", "--input-size", "0"], "--input-size must be"),
    (["evolve", "--input-size", "100000"], "--input-size must be"),
    (["evolve", "--generations", "0"], "--generations must be"),
    (["evolve", "--generations", "10000000000"], "--generations must be"),
    (["evolve", "--population", "-3"], "--population must be"),
    (["evolve", "--epochs", "-1"], "--epochs must be"),
    (["evolve", "--ancestor-epochs", "-1"], "--ancestor-epochs must be"),
    (["evolve", "--batch-size", "0"], "--batch-size must be"),
    (["evolve", "--batch-size", "1000000000000"], "--batch-size must be"),
    (["evolve", "--max-drop", "nan"], "--max-drop must be"),
    (["evolve", "--max-drop", "-1"], "--max-drop must be"),
    (["evolve", "--accuracy-floor", "2"], "--accuracy-floor must be"),
    (["evolve", "--patience", "0"], "--patience must be"),
    (["evolve", "--measure-every", "0"], "--measure-every must be"),
    (["evolve", "--overlap-band", "0.5", "nan"], "--overlap-band must be"),
    (["evolve", "--mean", "nan", "--std", "0.3"], "finite"),
    (["evolve", "--mean", "0.1", "--std", "0"], "--std"),
    (["evolve", "--generations", "many"], "--generations must be an integer"),
    (["bench", "MODEL", "--duration", "nan"], "--duration must be a finite number"),
    (["bench", "MODEL", "--duration", "-1"], "--duration must be"),
    (["bench", "MODEL", "--warmup", "inf"], "--warmup must be"),
    (["bench", "MODEL", "--threads", "-1"], "--threads must be an integer in [0, 1024]"),
    (["bench", "MODEL", "--batch", "0"], "--batch must be"),
    (["bench", "MODEL", "--batch", "1000000000"], "--batch must be"),
    (["bench", "MODEL", "--iterations", "-1"], "--iterations must be"),
    (["export", "RUN", "-o", "OUT/x.onnx", "--max-drop", "-1"], "--max-drop must be"),
    (["export", "RUN", "-o", "OUT/x.onnx", "--max-drop", "nan"], "--max-drop must be"),
    (["export", "RUN", "-o", "OUT/x.onnx", "-g", "0"], "--generation must be"),
    (["export", "RUN", "-o", "OUT/x.onnx", "-g", "2", "-m", "-1"], "--member must be"),
    (["export", "RUN", "-o", "OUT/x.onnx", "--opset", "-13"], "--opset must be"),
    (["export", "RUN", "-o", "OUT/x.onnx", "--channel-multiple", "0"], "--channel-multiple must be"),
    (["export", "RUN", "-o", "OUT/x.onnx", "--finetune-epochs", "-2"], "--finetune-epochs must be"),
    (["similarity", "RUN", "-g", "-1"], "--generation must be"),
    (["deploy", "MODEL", "-d", "x", "--timeout", "nan"], "--timeout must be a finite number"),
    (["deploy", "MODEL", "-d", "x", "--duration", "inf"], "--duration must be"),
    (["deploy", "MODEL", "-d", "x", "--threads", "-1"], "--threads must be"),
    (["deploy", "MODEL", "-d", "x", "--workspace", "0"], "--workspace must be"),
    (["deploy", "MODEL", "-d", "x", "--min-free", "-1"], "--min-free must be"),
    (["deploy", "MODEL", "-d", "x", "--connect-timeout", "0"], "--connect-timeout must be"),
    (["build", "MODEL", "-o", "OUT/x.engine", "--workspace", "-1"], "--workspace must be"),
    (["build", "MODEL", "-o", "OUT/x.engine", "--max-batch", "0"], "--max-batch must be"),
    (["devices", "add", "x", "--host", "h", "--port", "0"], "--port must be an integer in [1, 65535]"),
    (["devices", "add", "x", "--host", "h", "--port", "70000"], "--port must be"),
    (["calibrate", "ort", "--seconds", "nan"], "--seconds must be a finite number"),
    (["calibrate", "ort", "--seconds", "0"], "--seconds must be"),
    (["calibrate", "ort", "--batch", "1000000000"], "--batch must be"),
    (["calibrate", "ort", "--variants", "0"], "--variants must be"),
    (["calibrate", "ort", "--seed", "-1"], "--seed must be"),
    (["calibrate", "ort", "--variants", "10000", "--seconds", "100"], "a calibration may take a day"),
    (["evolve", "--input-size", "\u0662"], "--input-size must be an integer in [1, 4096], got '\u0662'"),
    (["evolve", "--seed", "\u0663"], "--seed must be"),
    (["evolve", "--lr", "\u0661e-3"], "--lr must be"),
    (["evolve", "--alpha", "1e308"], "--alpha must be a finite number in [0, 1e+06]"),
    (["evolve", "--parents", "2", "--alpha", "1e6", "--alpha", "1e308"], "--alpha must be"),
    (["evolve", "--mean", "1e308", "--std", "0.3"], "--mean values must lie in [-1, 2]"),
    (["evolve", "--mean", "0.5", "--std", "1e-300"], "--std values must lie in [0.001, 100]"),
    (["evolve", "--mean", "0.5", "--std", "1e308"], "--std values must lie in [0.001, 100]"),
    (["evolve", "--subset", "1e-9"], "--subset 1e-09 keeps less than one training image"),
    (["evolve", "--input-size", "4096"], "needs about 241.2 GB of memory"),
    (["evolve", "--cpus-per-member", "99999999999"], "--cpus-per-member must be an integer in [1, 1024]"),
    (["evolve", "--cpus-per-member", "0"], "--cpus-per-member must be"),
    (["grow", "--lr", "nan"], "--lr must be a finite number in (0, 10], got 'nan'"),
    (["grow", "--lr", "-inf"], "--lr must be"),
    (["grow", "--lr", "-1"], "--lr must be"),
    (["grow", "--lr", "1e308"], "--lr must be"),
    (["grow", "--lr", "inf"], "--lr must be"),
    (["grow", "--lr", "0"], "--lr must be"),
    (["grow", "--seed", "-1"], "--seed must be an integer in [0, 4294967295]"),
    (["grow", "--input-size", "99999999999"], "--input-size must be an integer in [1, 4096]"),
    (["grow", "--input-size", "\u0662"], "--input-size must be"),
    (["grow", "--input-size", "4096"], "needs about"),
    (["grow", "--batch-size", "0"], "--batch-size must be"),
    (["grow", "--batch-size", "-1"], "--batch-size must be"),
    (["grow", "--iterations", "0"], "--iterations must be an integer in [1, 1000000]"),
    (["grow", "--steps", "0"], "--steps must be an integer in [1, 10000000]"),
    (["grow", "--initial-steps", "0"], "--initial-steps must be"),
    (["grow", "--ensemble-epochs", "-1"], "--ensemble-epochs must be"),
    (["grow", "--steps", "99999999999"], "--steps must be"),
    (["grow", "--population", "99999999999"], "--population must be an integer in [1, 1000]"),
    (["grow", "--iterations", "99999999999"], "--iterations must be"),
    (["grow", "--iterations", "1000000", "--steps", "1000"], "grow makes at most 10,000,000"),
    (["grow", "--keep-best", "0"], "--keep-best must be"),
    (["grow", "--gamma", "nan"], "--gamma must be"),
    (["grow", "--subset", "0"], "--subset must be"),
    (["grow", "--subset", "1e-9"], "keeps less than one training image"),
    (["grow", "--val-split", "0"], "--val-split must be"),
    (["bench", "MODEL", "--trials", "99999999999"], "--trials must be an integer in [1, 1000]"),
    (["bench", "MODEL", "--trials", "0"], "--trials must be"),
    (["bench", "MODEL", "--trials", "1000", "--duration", "100"], "a measurement may take a day"),
    (["similarity", "RUN", "-g", "99999999999"], "--generation must be"),
    (["build", "MODEL", "-o", "OUT/x.engine", "--batch", "99999999999"], "--batch must be"),
    (["build", "MODEL", "-o", "OUT/x.engine", "--workspace", "nan"], "--workspace must be"),
]


def _fill(args: list[str], **paths: Path) -> list[str]:
    out = []
    for arg in args:
        for token, path in paths.items():
            arg = arg.replace(token, str(path))
        out.append(arg)
    return out


@pytest.mark.parametrize(("args", "message"), NUMBERS, ids=[" ".join(a) for a, _ in NUMBERS])
def test_bad_numbers(tmp_path, monkeypatch, args, message):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"never read: the number is refused first")
    args = _fill(args, RUN=tmp_path / "run", MODEL=model, OUT=tmp_path)
    if args[0] in ("evolve", "grow"):
        args += ["--run-dir", str(tmp_path / "r")]
    monkeypatch.chdir(tmp_path)
    assert_one_line(_invoke(args), message)
    assert not (tmp_path / "r").exists()  # refused before anything was written


# data files: (how to damage a fresh 60/20-image IDX folder, what the line says)
def _overflowing_header(folder: Path) -> None:
    path = folder / "train-images-idx3-ubyte"
    path.write_bytes(struct.pack(">I", 0x803) + struct.pack(">3I", 2**32 - 1, 2**32 - 1, 2**32 - 1)
                     + b"\0" * 100)


def _other_test_size(folder: Path) -> None:
    rng = np.random.default_rng(0)
    write_idx(folder / "t10k-images-idx3-ubyte", rng.integers(0, 256, (20, 14, 14)), 0x803)


def _label_out_of_range(folder: Path) -> None:
    write_idx(folder / "train-labels-idx1-ubyte", np.full(60, 11), 0x801)


DATA = [
    (_overflowing_header, "truncated: header promises"),
    (_other_test_size, "training images are 1×28×28 but test images 1×14×14"),
    (_label_out_of_range, "labels run from 11 to 11"),
]


@pytest.mark.parametrize(("damage", "message"), DATA, ids=[d.__name__ for d, _ in DATA])
def test_bad_data_files(tmp_path, damage, message):
    folder = make_idx_folder(tmp_path / "idx")
    damage(folder)
    result = _invoke(["evolve", "--data", f"mnist:{folder}", "--run-dir", str(tmp_path / "r")])
    assert_one_line(result, message)


def test_cifar_label_out_of_range(tmp_path):
    folder = tmp_path / "cifar"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        rows = rng.integers(0, 256, (4, 1 + 3 * 32 * 32)).astype(np.uint8)
        rows[:, 0] = np.arange(4) % 10
        if name == "test_batch.bin":
            rows[0, 0] = 200
        (folder / name).write_bytes(rows.tobytes())
    result = _invoke(["evolve", "--data", f"cifar10:{folder}", "--run-dir", str(tmp_path / "r")])
    assert_one_line(result, "test split: labels run from 1 to 200")


# a damaged run directory: (how to damage a copy of a finished run, the command, the line)
def _member(run: Path) -> Path:
    return run / "members" / "g02-m00"


def _edit_record(run: Path, change) -> None:
    path = _member(run) / "member.json"
    record = json.loads(path.read_text())
    path.write_text(json.dumps(change(record)))


def _record_digest(run: Path, member: str = "g02-m00") -> None:
    """Record the genome file's new sha256 in its member.json, so that what catches a damage is
    the check of the tensors themselves, not of the digest."""
    from jetsynth.storage import sha256_file

    folder = run / "members" / member
    _edit_record(run, lambda r: {**r, "sha256": sha256_file(folder / "genome.safetensors")})


def _missing_tensors(run: Path) -> None:
    import torch
    from safetensors.torch import save_file

    save_file({"state/other.weight": torch.zeros(3)}, str(_member(run) / "genome.safetensors"))
    _record_digest(run)


def _foreign_tensors(run: Path) -> None:
    _rewrite_tensors(run, lambda tensors: tensors.update(
        {"state/foreign.weight": tensors[_first(tensors, "state/")].clone()}))


def _garbage_tensors(run: Path) -> None:
    (_member(run) / "genome.safetensors").write_bytes(b"xx")
    _record_digest(run)


def _rewrite_tensors(run: Path, change) -> None:
    from safetensors.torch import load_file, save_file

    path = _member(run) / "genome.safetensors"
    tensors = load_file(str(path))
    change(tensors)
    save_file(tensors, str(path))
    _record_digest(run)


def _first(tensors: dict, prefix: str) -> str:
    return next(k for k in sorted(tensors) if k.startswith(prefix)
                and (prefix == "mask/" or k.endswith(".weight")))


def _nan_weight(tensors: dict) -> None:
    tensors[_first(tensors, "state/")].view(-1)[0] = float("nan")


def _int8_weight(tensors: dict) -> None:
    import torch

    key = _first(tensors, "state/")
    tensors[key] = tensors[key].to(torch.int8)


def _flat_mask(tensors: dict) -> None:
    key = _first(tensors, "mask/")
    tensors[key] = tensors[key].reshape(-1).contiguous()


def _swap_genomes(run: Path) -> None:
    a, b = (run / "members" / m / "genome.safetensors" for m in ("g02-m00", "g03-m00"))
    data = a.read_bytes()
    a.write_bytes(b.read_bytes())
    b.write_bytes(data)


def _edit_genome_json(run: Path, change) -> None:
    path = _member(run) / "genome.json"
    path.write_text(json.dumps(change(json.loads(path.read_text()))))


def _fifo(path: Path) -> None:
    import os

    path.unlink()
    os.mkfifo(path)


def _dev_zero(path: Path) -> None:
    path.unlink()
    path.symlink_to("/dev/zero")


DEEP = "[" * 100_000 + "]" * 100_000


DAMAGES = {
    "empty member.json": lambda run: (_member(run) / "member.json").write_text(""),
    "garbage member.json": lambda run: (_member(run) / "member.json").write_text("{{nope"),
    "member.json a list": lambda run: (_member(run) / "member.json").write_text("[1, 2]"),
    "member.json missing keys": lambda run: _edit_record(run, lambda r: {"id": r["id"]}),
    "member.json wrong type": lambda run: _edit_record(run, lambda r: {**r, "accuracy": "high"}),
    "member.json NaN": lambda run: _edit_record(run, lambda r: {**r, "accuracy": float("nan")}),
    "garbage config.json": lambda run: (run / "config.json").write_text("garbage"),
    "config.json a list": lambda run: (run / "config.json").write_text("[]"),
    "garbage genome.json": lambda run: (_member(run) / "genome.json").write_text("garbage"),
    "genome.json no lineage": lambda run: (_member(run) / "genome.json").write_text(json.dumps(
        {k: v for k, v in json.loads((_member(run) / "genome.json").read_text()).items()
         if k != "lineage"})),
    "genome tensors missing": _missing_tensors,
    "genome tensors foreign": _foreign_tensors,
    "garbage genome tensors": _garbage_tensors,
    "genomes swapped": _swap_genomes,
    "genome NaN weight": lambda run: _rewrite_tensors(run, _nan_weight),
    "genome int8 weight": lambda run: _rewrite_tensors(run, _int8_weight),
    "genome mask of another shape": lambda run: _rewrite_tensors(run, _flat_mask),
    "genome.json fp64": lambda run: _edit_genome_json(run, lambda g: {**g, "precision": "fp64"}),
    "genome.json garbage preprocessing": lambda run: _edit_genome_json(
        run, lambda g: {**g, "extra": {"preprocessing": {"mean": ["x"], "std": [-1]}}}),
    "genome.json of another member": lambda run: (_member(run) / "genome.json").write_text(
        (run / "members" / "g03-m00" / "genome.json").read_text()),
    "genome.json nested": lambda run: (_member(run) / "genome.json").write_text(DEEP),
    "member.json parent outside": lambda run: _edit_record(
        run, lambda r: {**r, "parents": ["../../../../etc/passwd"]}),
    "member.json id of another folder": lambda run: _edit_record(run, lambda r: {**r, "id": "g03-m00"}),
    "member.json a FIFO": lambda run: _fifo(_member(run) / "member.json"),
    "member.json /dev/zero": lambda run: _dev_zero(_member(run) / "member.json"),
    "member.json nested": lambda run: (_member(run) / "member.json").write_text(DEEP),
    "config.json nested": lambda run: (run / "config.json").write_text(DEEP),
    "config.json a FIFO": lambda run: _fifo(run / "config.json"),
}
READERS = {
    "report": (["report", "RUN"], {}),
    "report --json": (["report", "RUN", "--json"], {}),
    "export": (["export", "RUN", "-g", "2", "--no-parity", "-o", "OUT/x.onnx"], {}),
    "similarity": (["similarity", "RUN", "-g", "2"], {}),
}
EXPECTED = {  # what each damage says, whichever command read it
    "empty member.json": "member.json is damaged (empty)",
    "garbage member.json": "member.json is damaged (not JSON)",
    "member.json a list": "member.json is damaged (a JSON object expected, found list)",
    "member.json missing keys": "member.json is damaged (missing accuracy",
    "member.json wrong type": "member.json is damaged (wrong value for accuracy)",
    "member.json NaN": "member.json is damaged (wrong value for accuracy)",
    "garbage config.json": "config.json cannot be read",
    "config.json a list": "config.json",
    "garbage genome.json": "genome.json is damaged",
    "genome.json no lineage": "genome.json",
    "genome tensors missing": "genome.safetensors",
    "genome tensors foreign": "its weights hold unknown foreign.weight",
    "garbage genome tensors": "genome.safetensors: unreadable safetensors file",
    "genomes swapped": "genome.safetensors is not the genome its member.json records",
    "genome NaN weight": "holds NaN or infinite values",
    "genome int8 weight": "is torch.int8, the network's is torch.float32",
    "genome mask of another shape": "no valid mask",
    "genome.json fp64": "precision must be one of fp32, fp16, not 'fp64'",
    "genome.json garbage preprocessing": "preprocessing metadata is damaged (wrong value for mean, std)",
    "genome.json of another member": "belongs to another member than its member.json (g02-m00)",
    "genome.json nested": "genome.json is damaged (RefusedJSON: nested deeper than 32 levels)",
    "member.json parent outside": "member.json is damaged (parent '../../../../etc/passwd' is not a "
                                  "member of an earlier generation)",
    "member.json id of another folder": "member.json is damaged (its id 'g03-m00' is not its folder's "
                                        "name 'g02-m00')",
    "member.json a FIFO": "member.json is damaged (cannot be read",
    "member.json /dev/zero": "member.json is damaged (cannot be read: /",
    "member.json nested": "member.json is damaged (nested deeper than 32 levels)",
    "config.json nested": "config.json cannot be read (nested deeper than 32 levels)",
    "config.json a FIFO": "config.json is not a regular file",
}
GENOME_DAMAGES = {"garbage genome.json", "genome.json no lineage", "genome tensors missing",
                  "genome tensors foreign", "garbage genome tensors", "genomes swapped",
                  "genome NaN weight", "genome int8 weight", "genome mask of another shape",
                  "genome.json fp64", "genome.json garbage preprocessing",
                  "genome.json of another member", "genome.json nested"}
WEIGHT_DAMAGES = {"genome tensors foreign", "genome.json no lineage", "genome NaN weight",
                  "genome int8 weight"}
"""Damages to what similarity does not read (it reads masks only, not weights)."""
RUN_CASES = [
    (damage, reader) for damage in DAMAGES for reader in READERS
    # report and report --json read records, not genomes; similarity reads masks only
    if not (damage in GENOME_DAMAGES and reader.startswith("report"))
    and not (damage in WEIGHT_DAMAGES and reader == "similarity")
]


@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> Path:
    from jetsynth.run.config import EvolveConfig
    from jetsynth.run.evolve import evolve

    path = tmp_path_factory.mktemp("small") / "run"
    evolve(EvolveConfig(data="digits", subset=0.3, generations=3, ancestor_epochs=1, epochs=1,
                        keep=0.5), path)
    return path


@pytest.mark.parametrize(("damage", "reader"), RUN_CASES, ids=[f"{d} / {r}" for d, r in RUN_CASES])
def test_damaged_run_directory(tmp_path, small_run, damage, reader):
    run = tmp_path / "run"
    shutil.copytree(small_run, run)
    DAMAGES[damage](run)
    args, _ = READERS[reader]
    result = _invoke(_fill(args, RUN=run, OUT=tmp_path))
    assert_one_line(result, EXPECTED[damage])


@pytest.mark.parametrize("damage", ["events.jsonl a folder"])
def test_damaged_run_directory_on_resume(tmp_path, small_run, damage):
    run = tmp_path / "run"
    shutil.copytree(small_run, run)
    (run / "events.jsonl").unlink()
    (run / "events.jsonl").mkdir()
    result = _invoke(["evolve", "--run-dir", str(run), "--resume"])
    assert_one_line(result, "events.jsonl is not a file")


def test_export_into_a_place_that_cannot_be_written(tmp_path, small_run):
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    result = _invoke(["export", str(small_run), "-g", "2", "--no-parity",
                      "-o", str(blocker / "x.onnx")])
    assert_one_line(result, f"{blocker / 'x.onnx'}: cannot write here")


def test_bench_of_a_model_that_fails_when_run(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    shape = helper.make_tensor("shape", TensorProto.INT64, [1], [7])
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"])], "broken",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 28, 28])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [7])], [shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = tmp_path / "broken.onnx"
    onnx.save(model, str(path))
    result = _invoke(["bench", str(path), "--duration", "0.05", "--warmup", "0"])
    assert_one_line(result, "broken.onnx fails when run")


POOLS = [
    (["--bench", "ort", "--bench", "pi@board"], "a pool must be one kind of board"),
    (["--bench", "pi@board", "--bench", "pi@board"], "--bench pi@board is given twice"),
    (["--bench", "none", "--bench", "pi@board"], "--bench none times nothing"),
]


@pytest.mark.parametrize(("args", "message"), POOLS, ids=[" ".join(a) for a, _ in POOLS])
def test_a_bench_pool_must_be_one_kind_of_board(tmp_path, monkeypatch, args, message):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    result = _invoke(["evolve", *args, "--run-dir", str(tmp_path / "run")])
    assert_one_line(result, message)
    assert not (tmp_path / "run").exists()


def test_swapped_genomes_stop_a_resume_before_anything_is_bred(tmp_path, small_run):
    run = tmp_path / "run"
    shutil.copytree(small_run, run)
    _swap_genomes(run)
    result = _invoke(["evolve", "--run-dir", str(run), "--resume", "--generations", "4"])
    assert_last_line(result, "g02-m00/genome.safetensors is not the genome its member.json records")
    assert not (run / "members" / "g04-m00").exists()


def test_swapped_genome_of_a_member_folder_is_not_timed(tmp_path, small_run):
    run = tmp_path / "run"
    shutil.copytree(small_run, run)
    _swap_genomes(run)
    result = _invoke(["bench", str(run / "members" / "g03-m00"), "--duration", "0.05",
                      "--warmup", "0", "--trials", "1"])
    assert_one_line(result, "g03-m00/genome.safetensors is not the genome its member.json records")


def test_a_record_contradicting_its_folder_is_set_aside_on_resume(tmp_path, small_run):
    run = tmp_path / "run"
    shutil.copytree(small_run, run)
    _edit_record(run, lambda r: {**r, "parents": ["../../../../etc/passwd"]})
    result = _invoke(["evolve", "--run-dir", str(run), "--resume"])
    assert result.exit_code == 0, result.output
    assert "damaged member set aside" in result.output
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    assert any("g02-m00: member.json parent '../../../../etc/passwd' is not a member" in e.get("detail", "")
               for e in events if e["event"] == "member_set_aside")
    kept = json.loads((run / "damaged" / "g02-m00" / "member.json").read_text())
    assert kept["parents"] == ["../../../../etc/passwd"]
    again = json.loads((_member(run) / "member.json").read_text())
    assert again["parents"] == ["g01-m00"] and len(again["sha256"]) == 64


def test_a_run_of_the_current_release_without_digests_still_reads(tmp_path, small_run):
    """Records written before they carried the genome's sha256 are read, exported and resumed:
    the digest is checked where present (the lineage always)."""
    run = tmp_path / "run"
    shutil.copytree(small_run, run)
    for path in (run / "members").glob("*/member.json"):
        path.write_text(json.dumps({k: v for k, v in json.loads(path.read_text()).items()
                                    if k != "sha256"}))
    result = _invoke(["export", str(run), "-g", "2", "--no-parity", "-o", str(tmp_path / "x.onnx")])
    assert result.exit_code == 0, result.output
    assert _invoke(["report", str(run), "--json"]).exit_code == 0


def test_a_run_that_would_time_for_days_is_warned_about(tmp_path):
    result = _invoke(["evolve", "--bench", "ort", "--generations", "100000", "--population", "10",
                      "--subset", "1e-9", "--run-dir", str(tmp_path / "r")])
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("warning: timing 100,000 generations of 10 members takes at least "
                               "694.4 hours"), lines[0]
    assert_last_line(result, "--subset 1e-09 keeps less than one training image")


def test_devices_list_of_an_inventory_nested_deep(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    (tmp_path / "jetsynth").mkdir()
    (tmp_path / "jetsynth" / "devices.toml").write_text("a = " + DEEP + "\n")
    assert_one_line(_invoke(["devices", "list"]), "nests arrays or tables too deeply")


@pytest.mark.parametrize(("args", "message"), [
    (["--device", "cuda"], "--device cuda: torch finds no CUDA GPU"),
    (["--device", "cuda:1"], "--device cuda:1: torch finds no CUDA GPU"),
    (["--device", "gpu"], "--device gpu: expected auto, cpu, cuda or cuda:N"),
    (["--amp", "fp16", "--device", "cpu"], "--amp fp16 needs a GPU"),
])
def test_a_device_this_machine_lacks(tmp_path, args, message):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = _invoke(["evolve", *args, "--run-dir", str(tmp_path / "run")])
    assert_one_line(result, message)
    assert not (tmp_path / "run").exists()


def test_finetuning_on_a_gpu_this_machine_lacks(tmp_path, small_run):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = _invoke(["export", str(small_run), "-g", "2", "--no-parity", "--finetune-epochs", "1",
                      "--device", "cuda:0", "-o", str(tmp_path / "x.onnx")])
    assert_one_line(result, "--device cuda:0: torch finds no CUDA GPU")
    assert not (tmp_path / "x.onnx").exists()
    result = _invoke(["export", str(small_run), "-g", "2", "--no-parity", "--finetune-epochs", "1",
                      "--device", "cpu", "-o", str(tmp_path / "x.onnx"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output[result.output.index("{"):])["finetune"]["device"] == "cpu"


def test_out_of_gpu_memory_mid_training_is_one_line_and_the_run_resumes(tmp_path, monkeypatch):
    """A step that runs out of GPU memory (raised from inside the training loop, as CUDA's
    allocator raises it) ends the run with one line naming the member, its batch size and what
    to lower; the epoch already trained is in the member's checkpoint, and --resume ends where
    an uninterrupted run ends."""
    import torch

    from jetsynth.run import train

    args = ["evolve", "--generations", "1", "--ancestor-epochs", "2", "--batch-size", "64",
            "--device", "cpu", "--bench", "none"]
    straight = _invoke([*args, "--run-dir", str(tmp_path / "a")])
    assert straight.exit_code == 0, straight.output
    real, steps = train.cosine_lr, []

    def second_epoch_exhausts(base, step, total):
        steps.append(step)
        if step == total // 2 + 1:  # a step of the second of the two epochs
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(base, step, total)

    monkeypatch.setattr(train, "cosine_lr", second_epoch_exhausts)
    result = _invoke([*args, "--run-dir", str(tmp_path / "b")])
    assert_last_line(result, "g01-m00: out of GPU memory on cpu training batches of 64 images of "
                             "1×28×28; lower --batch-size (e.g. 32)")
    assert "continue with --resume" in result.stderr
    saved = json.loads((tmp_path / "b" / "members" / "g01-m00" / "checkpoint.json").read_text())
    assert saved["epoch"] == 1
    monkeypatch.setattr(train, "cosine_lr", real)
    resumed = _invoke([*args, "--run-dir", str(tmp_path / "b"), "--resume"])
    assert resumed.exit_code == 0, resumed.output
    first = json.loads((tmp_path / "a" / "members" / "g01-m00" / "member.json").read_text())
    again = json.loads((tmp_path / "b" / "members" / "g01-m00" / "member.json").read_text())
    assert (again["accuracy"], again["val_accuracy"]) == (first["accuracy"], first["val_accuracy"])
