"""TensorRT on the device (and on a host with a GPU): building an engine from ONNX, the timing
cache, and the runner that times a deserialized engine.

Every difference between TensorRT versions lives in one adapter, chosen once from the major
version by `tensorrt_api`:

- `BindingApi`, TensorRT 8.x (JetPack 4.6 has 8.2, JetPack 5 has 8.5): networks need the
  EXPLICIT_BATCH flag; the workspace is `max_workspace_size` before 8.4 and a memory pool limit
  from 8.4; I/O tensors are bindings by index and a query is `execute_async_v2(bindings, stream)`.
- `TensorApi`, TensorRT 10.x (JetPack 6, x86 workstations): explicit batch is implicit (flags 0),
  memory pool limits only, I/O tensors by name (`num_io_tensors`, `get_tensor_name`,
  `get_tensor_mode`, `get_tensor_shape`, `set_input_shape`, `set_tensor_address`) and
  `execute_async_v3(stream)`.
- `StronglyTypedApi`, TensorRT 11.x (the current release; not on JetPack yet): the 10.x names,
  but weak typing is gone: no `BuilderFlag.FP16`, no `platform_has_fast_fp16`. The engine keeps
  the ONNX model's own types, so `--fp16` sets nothing and the facts say so.
"""

import hashlib
import os
import tempfile
import time

from .errors import AgentError
from .facts import gpu_info
from .runners import Runner, random_images


def trt_major(trt):
    return int(trt.__version__.split(".")[0])


class BindingApi:
    """TensorRT 8.x; see the module's docstring."""

    strongly_typed = False

    def __init__(self, trt):
        self.trt = trt

    def network_flags(self):
        return 1 << int(self.trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)

    def set_workspace(self, config, nbytes):
        if hasattr(config, "set_memory_pool_limit"):
            config.set_memory_pool_limit(self.trt.MemoryPoolType.WORKSPACE, nbytes)
        else:
            config.max_workspace_size = nbytes

    def fast_fp16(self, builder):
        return bool(getattr(builder, "platform_has_fast_fp16", False))

    def tensor_names(self, engine):
        return [engine.get_binding_name(i) for i in range(engine.num_bindings)]

    def is_input(self, engine, name):
        return engine.binding_is_input(engine.get_binding_index(name))

    def shape(self, engine, context, name):
        return tuple(context.get_binding_shape(engine.get_binding_index(name)))

    def dtype(self, engine, name):
        return engine.get_binding_dtype(engine.get_binding_index(name))

    def set_input_shape(self, engine, context, name, shape):
        context.set_binding_shape(engine.get_binding_index(name), shape)

    def bind(self, engine, context, pointers):
        """Tell the context where each tensor lives (`pointers`: name -> device address); returns
        what `execute` needs."""
        return [pointers[engine.get_binding_name(i)] for i in range(engine.num_bindings)]

    def execute(self, context, bindings, stream):
        context.execute_async_v2(bindings, stream)


class TensorApi(BindingApi):
    """TensorRT 10.x; see the module's docstring."""

    def network_flags(self):
        return 0

    def set_workspace(self, config, nbytes):
        config.set_memory_pool_limit(self.trt.MemoryPoolType.WORKSPACE, nbytes)

    def tensor_names(self, engine):
        return [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]

    def is_input(self, engine, name):
        return engine.get_tensor_mode(name) == self.trt.TensorIOMode.INPUT

    def shape(self, engine, context, name):
        return tuple(context.get_tensor_shape(name))

    def dtype(self, engine, name):
        return engine.get_tensor_dtype(name)

    def set_input_shape(self, engine, context, name, shape):
        context.set_input_shape(name, shape)

    def bind(self, engine, context, pointers):
        for name, pointer in pointers.items():
            context.set_tensor_address(name, pointer)
        return None

    def execute(self, context, bindings, stream):
        context.execute_async_v3(stream)


