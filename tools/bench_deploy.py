"""Where does the time of a deploy go, and does the device agent measure what `jetsynth bench`
measures? Deploys MODEL to a device `repeats` times (by default a throw-away sshd on 127.0.0.1
started here, the agent on its onnxruntime CPU path) and times the same model with `jetsynth
bench`'s runner on this machine, interleaved so that both see the same machine load.

Reported: median wall seconds of each deploy phase (connect, prepare, copy, engine build or
session creation, timing, the rest of the agent's run, cleanup, total) and the FPS of both, with
the run-to-run spread; "agree" is true when the two medians differ by less than the larger
spread (max-min over repeats).

    python tools/bench_deploy.py MODEL.onnx [--device NAME|user@host] [--repeats 5]
                                 [--threads 1] [--batch 1] [--duration 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import emit

from jetsynth.devices.deploy import DeployOptions, deploy
from jetsynth.devices.deploy_result import DeployResult
from jetsynth.devices.inventory import Device, resolve_device
from jetsynth.ship.bench import measure, onnx_runner

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def phases(result: DeployResult, warmup: float) -> dict:
    """Seconds per phase; 'timing' is the agent's timed loop plus its `warmup` (s)."""
    host = result.host_seconds
    timing = result.agent["wall_seconds"] + warmup
    return {
        "connect": host["connect"], "prepare": host["prepare"], "copy": host["copy"],
        "build": result.build_seconds, "timing": timing,
        "agent_other": host["agent"] - result.build_seconds - timing,
        "cleanup": host["cleanup"], "total": host["total"],
    }


def run(model: Path, device: Device, args) -> dict:
    options = DeployOptions(backend=args.backend, batch=args.batch, duration=args.duration,
                            warmup=args.warmup, min_queries=args.iterations, threads=args.threads,
                            ort_provider="cpu", min_free_mib=16)
    deployed, local = [], []
    for _ in range(args.repeats):
        deployed.append(deploy(model, device, options))
        runner = onnx_runner(model, "ort-cpu", args.threads)
        local.append(measure(runner, args.batch, args.warmup, args.duration, args.iterations).fps)
    agent_fps = [r.fps for r in deployed]
    by_phase = {name: spread([phases(r, args.warmup)[name] for r in deployed])
                for name in phases(deployed[0], args.warmup)}
    agent, bench = spread(agent_fps), spread(local)
    noise = max(agent["max"] - agent["min"], bench["max"] - bench["min"])
    return {
        "model": str(model),
        "device": device.destination,
        "backend": deployed[0].backend,
        "batch": args.batch,
        "threads": args.threads,
        "repeats": args.repeats,
        "phase_seconds": by_phase,
        "agent_fps": agent,
        "bench_fps": bench,
        "ratio_agent_over_bench": agent["median"] / bench["median"],
        "agree": abs(agent["median"] - bench["median"]) <= noise,
        "agent_latency_ms_p50": statistics.median(r.latency_ms["p50"] for r in deployed),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--device", default=None, help="stored device or user@host [default: a local sshd]")
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--iterations", type=int, default=50)
    args = parser.parse_args()
    started = time.perf_counter()
    if args.device:
        body = run(args.model, resolve_device(args.device), args)
    else:
        from sshd_server import LocalSshd

        with tempfile.TemporaryDirectory() as folder, LocalSshd(Path(folder) / "sshd") as server:
            remote = Path(folder) / "remote"
            remote.mkdir()
            device = Device(name="local", remote_dir=str(remote), **server.device_fields())
            body = run(args.model, device, args)
    emit("deploy", body, time.perf_counter() - started)


if __name__ == "__main__":
    main()
