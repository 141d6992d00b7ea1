from dataclasses import replace

from jetsynth.run.timing import Timing


def test_a_fresh_timing_is_written_in_measurement_order(tmp_path):
    """Keys in the order measurement fills them in, whatever order they were given in; nothing
    for what was not measured (no reference, no drift re-timing)."""
    timing = Timing(backend="local:onnxruntime", power={"mean_w": 4.5}, fps=100.0, attempts=None,
                    device_precision="fp16", latency_ms={"p50": 10.0}, build_seconds=1.5)
    assert list(timing.to_json()) == ["fps", "backend", "latency_ms", "device_precision",
                                      "build_seconds", "power"]
    failed = replace(Timing(fps=None, backend="jetson", error="cannot reach", attempts=3),
                     boards_failed=("jetson", "jetson2"))
    assert failed.to_json() == {"fps": None, "backend": "jetson", "error": "cannot reach",
                                "attempts": 3, "boards_failed": ["jetson", "jetson2"]}
    assert replace(failed, cached=True).to_json()["cached"] is True


def test_a_timing_read_keeps_its_keys_and_their_order():
    data = {"backend": "jetson:tensorrt", "fps": 80.0, "power": None, "engine_bytes": None}
    timing = Timing.from_json(data)
    assert timing.fps == 80.0 and timing.power is None
    assert list(timing.to_json()) == list(data) and timing.to_json() == data
