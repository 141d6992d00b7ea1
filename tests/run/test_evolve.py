import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from jetsynth.core.genome import Lineage, ancestor_genome
from jetsynth.errors import JetsynthError
from jetsynth.run.config import EvolveConfig
from jetsynth.run.evolve import Observer, evolve
from jetsynth.run.member import viable_offspring
from jetsynth.run.rundir import RunDirectory
from jetsynth.storage import read_jsonl
from tests.member_records import member as member_record

SMALL = EvolveConfig(data="digits", subset=0.5, generations=3, population=2, ancestor_epochs=2,
                     epochs=1, keep=0.6, seed=5, preset="seed001")


def _essence(records):
    return [(r.id, r.parents, r.accuracy, r.synapses) for r in records]


def test_small_run_writes_every_member(tmp_path):
    records = evolve(SMALL, tmp_path / "run")
    assert [r.id for r in records] == ["g01-m00", "g02-m00", "g02-m01", "g03-m00", "g03-m01"]
    run = RunDirectory(tmp_path / "run")
    for record in records[1:]:
        (parent_id,) = record.parents
        assert parent_id.startswith(f"g{record.generation - 1:02d}")
        child, parent = run.genome(record.id), run.genome(parent_id)
        for name, mask in child.masks.items():
            assert not (mask & ~parent.masks[name]).any()
        assert record.synapses < run.record(parent_id).synapses
        assert record.synaptic_efficiency > 1.0
    assert records[0].synaptic_efficiency == 1.0
    events = [e["event"] for e in read_jsonl(tmp_path / "run" / "events.jsonl")]
    assert events[0] == "run_started" and events[-1] == "run_done"
    assert events.count("member_done") == 5
    stored = json.loads((tmp_path / "run" / "config.json").read_text())
    assert stored["config"]["epochs"] == 1 and "torch" in stored["versions"]


def test_same_seed_same_run(tmp_path):
    config = replace(SMALL, generations=2, population=1)
    assert _essence(evolve(config, tmp_path / "a")) == _essence(evolve(config, tmp_path / "b"))


def test_reinit_gives_newborns_the_same_structure(tmp_path):
    config = replace(SMALL, generations=2, population=1)
    plain = evolve(config, tmp_path / "a")
    newborn = evolve(replace(config, reinit=True), tmp_path / "b")
    assert plain[1].synapses == newborn[1].synapses
    assert plain[1].accuracy != newborn[1].accuracy


def test_existing_run_needs_resume_and_same_settings(tmp_path):
    config = replace(SMALL, generations=2, population=1)
    evolve(config, tmp_path / "run")
    with pytest.raises(JetsynthError, match="add --resume"):
        evolve(config, tmp_path / "run")
    with pytest.raises(JetsynthError, match="other settings \\(keep\\)"):
        evolve(replace(config, keep=0.5), tmp_path / "run", resume=True)
    with pytest.raises(JetsynthError, match="nothing to resume"):
        evolve(config, tmp_path / "empty", resume=True)


def test_resume_extends_a_finished_run_without_retraining(tmp_path):
    config = replace(SMALL, generations=2, population=1)
    first = evolve(config, tmp_path / "run")
    longer = evolve(replace(config, generations=3), tmp_path / "run", resume=True)
    assert _essence(longer[:2]) == _essence(first)
    done = [e["member"] for e in read_jsonl(tmp_path / "run" / "events.jsonl")
            if e["event"] == "member_done"]
    assert done == ["g01-m00", "g02-m00", "g03-m00"]


def test_resume_after_kill_loses_and_repeats_nothing(tmp_path):
    config = replace(SMALL, generations=5)
    reference = evolve(config, tmp_path / "reference")
    run_dir = tmp_path / "killed"
    command = [sys.executable, "-m", "jetsynth", "evolve", "--run-dir", str(run_dir),
               "--data", "digits", "--subset", "0.5", "--generations", "5", "--population", "2",
               "--ancestor-epochs", "2", "--epochs", "1", "--keep", "0.6", "--seed", "5",
               "--preset", "seed001"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env=env)
    events = run_dir / "events.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if any(e.get("member") == "g02-m00" for e in read_jsonl(events)):
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = read_jsonl(events)
    assert not any(e["event"] == "run_done" for e in before), "run finished before the kill"
    resumed = evolve(config, run_dir, resume=True)
    assert _essence(resumed) == _essence(reference)
    done = [e["member"] for e in read_jsonl(events) if e["event"] == "member_done"]
    assert sorted(done) == sorted(r.id for r in reference)
    leftovers = [p for p in run_dir.rglob("*.tmp")]
    assert leftovers == []


