import os
import stat

import numpy as np
import pytest
from fake_tensorrt import FakeBuffers, add_runtime, make_tensorrt

from jetsynth.agent.cli import parse_args
from jetsynth.agent.errors import AgentError
from jetsynth.agent.tensorrt import TrtRunner, build_engine, default_timing_cache, tensorrt_api


def _onnx(tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"\x08\x07onnx-bytes")
    return path


def test_build_engine_on_tensorrt_8_uses_workspace_size_and_explicit_batch(tmp_path):
    trt = make_tensorrt("8.2.1.8", fast_fp16=True)
    cache = tmp_path / "timing.cache"
    facts = build_engine(trt, str(_onnx(tmp_path)), str(tmp_path / "m.engine"), fp16=True,
                         workspace_mib=64, timing_cache=str(cache), batch=4, max_batch=8)
    assert trt.calls["network_flags"] == 1
    assert trt.calls["max_workspace_size"] == 64 << 20 and "memory_pool_limit" not in trt.calls
    assert trt.calls["flags"] == ["FP16"]
    assert trt.calls["profile"] == ("image", (1, 1, 28, 28), (4, 1, 28, 28), (8, 1, 28, 28))
    assert (tmp_path / "m.engine").read_bytes() == b"ENGINE"
    assert facts["precision"] == "fp16" and facts["engine_bytes"] == 6
    assert cache.read_bytes() == b"+timed" and facts["timing_cache_bytes"] == 6
    build_engine(trt, str(_onnx(tmp_path)), str(tmp_path / "m.engine"), timing_cache=str(cache))
    assert trt.calls["cache_in"] == b"+timed"


def test_build_engine_on_tensorrt_10_uses_memory_pools(tmp_path):
    trt = make_tensorrt("10.3.0", fast_fp16=True)
    build_engine(trt, str(_onnx(tmp_path)), str(tmp_path / "m.engine"), workspace_mib=32)
    assert trt.calls["network_flags"] == 0
    assert trt.calls["memory_pool_limit"] == ("WORKSPACE", 32 << 20)
    assert "max_workspace_size" not in trt.calls


def test_fp16_only_where_fast_and_sparse_only_on_ampere(tmp_path):
    maxwell = make_tensorrt("8.2.1.8", fast_fp16=False)
    facts = build_engine(maxwell, str(_onnx(tmp_path)), str(tmp_path / "e"), fp16=True, sparse=True)
    assert "flags" not in maxwell.calls
    assert facts["precision"] == "fp32" and facts["fp16_requested"] and not facts["sparse_applied"]
    assert "does nothing here" in facts["sparse_note"]
    orin = make_tensorrt("10.3.0", fast_fp16=True, tf32=True)
    facts = build_engine(orin, str(_onnx(tmp_path)), str(tmp_path / "e"), fp16=True, sparse=True)
    assert orin.calls["flags"] == ["FP16", "SPARSE_WEIGHTS"]
    assert facts["sparse_applied"] and "sparse_note" not in facts


def test_build_engine_failures_are_one_line(tmp_path):
    with pytest.raises(AgentError, match="cannot parse m.onnx: In node 3 .*Foo"):
        build_engine(make_tensorrt(parse_ok=False), str(_onnx(tmp_path)), str(tmp_path / "e"))
    with pytest.raises(AgentError, match="could not build"):
        build_engine(make_tensorrt(build_ok=False), str(_onnx(tmp_path)), str(tmp_path / "e"))
    with pytest.raises(AgentError, match="batch size is fixed at 1"):
        build_engine(make_tensorrt(input_shape=(1, 1, 28, 28)), str(_onnx(tmp_path)), str(tmp_path / "e"),
                     batch=4)
    with pytest.raises(AgentError, match="only the batch axis"):
        build_engine(make_tensorrt(input_shape=(-1, 1, -1, 28)), str(_onnx(tmp_path)), str(tmp_path / "e"))


@pytest.mark.parametrize("bad_cache", ["none", "raise"])
def test_a_timing_cache_tensorrt_cannot_load_is_ignored_and_replaced(tmp_path, bad_cache):
    trt = make_tensorrt("8.2.1.8", bad_cache=bad_cache)
    cache = tmp_path / "timing.cache"
    cache.write_bytes(b"bad blob from another TensorRT")
    facts = build_engine(trt, str(_onnx(tmp_path)), str(tmp_path / "m.engine"), timing_cache=str(cache))
    assert trt.calls["cache_rejected"] == b"bad blob from another TensorRT"
    assert trt.calls["cache_in"] == b"" and facts["timing_cache_bytes"] == 6
    assert cache.read_bytes() == b"+timed"
    assert sorted(os.listdir(tmp_path)) == ["m.engine", "m.onnx", "timing.cache"]


