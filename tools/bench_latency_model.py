"""How well does the latency model predict networks it never saw? Calibrates on onnxruntime CPU
(this machine as the "device") over a sweep of compacted LeNet-5 and AlexNet-CIFAR variants, then
times a second, independently drawn sweep and compares with the model's predictions.

Reported: the fit's own held-out error (every 4th sample of the calibration sweep left out of a
second fit) and the error on the independent test sweep, overall and per architecture, as median
and max of |predicted − measured| / measured; the range of FPS covered. Usage:

    python tools/bench_latency_model.py [--variants 30] [--test-variants 15] [--precision fp16]
        [--batch 1] [--seconds 0.3] [--dir DIR]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from common import emit

from jetsynth.calibration import export_variant, layer_work
from jetsynth.run.calibrate import calibrate, sweep
from jetsynth.run.measurement import MeasurementCache, measurement_key, timed


def errors(rows: list[dict]) -> dict:
    values = [row["error"] for row in rows]
    return {"median": round(statistics.median(values), 4), "max": round(max(values), 4),
            "count": len(values)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", type=int, default=30, help="calibration networks per architecture")
    parser.add_argument("--test-variants", type=int, default=15, help="test networks per architecture")
    parser.add_argument("--precision", default="fp16")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=0.3)
    parser.add_argument("--dir", default=None, help="keeps networks and timings (resumable)")
    args = parser.parse_args()
    folder = Path(args.dir or tempfile.mkdtemp(prefix="latency-model-"))
    started = time.perf_counter()
    model, path = calibrate("ort-cpu", args.precision, args.batch, args.seconds, count=args.variants,
                            seed=0, folder=folder)
    import onnx

    cache = MeasurementCache(folder / "test.measurements.jsonl")
    rows = []
    for variant in sweep(("lenet5", "alexnet-cifar"), args.test_variants, seed=1)[2:]:
        onnx_path = export_variant(variant, folder / "test-networks", args.precision)
        proto = onnx.load(str(onnx_path))
        key = measurement_key(proto, "ort-cpu", args.precision, args.batch)
        fps = timed(onnx_path, key, "ort-cpu", args.batch, args.seconds, cache).fps
        predicted = model.fps(layer_work(proto))
        rows.append({"network": variant.name, "arch": variant.arch, "fps": round(fps, 1),
                     "predicted": round(predicted, 1), "error": abs(predicted - fps) / fps})
    emit("latency-model-ort-cpu", {
        "settings": {"precision": args.precision, "batch": args.batch, "seconds": args.seconds,
                     "calibration_networks": model.samples, "test_networks": len(rows)},
        "model": str(path),
        "coefficients": dict(zip(model.features, model.coefficients, strict=True)),
        "calibration_error": model.error,
        "test_error": errors(rows),
        "test_error_by_arch": {arch: errors([r for r in rows if r["arch"] == arch])
                               for arch in ("lenet5", "alexnet-cifar")},
        "test_fps_range": [min(r["fps"] for r in rows), max(r["fps"] for r in rows)],
        "test": rows,
    }, time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
