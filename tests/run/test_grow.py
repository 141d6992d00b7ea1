"""Algorithm 1 (`jetsynth grow`): selection by hand, a run, its resume, report and export."""

import json

import onnx
import pytest
import torch
from click.testing import CliRunner

from jetsynth.cli.main import cli
from jetsynth.run.grow import select


def test_greedy_selection_takes_the_k_best():
    correct = [torch.tensor(c, dtype=torch.bool) for c in
               ([1, 1, 1, 0], [1, 1, 0, 0], [0, 0, 1, 1], [1, 0, 0, 0])]
    assert select(correct, 2) == [0, 1]


def test_coevolution_rewards_what_the_selected_miss():
    # member 0 scores 3/4; then weights of examples 0-2 halve: (0.5, 0.5, 0.5, 1).
    # member 1: (0.5 + 0.5) / 2.5 = 0.4; member 2: (0.5 + 1) / 2.5 = 0.6 -> 2 is picked.
    correct = [torch.tensor(c, dtype=torch.bool) for c in
               ([1, 1, 1, 0], [1, 1, 0, 0], [0, 0, 1, 1])]
    assert select(correct, 2, gamma=0.5) == [0, 2]
    assert select(correct, 2) == [0, 1]


GROW = ["grow", "--iterations", "2", "--keep-best", "2", "--population", "4", "--initial-steps", "60",
        "--steps", "30", "--coevolve", "--ensemble", "--ensemble-epochs", "5"]


def test_grow_runs_resumes_reports_and_exports(tmp_path):
    runner = CliRunner()
    run_dir = tmp_path / "grow"
    first = runner.invoke(cli, [*GROW[:2], "1", *GROW[3:], "--run-dir", str(run_dir)])
    assert first.exit_code == 0, first.output
    resumed = runner.invoke(cli, [*GROW, "--run-dir", str(run_dir), "--resume", "--json"])
    assert resumed.exit_code == 0, resumed.output
    summary = json.loads(resumed.output)
    assert len(summary["final"]) == 2 and all("|" in m["arch"] or m["arch"] == "small-cnn"
                                               for m in summary["final"])
    members = sorted(p.name for p in (run_dir / "members").iterdir())
    assert members == ["g01-m00"] + [f"g0{g}-m0{i}" for g in (2, 3) for i in range(4)]
    state = json.loads((run_dir / "population" / "state.json").read_text())
    assert state["iteration"] == 2 and len(state["members"]) == 4
    ensemble = summary["ensemble"]
    assert ensemble["onnx_max_abs_diff"] < 1e-4
    # the combiner learns from the members' training images, never the selection split
    from jetsynth.data.load import load_dataset
    from jetsynth.run.grow import GrowConfig
    config = GrowConfig(**json.loads((run_dir / "grow.json").read_text())["config"])
    data = load_dataset(config.evolve_config().data_spec())
    assert ensemble["combiner_images"] == len(data.train_x) != len(data.val_x)
    graph = onnx.load(ensemble["onnx"])
    assert len(graph.graph.input) == 1  # one graph for the K members and the combiner
    report = runner.invoke(cli, ["report", str(run_dir), "--json"])
    assert report.exit_code == 0, report.output
    assert len(json.loads(report.output)["members"]) == 9
    out = tmp_path / "grown.onnx"
    exported = runner.invoke(cli, ["export", str(run_dir), "--best", "-o", str(out), "--json"])
    assert exported.exit_code == 0, exported.output
    assert json.loads(exported.output)["member"] == summary["final"][0]["id"]