@pytest.mark.parametrize(
    "options",
    [
        {"selection": "random"},
        {"selection": "fitness", "mating": "product"},
        {"selection": "similarity", "alignment": "position"},
        {"structure": "union", "alphas": (0.7, 0.3)},
    ],
)
def test_two_parent_population(tmp_path, options):
    config = replace(SMALL, generations=3, population=3, parents=2, subset=0.3, **options)
    records = evolve(config, tmp_path / "run")
    run = RunDirectory(tmp_path / "run")
    for record in records:
        if record.generation == 2:
            assert record.parents == ("g01-m00",)
        if record.generation == 3:
            assert len(set(record.parents)) == 2
            child = run.genome(record.id)
            parents = [run.genome(p) for p in record.parents]
            if config.structure == "intersection" and config.alignment == "tag":
                for name, mask in child.masks.items():
                    allowed = parents[0].masks[name] & parents[1].masks[name]
                    assert not (mask & ~allowed).any()


def _parents_with_disjoint_fc1(count: int) -> dict:
    """`count` parents that each keep a different slice of fc1: any two share no fc1 neuron."""
    base = ancestor_genome("lenet5", (1, 28, 28), 10, seed=0)
    parents = {}
    for index in range(count):
        masks = {k: v.clone() for k, v in base.masks.items()}
        own = torch.zeros(500, dtype=torch.bool)
        own[index * 100:(index + 1) * 100] = True
        masks["7"] &= own[:, None]
        masks["9"] &= own[None, :]
        parents[f"p{index}"] = base.with_masks(masks, Lineage(f"p{index}", 2, index, ()))
    return parents


def test_parents_that_share_no_live_layer_mate_from_fewer():
    """Three parents of which no two share an fc1 neuron cannot breed together; the offspring
    is mated from one of them instead of stopping the run."""
    genomes = _parents_with_disjoint_fc1(3)
    previous = [member_record(id=key) for key in genomes]
    config = replace(SMALL, population=3, parents=3, keep=0.8).resolved()
    child, keep = viable_offspring(config, previous, genomes, None,
                                    torch.Generator().manual_seed(0), 3, 0, 0.8, 0.0)
    assert len(child.lineage.parents) == 1 and keep == 0.8
    parent = genomes[child.lineage.parents[0]]
    for name, mask in child.masks.items():
        assert mask.any() and not (mask & ~parent.masks[name]).any()


def _parent_with_one_reader_per_class():
    """Ten fc1 neurons reading everything, each the only reader of one class: a draw that
    drops any of them loses a class."""
    base = ancestor_genome("lenet5", (1, 28, 28), 10, seed=0)
    masks = {k: v.clone() for k, v in base.masks.items()}
    masks["7"][10:] = False
    masks["9"][:] = False
    masks["9"][torch.arange(10), torch.arange(10)] = True
    return base.with_masks(masks, Lineage("p0", 2, 0, ()))


def test_a_parent_no_draw_can_press_passes_its_structure_on_whole():
    """At keep 0.01 fc1 may keep about 500 of its 8000 synapses, under one neuron of the ten
    every class needs: no draw is viable, so the offspring inherits the structure at keep 1."""
    parent = _parent_with_one_reader_per_class()
    config = replace(SMALL, population=1, parents=1, keep=0.01, cluster_pressure=1.0,
                     balance=0.0).resolved()
    child, keep = viable_offspring(config, [member_record(id="p0")], {"p0": parent}, None,
                                    torch.Generator().manual_seed(0), 3, 0, 0.01, 0.0)
    assert keep == 1.0 and child.lineage.parents == ("p0",)
    for name, mask in child.masks.items():
        assert torch.equal(mask, parent.masks[name])


