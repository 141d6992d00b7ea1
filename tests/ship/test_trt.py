import json
import sys

import pytest
from fake_tensorrt import make_tensorrt

from jetsynth.agent.facts import gpu_info
from jetsynth.errors import JetsynthError
from jetsynth.ship.trt import build, import_tensorrt, sidecar_path


def test_build_writes_the_engine_and_its_facts(member_onnx, tmp_path):
    trt = make_tensorrt("8.2.1.8", fast_fp16=True)
    engine = tmp_path / "out" / "net.engine"
    facts = build(member_onnx, engine, fp16=True, sparse=True, batch=2, timing_cache=tmp_path / "t.cache",
                  trt=trt)
    stored = json.loads(sidecar_path(engine).read_text())
    assert stored == facts and engine.read_bytes() == b"ENGINE"
    assert stored["precision"] == "fp16" and stored["tensorrt"] == "8.2.1.8"
    assert stored["sparse_requested"] and not stored["sparse_applied"] and "Ampere" in stored["sparse_note"]
    assert stored["model"]["path"] == str(member_onnx) and stored["portable"] is False
    assert trt.calls["profile"][2][0] == 2


def test_build_refusals(member_onnx, tmp_path, monkeypatch):
    with pytest.raises(JetsynthError, match="cannot parse"):
        build(member_onnx, tmp_path / "e", trt=make_tensorrt(parse_ok=False))
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(JetsynthError, match="TensorRT is not installed here.*jetsynth deploy"):
        import_tensorrt()


def test_real_tensorrt_builds_and_times_an_engine(member_onnx, tmp_path):
    """Runs only where TensorRT, a CUDA binding and a GPU exist (a lent GPU machine, a Jetson)."""
    trt = pytest.importorskip("tensorrt", reason="TensorRT is not installed here (no GPU machine)")
    from jetsynth.ship.bench import EngineRunner, measure

    gpu = gpu_info()
    if gpu is None:
        pytest.skip("no CUDA binding (pycuda or cuda-python) or no GPU here")
    facts = build(member_onnx, tmp_path / "net.engine", fp16=True, batch=4, trt=trt)
    assert facts["engine_bytes"] > 0 and facts["gpu"] == gpu
    result = measure(EngineRunner(tmp_path / "net.engine", 4), 4, 0.1, 0.3, 10)
    assert result.fps > 0 and result.batch == 4
