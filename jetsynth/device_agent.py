#!/usr/bin/env python3
"""jetsynth device agent: builds and times one ONNX model on the machine it runs on, prints JSON.

This one file is what `jetsynth deploy` copies to a Jetson. It runs on the device's own Python
(3.6 on JetPack 4.6, so no dataclasses, no `from __future__ import annotations`, no walrus) and
needs only numpy plus whichever the device has, tried in this order:

1. the TensorRT Python bindings, with pycuda or cuda-python for device buffers;
2. the `trtexec` program (its performance summary is parsed);
3. onnxruntime.

Usage on a device:  python3 jetsynth_agent.py facts
                    python3 jetsynth_agent.py run model.onnx [--backend auto] [--batch 1] ...

Timing rules are those of `jetsynth bench` (the host imports them from here): an untimed warm-up,
then queries until both a minimum duration and a minimum count are reached; throughput is queries
over the wall time of the timed loop, FPS = throughput x batch, nearest-rank latency percentiles
in milliseconds per query. While timing, `tegrastats` (when present) is sampled for power.

Output: exactly one JSON object on stdout. On failure it is {"error": "one line"} and the exit
status is 2, so the host can show the device's own words.

Lifetime: `run --watch-stdin` (what `jetsynth deploy` passes; the host keeps the agent's stdin open
while it waits) ends the agent, its child programs and its work folder as soon as stdin reaches
end-of-file, which is what a dropped SSH connection, a host-side timeout, Ctrl-C or a killed host
look like from here; `--max-seconds N` ends it after N seconds whatever happens.

TensorRT's timing cache is kept per user (`$XDG_CACHE_HOME/jetsynth/`, else ~/.cache/jetsynth/),
replaced atomically, and ignored when TensorRT cannot load it.
"""

import argparse
import contextlib
import glob
import hashlib
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

AGENT_VERSION = "1"
BACKENDS = ("tensorrt", "trtexec", "onnxruntime")
TRTEXEC_PATHS = ("/usr/src/tensorrt/bin/trtexec", "/usr/local/tensorrt/bin/trtexec")
L4T_TO_JETPACK = {
    "32.6.1": "4.6", "32.7.1": "4.6.1", "32.7.2": "4.6.2", "32.7.3": "4.6.3", "32.7.4": "4.6.4",
    "32.7.5": "4.6.5", "32.7.6": "4.6.6", "35.3.1": "5.1.1", "35.4.1": "5.1.2", "35.5.0": "5.1.3",
    "35.6.0": "5.1.4", "36.3.0": "6.0", "36.4.0": "6.1", "36.4.3": "6.2",
}


class AgentError(Exception):
    """Something the device cannot do; the message is one line for the user."""


# ---------------------------------------------------------------------------------- lifetime

WORKDIR_PREFIX = "jetsynth."
_children = set()
_children_lock = threading.Lock()


def start_child(argv, **kwargs):
    """subprocess.Popen, remembered so that `stop` can end the program with the agent."""
    process = subprocess.Popen(argv, **kwargs)
    with _children_lock:
        _children.add(process)
    return process


def run_child(argv, timeout=None):
    """Run a program to its end (stdout and stderr together, as text): (exit status, output)."""
    process = start_child(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True)
    try:
        output = process.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    finally:
        with _children_lock:
            _children.discard(process)
    return process.returncode, output


def stop(workdir, code=3):
    """End the agent now: its child programs, its own work folder (only one made by deploy, by
    its name), then the process, without waiting for the main thread."""
    with _children_lock:
        children = list(_children)
    for process in children:
        with contextlib.suppress(OSError):
            process.kill()
    if workdir and os.path.basename(os.path.normpath(workdir)).startswith(WORKDIR_PREFIX):
        shutil.rmtree(workdir, ignore_errors=True)
    os._exit(code)


def watch(workdir, watch_stdin, max_seconds):
    """Start the daemon threads that end the agent when its stdin closes (the host is gone)
    and/or after `max_seconds`."""
    if watch_stdin:
        def stdin_closed():
            try:
                while os.read(0, 65536):
                    pass
            except OSError:
                pass
            stop(workdir)

        threading.Thread(target=stdin_closed, name="stdin-watch", daemon=True).start()
    if max_seconds:
        def deadline():
            time.sleep(max_seconds)
            stop(workdir, 4)

        threading.Thread(target=deadline, name="deadline", daemon=True).start()


# ---------------------------------------------------------------------------------- timing rules

def nearest_rank(sorted_values, percent):
    """The nearest-rank percentile: the smallest value with at least `percent` % of the values at
    or below it."""
    if not sorted_values:
        raise ValueError("no values")
    rank = max(1, int(math.ceil(percent / 100.0 * len(sorted_values))))
    return sorted_values[rank - 1]


