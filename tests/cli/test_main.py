import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from jetsynth.cli.main import cli


def _run(*args):
    return CliRunner().invoke(cli, list(args))


def test_help_lists_the_contract_options():
    result = _run("evolve", "--help")
    assert result.exit_code == 0
    for option in ("--data", "--arch", "--generations", "--population", "--parents", "--cluster",
                   "--keep", "--epochs", "--precision", "--alignment", "--seed", "--run-dir",
                   "--resume", "--executor", "--bench", "--target-fps", "--val-split", "--input-size",
                   "--mean", "--std", "--augment", "folder:DIR"):
        assert option in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", "mnist:/no/such/dir"], "dataset folder not found"),
        (["--data", "imagenet"], "unknown dataset"),
        (["--parents", "0"], "--parents must be an integer in [1, "),
        (["--parents", "2", "--alpha", "1"], "one --alpha per parent"),
        (["--keep", "1.5"], "--keep must be a finite number in (0, 1]"),
        (["--resume"], "nothing to resume"),
        (["--arch", "nope"], "unknown architecture"),
        (["--executor", "dask"], "--executor must be local or ray"),
        (["--executor", "ray", "--cpus-per-member", "0"], "--cpus-per-member must be an integer in [1, "),
        (["--data", "folder:/no/such/dir"], "dataset folder not found"),
        (["--val-split", "1.5"], "--val-split must be a finite number in [0, 1)"),
        (["--mean", "0.1,0.2", "--std", "0.3", "--std", "0.3"], "give 2 value(s) but the images have 1"),
        (["--mean", "0.1"], "give --mean and --std together"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    result = _run("evolve", "--run-dir", str(tmp_path / "r"), *args)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("error: ") and message in lines[-1]
    assert "Traceback" not in result.output


def test_resume_needs_a_run_dir():
    result = _run("evolve", "--resume")
    assert result.exit_code == 2 and "--resume needs --run-dir" in result.output


def test_report_of_a_missing_run():
    result = _run("report", "/no/such/run")
    assert result.exit_code == 2 and "not a jetsynth run directory" in result.output


def test_evolve_then_report_end_to_end(tmp_path):
    run_dir = tmp_path / "run"
    result = _run("evolve", "--run-dir", str(run_dir), "--subset", "0.3", "--generations", "2",
                  "--ancestor-epochs", "1", "--epochs", "1")
    assert result.exit_code == 0, result.output
    assert "seed 001, Table 1" in result.output and "seed 001, Table 2" in result.output
    assert (run_dir / "report" / "accuracy.png").is_file()
    report = _run("report", str(run_dir), "--json")
    data = json.loads(report.output)
    assert [m["generation"] for m in data["members"]] == [1, 2]


def test_population_run_and_similarity(tmp_path):
    run_dir = tmp_path / "run"
    result = _run("evolve", "--run-dir", str(run_dir), "--subset", "0.3", "--generations", "3",
                  "--population", "3", "--parents", "2", "--ancestor-epochs", "1", "--epochs", "1")
    assert result.exit_code == 0, result.output
    assert "seed 002, Table 1" in result.output
    assert (run_dir / "report" / "family_tree.png").is_file()
    assert (run_dir / "report" / "accuracy_vs_storage.png").is_file()
    table = _run("similarity", str(run_dir), "--generation", "3")
    assert table.exit_code == 0 and "average overlap" in table.output
    data = json.loads(_run("similarity", str(run_dir), "-g", "3", "--json").output)
    assert len(data["overlap"]) == 3 and data["overlap"][0][0] == 1.0
    assert (run_dir / "report" / "similarity_g03.png").is_file()
    report = json.loads(_run("report", str(run_dir), "--json").output)
    assert [g["generation"] for g in report["generations"]] == [1, 2, 3]
    missing = _run("similarity", str(run_dir), "--generation", "9")
    assert missing.exit_code == 2 and "no finished member in generation 9" in missing.output


def test_no_traceback_in_a_real_process():
    process = subprocess.run(
        [sys.executable, "-m", "jetsynth", "evolve", "--data", "cifar10:/no/such"],
        capture_output=True, text=True, timeout=120,
    )
    assert process.returncode == 2
    assert process.stderr.strip().splitlines() == [
        "error: dataset folder not found: /no/such (check the path in --data)"
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["evolve", "--cluster", "blob"], "'blob' is not one of 'kernel', 'filter'"),
        (["evolve", "--generations", "many"], "--generations must be an integer in [1, 1000000], got 'many'"),
        (["evolve", "--no-such-option"], "No such option"),
    ],
)
def test_usage_errors_are_one_line(args, message):
    process = subprocess.run([sys.executable, "-m", "jetsynth", *args], capture_output=True,
                             text=True, timeout=120)
    assert process.returncode == 2
    lines = process.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]