def test_the_timing_cache_is_replaced_not_written_through(tmp_path):
    """A link planted at the cache's path is replaced by the new cache; its target is untouched."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    cache = tmp_path / "cache" / "timing.cache"
    cache.parent.mkdir()
    cache.symlink_to(victim)
    build_engine(make_tensorrt(), str(_onnx(tmp_path)), str(tmp_path / "m.engine"), timing_cache=str(cache))
    assert victim.read_text() == "precious"
    assert not cache.is_symlink() and cache.read_bytes() == b"+timed"
    assert os.listdir(cache.parent) == ["timing.cache"]


def test_the_timing_cache_is_per_user(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    options = parse_args(["run", "m.onnx", "--timing-cache", "user"])
    assert options.timing_cache == str(tmp_path / "xdg" / "jetsynth" / "tensorrt-timing.cache")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_timing_cache() == str(tmp_path / "home" / ".cache" / "jetsynth" /
                                        "tensorrt-timing.cache")
    build_engine(make_tensorrt(), str(_onnx(tmp_path)), str(tmp_path / "m.engine"),
                 timing_cache=default_timing_cache())
    folder = tmp_path / "home" / ".cache" / "jetsynth"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


@pytest.mark.parametrize("version, api", [("8.2.1.8", "BindingApi"), ("8.6.1", "BindingApi"),
                                          ("10.3.0", "TensorApi"), ("11.4.1", "StronglyTypedApi")])
def test_the_version_adapter_is_chosen_once_by_the_major_version(version, api):
    assert type(tensorrt_api(make_tensorrt(version))).__name__ == api


@pytest.mark.parametrize("version, execute", [("8.2.1.8", "v2"), ("10.3.0", "v3"), ("11.4.1", "v3")])
def test_the_runner_binds_and_runs_through_the_versions_own_api(version, execute):
    trt = add_runtime(make_tensorrt(version))
    buffers = FakeBuffers()
    with TrtRunner(trt, b"ENGINE", buffers) as runner:
        assert runner.image_shape == (1, 28, 28) and runner.dtype == np.float32
        runner.prepare(4)
        assert trt.calls["input_shapes"] == [(4, 1, 28, 28)]
        runner.infer()
        assert buffers.copies == [("in", 1000, (4, 1, 28, 28)), ("out", 1001, (4, 10)), ("sync",)]
        runner.prepare(4, np.ones((4, 1, 28, 28), np.float32))
        assert trt.calls["input_shapes"] == [(4, 1, 28, 28)] and buffers.freed == []
        assert runner.bound["image"][0].min() == 1.0
        runner.infer()
    assert sorted(buffers.freed) == [1000, 1001]
    if execute == "v2":
        assert trt.calls["executed"][0] == ("v2", [1000, 1001], 7)
    else:
        assert trt.calls["executed"][0] == ("v3", 7)
        assert trt.calls["addresses"] == {"image": 1000, "logits": 1001}


def test_a_fixed_batch_engine_refuses_another_batch_and_a_foreign_engine_is_one_line():
    trt = add_runtime(make_tensorrt("10.3.0"), input_shape=(1, 1, 28, 28), output_shape=(1, 10))
    runner = TrtRunner(trt, b"ENGINE", FakeBuffers())
    with pytest.raises(AgentError, match="fixed at 1; ask for --batch 1"):
        runner.prepare(4)
    runner.prepare(1)
    assert "input_shapes" not in trt.calls
    with pytest.raises(AgentError, match="cannot load the engine"):
        TrtRunner(trt, b"other", FakeBuffers())


def test_tensorrt_11_sets_no_fp16_flag_and_says_why(tmp_path):
    trt = make_tensorrt("11.4.1", fast_fp16=True)
    facts = build_engine(trt, str(_onnx(tmp_path)), str(tmp_path / "m.engine"), fp16=True)
    assert "flags" not in trt.calls and trt.calls["network_flags"] == 0
    assert "strongly typed" in facts["fp16_note"]