def time_queries(infer, warmup_seconds, min_seconds, min_queries):
    """Run `infer()` (one blocking query) for an untimed warm-up, then until `min_seconds` and
    `min_queries` are both reached. Returns (per-query latencies in ms, loop wall time in s).
    A NaN or infinite duration would never be reached: refused rather than looped on forever."""
    if not all(math.isfinite(v) and v >= 0 for v in (warmup_seconds, min_seconds, min_queries)):
        raise AgentError("timing durations and query counts must be finite and not negative, got "
                         f"warm-up {warmup_seconds}, duration {min_seconds}, queries {min_queries}")
    started = time.perf_counter()
    infer()
    while time.perf_counter() - started < warmup_seconds:
        infer()
    latencies = []
    loop_start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        infer()
        t1 = time.perf_counter()
        latencies.append((t1 - t0) * 1000.0)
        if t1 - loop_start >= min_seconds and len(latencies) >= min_queries:
            break
    return latencies, time.perf_counter() - loop_start


def summarize(latencies_ms, wall_seconds, batch):
    """trtexec's figures from one timed loop: queries/s, images/s, latency statistics in ms."""
    ordered = sorted(latencies_ms)
    qps = len(ordered) / wall_seconds
    return {
        "queries": len(ordered),
        "wall_seconds": round(wall_seconds, 4),
        "throughput_qps": qps,
        "fps": qps * batch,
        "latency_ms": {
            "mean": sum(ordered) / len(ordered),
            "min": ordered[0],
            "p50": nearest_rank(ordered, 50),
            "p90": nearest_rank(ordered, 90),
            "p99": nearest_rank(ordered, 99),
            "max": ordered[-1],
        },
    }


# ---------------------------------------------------------------------------------- device facts

def _read(path):
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8", "replace").strip("\x00 \n")
    except OSError:
        return None


def _command(argv, timeout=10):
    """stdout of a short command, or None when it is absent or fails."""
    try:
        code, output = run_child(argv, timeout)
    except (OSError, subprocess.SubprocessError):
        return None
    return output if code == 0 else None


def parse_l4t(text):
    """'# R32 (release), REVISION: 7.1, ...' -> '32.7.1' (None when not a Tegra release file)."""
    match = re.search(r"R(\d+) \(release\), REVISION: ([\d.]+)", text or "")
    return f"{match.group(1)}.{match.group(2)}" if match else None


def parse_nvpmodel(text):
    """`nvpmodel -q` -> the power mode name and id, e.g. {'name': 'MAXN', 'id': 0}."""
    name = re.search(r"NV Power Mode:\s*(\S+)", text or "")
    if not name:
        return None
    ident = re.search(r"^\s*(\d+)\s*$", text[name.end():], re.MULTILINE)
    return {"name": name.group(1), "id": int(ident.group(1)) if ident else None}


def _gpu_clocks_mhz():
    clocks = {}
    for path in glob.glob("/sys/devices/*gpu*/devfreq/*/cur_freq") + glob.glob(
            "/sys/devices/platform/*gpu*/devfreq/*/cur_freq"):
        value = _read(path)
        if value and value.isdigit():
            clocks[os.path.basename(os.path.dirname(os.path.dirname(path)))] = int(value) / 1e6
    return clocks or None


def _cuda_version():
    text = _read("/usr/local/cuda/version.txt")
    if text:
        match = re.search(r"([\d.]+)", text)
        return match.group(1) if match else text
    text = _read("/usr/local/cuda/version.json")
    if text:
        try:
            return json.loads(text)["cuda"]["version"]
        except (ValueError, KeyError, TypeError):
            return None
    return None


def _module_version(name):
    try:
        module = __import__(name)
    except Exception:  # a broken install raises anything; the fact is then "absent"
        return None
    return getattr(module, "__version__", "present")


def find_trtexec():
    found = shutil.which("trtexec")
    if found:
        return found
    for path in TRTEXEC_PATHS:
        if os.access(path, os.X_OK):
            return path
    return None


def gpu_info():
    """Name and compute capability of GPU 0 through whichever CUDA binding is installed."""
    try:
        import pycuda.driver as cuda

        cuda.init()
        device = cuda.Device(0)
        major, minor = device.compute_capability()
        return {"name": device.name(), "compute_capability": f"{major}.{minor}"}
    except Exception:  # absent binding or no GPU: try the next one
        pass
    try:
        from cuda import cudart

        err, props = cudart.cudaGetDeviceProperties(0)
        if int(err) == 0:
            name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
            return {"name": name.strip("\x00"),
                    "compute_capability": f"{props.major}.{props.minor}"}
    except Exception:  # absent binding or no GPU
        pass
    return None