def test_help_works_from_the_console_entry_point():
    process = subprocess.run([sys.executable, "-m", "jetsynth", "--help"], capture_output=True,
                             text=True, timeout=120)
    assert process.returncode == 0 and "evolve" in process.stdout


def test_export_and_bench_from_the_command_line(tmp_path, benched_run):
    out = tmp_path / "net.onnx"
    result = _run("export", str(benched_run), "--best", "--max-drop", "1", "-o", str(out), "--json")
    assert result.exit_code == 0, result.output
    exported = json.loads(result.output)
    assert exported["opset"] == 13 and exported["precision"] == "fp16"
    assert exported["parity"]["top1_agreement"] >= 0.99 and out.is_file()
    assert exported["finetune"] is None
    import onnx

    widths = [i.dims[0] for i in onnx.load(str(out)).graph.initializer if len(i.dims) == 4]
    assert widths and all(w % 8 == 0 or w in (20, 50) for w in widths)  # padded to blocks of 8
    result = _run("export", str(benched_run), "-g", "2", "--finetune-epochs", "1", "--no-parity",
                  "-o", str(tmp_path / "tuned.onnx"))
    assert result.exit_code == 0, result.output
    assert "trained 1 more epoch: accuracy" in result.output
    result = _run("bench", str(out), "--batch", "4", "--duration", "0.05", "--iterations", "3",
                  "--warmup", "0", "--json")
    assert result.exit_code == 0, result.output
    timing = json.loads(result.output)
    assert timing["backend"] == "ort-cpu" and timing["batch"] == 4 and timing["fps"] > 0
    result = _run("bench", str(out), "--duration", "0.05", "--warmup", "0")
    assert result.exit_code == 0 and "images/s" in result.output and "p99" in result.output
    member = benched_run / "members" / "g02-m00"
    result = _run("bench", str(member), "--duration", "0.05", "--iterations", "2", "--warmup", "0")
    assert result.exit_code == 0 and "torch-cpu" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["export", "RUN", "--best", "-g", "2", "-o", "x.onnx"], "--best picks the member itself"),
        (["export", "RUN", "-g", "9", "-o", "x.onnx"], "no finished member 0 in generation 9"),
        (["export", "RUN", "--opset", "3", "-o", "x.onnx"], "outside 7"),
        (["export", "RUN", "--finetune-epochs", "-2", "-o", "x.onnx"],
         "--finetune-epochs must be an integer in [0, "),
        (["bench", "GARBAGE"], "not a readable ONNX model"),
        (["bench", "RUN/members/g02-m00", "--backend", "ort-cpu"], "is a member folder"),
        (["bench", "ENGINE"], "TensorRT is not installed here"),
        (["bench", "ENGINE", "--backend", "ort-cpu"], "time it with --backend trt"),
        (["bench", "/no/such.onnx"], "does not exist"),
    ],
)
def test_export_and_bench_bad_input(tmp_path, benched_run, args, message):
    garbage = tmp_path / "garbage.onnx"
    garbage.write_text("not onnx")
    engine = tmp_path / "net.engine"
    engine.write_bytes(b"\0" * 16)
    args = [a.replace("RUN", str(benched_run)).replace("GARBAGE", str(garbage))
            .replace("ENGINE", str(engine)) for a in args]
    if args[-1] == "x.onnx":
        args[-1] = str(tmp_path / "x.onnx")
    result = subprocess.run([sys.executable, "-m", "jetsynth", *args], capture_output=True, text=True)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr


