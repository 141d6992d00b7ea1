import json

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from jetsynth import measurement
from jetsynth.devices import Device
from jetsynth.measurement import CACHE_FILE, MeasurementCache, architecture_hash, measure_member
from jetsynth.rundir import RunDirectory


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
    cache.put("a:ort-cpu:fp16:b1", {"fps": 10.0})
    with (tmp_path / CACHE_FILE).open("a") as handle:
        handle.write('{"key": "b", "val')
    again = MeasurementCache(tmp_path / CACHE_FILE)
    assert again.get("a:ort-cpu:fp16:b1") == {"fps": 10.0} and again.get("b") is None


def test_an_architecture_is_timed_once(benched_run, tmp_path):
    genome = RunDirectory(benched_run).genome("g03-m00")
    cache = MeasurementCache(tmp_path / CACHE_FILE)
    first = measure_member(genome, tmp_path / "a", "ort-cpu", "fp16", 2, 0.05, cache)
    second = measure_member(genome, tmp_path / "b", "ort-cpu", "fp16", 2, 0.05, cache)
    assert first["fps"] > 0 and second["fps"] == first["fps"]
    assert second["bench"]["cached"] and "cached" not in first["bench"]
    assert (tmp_path / "b" / "model.onnx").is_file()
    assert len((tmp_path / CACHE_FILE).read_text().splitlines()) == 1
    third = measure_member(genome, tmp_path / "c", "ort-cpu", "fp16", 4, 0.05, cache)
    assert "cached" not in third["bench"] and third["bench"]["batch"] == 4


def test_member_timed_on_a_device_through_deploy(benched_run, local_device, tmp_path):
    genome = RunDirectory(benched_run).genome("g02-m00")
    cache = MeasurementCache(tmp_path / CACHE_FILE)
    figures = measure_member(genome, tmp_path, local_device, "fp16", 1, 0.1, cache)
    assert figures["fps"] > 0 and figures["bench"]["backend"] == "local:onnxruntime"
    assert json.loads((tmp_path / CACHE_FILE).read_text())["key"].endswith(":device:local:fp16:b1")


def test_a_device_that_drops_out_is_retried_then_skipped(benched_run, local_device, tmp_path, monkeypatch):
    from sshd_server import free_port

    monkeypatch.setattr(measurement, "RETRY_PAUSE_SECONDS", 0.0)
    dead = Device(**{**local_device.as_dict(), "port": free_port()})
    genome = RunDirectory(benched_run).genome("g02-m00")
    cache = MeasurementCache(tmp_path / CACHE_FILE)
    figures = measure_member(genome, tmp_path, dead, "fp16", 1, 0.1, cache)
    assert figures["fps"] is None and figures["bench"]["attempts"] == 3
    assert "cannot reach" in figures["bench"]["error"]
    assert cache.entries == {}


@pytest.mark.parametrize("target, generations", [(1.0, 1), (1e12, 3)])
def test_target_fps_stops_the_run(tmp_path, target, generations):
    from jetsynth.config import EvolveConfig
    from jetsynth.evolve import evolve

    config = EvolveConfig(data="digits", subset=0.2, generations=3, ancestor_epochs=1, epochs=1, keep=0.6,
                          bench="ort", bench_seconds=0.05, target_fps=target, accuracy_floor=0.0)
    records = evolve(config, tmp_path / "run")
    assert max(r["generation"] for r in records) == generations
    events = [json.loads(line) for line in (tmp_path / "run" / "events.jsonl").read_text().splitlines()]
    reached = [e for e in events if e["event"] == "target_reached"]
    assert bool(reached) == (target == 1.0)


def test_evolve_with_a_device_as_the_bench(local_device, tmp_path, monkeypatch):
    from jetsynth.config import EvolveConfig
    from jetsynth.devices import add_device
    from jetsynth.evolve import evolve

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    add_device(local_device)
    config = EvolveConfig(data="digits", subset=0.2, generations=2, ancestor_epochs=1, epochs=1, keep=0.6,
                          precision="fp16", bench="local", bench_seconds=0.1)
    records = evolve(config, tmp_path / "run")
    assert all(r["fps"] > 0 and r["bench"]["backend"] == "local:onnxruntime" for r in records)


def test_bad_bench_and_target_options_are_refused(tmp_path, monkeypatch):
    from jetsynth.config import EvolveConfig
    from jetsynth.errors import JetsynthError

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    with pytest.raises(JetsynthError, match="no device named 'nowhere'"):
        EvolveConfig(bench="nowhere").resolved()
    with pytest.raises(JetsynthError, match="--target-fps needs measured speed"):
        EvolveConfig(target_fps=100.0).resolved()
    with pytest.raises(JetsynthError, match="--accuracy-floor is a fraction"):
        EvolveConfig(bench="ort", target_fps=100.0, accuracy_floor=98.5).resolved()