def device_facts(workdir="."):
    """What the numbers were measured on: board, L4T/JetPack, power mode, clocks, software
    versions and free disk (MiB) where the agent works."""
    l4t = parse_l4t(_read("/etc/nv_tegra_release"))
    usage = shutil.disk_usage(workdir)
    facts = {
        "agent_version": AGENT_VERSION,
        "hostname": platform.node(),
        "machine": platform.machine(),
        "model": _read("/proc/device-tree/model"),
        "l4t": l4t,
        "jetpack": L4T_TO_JETPACK.get(l4t) if l4t else None,
        "power_mode": parse_nvpmodel(_command(["nvpmodel", "-q"])),
        "gpu_clocks_mhz": _gpu_clocks_mhz(),
        "gpu": gpu_info(),
        "cuda": _cuda_version(),
        "python": platform.python_version(),
        "numpy": _module_version("numpy"),
        "tensorrt": _module_version("tensorrt"),
        "pycuda": _module_version("pycuda"),
        "onnxruntime": _module_version("onnxruntime"),
        "trtexec": find_trtexec(),
        "tegrastats": shutil.which("tegrastats"),
        "free_disk_mib": round(usage.free / 2 ** 20, 1),
    }
    return facts


# ---------------------------------------------------------------------------------- power

_RAIL = re.compile(r"\b([A-Z][A-Z0-9_]*) (\d+)(?:mW)?/(\d+)(?:mW)?(?=\s|$)")
INPUT_RAILS = ("VDD_IN", "POM_5V_IN")


def parse_tegrastats(line):
    """One tegrastats line -> {rail: instantaneous mW}. Rails print as 'NAME now/avg' (older
    boards) or 'NAME nowmW/avgmW' (Orin); memory fields such as 'RAM 1461/3964MB' are not rails."""
    return {name: int(now) for name, now, _avg in _RAIL.findall(line)}


class PowerSampler:
    """Samples tegrastats every `interval_ms` in the background while a timed loop runs."""

    def __init__(self, interval_ms=100):
        self.interval_ms = interval_ms
        self.samples = []
        self.process = None
        self.thread = None

    def __enter__(self):
        program = shutil.which("tegrastats")
        if program:
            try:
                self.process = start_child([program, "--interval", str(self.interval_ms)],
                                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                           universal_newlines=True)
            except OSError:
                self.process = None
        if self.process is not None:
            self.thread = threading.Thread(target=self._read, daemon=True)
            self.thread.start()
        return self

    def _read(self):
        for line in self.process.stdout:
            rails = parse_tegrastats(line)
            if rails:
                self.samples.append(rails)

    def __exit__(self, *exc):
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
            self.thread.join(timeout=5)

    def summary(self, fps):
        """Mean mW per rail over the timed loop and, from the input rail, mJ per image."""
        return power_summary(self.samples, fps)


def power_summary(samples, fps):
    if not samples:
        return None
    rails = {}
    for sample in samples:
        for name, value in sample.items():
            rails.setdefault(name, []).append(value)
    means = {name: sum(values) / len(values) for name, values in rails.items()}
    result = {"source": "tegrastats", "samples": len(samples), "rails_mw": means}
    for name in INPUT_RAILS:
        if name in means and fps > 0:
            result["input_rail"] = name
            result["mj_per_image"] = means[name] / fps
            break
    return result


# ---------------------------------------------------------------------------------- TensorRT

def trt_major(trt):
    return int(trt.__version__.split(".")[0])


def _compute_capability(trt, builder):
    """(major, minor) of the GPU, or None. TensorRT itself does not say; tf32 support is
    exactly compute >= 8.0, which is all the sparse decision needs."""
    info = gpu_info()
    if info:
        major, minor = info["compute_capability"].split(".")
        return int(major), int(minor)
    if getattr(builder, "platform_has_tf32", False):
        return 8, 0
    return None


