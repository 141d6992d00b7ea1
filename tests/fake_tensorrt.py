"""A stand-in for the `tensorrt` module's builder API (this machine has no GPU and no TensorRT).

Only what `jetsynth.agent.tensorrt.build_engine` touches, with the calls that differ between TensorRT 8.x and
10.x: 8.x accepts `max_workspace_size` and needs the EXPLICIT_BATCH flag; 10.x has only memory
pool limits. Every setting lands in `calls` so a test can read what the builder was told.
"""

from types import SimpleNamespace


class _Flag:
    def __init__(self, name):
        self.name = name

    def __int__(self):
        return 0

    def __repr__(self):
        return self.name


class _Tensor:
    def __init__(self, name, shape):
        self.name = name
        self.shape = shape


class _Cache:
    def __init__(self, blob):
        self.blob = blob

    def serialize(self):
        return self.blob + b"+timed"


def make_tensorrt(version="8.2.1.8", fast_fp16=True, tf32=False, input_shape=(-1, 1, 28, 28),
                  parse_ok=True, build_ok=True, bad_cache="none"):
    """A module-like namespace imitating TensorRT `version`. A timing-cache blob that starts with
    b"bad" cannot be loaded: `create_timing_cache` returns None (bad_cache="none", what the
    bindings do when the C++ call fails) or raises (bad_cache="raise")."""
    major = int(version.split(".")[0])
    calls = {}

    class Config:
        def __init__(self):
            self.flags = []

        def set_flag(self, flag):
            self.flags.append(flag.name)
            calls["flags"] = self.flags

        def create_timing_cache(self, blob):
            if blob.startswith(b"bad"):
                calls["cache_rejected"] = blob
                if bad_cache == "raise":
                    raise RuntimeError("[TRT] timing cache: invalid blob")
                return None
            calls["cache_in"] = blob
            return _Cache(blob)

        def set_timing_cache(self, cache, ignore_mismatch):
            self.cache = cache

        def get_timing_cache(self):
            return self.cache

        def add_optimization_profile(self, profile):
            calls["profile"] = profile.shapes

        def __setattr__(self, name, value):
            if name == "max_workspace_size" and major >= 10:
                raise AttributeError("TensorRT 10 has no max_workspace_size")
            if name == "max_workspace_size":
                calls["max_workspace_size"] = value
            object.__setattr__(self, name, value)

    if major >= 10 or version >= "8.4":
        def set_memory_pool_limit(self, pool, size):
            calls["memory_pool_limit"] = (pool, size)

        Config.set_memory_pool_limit = set_memory_pool_limit

    class Profile:
        def set_shape(self, name, low, opt, high):
            self.shapes = (name, low, opt, high)

    class Network:
        num_inputs = 1

        def get_input(self, index):
            return _Tensor("image", input_shape)

    class Builder:
        platform_has_fast_fp16 = fast_fp16
        platform_has_tf32 = tf32

        def __init__(self, logger):
            pass

        def create_network(self, flags):
            calls["network_flags"] = flags
            return Network()

        def create_builder_config(self):
            return Config()

        def create_optimization_profile(self):
            return Profile()

        def build_serialized_network(self, network, config):
            return b"ENGINE" if build_ok else None

    class Parser:
        num_errors = 0 if parse_ok else 1

        def __init__(self, network, logger):
            pass

        def parse(self, data):
            calls["parsed_bytes"] = len(data)
            return parse_ok

        def get_error(self, index):
            return "In node 3 (importConv): unsupported operator Foo"

    class Logger:
        WARNING = 2

        def __init__(self, level):
            pass

    return SimpleNamespace(
        __version__=version, calls=calls, Builder=Builder, OnnxParser=Parser, Logger=Logger,
        NetworkDefinitionCreationFlag=SimpleNamespace(EXPLICIT_BATCH=_Flag("EXPLICIT_BATCH")),
        BuilderFlag=SimpleNamespace(FP16=_Flag("FP16"), SPARSE_WEIGHTS=_Flag("SPARSE_WEIGHTS")),
        MemoryPoolType=SimpleNamespace(WORKSPACE="WORKSPACE"),
    )


def add_runtime(trt, input_shape=(-1, 1, 28, 28), output_shape=(-1, 10)):
    """Give a `make_tensorrt` namespace a runtime that deserializes b"ENGINE" into an engine with
    one input 'image' and one output 'logits': TensorRT 8.x offers only bindings by index and
    `execute_async_v2`, 10.x and later only tensors by name and `execute_async_v3` (a call to the
    other API fails as it would). Calls land in `trt.calls`."""
    major = int(trt.__version__.split(".")[0])
    calls = trt.calls
    names = ["image", "logits"]
    shapes = {"image": tuple(input_shape), "logits": tuple(output_shape)}

    class Context:
        def __init__(self):
            self.shapes = dict(shapes)

        def _set(self, name, shape):
            calls.setdefault("input_shapes", []).append(tuple(shape))
            self.shapes["image"] = tuple(shape)
            self.shapes["logits"] = (shape[0],) + tuple(shapes["logits"][1:])

    class Engine:
        def create_execution_context(self):
            return self.context

        def __init__(self):
            self.context = Context()

    if major >= 10:
        Engine.num_io_tensors = 2
        Engine.get_tensor_name = lambda self, i: names[i]
        Engine.get_tensor_mode = lambda self, name: "INPUT" if name == "image" else "OUTPUT"
        Engine.get_tensor_dtype = lambda self, name: "FLOAT"
        Context.get_tensor_shape = lambda self, name: self.shapes[name]
        Context.set_input_shape = lambda self, name, shape: self._set(name, shape)
        Context.set_tensor_address = lambda self, name, pointer: calls.setdefault(
            "addresses", {}).__setitem__(name, pointer)
        Context.execute_async_v3 = lambda self, stream: calls.setdefault("executed", []).append(
            ("v3", stream))
    else:
        Engine.num_bindings = 2
        Engine.get_binding_name = lambda self, i: names[i]
        Engine.get_binding_index = lambda self, name: names.index(name)
        Engine.binding_is_input = lambda self, i: i == 0
        Engine.get_binding_dtype = lambda self, i: "FLOAT"
        Context.get_binding_shape = lambda self, i: self.shapes[names[i]]
        Context.set_binding_shape = lambda self, i, shape: self._set(names[i], shape)
        Context.execute_async_v2 = lambda self, bindings, stream: calls.setdefault(
            "executed", []).append(("v2", list(bindings), stream))

    class Runtime:
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, data):
            return Engine() if data == b"ENGINE" else None

    trt.Runtime = Runtime
    trt.TensorIOMode = SimpleNamespace(INPUT="INPUT", OUTPUT="OUTPUT")
    trt.nptype = lambda dtype: {"FLOAT": "float32", "HALF": "float16"}[dtype]
    return trt


class FakeBuffers:
    """Host arrays standing in for GPU buffers: 'device' memory is a numbered bytearray, copies
    are recorded, the stream handle is 7."""

    def __init__(self):
        self.memory = {}
        self.copies = []
        self.freed = []

    def alloc(self, nbytes):
        pointer = 1000 + len(self.memory)
        self.memory[pointer] = nbytes
        return pointer

    def pointer(self, buffer):
        return buffer

    def to_device(self, buffer, host):
        self.copies.append(("in", buffer, host.shape))

    def to_host(self, host, buffer):
        self.copies.append(("out", buffer, host.shape))

    def handle(self):
        return 7

    def sync(self):
        self.copies.append(("sync",))

    def free(self, buffer):
        self.freed.append(buffer)
