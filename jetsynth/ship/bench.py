"""Timing a model on this machine: runners for onnxruntime (CPU, CUDA and TensorRT execution
providers), torch (CPU, CUDA) and TensorRT engines behind the agent's runner interface
(`jetsynth.agent.runners`: prepare, infer, close), and one measuring loop.

The statistics follow trtexec's definitions: throughput is queries over the wall time of the
timed loop (a query = one batch of B images; FPS = throughput × B); latency percentiles are over
the per-query latencies, nearest-rank. A warm-up runs first and is not counted; the timed loop
runs until both a minimum duration and a minimum number of queries are reached. The loop and the
statistics are the device agent's own (`jetsynth.agent.timing`), so a host measurement and a
device one follow one rule. The onnxruntime and TensorRT runners are the agent's, with the host's
checks and messages around them; the torch runner is the host's alone (the agent never imports
torch).

On this host the minimum duration is shared by several trials (see `trials`): the figure is
their median FPS with the interquartile range, and trials that disagree are re-timed.
"""

from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from jetsynth.agent import ort as agent_ort
from jetsynth.agent.errors import AgentError
from jetsynth.agent.runners import Runner
from jetsynth.agent.tensorrt import TrtRunner
from jetsynth.agent.timing import summarize, time_queries
from jetsynth.core.trials import MAX_TRIALS, TRIALS, run_trials
from jetsynth.errors import JetsynthError
from jetsynth.ship.onnxfile import read_onnx

ORT_PROVIDERS = {
    "ort-cpu": "CPUExecutionProvider",
    "ort-cuda": "CUDAExecutionProvider",
    "ort-trt": "TensorrtExecutionProvider",
}
TORCH_DEVICES = {"torch-cpu": "cpu", "torch-cuda": "cuda"}
BACKENDS = (*ORT_PROVIDERS, *TORCH_DEVICES)
THREADS = 1
"""CPU threads of every timing on this host (`jetsynth bench` and `evolve --bench ort` alike):
small networks on a shared thread pool vary by tens of percent from run to run, which would
drown the differences evolution selects on, and one thread is what a busy host can give."""
BACKEND_WORDS = {"ort-cpu": "onnxruntime on the CPU", "ort-cuda": "onnxruntime with CUDA",
                 "ort-trt": "onnxruntime with TensorRT", "torch-cpu": "torch on the CPU",
                 "torch-cuda": "torch with CUDA", "trt": "TensorRT"}


def require_provider(backend: str, instead: str) -> str:
    """The onnxruntime execution provider of `backend`, or one line saying this onnxruntime
    lacks it and what to do: install onnxruntime-gpu or use `instead` (the calling command's
    own option, e.g. '--bench ort')."""
    import onnxruntime as ort

    provider = ORT_PROVIDERS[backend]
    if provider not in ort.get_available_providers():
        raise JetsynthError(
            f"onnxruntime here has no {provider}; replace onnxruntime with onnxruntime-gpu "
            f"(pip uninstall onnxruntime && pip install onnxruntime-gpu) or use {instead}"
        )
    return provider


class OrtRunner(agent_ort.OrtRunner):
    """An onnxruntime session on one execution provider: the agent's runner, with the host's
    checks on the file and the input, in the host's words."""

    def __init__(self, path: Path, backend: str = "ort-cpu", threads: int = THREADS) -> None:
        from jetsynth.ship.export import onnx_session

        provider = require_provider(backend, "--backend ort-cpu")
        read_onnx(Path(path))
        session = onnx_session(Path(path), threads, (provider,))
        inputs = session.get_inputs()
        if len(inputs) != 1:
            raise JetsynthError(f"{path} has {len(inputs)} inputs; bench feeds models with one image input")
        spec = inputs[0]
        rest = spec.shape[1:]
        if not rest or not all(isinstance(d, int) and d > 0 for d in rest):
            raise JetsynthError(
                f"{path}: input '{spec.name}' has shape {spec.shape}; bench needs fixed dimensions "
                "after the batch axis"
            )
        if spec.type not in ("tensor(float)", "tensor(float16)"):
            raise JetsynthError(f"{path}: input type {spec.type}; bench feeds float or float16 images")
        super().__init__(session, backend)
        stated = session.get_modelmeta().custom_metadata_map.get("precision", "")
        self.precision = stated.strip('"') or ("fp16" if self.dtype == np.float16 else "fp32")
        self.threads = threads

    def prepare(self, batch: int, images: np.ndarray | None = None) -> None:
        if self.fixed_batch is not None and batch != self.fixed_batch:
            raise JetsynthError(f"the model's batch size is fixed at {self.fixed_batch}: use `batch` "
                                f"{self.fixed_batch}", setting="batch")
        super().prepare(batch, images)


class TorchRunner(Runner):
    """A torch module in eval mode on the CPU or a CUDA device, optionally in half precision;
    `threads` > 0 sets torch's CPU threads (process-wide, as torch has no per-model setting).
    One query copies the batch to the device, runs the module and waits for it."""

    def __init__(self, model: nn.Module, image_shape: tuple[int, ...], backend: str = "torch-cpu",
                 half: bool = False, threads: int = 0) -> None:
        device = TORCH_DEVICES[backend]
        if device == "cuda" and not torch.cuda.is_available():
            raise JetsynthError("torch sees no CUDA device here; use `backend` torch-cpu", setting="backend")
        if threads:
            torch.set_num_threads(threads)
        self.name = backend
        self.device = torch.device(device)
        self.model = model.eval().to(self.device)
        if half:
            self.model = self.model.half()
        self.image_shape = tuple(image_shape)
        self.dtype = np.dtype(np.float16 if half else np.float32)
        self.precision = "fp16" if half else "fp32"
        self.threads = torch.get_num_threads() if device == "cpu" else 0
        self.images = None

    def prepare(self, batch: int, images: np.ndarray | None = None) -> None:
        if images is None:
            images = np.random.default_rng(0).standard_normal((batch, *self.image_shape))
        self.batch = batch
        self.images = images.astype(self.dtype, copy=False)

    def infer(self) -> None:
        with torch.inference_mode():
            self.model(torch.from_numpy(self.images).to(self.device))
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def close(self) -> None:
        self.images = None