def test_grow_refuses_bad_settings_in_one_line(tmp_path):
    result = CliRunner().invoke(cli, ["grow", "--keep-best", "5", "--population", "3",
                                      "--run-dir", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "--keep-best must be between 1 and --population" in result.output


@pytest.mark.parametrize("changed", [["--gamma", "0.25"]])
def test_resume_with_other_settings_is_refused(tmp_path, changed):
    runner = CliRunner()
    run_dir = str(tmp_path / "g")
    args = ["grow", "--iterations", "1", "--steps", "5", "--initial-steps", "5", "--population", "2",
            "--keep-best", "1", "--run-dir", run_dir]
    assert runner.invoke(cli, args).exit_code == 0
    result = runner.invoke(cli, [*args, "--resume", *changed])
    assert result.exit_code == 2 and "other settings (gamma)" in result.output


def test_a_resumed_run_ends_as_the_uninterrupted_one(tmp_path):
    runner = CliRunner()
    args = ["grow", "--keep-best", "2", "--population", "3", "--initial-steps", "20", "--steps", "15",
            "--coevolve", "--json"]
    straight = runner.invoke(cli, [*args, "--iterations", "2", "--run-dir", str(tmp_path / "a")])
    assert straight.exit_code == 0, straight.output
    half = runner.invoke(cli, [*args, "--iterations", "1", "--run-dir", str(tmp_path / "b")])
    assert half.exit_code == 0, half.output
    rest = runner.invoke(cli, [*args, "--iterations", "2", "--run-dir", str(tmp_path / "b"), "--resume"])
    assert rest.exit_code == 0, rest.output
    assert json.loads(rest.output)["final"] == json.loads(straight.output)["final"]


def test_grow_from_an_already_grown_arch_builds_each_block_once(tmp_path):
    """--arch names a grown network (here a wider deeper layer in front of conv 4): the run starts
    from it, every member carries its transform once, and the best exports."""
    runner = CliRunner()
    run_dir = tmp_path / "g"
    arch = "small-cnn|deep(4,3,2,1,24)"
    result = runner.invoke(cli, ["grow", "--arch", arch, "--iterations", "1", "--keep-best", "1",
                                 "--population", "3", "--initial-steps", "5", "--steps", "5",
                                 "--run-dir", str(run_dir), "--json"])
    assert result.exit_code == 0, result.output
    archs = [json.loads((p / "genome.json").read_text())["arch"] for p in (run_dir / "members").iterdir()]
    assert len(archs) == 4 and all(a.startswith(arch) and a.count("deep(4,3,2,1,24)") == 1 for a in archs)
    exported = runner.invoke(cli, ["export", str(run_dir), "--best", "-o", str(tmp_path / "b.onnx"),
                                   "--no-parity", "--json"])
    assert exported.exit_code == 0, exported.output


def test_members_are_evaluated_and_saved_with_their_own_batch_norm_statistics(tmp_path):
    """The members share their running statistics, last updated by whichever member trained;
    each is evaluated (and its genome saved) with statistics re-estimated on its own
    activations over CALIBRATION_BATCHES training batches."""
    from jetsynth.run.grow import CALIBRATION_BATCHES
    from jetsynth.run.rundir import RunDirectory

    run_dir = tmp_path / "grow"
    args = ["grow", "--iterations", "1", "--keep-best", "1", "--population", "3", "--initial-steps",
            "40", "--steps", "40", "--run-dir", str(run_dir), "--json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    run = RunDirectory(run_dir)
    for mid in ("g01-m00", "g02-m00", "g02-m01", "g02-m02"):
        state = run.genome(mid).state
        counts = {k: int(v) for k, v in state.items() if k.endswith("num_batches_tracked")}
        assert counts and set(counts.values()) == {CALIBRATION_BATCHES}, (mid, counts)


SMALL = ["grow", "--iterations", "1", "--keep-best", "1", "--population", "2", "--initial-steps", "10",
         "--steps", "5", "--json"]


def test_a_gpu_this_machine_lacks_ends_grow_before_anything_is_written(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    for args, message in ((["--device", "cuda"], "--device cuda: torch finds no CUDA GPU"),
                          (["--device", "cuda:2"], "--device cuda:2: torch finds no CUDA GPU"),
                          (["--device", "cpu", "--amp", "fp16"], "--amp fp16 needs a GPU"),
                          (["--amp", "fp8"], "--amp fp8: expected one of bf16, fp16, off")):
        result = CliRunner().invoke(cli, [*SMALL, *args, "--run-dir", str(tmp_path / "g")])
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
        assert not (tmp_path / "g").exists()


def test_grow_trains_where_it_is_told_and_records_it(tmp_path):
    runner = CliRunner()
    run_dir = tmp_path / "g"
    result = runner.invoke(cli, [*SMALL, "--device", "cpu", "--amp", "bf16", "--run-dir", str(run_dir)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert (summary["device"], summary["amp"]) == ("cpu", "bf16")
    records = [json.loads((p / "member.json").read_text()) for p in (run_dir / "members").iterdir()]
    assert {(r["device"], r["amp"]) for r in records} == {("cpu", "bf16")}
    assert json.loads((run_dir / "config.json").read_text())["config"]["training"]["device"] == "cpu"
    # where and in what arithmetic it trains is placement: a resume may change both
    more = runner.invoke(cli, [*SMALL[:2], "2", *SMALL[3:], "--device", "auto", "--run-dir",
                               str(run_dir), "--resume"])
    assert more.exit_code == 0, more.output
    assert json.loads(more.output)["amp"] == ("bf16" if torch.cuda.is_available() else "off")


def test_fp16_gradient_scale_survives_a_resume(tmp_path):
    """The gradient scaler's scale decides the next updates (a step whose gradients overflow is
    skipped and halves it): a resumed fp16 run continues with the scale it had. Run on the CPU,
    whose GradScaler torch provides, past the command line's refusal of fp16 there."""
    from jetsynth.data.load import load_dataset
    from jetsynth.nn.models import resolve_factory
    from jetsynth.run.grow import GrowConfig, Grower
    from jetsynth.run.rundir import open_run

    config = GrowConfig(iterations=1, keep_best=1, population=2, initial_steps=4, steps=2,
                        device="cpu", amp="fp16")
    dataset = load_dataset(config.evolve_config().data_spec())
    factory = resolve_factory(config.arch, trusted=True)

    def grower(resume: bool) -> Grower:
        run = open_run(tmp_path / "g", config.evolve_config(), resume, {config.arch: factory})
        try:
            grown = Grower(config, run, dataset, factory, lambda _text: None, "cpu", "fp16")
            grown.run_all()
            return grown
        finally:
            run.release()

    first = grower(resume=False)
    state_file = tmp_path / "g" / "population" / "state.json"
    state = json.loads(state_file.read_text())
    assert state["scaler"] == first.scaler.state_dict()
    state["scaler"].update(scale=1024.0, _growth_tracker=7)  # as after overflows and good steps
    state_file.write_text(json.dumps(state))
    resumed = grower(resume=True)  # nothing left to train: the restored scaler is untouched
    assert (resumed.scaler.get_scale(), resumed.scaler.state_dict()["_growth_tracker"]) == (1024.0, 7)
