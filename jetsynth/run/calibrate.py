"""`jetsynth calibrate DEVICE`: time a sweep of compacted networks on a device (or on onnxruntime
here) and fit its latency model.

Everything measured is appended to calibration/DEVICE.measurements.jsonl as it arrives, keyed by
architecture and settings, so a killed calibration resumes without timing anything twice, and a
second calibration with more variants only times the new ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jetsynth.calibration.features import LayerWork, features, layer_work
from jetsynth.calibration.model import DEFAULT_DIR, MIN_SAMPLES, LatencyModel, default_path, fit
from jetsynth.calibration.sweep import ARCH_INPUTS, Variant, export_variant, variants
from jetsynth.errors import JetsynthError
from jetsynth.run.measurement import MeasurementCache, measurement_key, target_label, timed


@dataclass(frozen=True)
class Sample:
    """One timed calibration network: its variant, per-layer work and measured seconds per
    query (None when the device could not time it)."""

    variant: Variant
    layers: list[LayerWork]
    seconds: float | None
    fps: float | None
    cached: bool


def sweep(archs: tuple[str, ...], count: int, seed: int) -> list[Variant]:
    """`count` variants of each architecture, interleaved so every held-out quarter mixes them."""
    unknown = [a for a in archs if a not in ARCH_INPUTS]
    if unknown:
        raise JetsynthError(f"cannot calibrate on '{unknown[0]}'; choose from {', '.join(ARCH_INPUTS)}")
    if count < 1:
        raise JetsynthError("`variants` must be at least 1", setting="variants")
    per_arch = [variants(arch, count, seed) for arch in archs]
    return [v for group in zip(*per_arch, strict=True) for v in group]


def calibrate(target, precision: str = "fp16", batch: int = 1, seconds: float = 0.5,
              archs: tuple[str, ...] = ("lenet5", "alexnet-cifar"), count: int = 24, seed: int = 0,
              folder: Path = DEFAULT_DIR, out: Path | None = None,
              progress: Callable[[Sample, int, int], None] | None = None) -> tuple[LatencyModel, Path]:
    """Time the sweep on `target` (an onnxruntime backend name or a Device), fit and save the
    latency model (default calibration/NAME.json). Returns the model and where it went."""
    import onnx

    chosen = sweep(tuple(archs), count, seed)
    if len(chosen) < MIN_SAMPLES:
        raise JetsynthError(f"a latency model needs at least {MIN_SAMPLES} networks; the sweep has "
                            f"{count} per architecture × {len(archs)}: raise `variants`", setting="variants")
    name = target_label(target)
    folder = Path(folder)
    work = folder / f"{name}-networks"
    work.mkdir(parents=True, exist_ok=True)
    cache = MeasurementCache(folder / f"{name}.measurements.jsonl")
    samples = []
    for index, variant in enumerate(chosen):
        path = export_variant(variant, work, precision)
        proto = onnx.load(str(path))
        timing = timed(path, measurement_key(proto, target, precision, batch), target, batch, seconds,
                       cache)
        fps = timing.fps
        sample = Sample(variant, layer_work(proto), batch / fps if fps else None, fps, timing.cached)
        samples.append(sample)
        if progress is not None:
            progress(sample, index + 1, len(chosen))
    timed_ok = [s for s in samples if s.seconds is not None]
    if len(timed_ok) < MIN_SAMPLES:
        hint = (f"check the device with `jetsynth devices probe {name}`" if not isinstance(target, str)
                else "see `jetsynth bench` on one of the networks in " + str(work))
        raise JetsynthError(f"only {len(timed_ok)} of {len(samples)} networks could be timed on {name}; "
                            f"a latency model needs {MIN_SAMPLES}: {hint}")
    vectors = np.array([features(s.layers, batch) for s in timed_ok])
    latencies = np.array([s.seconds for s in timed_ok])
    backend = target if isinstance(target, str) else f"{name}:deploy"
    profile = None if isinstance(target, str) else target.profile
    model = fit(vectors, latencies, name, backend, precision, batch, profile)
    return model, model.save(out if out is not None else default_path(name, folder))