class StronglyTypedApi(TensorApi):
    """TensorRT 11.x; see the module's docstring."""

    strongly_typed = True

    def fast_fp16(self, builder):
        return False


def tensorrt_api(trt):
    """The adapter for the `trt` module's major version (8.x and older, 10.x, 11.x and newer)."""
    major = trt_major(trt)
    if major >= 11:
        return StronglyTypedApi(trt)
    if major >= 10:
        return TensorApi(trt)
    return BindingApi(trt)


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
    api = tensorrt_api(trt)
    logger = logger or trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(api.network_flags())
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
    api.set_workspace(config, workspace_mib << 20)
    fast_fp16 = api.fast_fp16(builder)
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
    if fp16 and api.strongly_typed:
        facts["fp16_note"] = (f"TensorRT {trt.__version__} builds strongly typed networks: the engine "
                              "keeps the model's own types (export the model in fp16 for fp16)")
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


class TrtRunner(Runner):
    """A deserialized engine with one input and its outputs bound; `infer()` is one query:
    copy in, execute, copy out, synchronise (trtexec's host latency)."""

    def __init__(self, trt, engine_bytes, buffers, name="tensorrt"):
        import numpy as np

        self.np = np
        self.trt = trt
        self.api = tensorrt_api(trt)
        self.name = name
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = runtime.deserialize_cuda_engine(engine_bytes)
        if self.engine is None:
            raise AgentError("this TensorRT cannot load the engine (built by another version or GPU?)")
        self.context = self.engine.create_execution_context()
        self.buffers = buffers
        self.names = self.api.tensor_names(self.engine)
        inputs = [n for n in self.names if self.api.is_input(self.engine, n)]
        if len(inputs) != 1:
            raise AgentError(f"the engine has {len(inputs)} inputs; the agent times one-input models")
        self.input_name = inputs[0]
        shape = self.api.shape(self.engine, self.context, self.input_name)
        self.fixed_batch = shape[0] if shape[0] >= 0 else None
        self.image_shape = tuple(shape[1:])
        self.dtype = np.dtype(trt.nptype(self.api.dtype(self.engine, self.input_name)))
        self.bound = {}
        self.bindings = None

    def prepare(self, batch, images=None):
        """Set the input shape for `batch`, allocate host and device buffers for every tensor
        (kept while the batch stays the same) and fill the input."""
        if self.fixed_batch is not None and batch != self.fixed_batch:
            raise AgentError(f"the engine's batch size is fixed at {self.fixed_batch}; ask for "
                             f"--batch {self.fixed_batch}")
        if batch != self.batch:
            self._free()
            shape = [batch] + list(self.image_shape)
            if self.fixed_batch is None:
                self.api.set_input_shape(self.engine, self.context, self.input_name, shape)
            for name in self.names:
                dtype = self.np.dtype(self.trt.nptype(self.api.dtype(self.engine, name)))
                tensor_shape = (shape if name == self.input_name
                                else self.api.shape(self.engine, self.context, name))
                host = self.np.zeros([int(d) for d in tensor_shape], dtype=dtype)
                device = self.buffers.alloc(max(host.nbytes, 1))
                self.bound[name] = (host, device)
            pointers = {name: self.buffers.pointer(device) for name, (_host, device) in self.bound.items()}
            self.bindings = self.api.bind(self.engine, self.context, pointers)
            self.batch = batch
        host_in = self.bound[self.input_name][0]
        host_in[...] = random_images(batch, self.image_shape, host_in.dtype) if images is None else images

    def infer(self):
        host_in, device_in = self.bound[self.input_name]
        self.buffers.to_device(device_in, host_in)
        self.api.execute(self.context, self.bindings, self.buffers.handle())
        for name, (host, device) in self.bound.items():
            if name != self.input_name:
                self.buffers.to_host(host, device)
        self.buffers.sync()

    def _free(self):
        for _host, device in self.bound.values():
            self.buffers.free(device)
        self.bound = {}
        self.bindings = None
        self.batch = None

    def close(self):
        self._free()
