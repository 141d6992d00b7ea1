"""trtexec, for devices with TensorRT but no Python bindings: `--buildOnly` with a 1..max-batch
profile, then trtexec's own timed loop on the saved engine, whose performance summary is parsed
into the agent's figures. Its runner owns the timed loop, as trtexec does."""

import argparse
import contextlib
import math
import os
import re
import shutil
import tempfile
import time

from .errors import AgentError
from .facts import _command
from .lifetime import run_child
from .runners import Runner

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


class TrtexecRunner(Runner):
    """A saved engine timed by trtexec: the runner interface with trtexec's own loop. trtexec
    makes its own input and runs no single query, so `prepare` only takes the batch, `time_loop`
    is trtexec's (its summary parsed) and `infer` is refused."""

    name = "trtexec"

    def __init__(self, program, engine_path, options):
        self.program = program
        self.engine_path = engine_path
        self.options = options
        self.image_shape = tuple(int(d) for d in (options.input_shape or "").split("x") if d)

    def prepare(self, batch, images=None):
        self.batch = batch

    def infer(self):
        raise AgentError("trtexec times its own loop; it runs no single query")

    def time_loop(self, warmup_seconds, min_seconds, min_queries):
        options = argparse.Namespace(**vars(self.options))
        options.batch = self.batch
        options.warmup = warmup_seconds
        options.duration = min_seconds
        options.min_queries = min_queries
        return trtexec_time(self.program, self.engine_path, options)