def build_engine(trt, onnx_path, engine_path, fp16=True, sparse=False, workspace_mib=256,
                 timing_cache=None, batch=1, max_batch=None, logger=None):
    """Parse `onnx_path`, build a serialized engine for batches 1..max_batch (optimised for
    `batch`) and write it to `engine_path`. Works with TensorRT 8.x (max_workspace_size) and 10.x
    (memory pool limits). fp16 is used only where the platform has fast fp16; sparse weights
    only on compute >= 8.0. Returns the engine's facts (sizes in bytes, times in seconds)."""
    major = trt_major(trt)
    logger = logger or trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0 if major >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    with open(onnx_path, "rb") as handle:
        parsed = parser.parse(handle.read())
    if not parsed:
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise AgentError("TensorRT {} cannot parse {}: {}".format(
            trt.__version__, os.path.basename(onnx_path), "; ".join(errors) or "unknown error"))
    if network.num_inputs != 1:
        raise AgentError(f"the model has {network.num_inputs} inputs; the agent times models with "
                         "one image input")
    config = builder.create_builder_config()
    if major >= 10 or hasattr(config, "set_memory_pool_limit"):
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mib << 20)
    else:
        config.max_workspace_size = workspace_mib << 20
    fast_fp16 = bool(getattr(builder, "platform_has_fast_fp16", False))
    if fp16 and fast_fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    capability = _compute_capability(trt, builder)
    sparse_applied = bool(sparse and capability is not None and capability >= (8, 0))
    if sparse_applied:
        config.set_flag(trt.BuilderFlag.SPARSE_WEIGHTS)
    cache = load_timing_cache(config, timing_cache)
    config.set_timing_cache(cache, False)
    tensor = network.get_input(0)
    image = tuple(tensor.shape)[1:]
    if any(d < 0 for d in image):
        raise AgentError(f"input '{tensor.name}' has shape {tuple(tensor.shape)}; only the batch "
                         "axis may be dynamic")
    max_batch = max(max_batch or batch, batch)
    profile_shapes = [(1,) + image, (batch,) + image, (max_batch,) + image]
    if tensor.shape[0] < 0:
        profile = builder.create_optimization_profile()
        profile.set_shape(tensor.name, *profile_shapes)
        config.add_optimization_profile(profile)
    elif tensor.shape[0] != batch:
        raise AgentError(f"the model's batch size is fixed at {tensor.shape[0]}; ask for "
                         f"--batch {tensor.shape[0]}")
    started = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    seconds = time.perf_counter() - started
    if serialized is None:
        raise AgentError(f"TensorRT {trt.__version__} could not build an engine for "
                         f"{os.path.basename(onnx_path)} (see its log above)")
    data = bytes(serialized)
    with open(engine_path, "wb") as handle:
        handle.write(data)
    facts = {
        "tensorrt": trt.__version__,
        "precision": "fp16" if fp16 and fast_fp16 else "fp32",
        "fp16_requested": bool(fp16),
        "platform_has_fast_fp16": fast_fp16,
        "sparse_requested": bool(sparse),
        "sparse_applied": sparse_applied,
        "compute_capability": "{}.{}".format(*capability) if capability else None,
        "workspace_mib": workspace_mib,
        "input": {"name": tensor.name, "shape": [int(d) for d in tensor.shape]},
        "profile": [list(s) for s in profile_shapes] if tensor.shape[0] < 0 else None,
        "build_seconds": seconds,
        "engine_bytes": len(data),
        "engine_sha256": hashlib.sha256(data).hexdigest(),
    }
    if sparse and not sparse_applied:
        facts["sparse_note"] = ("sparse weights need compute capability 8.0 or newer (Ampere, Orin); "
                                "this GPU runs dense kernels, --sparse does nothing here")
    if timing_cache:
        blob = bytes(config.get_timing_cache().serialize())
        replace_file(timing_cache, blob)
        facts["timing_cache"] = timing_cache
        facts["timing_cache_bytes"] = len(blob)
    return facts