def test_alpha_count_must_match_parents():
    with pytest.raises(JetsynthError, match="one --alpha per parent"):
        replace(SMALL, parents=2, alphas=(1.0,)).resolved()


def test_bench_ort_records_each_members_speed(benched_run):
    from jetsynth.report.run_report import summary

    data = summary(benched_run)
    assert all(m["fps"] > 0 for m in data["members"])
    member = benched_run / "members" / "g03-m00"
    assert (member / "model.onnx").is_file()
    record = json.loads((member / "member.json").read_text())
    assert record["bench"]["backend"] == "ort-cpu" and record["bench"]["onnx_bytes"] > 0
    assert record["bench"]["precision"] == "fp16"
    genome = RunDirectory(benched_run).genome("g03-m00")
    assert genome.precision == "fp16"
    for value in genome.state.values():
        if value.is_floating_point():
            assert torch.equal(value, value.half().float())  # the next generation inherits fp16 weights


def test_a_run_from_before_adaptive_pressure_resumes_with_fixed_pressure(tmp_path):
    from dataclasses import asdict

    from jetsynth.storage import write_json

    stored = asdict(EvolveConfig(bench="ort", target_fps=100.0).resolved())
    for newer in ("pressure", "measure_every", "latency_model", "val_split", "input_size", "mean",
                  "std", "augment"):
        del stored[newer]
    write_json(tmp_path / "config.json", {"config": stored})
    config = RunDirectory(tmp_path).stored_config()
    assert (config.pressure, config.measure_every, config.latency_model) == ("fixed", 1, None)
    assert config.with_policies().pressure == "fixed"
    assert config.val_split == 0.0  # runs from before the validation split had none


