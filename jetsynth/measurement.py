"""Measuring each member's speed during evolution: on onnxruntime here (`--bench ort`) or on a
device through the deploy path (`--bench DEVICE`), cached by architecture.

A dense network's speed does not depend on its weight values, so the cache key is the compacted
graph's *architecture* (operators, attributes, tensor shapes; not weights, not metadata) with the
backend, batch and precision: an architecture is never timed twice in a run. A device that drops
out is retried, then the member is recorded without FPS and the run goes on.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from .errors import JetsynthError

CACHE_FILE = "measurements.jsonl"
DEVICE_ATTEMPTS = 3
RETRY_PAUSE_SECONDS = 2.0


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
    written, and a resumed run reuses every measurement already made."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.entries = {}
        if self.path.is_file():
            for line in self.path.read_text().splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                self.entries[entry["key"]] = entry["value"]

    def get(self, key: str) -> dict | None:
        return self.entries.get(key)

    def put(self, key: str, value: dict) -> None:
        self.entries[key] = value
        with self.path.open("a") as handle:
            handle.write(json.dumps({"key": key, "value": value}) + "\n")


def _time_here(path: Path, backend: str, batch: int, seconds: float) -> dict:
    from .bench import measure, onnx_runner

    result = measure(onnx_runner(path, backend), batch, warmup_seconds=0.1, min_seconds=seconds,
                     min_queries=10)
    return {"fps": result.fps, "backend": backend, "latency_ms": result.latency_ms}


def _time_on_device(path: Path, device, batch: int, seconds: float) -> dict:
    from .deploy import DeployOptions, deploy

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
        return {"fps": result["fps"], "backend": f"{device.name}:{result['backend']}",
                "latency_ms": result["latency_ms"], "device_precision": result["precision"],
                "build_seconds": result["build_seconds"], "engine_bytes": result.get("engine_bytes"),
                "power": result.get("power")}
    return {"fps": None, "backend": device.name, "error": failure, "attempts": DEVICE_ATTEMPTS}


def measure_member(genome, folder: Path, target, precision: str, batch: int, seconds: float,
                   cache: MeasurementCache) -> dict:
    """Export `genome` compacted to `folder`/model.onnx and time it on `target` (an onnxruntime
    backend name, or a Device); the fields evolution records (fps in images per second)."""
    import onnx

    from .bench import MEMBER_MODEL
    from .export import export_genome

    exported = export_genome(genome, Path(folder) / MEMBER_MODEL, precision)
    where = target if isinstance(target, str) else f"device:{target.name}"
    key = f"{architecture_hash(onnx.load(str(exported.path)))}:{where}:{precision}:b{batch}"
    cached = cache.get(key)
    if cached is None:
        if isinstance(target, str):
            timing = _time_here(exported.path, target, batch, seconds)
        else:
            timing = _time_on_device(exported.path, target, batch, seconds)
        if timing["fps"] is not None:
            cache.put(key, timing)
    else:
        timing = {**cached, "cached": True}
    return {
        "fps": timing["fps"],
        "bench": {**{k: v for k, v in timing.items() if k != "fps"}, "precision": precision,
                  "batch": batch, "onnx_bytes": exported.bytes, "onnx_macs": exported.macs,
                  "architecture": key.split(":")[0]},
    }