def default_timing_cache():
    """This user's TensorRT timing cache: $XDG_CACHE_HOME/jetsynth/, else ~/.cache/jetsynth/."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "jetsynth", "tensorrt-timing.cache")


def load_timing_cache(config, path):
    """A timing cache from `path` when TensorRT can load it, else an empty one: a cache that is
    absent, a link, unreadable, damaged or from another TensorRT version is ignored, never
    fatal."""
    blob = b""
    if path:
        try:  # a link planted at the cache's path is not followed
            with os.fdopen(os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)), "rb") as handle:
                blob = handle.read()
        except OSError:
            blob = b""
    if blob:
        try:
            cache = config.create_timing_cache(blob)
        except Exception:  # TensorRT raises its own types for a blob it cannot read
            cache = None
        if cache is not None:
            return cache
    return config.create_timing_cache(b"")


def replace_file(path, data):
    """Write `data` to `path` through a temporary file beside it and os.replace: a reader sees
    the old file or the new one, never a half-written one. The folder is made private."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, mode=0o700, exist_ok=True)
    handle, partial = tempfile.mkstemp(prefix=".timing.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)


class _PycudaBuffers:
    def __init__(self):
        import pycuda.autoinit  # noqa: F401  (creates the context)
        import pycuda.driver as cuda

        self.cuda = cuda
        self.stream = cuda.Stream()

    def alloc(self, nbytes):
        return self.cuda.mem_alloc(nbytes)

    def pointer(self, buffer):
        return int(buffer)

    def to_device(self, buffer, host):
        self.cuda.memcpy_htod_async(buffer, host, self.stream)

    def to_host(self, host, buffer):
        self.cuda.memcpy_dtoh_async(host, buffer, self.stream)

    def handle(self):
        return self.stream.handle

    def sync(self):
        self.stream.synchronize()


class _CudartBuffers:
    def __init__(self):
        from cuda import cudart

        self.cudart = cudart
        self.stream = self._check(cudart.cudaStreamCreate())

    def _check(self, result):
        if int(result[0]) != 0:
            raise AgentError(f"CUDA call failed: {result[0]}")
        return result[1] if len(result) > 1 else None

    def alloc(self, nbytes):
        return self._check(self.cudart.cudaMalloc(nbytes))

    def pointer(self, buffer):
        return int(buffer)

    def to_device(self, buffer, host):
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._check(self.cudart.cudaMemcpyAsync(buffer, host.ctypes.data, host.nbytes, kind, self.stream))

    def to_host(self, host, buffer):
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._check(self.cudart.cudaMemcpyAsync(host.ctypes.data, buffer, host.nbytes, kind, self.stream))

    def handle(self):
        return int(self.stream)

    def sync(self):
        self._check(self.cudart.cudaStreamSynchronize(self.stream))


def cuda_buffers():
    """Device buffers from pycuda, else cuda-python; None when neither is installed."""
    for kind in (_PycudaBuffers, _CudartBuffers):
        try:
            return kind()
        except ImportError:
            continue
    return None


class TrtRunner:
    """A deserialized engine with one input and its outputs bound; `infer()` is one query:
    copy in, execute, copy out, synchronise (trtexec's host latency)."""

    def __init__(self, trt, engine_bytes, batch, buffers):
        import numpy as np

        self.major = trt_major(trt)
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = runtime.deserialize_cuda_engine(engine_bytes)
        if self.engine is None:
            raise AgentError("this TensorRT cannot load the engine (built by another version or GPU?)")
        self.context = self.engine.create_execution_context()
        self.buffers = buffers
        self.host = []
        names = self._tensor_names()
        inputs = [n for n in names if self._is_input(n)]
        if len(inputs) != 1:
            raise AgentError(f"the engine has {len(inputs)} inputs; the agent times one-input models")
        self.input_name = inputs[0]
        shape = list(self._shape(self.input_name))
        if shape[0] < 0:
            shape[0] = batch
            self._set_input_shape(self.input_name, shape)
        self.batch = shape[0]
        self.bound = {}
        for name in names:
            dtype = np.dtype(trt.nptype(self._dtype(name)))
            tensor_shape = self._shape(name) if name != self.input_name else shape
            host = np.zeros([int(d) for d in tensor_shape], dtype=dtype)
            device = buffers.alloc(max(host.nbytes, 1))
            self.bound[name] = (host, device)
        rng = np.random.RandomState(0)
        host_in = self.bound[self.input_name][0]
        host_in[...] = rng.standard_normal(host_in.shape).astype(host_in.dtype)
        self.image_shape = tuple(shape[1:])
        if self.major >= 10:
            for name, (_host, device) in self.bound.items():
                self.context.set_tensor_address(name, buffers.pointer(device))
        else:
            self.bindings = [buffers.pointer(self.bound[self.engine.get_binding_name(i)][1])
                             for i in range(self.engine.num_bindings)]

    def _tensor_names(self):
        if self.major >= 10:
            return [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        return [self.engine.get_binding_name(i) for i in range(self.engine.num_bindings)]

    def _is_input(self, name):
        if self.major >= 10:
            import tensorrt as trt

            return self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
        return self.engine.binding_is_input(self.engine.get_binding_index(name))

    def _shape(self, name):
        if self.major >= 10:
            return tuple(self.context.get_tensor_shape(name))
        return tuple(self.context.get_binding_shape(self.engine.get_binding_index(name)))

    def _dtype(self, name):
        if self.major >= 10:
            return self.engine.get_tensor_dtype(name)
        return self.engine.get_binding_dtype(self.engine.get_binding_index(name))

    def _set_input_shape(self, name, shape):
        if self.major >= 10:
            self.context.set_input_shape(name, shape)
        else:
            self.context.set_binding_shape(self.engine.get_binding_index(name), shape)

    def infer(self):
        host_in, device_in = self.bound[self.input_name]
        self.buffers.to_device(device_in, host_in)
        if self.major >= 10:
            self.context.execute_async_v3(self.buffers.handle())
        else:
            self.context.execute_async_v2(self.bindings, self.buffers.handle())
        for name, (host, device) in self.bound.items():
            if name != self.input_name:
                self.buffers.to_host(host, device)
        self.buffers.sync()


# ---------------------------------------------------------------------------------- trtexec

_TRTEXEC_LATENCY = re.compile(r"\] Latency: (.*)$", re.MULTILINE)
_TRTEXEC_FIELD = re.compile(r"(min|max|mean|median|percentile\((\d+(?:\.\d+)?)%\)) = ([\d.eE+-]+) ms")


def parse_trtexec(text, batch):
    """trtexec's performance summary -> the agent's figures. 'Latency' is trtexec's host latency
    per query (H2D + compute + D2H); p90 is absent before TensorRT 8.4 and reported as None."""
    throughput = re.search(r"Throughput: ([\d.eE+-]+) qps", text)
    latency = _TRTEXEC_LATENCY.search(text)
    if not throughput or not latency:
        raise AgentError("trtexec printed no performance summary")
    fields = {}
    for name, percent, value in _TRTEXEC_FIELD.findall(latency.group(1)):
        fields["p{}".format(percent.replace(".0", "")) if percent else name] = float(value)
    walltime = re.search(r"Total Host Walltime: ([\d.eE+-]+) s", text)
    qps = float(throughput.group(1))
    return {
        "queries": int(round(qps * float(walltime.group(1)))) if walltime else None,
        "wall_seconds": float(walltime.group(1)) if walltime else None,
        "throughput_qps": qps,
        "fps": qps * batch,
        "latency_ms": {"mean": fields.get("mean"), "min": fields.get("min"),
                       "p50": fields.get("median"), "p90": fields.get("p90"),
                       "p99": fields.get("p99"), "max": fields.get("max")},
    }


def trtexec_version(program):
    text = _command([program, "--help"]) or ""
    match = re.search(r"TensorRT v(\d+)", text)
    return int(match.group(1)) if match else None


def _shape_arg(name, shape):
    return "{}:{}".format(name, "x".join(str(d) for d in shape))


def _trtexec_shapes(options):
    if not options.input_name or not options.input_shape:
        raise AgentError("the trtexec path needs --input-name and --input-shape (jetsynth deploy "
                         "passes them)")
    image = [int(d) for d in options.input_shape.split("x")]
    return [_shape_arg(options.input_name, [b] + image)
            for b in (1, options.batch, max(options.batch, options.max_batch or 0))]


def _last_words(text, marker="[E]"):
    lines = [line for line in text.splitlines() if marker in line] or text.strip().splitlines()
    return lines[-1].strip() if lines else "no output"


def trtexec_build(program, onnx_path, engine_path, options):
    """`trtexec --buildOnly` with a 1..max-batch profile; returns the build facts."""
    shapes = _trtexec_shapes(options)
    version = trtexec_version(program) or 0
    build = [program, "--onnx=" + onnx_path, "--saveEngine=" + engine_path, "--buildOnly",
             "--minShapes=" + shapes[0], "--optShapes=" + shapes[1], "--maxShapes=" + shapes[2]]
    build.append(f"--memPoolSize=workspace:{options.workspace_mib}" if version >= 8400
                 else f"--workspace={options.workspace_mib}")
    if options.fp16:
        build.append("--fp16")
    if options.sparse:
        build.append("--sparsity=enable")
    partial = None
    if options.timing_cache:
        # trtexec reads and rewrites the cache file itself: it works on a private copy, which
        # replaces the cache only after a successful build
        folder = os.path.dirname(os.path.abspath(options.timing_cache))
        os.makedirs(folder, mode=0o700, exist_ok=True)
        handle, partial = tempfile.mkstemp(prefix=".timing.", suffix=".tmp", dir=folder)
        os.close(handle)
        if not os.path.islink(options.timing_cache):  # a planted link is not followed
            with contextlib.suppress(OSError):
                shutil.copyfile(options.timing_cache, partial)
        build.append("--timingCacheFile=" + partial)
    started = time.perf_counter()
    try:
        code, output = run_child(build)
        seconds = time.perf_counter() - started
        if code != 0 or not os.path.exists(engine_path):
            raise AgentError(f"trtexec could not build an engine: {_last_words(output)}")
        if partial and os.path.getsize(partial) > 0:
            os.replace(partial, options.timing_cache)
    finally:
        if partial and os.path.exists(partial):
            os.unlink(partial)
    return {"build_seconds": seconds, "engine_bytes": os.path.getsize(engine_path),
            "precision": "fp16" if options.fp16 else "fp32", "trtexec_version": version}


def trtexec_time(program, engine_path, options):
    """Time a saved engine with trtexec's own loop and parse its summary."""
    run = [program, "--loadEngine=" + engine_path, "--shapes=" + _trtexec_shapes(options)[1],
           f"--warmUp={int(options.warmup * 1000)}",
           f"--duration={max(1, int(math.ceil(options.duration)))}",
           f"--iterations={options.min_queries}"]
    code, output = run_child(run)
    if code != 0:
        raise AgentError(f"trtexec could not time the engine: {_last_words(output)}")
    return parse_trtexec(output, options.batch)


# ---------------------------------------------------------------------------------- onnxruntime

def ort_session(onnx_path, provider, threads):
    """An onnxruntime session; errors from a model the runtime cannot load become one line."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    wanted = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
              "trt": "TensorrtExecutionProvider"}
    if provider == "auto":
        chosen = "CUDAExecutionProvider" if "CUDAExecutionProvider" in available else "CPUExecutionProvider"
    else:
        chosen = wanted[provider]
    if chosen not in available:
        raise AgentError(f"onnxruntime {ort.__version__} here has no {chosen}")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(onnx_path, sess_options=options, providers=[chosen])
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise AgentError(f"onnxruntime {ort.__version__} cannot load the model: {ort_reason(exc)}") from None


def ort_reason(exc):
    """The readable end of an onnxruntime error (its C++ source location and signature cut)."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if ".cc:" in text and ") " in text:
        text = text.rsplit(") ", 1)[1]
    return text


def ort_infer(session, batch):
    """A one-query closure over random input of `batch` images, and the precision of the input."""
    import numpy as np

    spec = session.get_inputs()[0]
    if len(session.get_inputs()) != 1:
        raise AgentError(f"the model has {len(session.get_inputs())} inputs; the agent times "
                         "one-input models")
    rest = spec.shape[1:]
    if not all(isinstance(d, int) and d > 0 for d in rest):
        raise AgentError(f"input '{spec.name}' has shape {spec.shape}; only the batch axis may be free")
    if isinstance(spec.shape[0], int) and spec.shape[0] != batch:
        raise AgentError(f"the model's batch size is fixed at {spec.shape[0]}; ask for "
                         f"--batch {spec.shape[0]}")
    dtype = np.float16 if spec.type == "tensor(float16)" else np.float32
    data = np.random.RandomState(0).standard_normal([batch] + list(rest)).astype(dtype)
    feed = {spec.name: data}

    def infer():
        session.run(None, feed)

    return infer


# ---------------------------------------------------------------------------------- run

def choose_backend(requested):
    """The first backend of tensorrt → trtexec → onnxruntime the device can run; a backend asked
    for by name is that backend or an error, never another one."""
    if requested == "tensorrt" and not _module_version("tensorrt"):
        raise AgentError("--backend tensorrt: TensorRT's Python bindings are not on this device, and "
                         "a named backend does not fall back; install JetPack's TensorRT "
                         "(python3-libnvinfer) or pick --backend auto")
    if requested == "trtexec" and not find_trtexec():
        raise AgentError("--backend trtexec: trtexec is not on this device's PATH nor in "
                         "/usr/src/tensorrt/bin, and a named backend does not fall back")
    if requested == "onnxruntime" and not _module_version("onnxruntime"):
        raise AgentError("--backend onnxruntime: onnxruntime is not installed on this device; "
                         "pip install onnxruntime, or pick --backend auto")
    if requested != "auto":
        return requested
    if _module_version("tensorrt") and cuda_buffers_available():
        return "tensorrt"
    if find_trtexec():
        return "trtexec"
    if _module_version("onnxruntime"):
        return "onnxruntime"
    raise AgentError("this device has neither TensorRT (with pycuda or cuda-python), trtexec nor "
                     "onnxruntime; install JetPack's TensorRT or `pip install onnxruntime`")


def cuda_buffers_available():
    return bool(_module_version("pycuda") or _module_version("cuda"))


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def run(options):
    """Build (if the backend builds) and time the model; the one JSON object of `run`."""
    onnx_path = options.model
    if not os.path.isfile(onnx_path):
        raise AgentError(f"no model at {onnx_path}")
    workdir = options.workdir or os.path.dirname(os.path.abspath(onnx_path))
    backend = choose_backend(options.backend)
    engine_path = os.path.join(workdir, os.path.splitext(os.path.basename(onnx_path))[0] + ".engine")
    result = {"agent_version": AGENT_VERSION, "backend": backend, "batch": options.batch,
              "model_sha256": sha256_file(onnx_path)}
    if backend == "trtexec":
        program = find_trtexec()
        if not program:
            raise AgentError("trtexec is not on this device's PATH nor in /usr/src/tensorrt/bin")
        result.update(trtexec_build(program, onnx_path, engine_path, options))
        with PowerSampler() as sampler:
            timing = trtexec_time(program, engine_path, options)
    else:
        if backend == "tensorrt":
            import tensorrt as trt

            buffers = cuda_buffers()
            if buffers is None:
                raise AgentError("TensorRT is here but neither pycuda nor cuda-python is; install "
                                 "python3-pycuda or pick --backend trtexec")
            build = build_engine(trt, onnx_path, engine_path, options.fp16, options.sparse,
                                 options.workspace_mib, options.timing_cache, options.batch,
                                 options.max_batch)
            with open(engine_path, "rb") as handle:
                runner = TrtRunner(trt, handle.read(), options.batch, buffers)
            infer = runner.infer
        else:
            started = time.perf_counter()
            session = ort_session(onnx_path, options.ort_provider, options.threads)
            infer = ort_infer(session, options.batch)
            meta = session.get_modelmeta().custom_metadata_map
            build = {"build_seconds": time.perf_counter() - started, "engine_bytes": None,
                     "precision": _json_value(meta.get("precision")) or "fp32",
                     "onnxruntime_provider": session.get_providers()[0]}
        result.update(build)
        with PowerSampler() as sampler:
            latencies, wall = time_queries(infer, options.warmup, options.duration, options.min_queries)
        timing = summarize(latencies, wall, options.batch)
    result.update(timing)
    result["power"] = sampler.summary(timing["fps"])
    result["device"] = device_facts(workdir)
    return result


def _json_value(text):
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="jetsynth_agent.py", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command")
    facts = commands.add_parser("facts", help="print the device's facts as JSON")
    facts.add_argument("--workdir", default=None, help="where free disk space is measured")
    timing = commands.add_parser("run", help="build and time one ONNX model, print JSON")
    timing.add_argument("model")
    timing.add_argument("--backend", choices=("auto",) + BACKENDS, default="auto")
    timing.add_argument("--ort-provider", choices=("auto", "cpu", "cuda", "trt"), default="auto")
    timing.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads")
    timing.add_argument("--fp16", dest="fp16", action="store_true", default=True)
    timing.add_argument("--no-fp16", dest="fp16", action="store_false")
    timing.add_argument("--sparse", action="store_true")
    timing.add_argument("--batch", type=int, default=1)
    timing.add_argument("--max-batch", type=int, default=None)
    timing.add_argument("--warmup", type=float, default=0.5, help="seconds")
    timing.add_argument("--duration", type=float, default=3.0, help="minimum timed seconds")
    timing.add_argument("--min-queries", type=int, default=50)
    timing.add_argument("--workspace-mib", type=int, default=256)
    timing.add_argument("--timing-cache", default=None,
                        help="TensorRT timing cache file; 'user' for this user's own "
                             "(~/.cache/jetsynth/), none when not given")
    timing.add_argument("--watch-stdin", action="store_true",
                        help="end (with children and work folder) when stdin reaches EOF")
    timing.add_argument("--max-seconds", type=float, default=None,
                        help="end (with children and work folder) after this many seconds")
    timing.add_argument("--input-name", default=None)
    timing.add_argument("--input-shape", default=None, help="CxHxW, without the batch axis")
    timing.add_argument("--workdir", default=None)
    options = parser.parse_args(argv)
    if options.command is None:
        parser.error("say `facts` or `run MODEL.onnx`")
    if options.command == "run" and options.batch < 1:
        parser.error("--batch must be at least 1")
    if options.command == "run" and options.timing_cache == "user":
        options.timing_cache = default_timing_cache()
    return options


def main(argv=None):
    options = parse_args(sys.argv[1:] if argv is None else argv)
    if options.command == "run":
        watch(options.workdir, options.watch_stdin, options.max_seconds)
    try:
        if options.command == "facts":
            output = device_facts(options.workdir or tempfile.gettempdir())
        else:
            output = run(options)
    except AgentError as exc:
        print(json.dumps({"error": str(exc)}))
        return 2
    except MemoryError:
        print(json.dumps({"error": "the device ran out of memory"}))
        return 2
    except OSError as exc:
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return 2
    print(json.dumps(output))
    return 0


if __name__ == "__main__":
    sys.exit(main())
