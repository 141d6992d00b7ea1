"""Building TensorRT engines on this machine (`jetsynth build`), for TensorRT 8.x and 10.x.

The builder itself lives in the device agent (jetsynth/agent/tensorrt.py, which also runs on a
Jetson), so the host and the device build the same way; this module adds what a host user needs
around it: a lazy import with a clear message when TensorRT is absent, host-side model checks,
and the engine's facts in a sidecar JSON file next to the engine.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from pathlib import Path

from jetsynth.agent.errors import AgentError
from jetsynth.agent.facts import gpu_info
from jetsynth.agent.tensorrt import build_engine
from jetsynth.errors import JetsynthError
from jetsynth.ship.onnxfile import model_facts
from jetsynth.storage import atomic_write, confine


def import_tensorrt():
    """The `tensorrt` module, or one line saying how to get it."""
    try:
        import tensorrt
    except ImportError:
        raise JetsynthError(
            "TensorRT is not installed here: `jetsynth build` needs its Python bindings and a GPU "
            "(pip install 'jetsynth[gpu]' on an NVIDIA workstation); for a Jetson use `jetsynth deploy`, "
            "which builds on the device"
        ) from None
    return tensorrt


def sidecar_path(engine: Path) -> Path:
    return Path(f"{engine}.json")


def build(model: Path, output: Path, fp16: bool = False, sparse: bool = False, batch: int = 1,
          max_batch: int | None = None, workspace_mib: int = 256, timing_cache: Path | None = None,
          trt=None) -> dict:
    """Build `model` into `output` and write `output`.json; returns those facts (seconds, bytes).
    `trt` is the TensorRT module (imported when None)."""
    facts = model_facts(model)
    if batch < 1:
        raise JetsynthError(f"`batch` must be at least 1, not {batch}", setting="batch")
    trt = trt or import_tensorrt()
    output = Path(output)
    confine(output)
    confine(sidecar_path(output))
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        built = build_engine(trt, str(model), str(output), fp16, sparse, workspace_mib,
                             str(timing_cache) if timing_cache else None, batch, max_batch)
    except AgentError as exc:
        raise JetsynthError(str(exc)) from None
    built.update({
        "model": {"path": str(model), "sha256": facts["sha256"], "bytes": facts["bytes"]},
        "engine": str(output),
        "built_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "gpu": gpu_info(),
        "portable": False,
    })
    if hashlib.sha256(output.read_bytes()).hexdigest() != built["engine_sha256"]:
        raise JetsynthError(f"{output} changed while it was written; build again")
    text = json.dumps(built, indent=2)
    atomic_write(sidecar_path(output), lambda tmp: tmp.write_text(text))
    return built