def test_a_bench_backend_this_machine_lacks_fails_before_the_ancestor_trains(tmp_path):
    import subprocess
    import sys

    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    done = subprocess.run([sys.executable, "-m", "jetsynth", "evolve", "--data", "digits", "--bench",
                           "ort-cuda", "--ancestor-epochs", "50", "--run-dir", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "no CUDAExecutionProvider" in done.stderr and "--bench ort" in done.stderr
    assert "--backend" not in done.stderr
    assert not (tmp_path / "run").exists()


def test_threads_sets_torchs_training_threads_and_says_so(tmp_path):
    import torch

    notes = []

    class Notes(Observer):
        def notice(self, text):
            notes.append((text, torch.get_num_threads()))

    before = torch.get_num_threads()
    config = EvolveConfig(data="digits", subset=0.2, generations=1, ancestor_epochs=1, threads=2,
                          bench="ort", bench_seconds=0.05)
    evolve(config, tmp_path / "run", observer=Notes())
    assert torch.get_num_threads() == before
    text, during = notes[0]
    assert during == 2 and text.startswith("training with 2 torch threads (--threads)")
    assert "timing each member with onnxruntime on the CPU, 1 thread, the median of 5 trials" in text
    # how many threads compute a run is not what it computes: a resume may change it
    evolve(replace(config, threads=1, generations=2), tmp_path / "run", resume=True)
    with pytest.raises(JetsynthError, match="--threads"):
        EvolveConfig(threads=-1).resolved()


def test_latency_pressure_needs_a_calibration_then_presses_by_it(tmp_path, monkeypatch):
    from jetsynth.calibration.features import FEATURES
    from jetsynth.calibration.model import LatencyModel

    monkeypatch.chdir(tmp_path)
    config = EvolveConfig(data="digits", subset=0.2, generations=2, ancestor_epochs=1, epochs=1,
                          bench="ort", bench_seconds=0.05, pressure_on="latency", keep=0.5,
                          cluster="filter", cluster_pressure=1.0)
    with pytest.raises(JetsynthError, match="--pressure-on latency needs a calibrated latency model"):
        evolve(config, tmp_path / "none")
    assert not (tmp_path / "none").exists()
    coefficients = {"query": 1e-5, "conv_macs": 2e-11, "im2col": 3e-10, "weights": 6e-11}
    LatencyModel("ort-cpu", "ort-cpu", "fp32", 1, tuple(coefficients.get(f, 0.0) for f in FEATURES),
                 30, {}).save(tmp_path / "calibration" / "ort-cpu.json")
    records = evolve(config, tmp_path / "run")
    assert len(records) == 2 and records[1].macs < records[0].macs


def test_screening_trains_the_draw_the_scorer_ranks_best(tmp_path):
    """--screen 4: four offspring drawn from the member's generator; the scorer here prefers
    the draw that kept the most synapses, but only draws no larger than the median compete."""
    from jetsynth.run.member import member_seed, offspring_task

    parent = ancestor_genome("lenet5", (1, 28, 28), 10, seed=0)
    config = replace(SMALL, population=1, keep=0.5, screen=4).resolved()
    (tmp_path / "run").mkdir()
    run = RunDirectory(tmp_path / "run")
    previous, genomes = [member_record(id="g01-m00")], {"g01-m00": parent}

    def live(genome):
        return sum(int(m.sum()) for m in genome.masks.values())

    rng = torch.Generator().manual_seed(member_seed(config.seed, 2, 0))
    draws = [live(viable_offspring(config, previous, genomes, None, rng, 2, 0, 0.5, 0.0)[0])
             for _ in range(4)]
    task = offspring_task(config, run, lambda text: None, previous, genomes, None, 2, 0, 0.5, 0.0,
                          screen=lambda genome: -live(genome))
    assert len(set(draws)) == 4
    median = sorted(draws)[1:3]
    assert live(task.genome) == max(d for d in draws if d <= sum(median) / 2)
    (event,) = [e for e in read_jsonl(run.root / "events.jsonl") if e["event"] == "screened"]
    assert event["losses"] == [-d for d in draws] and event["costs"] == draws
    assert draws[event["chosen"]] == live(task.genome)


def test_a_screened_run_logs_its_draws_and_repeats_itself(tmp_path):
    config = replace(SMALL, generations=2, population=1, screen=3)
    first = evolve(config, tmp_path / "a")
    assert _essence(first) == _essence(evolve(config, tmp_path / "b"))
    screened = [e for e in read_jsonl(tmp_path / "a" / "events.jsonl") if e["event"] == "screened"]
    assert [e["member"] for e in screened] == ["g02-m00"]
    assert len(screened[0]["losses"]) == 3 and all(x > 0 for x in screened[0]["losses"])


def test_the_device_is_said_recorded_and_may_change_on_resume(tmp_path):
    notes = []

    class Notes(Observer):
        def notice(self, text):
            notes.append(text)

    config = EvolveConfig(data="digits", subset=0.2, generations=2, ancestor_epochs=1, epochs=1,
                          device="cpu", amp="bf16")
    records = evolve(config, tmp_path / "run", observer=Notes())
    assert "training on the CPU in mixed precision bf16 (--device, --amp)" in notes
    assert {(r.device, r.amp) for r in records} == {("cpu", "bf16")}
    stored = json.loads((tmp_path / "run" / "config.json").read_text())["config"]
    assert (stored["device"], stored["amp"]) == ("cpu", "bf16")
    placed = [e for e in read_jsonl(tmp_path / "run" / "events.jsonl") if e["event"] == "placement"]
    assert placed[0]["devices"] == ["cpu"] and placed[0]["amp"] == "bf16"
    # where and in what arithmetic members train is placement: a resume may change both
    more = evolve(replace(config, device="auto", amp=None, generations=3), tmp_path / "run",
                  resume=True)
    assert (more[-1].device, more[-1].amp) == ("cpu", "off")


def test_a_gpu_this_machine_lacks_ends_before_anything_is_written(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    for device in ("cuda", "cuda:3"):
        with pytest.raises(JetsynthError, match=f"--device {device}: torch finds no CUDA GPU"):
            evolve(EvolveConfig(data="digits", device=device), tmp_path / "run")
        assert not (tmp_path / "run").exists()
