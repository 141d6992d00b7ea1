"""Each member's speed during evolution: timed on onnxruntime here (`--bench ort`) or on a
device through the deploy path (`--bench DEVICE`), or predicted by a latency model
(`--measure-every`), with timings cached by architecture.

A dense network's speed does not depend on its weight values, so the cache key is the compacted
graph's *architecture* (operators, attributes, tensor shapes; not weights, not metadata) with the
backend, batch and precision: an architecture is never timed twice in a run. A device that drops
out is retried, then the member keeps its prediction (if any) and the run goes on.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jetsynth.core.records import BenchRecord, MemberRecord, Speed
from jetsynth.errors import JetsynthError
from jetsynth.run.timing import Timing
from jetsynth.storage import append_jsonl, read_jsonl

if TYPE_CHECKING:
    import onnx

    from jetsynth.calibration.model import LatencyModel
    from jetsynth.devices.inventory import BenchTarget

CACHE_FILE = "measurements.jsonl"
DEVICE_ATTEMPTS = 3
RETRY_PAUSE_SECONDS = 2.0
REFERENCE_TRIALS = 3
"""Trials of the reference network re-timed beside each member (half the member's seconds)."""
DEVICE_KEYS = ("fps", "backend", "produced_by", "latency_ms", "device_precision", "build_seconds",
               "engine_bytes", "power")
"""What a device timing writes, null included (no engine under onnxruntime, no power sensor)."""


def architecture_hash(proto) -> str:
    """sha256 over what determines speed: nodes (type, wiring, attributes), graph inputs and
    outputs, and each initializer's name, type and shape."""
    digest = hashlib.sha256()
    graph = proto.graph
    for node in graph.node:
        digest.update(node.op_type.encode())
        digest.update("|".join([*node.input, ">", *node.output]).encode())
        for attribute in node.attribute:
            digest.update(attribute.SerializeToString())
    for value in (*graph.input, *graph.output):
        digest.update(value.SerializeToString())
    for tensor in graph.initializer:
        digest.update(f"{tensor.name}:{tensor.data_type}:{list(tensor.dims)}".encode())
    for opset in proto.opset_import:
        digest.update(f"{opset.domain}:{opset.version}".encode())
    return digest.hexdigest()


class MeasurementCache:
    """Append-only JSON lines in the run directory: a killed run loses at most the line being
    written, and a resumed run reuses every measurement already made. Each line also names the
    member it was measured for (`by`), so a member killed after its timing was written and
    before its record is, on resume, still the one that measured it. Lines hold
    {"key", "value": the timing as `Timing.to_json` writes it, "by"}; this class is the only
    one that reads or writes them."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.entries: dict[str, Timing] = {}
        self.measured_for: dict[str, str | None] = {}
        for entry in read_jsonl(self.path):
            if isinstance(entry.get("key"), str) and isinstance(entry.get("value"), dict):
                self.entries[entry["key"]] = Timing.from_json(entry["value"])
                self.measured_for[entry["key"]] = entry.get("by")

    def get(self, key: str) -> Timing | None:
        return self.entries.get(key)

    def put(self, key: str, value: Timing, by: str | None = None) -> None:
        self.entries[key] = value
        self.measured_for[key] = by
        line = {"key": key, "value": value.to_json()}
        if by is not None:
            line["by"] = by
        append_jsonl(self.path, line, sort_keys=False)


def time_here(path: Path, backend: str, batch: int, seconds: float,
              reference: tuple[Path, float] | None = None) -> Timing:
    """Time the ONNX file at `path` here (trials, median, interquartile range: see `bench.measure`).
    With `reference` (the run's reference network and its first images/s), the reference is
    re-timed after the member: when the host's speed drifted by more than DRIFT_TOLERANCE since
    then, both are timed once more and the attempt whose drift is nearer 1 is kept. A GPU backend
    holds its GPU alone meanwhile (`nn.gpu_lock`): members training on it pause."""
    from jetsynth.core.trials import DRIFT_TOLERANCE, drift
    from jetsynth.nn.gpu_lock import backend_turn
    from jetsynth.ship.bench import THREADS, measure, onnx_runner

    def member() -> Timing:
        result = measure(onnx_runner(path, backend, THREADS), batch, warmup_seconds=0.1,
                         min_seconds=seconds, min_queries=10)
        return Timing(fps=result.fps, fps_iqr=tuple(result.fps_iqr),
                      fps_trials=tuple(result.fps_trials), retimed=result.retimed, backend=backend,
                      threads=result.threads, produced_by=result.produced_by,
                      latency_ms=result.latency_ms)

    def with_drift() -> Timing:
        timing = member()
        if reference is not None:
            now = measure(onnx_runner(reference[0], backend, THREADS), batch, warmup_seconds=0.05,
                          min_seconds=seconds / 2, min_queries=5, trials=REFERENCE_TRIALS).fps
            timing = replace(timing, reference_fps=now, drift=drift(now, reference[1]))
        return timing

    with backend_turn(backend):
        timing = with_drift()
        if reference is not None and abs(timing.drift - 1) > DRIFT_TOLERANCE:
            again = with_drift()
            timing = replace(min((timing, again), key=lambda t: abs(t.drift - 1)),
                             drift_retimed=True)
    return timing


def time_on_device(path: Path, device, batch: int, seconds: float) -> Timing:
    """Time the ONNX file at `path` on `device` through the deploy path, retried
    DEVICE_ATTEMPTS times; a device that fails every attempt gives fps None and its error."""
    from jetsynth.devices.deploy import DeployOptions, deploy

    options = DeployOptions(batch=batch, duration=seconds, warmup=0.2, min_queries=10, min_free_mib=16)
    failure = None
    for attempt in range(DEVICE_ATTEMPTS):
        if attempt:
            time.sleep(RETRY_PAUSE_SECONDS)
        try:
            result = deploy(path, device, options)
        except JetsynthError as exc:
            failure = str(exc)
            continue
        return Timing(fps=result.fps, backend=f"{device.name}:{result.backend}",
                      produced_by=result.produced_by, latency_ms=result.latency_ms,
                      device_precision=result.precision, build_seconds=result.build_seconds,
                      engine_bytes=result.engine_bytes, power=result.power,
                      written=DEVICE_KEYS)
    return Timing(fps=None, backend=device.name, error=failure, attempts=DEVICE_ATTEMPTS)


def target_label(target: BenchTarget) -> str:
    """How a bench target is named in cache keys and files: the backend ('ort-cpu') or the
    device's name."""
    return target if isinstance(target, str) else target.name


def measurement_key(proto: onnx.ModelProto, target: BenchTarget, precision: str, batch: int) -> str:
    where = target if isinstance(target, str) else f"device:{target.name}"
    return f"{architecture_hash(proto)}:{where}:{precision}:b{batch}"


def timed(path: Path, key: str, target: BenchTarget, batch: int, seconds: float,
          cache: MeasurementCache, by: str | None = None,
          reference: tuple[Path, float] | None = None) -> Timing:
    """The timing of the ONNX file at `path` from the cache, else measured (and cached when it
    succeeded, for `by`: the member measured); `cached` marks a reuse of another member's
    timing, fps None a device that could not time it. A timing cached for `by` itself (its run
    was killed before the member's record was written) is its own measurement, not a reuse."""
    cached = cache.get(key)
    if cached is not None:
        if by is not None and cache.measured_for.get(key) == by:
            return cached
        return replace(cached, cached=True)
    if isinstance(target, str):
        timing = time_here(path, target, batch, seconds, reference)
    else:
        timing = time_on_device(path, target, batch, seconds)
    if timing.fps is not None:
        cache.put(key, timing, by)
    return timing


@dataclass(frozen=True)
class MeasurementPlan:
    """One member's exported network and what `Speedometer.plan` decided for it: `path` the
    ONNX file, `key` its cache key, `by` the member, `vector` its latency features, `predicted`
    images per second (None without a model) by `predictor` (the model's backend), `timed`
    whether it is measured (or taken from the cache) rather than predicted."""

    path: Path
    key: str
    by: str
    vector: Any
    predicted: float | None
    predictor: str | None
    onnx_bytes: int
    onnx_macs: int
    timed: bool


class Speedometer:
    """Each member's speed during evolution, measured or predicted.

    Every `measure_every`-th member (counting the ancestor as 0), every member whose
    architecture is already in the cache (free), and every member that is predicted to meet
    the target while keeping the accuracy floor (a prediction never ends a run unconfirmed) is
    timed; the rest are predicted by `model` (a calibrated latency model), else by a model fitted
    on this run's own measurements once there are enough of them, else timed. `samples` are the
    run's earlier measurements as (feature vector, seconds per query)."""

    def __init__(self, target: BenchTarget, precision: str, batch: int, seconds: float,
                 cache: MeasurementCache, model: LatencyModel | None = None, measure_every: int = 1,
                 samples: list | None = None, channel_multiple: int = 1) -> None:
        self.channel_multiple = channel_multiple
        self.target = target
        self.precision = precision
        self.batch = batch
        self.seconds = seconds
        self.cache = cache
        self.model = model
        self.measure_every = measure_every
        self.samples = list(samples or [])
        self._online = None
        self._online_size = 0
        self.reference = None

    def use_reference(self, path: Path, fps: float | None) -> None:
        """Re-time the network at `path` (the ancestor) beside every member timed here from now
        on, against its first timing `fps`, to detect a host whose speed drifts."""
        if isinstance(self.target, str) and fps and Path(path).is_file():
            self.reference = (Path(path), float(fps))

    def predictor(self) -> LatencyModel | None:
        """The calibrated model, else one fitted on the samples so far (None while too few)."""
        from jetsynth.calibration.model import MIN_SAMPLES, fit

        if self.model is not None:
            return self.model
        if len(self.samples) >= MIN_SAMPLES and len(self.samples) != self._online_size:
            vectors, seconds = zip(*self.samples, strict=True)
            self._online = fit(vectors, seconds, target_label(self.target), "online", self.precision,
                               self.batch)
            self._online_size = len(self.samples)
        return self._online

    def plan(self, genome, folder: Path, ordinal: int, target_fps: float | None = None,
             keeps_floor: bool = False, metadata: dict | None = None) -> MeasurementPlan:
        """Export `genome` compacted to `folder`/model.onnx, predict its speed and decide whether
        it is timed (see the class); nothing is timed yet. The file is the one `jetsynth export`
        ships for the member at the run's precision and channel multiple: given `metadata` (the
        member's, `export.genome_metadata`), byte for byte as `export --no-parity` writes it."""
        import onnx

        from jetsynth.calibration.features import features, layer_work
        from jetsynth.ship.bench import MEMBER_MODEL
        from jetsynth.ship.export import export_genome

        exported = export_genome(genome, Path(folder) / MEMBER_MODEL, self.precision,
                                 metadata=metadata, channel_multiple=self.channel_multiple)
        proto = onnx.load(str(exported.path))
        layers = layer_work(proto)
        vector = features(layers, self.batch)
        predictor = self.predictor()
        predicted = predictor.fps(layers, self.batch) if predictor is not None else None
        key = measurement_key(proto, self.target, self.precision, self.batch)
        confirm = (predicted is not None and target_fps is not None and keeps_floor
                   and predicted >= target_fps)
        timed_ = (predictor is None or ordinal % self.measure_every == 0 or confirm
                  or self.cache.get(key) is not None)
        return MeasurementPlan(exported.path, key, Path(folder).name, vector, predicted,
                               None if predictor is None else predictor.backend, exported.bytes,
                               exported.macs, timed_)

    def assess(self, genome, folder: Path, ordinal: int, target_fps: float | None = None,
               keeps_floor: bool = False, metadata: dict | None = None) -> Speed:
        """Export `genome` compacted to `folder`/model.onnx (see `plan`) and measure or predict
        its speed, as evolution records it."""
        plan = self.plan(genome, folder, ordinal, target_fps, keeps_floor, metadata)
        timing = None
        if plan.timed:
            timing = timed(plan.path, plan.key, self.target, self.batch, self.seconds, self.cache,
                           plan.by, self.reference)
        return self.finish(plan, timing)

    def cached(self, plan: MeasurementPlan) -> Timing | None:
        """The cache's timing for `plan` (see `timed`), None when it must be measured."""
        cached = self.cache.get(plan.key)
        if cached is None:
            return None
        if self.cache.measured_for.get(plan.key) == plan.by:
            return cached
        return replace(cached, cached=True)

    def time_on(self, plan: MeasurementPlan, device) -> Timing:
        """Time `plan`'s network on `device` (a board of the bench's kind), caching nothing: the
        caller stores it (`store`) where only one thread writes the cache."""
        return time_on_device(plan.path, device, self.batch, self.seconds)

    def store(self, plan: MeasurementPlan, timing: Timing) -> None:
        """Cache a timing just measured for `plan` (a failed one is not kept)."""
        if timing.fps is not None and not timing.cached:
            self.cache.put(plan.key, timing, plan.by)

    def finish(self, plan: MeasurementPlan, timing: Timing | None) -> Speed:
        """The speed evolution records for `plan` given its `timing` (a cache entry as
        `timed` gives it; None: predicted), and the online model's new sample when it was
        measured."""
        if timing is None:
            timing = Timing(fps=None, backend=target_label(self.target))
            source = "predicted"
        else:
            source = "cached" if timing.cached else "measured"
            if timing.fps is None:
                source = "failed"
            elif source == "measured":
                self.samples.append((plan.vector, self.batch / timing.fps))
        iqr = timing.fps_iqr if timing.fps is not None else None
        return Speed(
            fps=timing.fps,
            fps_iqr=None if iqr is None else (float(iqr[0]), float(iqr[1])),
            fps_predicted=plan.predicted,
            bench=BenchRecord.from_json({
                **{k: v for k, v in timing.to_json().items() if k not in ("fps", "fps_iqr")},
                "source": source,
                "predictor": plan.predictor, "precision": self.precision, "batch": self.batch,
                "onnx_bytes": plan.onnx_bytes, "onnx_macs": plan.onnx_macs,
                "architecture": plan.key.split(":")[0],
                "features": [float(v) for v in plan.vector]}),
        )


def run_samples(records: list[MemberRecord]) -> list[tuple]:
    """(feature vector, seconds per query) of every member of a run that was timed, for the
    online latency model of a resumed run."""
    import numpy as np

    return [(np.array(r.bench.features), r.bench.batch / r.fps)
            for r in records
            if r.fps and r.bench is not None and r.bench.features is not None
            and r.bench.source == "measured"]
