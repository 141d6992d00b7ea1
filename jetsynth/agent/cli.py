"""jetsynth device agent: builds and times one ONNX model on the machine it runs on, prints JSON.

This is what `jetsynth deploy` copies to a Jetson, as one file (`jetsynth_agent.py`, joined from
the modules of jetsynth/agent/ by bundle.py). It runs on the device's own Python (3.6 on JetPack
4.6, so no dataclasses, no `from __future__ import annotations`, no walrus) and needs only numpy
plus whichever the device has, tried in this order:

1. the TensorRT Python bindings, with pycuda or cuda-python for device buffers;
2. the `trtexec` program (its performance summary is parsed);
3. onnxruntime.

Usage on a device:  python3 jetsynth_agent.py facts
                    python3 jetsynth_agent.py run model.onnx [--backend auto] [--batch 1] ...

Timing rules are those of `jetsynth bench` (both take them from the module timing.py): an
untimed warm-up, then queries until both a minimum duration and a minimum count are reached;
throughput is queries over the wall time of the timed loop, FPS = throughput x batch,
nearest-rank latency percentiles in milliseconds per query. While timing, `tegrastats` (when
present) is sampled for power.

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
import hashlib
import json
import os
import sys
import tempfile
import time

from .buffers import cuda_buffers
from .errors import AgentError
from .facts import AGENT_VERSION, _module_version, device_facts, find_trtexec
from .lifetime import watch
from .ort import OrtRunner, ort_session
from .power import PowerSampler
from .tensorrt import TrtRunner, build_engine, default_timing_cache
from .trtexec import TrtexecRunner, trtexec_build

BACKENDS = ("tensorrt", "trtexec", "onnxruntime")
DESCRIPTION = "jetsynth device agent: builds and times one ONNX model on the machine it runs on, prints JSON."


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
        build = trtexec_build(program, onnx_path, engine_path, options)
        runner = TrtexecRunner(program, engine_path, options)
    elif backend == "tensorrt":
        import tensorrt as trt

        buffers = cuda_buffers()
        if buffers is None:
            raise AgentError("TensorRT is here but neither pycuda nor cuda-python is; install "
                             "python3-pycuda or pick --backend trtexec")
        build = build_engine(trt, onnx_path, engine_path, options.fp16, options.sparse,
                             options.workspace_mib, options.timing_cache, options.batch,
                             options.max_batch)
        with open(engine_path, "rb") as handle:
            runner = TrtRunner(trt, handle.read(), buffers)
    else:
        started = time.perf_counter()
        session = ort_session(onnx_path, options.ort_provider, options.threads)
        runner = OrtRunner(session)
        meta = session.get_modelmeta().custom_metadata_map
        build = {"build_seconds": time.perf_counter() - started, "engine_bytes": None,
                 "precision": _json_value(meta.get("precision")) or "fp32",
                 "onnxruntime_provider": session.get_providers()[0]}
    with runner:
        runner.prepare(options.batch)
        result.update(build)
        with PowerSampler() as sampler:
            timing = runner.time_loop(options.warmup, options.duration, options.min_queries)
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
    parser = argparse.ArgumentParser(prog="jetsynth_agent.py", description=DESCRIPTION)
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
