import time

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from jetsynth.agent.runners import Runner
from jetsynth.errors import JetsynthError
from jetsynth.run.rundir import RunDirectory
from jetsynth.ship.bench import (
    OrtRunner,
    TorchRunner,
    measure,
    onnx_runner,
)
from jetsynth.ship.export import compact_genome


class _Sleeper(Runner):
    """A runner whose every query takes about `ms` milliseconds."""

    name = "sleeper"
    image_shape = (1, 2, 2)
    dtype = np.dtype(np.float32)

    def __init__(self, ms: float) -> None:
        self.ms = ms
        self.calls = 0
        self.batches = set()

    def prepare(self, batch, images=None):
        self.batches.add(images.shape)

    def infer(self):
        self.calls += 1
        time.sleep(self.ms / 1000)


def test_measure_follows_trtexec_definitions():
    runner = _Sleeper(2.0)
    result = measure(runner, batch=4, warmup_seconds=0.02, min_seconds=0.1, min_queries=15)
    assert runner.batches == {(4, 1, 2, 2)}
    assert result.queries >= 15 and runner.calls > result.queries  # warm-up not counted
    assert result.throughput_qps == pytest.approx(result.queries / result.wall_seconds, rel=0.3)
    assert result.fps == pytest.approx(4 * result.throughput_qps)
    assert len(result.fps_trials) >= 5 and result.fps_iqr[0] <= result.fps <= result.fps_iqr[1]
    lat = result.latency_ms
    assert 2.0 <= lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]


def test_measure_stops_at_the_query_minimum_when_queries_are_slow():
    result = measure(_Sleeper(1.0), min_seconds=0.0, min_queries=7, warmup_seconds=0.0, trials=1)
    assert result.queries == 7


class _Jittery(_Sleeper):
    """Queries change speed every `per_trial` calls: trials that disagree."""

    def __init__(self, speeds_ms: list[float], per_trial: int) -> None:
        super().__init__(speeds_ms[0])
        self.speeds_ms = speeds_ms
        self.per_trial = per_trial

    def infer(self):
        self.ms = self.speeds_ms[(self.calls // self.per_trial) % len(self.speeds_ms)]
        super().infer()


def test_measure_reports_the_median_of_its_trials_and_their_spread():
    steady = measure(_Sleeper(2.0), warmup_seconds=0.0, min_seconds=0.0, min_queries=15, trials=5)
    assert len(steady.fps_trials) == 5 + steady.retimed
    assert steady.fps == pytest.approx(np.median(steady.fps_trials))
    assert steady.fps_iqr == pytest.approx(list(np.percentile(steady.fps_trials, [25, 75])))


def test_trials_that_disagree_are_re_timed():
    # trials alternate between 1 ms and 4 ms per query: the range is far wider than 10 %
    runner = _Jittery([1.0, 4.0], per_trial=4)  # each trial: one untimed query, three timed
    result = measure(runner, warmup_seconds=0.0, min_seconds=0.0, min_queries=15, trials=5, max_trials=9)
    assert result.retimed == 4 and len(result.fps_trials) == 9
    assert result.fps_iqr[1] / result.fps_iqr[0] > 2


def test_onnx_runner_on_an_exported_member(benched_run):
    runner = onnx_runner(RunDirectory(benched_run).member_dir("g02-m00") / "model.onnx")
    assert runner.image_shape == (1, 28, 28)
    result = measure(runner, batch=8, warmup_seconds=0.0, min_seconds=0.05, min_queries=5)
    assert result.fps > 0 and result.batch == 8
    assert result.host["ort_providers"]


def test_torch_runner_on_a_compacted_member(benched_run):
    genome = RunDirectory(benched_run).genome("g02-m00")
    runner = TorchRunner(compact_genome(genome).model, genome.input_shape)
    assert measure(runner, batch=2, warmup_seconds=0.0, min_seconds=0.02, min_queries=3).fps > 0


def _save(tmp_path, graph) -> str:
    path = tmp_path / "foreign.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), str(path))
    return path


def test_corrupt_and_foreign_models_get_clear_errors(tmp_path):
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00\x01 not a protobuf at all \xff" * 10)
    with pytest.raises(JetsynthError, match="not a readable ONNX model"):
        onnx_runner(garbage)
    with pytest.raises(JetsynthError, match="no such file"):
        onnx_runner(tmp_path / "missing.onnx")
    tokens = helper.make_graph(
        [helper.make_node("Identity", ["ids"], ["out"])], "text",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", 16])],
        [helper.make_tensor_value_info("out", TensorProto.INT64, ["batch", 16])],
    )
    with pytest.raises(JetsynthError, match="float or float16 images"):
        onnx_runner(_save(tmp_path, tokens))
    two = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["c"])], "two",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", 3, 4, 4]) for n in "ab"],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, ["batch", 3, 4, 4])],
    )
    with pytest.raises(JetsynthError, match="2 inputs"):
        onnx_runner(_save(tmp_path, two))
    free = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "free",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3, "h", "w"])],
    )
    with pytest.raises(JetsynthError, match="fixed dimensions"):
        onnx_runner(_save(tmp_path, free))


def test_fixed_batch_model_refuses_another_batch(tmp_path):
    fixed = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "fixed",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 4])],
    )
    runner = onnx_runner(_save(tmp_path, fixed))
    assert measure(runner, batch=1, warmup_seconds=0, min_seconds=0, min_queries=2, trials=1).queries == 2
    with pytest.raises(JetsynthError, match="fixed at 1"):
        measure(runner, batch=4)


def test_missing_accelerators_are_clear_errors(tmp_path, benched_run):
    import onnxruntime as ort
    import torch

    model = RunDirectory(benched_run).member_dir("g02-m00") / "model.onnx"
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(JetsynthError, match="no CUDAExecutionProvider"):
            OrtRunner(model, "ort-cuda")
    if not torch.cuda.is_available():
        with pytest.raises(JetsynthError, match="no CUDA device"):
            TorchRunner(torch.nn.Identity(), (1, 2, 2), "torch-cuda")
    with pytest.raises(JetsynthError, match="cannot run an ONNX file"):
        onnx_runner(model, "torch-cpu")


def test_onnxruntime_refusals_read_as_one_plain_line(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "future",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 4])],
    )
    path = tmp_path / "future.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=99),
              str(path))
    with pytest.raises(JetsynthError) as caught:
        onnx_runner(path)
    message = str(caught.value)
    assert message.startswith("onnxruntime cannot load the model: ")
    assert "IR version" in message and ".cc:" not in message and "\n" not in message
