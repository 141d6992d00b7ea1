import json
from dataclasses import replace

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from jetsynth.devices.inventory import Device
from jetsynth.run import measurement
from jetsynth.run.measurement import CACHE_FILE, MeasurementCache, Speedometer, architecture_hash
from jetsynth.run.rundir import RunDirectory
from jetsynth.run.timing import Timing


def _conv_model(filters: int, seed: int, doc: str = ""):
    weight = np.random.default_rng(seed).standard_normal((filters, 1, 3, 3)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])], "net",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", filters, 8, 8])],
        [numpy_helper.from_array(weight, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.doc_string = doc
    return model


def test_architecture_hash_ignores_weights_and_metadata_not_shapes():
    base = architecture_hash(_conv_model(4, seed=0))
    assert architecture_hash(_conv_model(4, seed=1, doc="another member")) == base
    assert architecture_hash(_conv_model(5, seed=0)) != base


def test_cache_survives_a_restart_and_a_torn_last_line(tmp_path):
    cache = MeasurementCache(tmp_path / CACHE_FILE)
    cache.put("a:ort-cpu:fp16:b1", Timing(fps=10.0, backend="ort-cpu"))
    with (tmp_path / CACHE_FILE).open("a") as handle:
        handle.write('{"key": "b", "val')
    again = MeasurementCache(tmp_path / CACHE_FILE)
    assert again.get("a:ort-cpu:fp16:b1") == Timing(fps=10.0, backend="ort-cpu")
    assert again.get("b") is None


def test_a_measurement_after_a_torn_line_is_kept(tmp_path):
    cache = MeasurementCache(tmp_path / CACHE_FILE)
    cache.put("a", Timing(fps=10.0, backend="ort-cpu"))
    with (tmp_path / CACHE_FILE).open("a") as handle:
        handle.write('{"key": "b", "val')
    MeasurementCache(tmp_path / CACHE_FILE).put("c", Timing(fps=30.0, backend="ort-cpu"))
    again = MeasurementCache(tmp_path / CACHE_FILE)
    assert again.get("a").fps == 10.0 and again.get("c").fps == 30.0


OLD_LINE = ('{"key": "k", "value": {"fps": 512.5, "fps_iqr": [500.0, 520.0], "fps_trials": [500.0, '
            '512.5, 520.0], "retimed": 0, "backend": "ort-cpu", "threads": 1, "produced_by": '
            '"onnxruntime on the CPU, fp16 weights, 1 thread", "latency_ms": {"p50": 1.95}, '
            '"reference_fps": 900.0, "drift": 0.98, "from_an_older_jetsynth": 1}, "by": "g02-m00"}\n')


def test_a_cache_line_reads_typed_and_is_written_back_byte_for_byte(tmp_path):
    """The cache's file keeps its format: a line written before timings were typed (with a key
    this version does not know) reads as a Timing and is written back the same."""
    (tmp_path / "old.jsonl").write_text(OLD_LINE)
    timing = MeasurementCache(tmp_path / "old.jsonl").get("k")
    assert (timing.fps, timing.fps_iqr, timing.drift, timing.cached) == (512.5, (500.0, 520.0), 0.98,
                                                                         False)
    assert timing.extra == {"from_an_older_jetsynth": 1}
    MeasurementCache(tmp_path / "new.jsonl").put("k", timing, "g02-m00")
    assert (tmp_path / "new.jsonl").read_text() == OLD_LINE



def measure_member(genome, folder, target, precision, batch, seconds, cache):
    return Speedometer(target, precision, batch, seconds, cache).assess(genome, folder, 0)


def test_an_architecture_is_timed_once(benched_run, tmp_path):
    genome = RunDirectory(benched_run).genome("g03-m00")
    cache = MeasurementCache(tmp_path / CACHE_FILE)
    first = measure_member(genome, tmp_path / "a", "ort-cpu", "fp16", 2, 0.05, cache)
    second = measure_member(genome, tmp_path / "b", "ort-cpu", "fp16", 2, 0.05, cache)
    assert first.fps > 0 and second.fps == first.fps
    assert second.bench.extra["cached"] and "cached" not in first.bench.extra
    assert (tmp_path / "b" / "model.onnx").is_file()
    assert len((tmp_path / CACHE_FILE).read_text().splitlines()) == 1
    third = measure_member(genome, tmp_path / "c", "ort-cpu", "fp16", 4, 0.05, cache)
    assert "cached" not in third.bench.extra and third.bench.batch == 4


def test_a_timing_cached_for_the_member_itself_counts_as_measured(benched_run, tmp_path):
    """A member killed after its timing was cached and before its record was written: on resume
    its timing is its own measurement (and a latency-model sample), not another member's."""
    genome = RunDirectory(benched_run).genome("g03-m00")
    meter = Speedometer("ort-cpu", "fp16", 1, 0.05, MeasurementCache(tmp_path / CACHE_FILE))
    first = meter.assess(genome, tmp_path / "g03-m00", 3)
    resumed = Speedometer("ort-cpu", "fp16", 1, 0.05, MeasurementCache(tmp_path / CACHE_FILE))
    again = resumed.assess(genome, tmp_path / "g03-m00", 3)
    assert first.bench.source == again.bench.source == "measured"
    assert again == first and len(resumed.samples) == len(meter.samples) == 1
    other = resumed.assess(genome, tmp_path / "g04-m00", 4)
    assert other.bench.source == "cached" and len(resumed.samples) == 1


def test_resume_after_a_kill_between_timing_and_record_equals_the_uninterrupted_run(tmp_path):
    import shutil

    from jetsynth.run.config import EvolveConfig
    from jetsynth.run.evolve import evolve

    config = EvolveConfig(data="digits", subset=0.2, generations=3, ancestor_epochs=1, epochs=1,
                          keep=0.6, bench="ort", bench_seconds=0.05, seed=2, preset="seed001")
    reference = evolve(config, tmp_path / "reference")
    shutil.copytree(tmp_path / "reference", tmp_path / "killed")
    (tmp_path / "killed" / "members" / "g03-m00" / "member.json").unlink()
    resumed = evolve(config, tmp_path / "killed", resume=True)

    def timing(records):  # the ONNX size aside: the timed file names its run directory
        return [(r.id, r.accuracy, r.fps, r.fps_predicted,
                 {k: v for k, v in r.bench.to_json().items() if k != "onnx_bytes"}) for r in records]

    assert [r.bench.source for r in reference] == ["measured"] * 3
    assert timing(resumed) == timing(reference)


def test_member_timed_on_a_device_through_deploy(benched_run, local_device, tmp_path):
    genome = RunDirectory(benched_run).genome("g02-m00")
    cache = MeasurementCache(tmp_path / CACHE_FILE)
    figures = measure_member(genome, tmp_path, local_device, "fp16", 1, 0.1, cache)
    assert figures.fps > 0 and figures.bench.backend == "local:onnxruntime"
    line = json.loads((tmp_path / CACHE_FILE).read_text())
    assert line["key"].endswith(":device:local:fp16:b1")
    assert list(line["value"]) == list(measurement.DEVICE_KEYS)  # nulls kept: no engine, no sensor


def test_a_device_that_drops_out_is_retried_then_skipped(benched_run, local_device, tmp_path, monkeypatch):
    from sshd_server import free_port

    monkeypatch.setattr(measurement, "RETRY_PAUSE_SECONDS", 0.0)
    dead = Device(**{**local_device.as_dict(), "port": free_port()})
    genome = RunDirectory(benched_run).genome("g02-m00")
    cache = MeasurementCache(tmp_path / CACHE_FILE)
    figures = measure_member(genome, tmp_path, dead, "fp16", 1, 0.1, cache)
    assert figures.fps is None and figures.bench.extra["attempts"] == 3
    assert "cannot reach" in figures.bench.extra["error"]
    assert cache.entries == {}


@pytest.mark.parametrize("target, generations", [(1.0, 1), (1e12, 3)])
def test_target_fps_stops_the_run(tmp_path, target, generations):
    from jetsynth.run.config import EvolveConfig
    from jetsynth.run.evolve import evolve

    config = EvolveConfig(data="digits", subset=0.2, generations=3, ancestor_epochs=1, epochs=1, keep=0.6,
                          bench="ort", bench_seconds=0.05, target_fps=target, accuracy_floor=0.0)
    records = evolve(config, tmp_path / "run")
    assert max(r.generation for r in records) == generations
    events = [json.loads(line) for line in (tmp_path / "run" / "events.jsonl").read_text().splitlines()]
    reached = [e for e in events if e["event"] == "target_reached"]
    assert bool(reached) == (target == 1.0)


def test_evolve_with_a_device_as_the_bench(local_device, tmp_path, monkeypatch):
    from dataclasses import replace

    from torch import nn

    from jetsynth.devices.inventory import add_device
    from jetsynth.devices.profiles import PROFILES
    from jetsynth.run.config import EvolveConfig
    from jetsynth.run.evolve import Observer, evolve
    from jetsynth.ship.export import compact_genome

    # a board whose profile evolves in groups of 4, not the default 8
    monkeypatch.setitem(PROFILES, "tiny", replace(PROFILES["tx1"], name="tiny", channel_multiple=4))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    add_device(replace(local_device, profile="tiny"))
    notes = []

    class Notes(Observer):
        def notice(self, text):
            notes.append(text)

    config = EvolveConfig(data="digits", subset=0.2, generations=2, ancestor_epochs=1, epochs=1, keep=0.6,
                          precision="fp16", bench="local", bench_seconds=0.1)
    records = evolve(config, tmp_path / "run", observer=Notes())
    assert all(r.fps > 0 and r.bench.backend == "local:onnxruntime" for r in records)
    assert "channel multiple 4: the tiny profile (Jetson TX1) of --bench local; --channel-multiple N " \
           "overrides it" in notes
    offspring = compact_genome(RunDirectory(tmp_path / "run").genome(records[-1].id)).model
    widths = [m.out_channels if isinstance(m, nn.Conv2d) else m.out_features
              for m in offspring.modules() if isinstance(m, (nn.Conv2d, nn.Linear))][:-1]
    assert all(w % 4 == 0 or w < 4 for w in widths), widths


def test_bad_bench_and_target_options_are_refused(tmp_path, monkeypatch):
    from jetsynth.errors import JetsynthError
    from jetsynth.run.config import EvolveConfig

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    with pytest.raises(JetsynthError, match="no device named 'nowhere'"):
        EvolveConfig(bench="nowhere").resolved()
    with pytest.raises(JetsynthError, match="`target_fps` needs measured speed"):
        EvolveConfig(target_fps=100.0).resolved()
    with pytest.raises(JetsynthError, match=r"`accuracy_floor` must be a finite number in \[0, 1\]"):
        EvolveConfig(bench="ort", target_fps=100.0, accuracy_floor=98.5).resolved()


def _model(seconds_per_query: float, batch: int = 1, precision: str = "fp16"):
    from jetsynth.calibration.features import FEATURES
    from jetsynth.calibration.model import LatencyModel

    coefficients = (seconds_per_query,) + (0.0,) * (len(FEATURES) - 1)
    return LatencyModel("ort-cpu", "ort-cpu", precision, batch, coefficients, 10, {})


def test_speedometer_measures_every_kth_member_and_predicts_the_rest(benched_run, tmp_path):
    genome = RunDirectory(benched_run).genome("g03-m00")
    meter = Speedometer("ort-cpu", "fp16", 1, 0.05, MeasurementCache(tmp_path / CACHE_FILE), _model(1e-4),
                        measure_every=3)
    predicted = meter.assess(genome, tmp_path / "a", ordinal=1)
    assert predicted.fps is None and predicted.fps_predicted == pytest.approx(10_000.0)
    assert predicted.bench.source == "predicted" and len(predicted.bench.features) == 7
    measured = meter.assess(genome, tmp_path / "b", ordinal=3)
    assert measured.fps > 0 and measured.bench.source == "measured"
    assert measured.fps_predicted == pytest.approx(10_000.0)
    # once timed, the same architecture costs nothing to measure again
    assert meter.assess(genome, tmp_path / "c", ordinal=4).bench.source == "cached"


def test_a_predicted_hit_is_confirmed_by_a_measurement(benched_run, tmp_path):
    genome = RunDirectory(benched_run).genome("g02-m00")
    meter = Speedometer("ort-cpu", "fp16", 1, 0.05, MeasurementCache(tmp_path / CACHE_FILE), _model(1e-4),
                        measure_every=100)
    below_floor = meter.assess(genome, tmp_path / "a", 1, target_fps=5000.0, keeps_floor=False)
    assert below_floor.bench.source == "predicted"
    hit = meter.assess(genome, tmp_path / "b", 1, target_fps=5000.0, keeps_floor=True)
    assert hit.bench.source == "measured" and hit.fps > 0


def test_without_a_calibration_the_run_fits_its_own_model(tmp_path):
    from jetsynth.calibration.model import MIN_SAMPLES

    rng = np.random.default_rng(0)
    truth = np.array([1e-5, 1e-7, 0, 2e-11, 1e-11, 0, 1e-10])
    vectors = [np.concatenate([[1.0], rng.uniform(1, 1e5, 6)]) for _ in range(MIN_SAMPLES)]
    meter = Speedometer("ort-cpu", "fp32", 1, 0.05, MeasurementCache(tmp_path / CACHE_FILE),
                        samples=[(v, float(v @ truth)) for v in vectors[:-1]])
    assert meter.predictor() is None
    meter.samples.append((vectors[-1], float(vectors[-1] @ truth)))
    online = meter.predictor()
    assert online.backend == "online" and online.seconds(vectors[0]) == pytest.approx(vectors[0] @ truth)


def test_a_dropped_device_leaves_the_prediction(benched_run, local_device, tmp_path, monkeypatch):
    from sshd_server import free_port

    monkeypatch.setattr(measurement, "RETRY_PAUSE_SECONDS", 0.0)
    dead = Device(**{**local_device.as_dict(), "port": free_port()})
    genome = RunDirectory(benched_run).genome("g02-m00")
    meter = Speedometer(dead, "fp16", 1, 0.05, MeasurementCache(tmp_path / CACHE_FILE), _model(2e-4))
    figures = meter.assess(genome, tmp_path, ordinal=0)
    assert figures.fps is None and figures.bench.source == "failed"
    assert figures.fps_predicted == pytest.approx(5000.0)


def _events(run_dir):
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]


def test_evolve_predicts_between_measurements_with_a_calibration(tmp_path, monkeypatch):
    from jetsynth.run.config import EvolveConfig
    from jetsynth.run.evolve import LATENCY_MODEL_FILE, evolve

    monkeypatch.chdir(tmp_path)
    _model(1e-4, precision="fp32").save(tmp_path / "calibration" / "ort-cpu.json")
    config = EvolveConfig(data="digits", subset=0.2, generations=3, population=2, ancestor_epochs=1,
                          epochs=1, bench="ort", bench_seconds=0.05, measure_every=2, target_fps=1e9,
                          preset="seed001")
    records = evolve(config, tmp_path / "run")
    sources = [r.bench.source for r in records]
    assert sources[0] == "measured" and "predicted" in sources
    assert all(r.fps_predicted == pytest.approx(10_000.0) for r in records)
    assert (tmp_path / "run" / LATENCY_MODEL_FILE).is_file()
    pressure = [e for e in _events(tmp_path / "run") if e["event"] == "pressure"]
    assert [e["generation"] for e in pressure] == [2, 3] and all(e["keep"] < 0.8 for e in pressure)
    assert records[1].environment.keep == pytest.approx(pressure[0]["keep"])


def test_a_calibration_for_other_settings_is_refused_or_skipped(tmp_path, monkeypatch):
    from jetsynth.errors import JetsynthError
    from jetsynth.run.config import EvolveConfig
    from jetsynth.run.evolve import evolve

    monkeypatch.chdir(tmp_path)
    path = _model(1e-4, batch=8, precision="fp32").save(tmp_path / "calibration" / "ort-cpu.json")
    config = EvolveConfig(data="digits", subset=0.2, generations=1, ancestor_epochs=1, bench="ort",
                          bench_seconds=0.05)
    with pytest.raises(JetsynthError, match="calibrated at fp32, batch 8"):
        evolve(replace(config, latency_model=str(path)), tmp_path / "given")
    assert not (tmp_path / "given").exists()
    evolve(config, tmp_path / "found")
    assert [e for e in _events(tmp_path / "found") if e["event"] == "latency_model_ignored"]
    assert json.loads((tmp_path / "found" / "latency-model.json").read_text()) == {"own": True}
    # a calibration that appears later does not change what a resumed run predicts with
    _model(1e-4, precision="fp32").save(path)
    evolve(replace(config, generations=2), tmp_path / "found", resume=True)
    assert json.loads((tmp_path / "found" / "latency-model.json").read_text()) == {"own": True}


def test_closed_loop_defaults_and_their_errors():
    from jetsynth.errors import JetsynthError
    from jetsynth.run.config import EvolveConfig

    closed = EvolveConfig(bench="ort", target_fps=100.0).resolved()
    assert (closed.selection, closed.pressure, closed.cluster) == ("fps", "adaptive", "filter")
    assert (closed.balance, closed.cluster_pressure) == (0.0, 0.9)
    plain = EvolveConfig(preset="seed001").resolved()
    assert (plain.selection, plain.pressure, plain.cluster) == ("random", "fixed", "kernel")
    assert (plain.balance, plain.cluster_pressure) == (0.5, 0.5)
    assert EvolveConfig(bench="ort", target_fps=1.0, balance=0.5).resolved().balance == 0.5
    # adaptive pressure follows accuracy alone where no target is given ("shrink until the floor")
    assert EvolveConfig(bench="ort", pressure="adaptive").resolved().pressure == "adaptive"
    for options, message in [
        ({"selection": "fps"}, "needs speed"),
        ({"measure_every": 3}, "need speed"),
        ({"bench": "ort", "measure_every": 0}, r"`measure_every` must be an integer in \[1, "),
    ]:
        with pytest.raises(JetsynthError, match=message):
            EvolveConfig(**options).resolved()


def test_members_record_their_speed_spread_and_the_reference_drift(benched_run):
    from jetsynth.run.rundir import RunDirectory

    records = sorted(RunDirectory(benched_run).records(), key=lambda r: (r.generation, r.member))
    for record in records:
        low, high = record.fps_iqr
        assert low <= record.fps <= high
        assert record.bench.produced_by == "onnxruntime on the CPU, fp16 weights, 1 thread"
        assert len(record.bench.extra["fps_trials"]) >= 5
    fresh = [r for r in records[1:] if r.bench.source == "measured"]
    assert fresh and all(r.bench.extra["reference_fps"] > 0 and r.bench.extra["drift"] > 0 for r in fresh)
    assert "drift" not in records[0].bench.extra  # the ancestor is the reference


def test_a_host_that_drifted_re_times_the_member(member_onnx):
    real = measurement.time_here(member_onnx, "ort-cpu", 1, 0.05)
    # a reference said to have run 20 times faster at the start: the host looks 20 times slower
    slowed = measurement.time_here(member_onnx, "ort-cpu", 1, 0.05, (member_onnx, 20 * real.fps))
    assert slowed.drift_retimed is True and slowed.drift < 0.2
    assert slowed.reference_fps > 0 and slowed.fps > 0
    assert not real.drift_retimed and "drift" not in real.to_json()


@pytest.mark.parametrize("member", ["g01-m00", "g02-m00"])
def test_what_bench_timed_is_byte_for_byte_what_export_ships(tmp_path, benched_run, member):
    import onnx

    from jetsynth.run.export_run import export_member
    from jetsynth.ship.bench import MEMBER_MODEL

    generation = int(member[1:3])
    timed_file = benched_run / "members" / member / MEMBER_MODEL
    shipped, _ = export_member(benched_run, tmp_path / "plain.onnx", generation, 0,
                               precision="fp16", check_parity=False)
    assert shipped.path.read_bytes() == timed_file.read_bytes()
    checked, _ = export_member(benched_run, tmp_path / "checked.onnx", generation, 0,
                               precision="fp16", check_parity=True)
    proto = onnx.load(str(checked.path))
    kept = [entry for entry in proto.metadata_props if entry.key != "parity"]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    assert proto.SerializeToString() == timed_file.read_bytes()  # the parity figures aside