def test_evolve_reports_whether_the_target_fps_was_reached(tmp_path):
    common = ["evolve", "--generations", "2", "--epochs", "1", "--ancestor-epochs", "1", "--subset", "0.2",
              "--bench", "ort", "--bench-seconds", "0.05", "--accuracy-floor", "0"]
    reached = CliRunner().invoke(cli, [*common, "--target-fps", "1", "--run-dir", str(tmp_path / "a")])
    assert reached.exit_code == 0 and "target reached: g01-m00 runs at" in reached.output
    missed = CliRunner().invoke(cli, [*common, "--target-fps", "1e12", "--run-dir", str(tmp_path / "b")])
    assert missed.exit_code == 0
    last = missed.stdout.strip().splitlines()[-1]  # the last line: what the run did not reach
    assert "not reached; fastest above the floor: g0" in last and " -m 0 -o " in last
    assert "FPS/accuracy frontier per generation" in missed.output
    assert (tmp_path / "b" / "report" / "frontier.png").is_file()
    resumed = CliRunner().invoke(cli, [*common, "--target-fps", "1e12", "--run-dir", str(tmp_path / "b"),
                                       "--resume", "--generations", "3"])
    assert resumed.exit_code == 0 and "resuming: 2 of 3 members done" in resumed.stderr
    assert "members 3/3, elapsed" in resumed.stderr  # plain progress records off a terminal


def test_evolve_on_a_folder_of_pngs(tmp_path):
    from conftest import write_image_tree

    from jetsynth.run.rundir import RunDirectory

    images = write_image_tree(tmp_path / "x", classes=("a", "b", "c"), per_class=8, size=(20, 20))
    run_dir = tmp_path / "r"
    result = _run("evolve", "--data", f"folder:{images}", "--input-size", "28", "--generations", "2",
                  "--epochs", "1", "--ancestor-epochs", "1", "--augment", "--run-dir", str(run_dir))
    assert result.exit_code == 0, result.output
    assert "Val. acc." in result.output
    record = RunDirectory(run_dir).record("g02-m00")
    assert 0.0 <= record.val_accuracy <= 1.0
    preprocessing = RunDirectory(run_dir).genome("g02-m00").extra["preprocessing"]
    assert preprocessing["class_names"] == ["a", "b", "c"] and preprocessing["resize"] == [28, 28]
    config = json.loads((run_dir / "config.json").read_text())["config"]
    assert (config["input_size"], config["augment"], config["val_split"]) == (28, True, 0.1)
    resumed = _run("evolve", "--run-dir", str(run_dir), "--resume", "--generations", "2")
    assert resumed.exit_code == 0, resumed.output
    exported = _run("export", str(run_dir), "-o", str(tmp_path / "net.onnx"))
    assert exported.exit_code == 0 and "parity vs torch on" in exported.output, exported.output
    import onnx

    from jetsynth.ship.export import read_metadata

    metadata = read_metadata(onnx.load(str(tmp_path / "net.onnx")))
    assert metadata["preprocessing"]["class_names"] == ["a", "b", "c"]
    assert metadata["input_shape"] == [1, 28, 28] and "val_accuracy" in metadata


def test_max_drop_run_shows_its_pressure_and_names_the_member_to_ship(tmp_path):
    run_dir = tmp_path / "run"
    result = _run("evolve", "--run-dir", str(run_dir), "--subset", "0.3", "--generations", "6",
                  "--ancestor-epochs", "0", "--epochs", "0", "--keep", "1", "--max-drop", "0.5",
                  "--patience", "2")
    assert result.exit_code == 0, result.output
    assert "Environmental pressure per generation" in result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("stopped after generation 3: 2 generations without a smaller or faster")
    assert "ship g01-m00 (jetsynth export" in last
    assert (run_dir / "report" / "pressure.png").is_file()
    data = json.loads(_run("report", str(run_dir), "--json").output)
    assert [row["keep"] for row in data["pressure"]] == [1.0, 1.0, 1.0]


def test_repeated_bench_is_a_pool_and_a_resume_keeps_it(tmp_path, monkeypatch):
    from sshd_server import free_port

    from jetsynth.run import measurement

    monkeypatch.setattr(measurement, "RETRY_PAUSE_SECONDS", 0.0)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    boards = [f"pi@127.0.0.1:{free_port()}", f"pi@127.0.0.1:{free_port()}"]  # both down
    run = tmp_path / "run"
    args = ["evolve", "--generations", "1", "--ancestor-epochs", "0", "--subset", "0.2",
            "--run-dir", str(run)]
    for name, board in zip("ab", boards, strict=True):  # the user's own devices: a resume may use them
        assert _run("devices", "add", name, "--host", board).exit_code == 0
    assert _run(*args, "--bench", "a", "--bench", "b").exit_code == 0
    assert json.loads((run / "config.json").read_text())["config"]["bench_pool"] == ["b"]
    assert _run(*args, "--resume").exit_code == 0  # the stored pool, not the default
    assert json.loads((run / "config.json").read_text())["config"]["bench_pool"] == ["b"]