@dataclass
class BenchResult:
    """One measurement. Latencies in milliseconds per query (one batch), over the queries of
    every trial; throughput in queries per second and fps in images per second, the median of
    the trials; `fps_iqr` their interquartile range [q1, q3] and `fps_trials` each trial's fps;
    `retimed` the trials added because the first ones disagreed. `produced_by` says in words
    which backend, precision and threads produced the figure."""

    backend: str
    batch: int
    queries: int
    wall_seconds: float
    throughput_qps: float
    fps: float
    latency_ms: dict
    host: dict
    fps_iqr: list
    fps_trials: list
    retimed: int
    precision: str
    threads: int
    produced_by: str

    def as_dict(self) -> dict:
        return asdict(self)


def produced_by(runner: Runner) -> str:
    """'onnxruntime on the CPU, fp16 weights, 1 thread': what produced a figure, in words."""
    words = BACKEND_WORDS.get(runner.name, runner.name)
    precision = getattr(runner, "precision", "fp32")
    threads = getattr(runner, "threads", 0)
    where = f", {threads} thread{'s' if threads != 1 else ''}" if threads else ""
    return f"{words}, {precision} weights{where}"


def host_info() -> dict:
    """What the numbers were measured on."""
    import onnxruntime as ort

    info = {
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "onnxruntime": ort.__version__,
        "ort_providers": ort.get_available_providers(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name(0)
    return info


def measure(runner: Runner, batch: int = 1, warmup_seconds: float = 0.2, min_seconds: float = 1.0,
            min_queries: int = 20, seed: int = 0, trials: int = TRIALS,
            max_trials: int = MAX_TRIALS) -> BenchResult:
    """Time `runner` (prepared here, closed by its owner) on random inputs of `batch` images:
    one warm-up, then `trials` trials that share `min_seconds` and `min_queries` (each at least
    3 queries when there are several), re-timed while they disagree (see `trials.run_trials`)."""
    if batch < 1:
        raise JetsynthError(f"`batch` must be at least 1, not {batch}", setting="batch")
    data = np.random.default_rng(seed).standard_normal((batch, *runner.image_shape))
    data = data.astype(runner.dtype)
    try:
        runner.prepare(batch, data)
    except AgentError as exc:
        raise JetsynthError(str(exc)) from None
    count = max(1, trials)
    per_seconds = min_seconds / count
    per_queries = min_queries if count == 1 else max(3, -(-min_queries // count))
    latencies, walls = [], []
    warmup = [warmup_seconds]

    def trial() -> float:
        timed, wall = time_queries(runner.infer, warmup[0], per_seconds, per_queries)
        warmup[0] = 0.0
        latencies.extend(timed)
        walls.append(wall)
        return len(timed) * batch / wall

    result, retimed = run_trials(trial, count, max(count, max_trials))
    stats = summarize(latencies, sum(walls), batch)
    stats.update(fps=result.median, throughput_qps=result.median / batch)
    return BenchResult(backend=runner.name, batch=batch, host=host_info(), **stats,
                       fps_iqr=[result.q1, result.q3], fps_trials=list(result.trials), retimed=retimed,
                       precision=getattr(runner, "precision", "fp32"),
                       threads=getattr(runner, "threads", 0), produced_by=produced_by(runner))


def onnx_runner(path: Path, backend: str = "ort-cpu", threads: int = THREADS) -> OrtRunner:
    """A runner for an ONNX file, with a clear error for missing or foreign files."""
    path = Path(path)
    if not path.is_file():
        raise JetsynthError(f"{path}: no such file; export a model with `jetsynth export`")
    if backend not in ORT_PROVIDERS:
        raise JetsynthError(
            f"`backend` {backend} cannot run an ONNX file; use one of {', '.join(ORT_PROVIDERS)}",
            setting="backend"
        )
    return OrtRunner(path, backend, threads)


class EngineRunner(TrtRunner):
    """A TensorRT engine built on this machine (`jetsynth build`): the agent's runner, where one
    query = copy in, execute, copy out, synchronise; prepared for `batch` images until `measure`
    prepares it again."""

    def __init__(self, path: Path, batch: int = 1) -> None:
        from jetsynth.agent.buffers import cuda_buffers
        from jetsynth.ship.trt import import_tensorrt

        trt = import_tensorrt()
        buffers = cuda_buffers()
        if buffers is None:
            raise JetsynthError("timing an engine needs pycuda or cuda-python for GPU buffers: "
                                "pip install pycuda")
        try:
            super().__init__(trt, Path(path).read_bytes(), buffers, name="trt")
            self.prepare(batch)
        except AgentError as exc:
            raise JetsynthError(f"{path}: {exc}") from None
        facts = Path(str(path) + ".json")
        self.precision = "see the engine's build"
        if facts.is_file():
            import json

            self.precision = str(json.loads(facts.read_text()).get("precision", self.precision))
        self.threads = 0


ENGINE_SUFFIXES = (".engine", ".plan", ".trt")
MEMBER_MODEL = "model.onnx"
