"""Is a member as fast on onnxruntime's CPU as its MAC reduction promises, and if not, where does
its time go? For the ancestor and each named member of an evolved run: the fp32 ONNX that the run
ships (its own channel multiple), timed at batch `--batch` on one thread, the ancestor and the
members alternating in every round so that a busy moment of a shared machine hits all alike; the
gain of a member is its FPS over the ancestor's *in the same round*, median over `--repeats`
rounds with the spread (min, max), beside its MAC reduction. `--profile` adds onnxruntime's
per-node profile of each model (its own session, after the rounds): the time per batch of every
op type and of the slowest nodes with their tensor shapes, and for convolutions the nanoseconds
per multiply-accumulate, so a layer that runs slow for its MACs shows by its shape.

    python tools/bench_member_speed.py RUN_DIR --member g06-m00 [--member g07-m00] [--repeats 9]
        [--seconds 0.5] [--batch 32] [--profile]

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from common import emit

from jetsynth.run.rundir import RunDirectory, load_records
from jetsynth.ship.bench import measure, onnx_runner
from jetsynth.ship.export import export_genome

ANCESTOR = "g01-m00"


def export(run: RunDirectory, member: str, folder: Path, multiple: int):
    """The member's fp32 ONNX as the run ships it (`jetsynth export --precision fp32`)."""
    return export_genome(run.genome(member), folder / f"{member}.onnx", "fp32", channel_multiple=multiple)


def rounds(paths: dict[str, Path], batch: int, repeats: int, seconds: float) -> dict[str, list[float]]:
    """FPS per model per round; every round times every model once, the order rotating so that
    no model is always first after a pause."""
    runners = {name: onnx_runner(path, "ort-cpu", 1) for name, path in paths.items()}
    names = list(runners)
    fps: dict[str, list[float]] = {name: [] for name in names}
    for index in range(repeats):
        turn = names[index % len(names):] + names[:index % len(names)]
        for name in turn:
            fps[name].append(measure(runners[name], batch, warmup_seconds=0.2, min_seconds=seconds).fps)
    return fps


def conv_macs(event: dict) -> int | None:
    """Multiply-accumulates of one convolution node from its profiled shapes: output elements ×
    (input channels per group × kernel area), read off the 4-D weight; None for other nodes."""
    args = event.get("args", {})
    inputs = [list(shape.values())[0] for shape in args.get("input_type_shape", [])]
    outputs = [list(shape.values())[0] for shape in args.get("output_type_shape", [])]
    weights = [s for s in inputs[1:2] if len(s) == 4]
    if "Conv" not in args.get("op_name", "") or not weights or not outputs:
        return None
    out = outputs[0]
    spatial = math.prod(out[2:4]) if len(out) >= 4 else 1
    return int(out[0] * weights[0][0] * spatial * math.prod(weights[0][1:]))


def profile(path: Path, batch: int, queries: int, folder: Path) -> dict:
    """onnxruntime's own per-node profile over `queries` batches on one thread: microseconds per
    batch by op type, and the ten slowest nodes with shapes and (convolutions) ns per MAC. Each
    node counts its least time over the queries: other processes on a busy machine only ever add
    time, so the least is the node's own cost."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.enable_profiling = True
    options.profile_file_prefix = str(folder / path.stem)
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0]
    shape = [batch, *feed.shape[1:]]
    images = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    for _ in range(queries + 3):
        session.run(None, {feed.name: images})
    events = json.loads(Path(session.end_profiling()).read_text())
    kernels = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    by_node: dict[str, dict] = {}
    for event in kernels:
        node = by_node.setdefault(event["name"][:-len("_kernel_time")], {
            "op": event["args"].get("op_name", "?"), "us": math.inf, "macs": conv_macs(event),
            "inputs": [list(s.values())[0] for s in event["args"].get("input_type_shape", [])],
            "outputs": [list(s.values())[0] for s in event["args"].get("output_type_shape", [])]})
        node["us"] = min(node["us"], event["dur"])
    by_op: dict[str, float] = defaultdict(float)
    for node in by_node.values():
        by_op[node["op"]] += node["us"]
    total = sum(by_op.values())
    conv_us = sum(n["us"] for n in by_node.values() if n["macs"])
    conv_macs_total = sum(n["macs"] for n in by_node.values() if n["macs"])
    slowest = sorted(by_node.items(), key=lambda item: -item[1]["us"])[:10]
    return {
        "us_per_batch": round(total, 1),
        "by_op_us": {op: round(us, 1) for op, us in sorted(by_op.items(), key=lambda kv: -kv[1])},
        "conv_share": round(conv_us / total, 3) if total else None,
        "conv_ns_per_mac": round(1000 * conv_us / conv_macs_total, 4) if conv_macs_total else None,
        "slowest": [{"node": name, "op": n["op"], "us": round(n["us"], 1), "inputs": n["inputs"],
                     "outputs": n["outputs"],
                     "ns_per_mac": round(1000 * n["us"] / n["macs"], 4) if n["macs"] else None}
                    for name, n in slowest],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--member", action="append", required=True, help="a member id, e.g. g06-m00")
    parser.add_argument("--repeats", type=int, default=9, help="rounds, each timing every model once")
    parser.add_argument("--seconds", type=float, default=0.5, help="timed seconds per model per round")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--profile", action="store_true", help="add onnxruntime's per-node profile")
    parser.add_argument("--profile-queries", type=int, default=30)
    args = parser.parse_args()
    started = time.perf_counter()
    run = RunDirectory(Path(args.run_dir))
    config = run.stored_config()
    multiple = (config.channel_multiple if config is not None else None) or 1
    records = {r["id"]: r for r in load_records(Path(args.run_dir))[1]}
    unknown = [m for m in args.member if m not in records]
    if unknown:
        print(f"error: no member {', '.join(unknown)} in {args.run_dir}; name finished members "
              "(members/ID/record.json)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        names = [ANCESTOR, *[m for m in args.member if m != ANCESTOR]]
        exported = {name: export(run, name, folder, multiple) for name in names}
        fps = rounds({name: e.path for name, e in exported.items()}, args.batch, args.repeats, args.seconds)
        members = []
        for name in names[1:]:
            gains = sorted(m / a for m, a in zip(fps[name], fps[ANCESTOR], strict=True))
            reduction = exported[ANCESTOR].macs / exported[name].macs
            entry = {
                "id": name, "macs": exported[name].macs, "mac_reduction": round(reduction, 2),
                "fps": round(statistics.median(fps[name]), 1),
                "fps_spread": [round(min(fps[name]), 1), round(max(fps[name]), 1)],
                "gain": round(statistics.median(gains), 2),
                "gain_spread": [round(gains[0], 2), round(gains[-1], 2)],
                "gain_over_mac": round(statistics.median(gains) / reduction, 2),
                "gain_over_mac_spread": [round(gains[0] / reduction, 2), round(gains[-1] / reduction, 2)],
            }
            members.append(entry)
        result = {
            "run_dir": args.run_dir, "channel_multiple": multiple, "batch": args.batch,
            "repeats": args.repeats, "seconds": args.seconds,
            "ancestor": {"macs": exported[ANCESTOR].macs, "fps": round(statistics.median(fps[ANCESTOR]), 1),
                         "fps_spread": [round(min(fps[ANCESTOR]), 1), round(max(fps[ANCESTOR]), 1)]},
            "members": members,
        }
        if args.profile:
            result["profiles"] = {name: profile(e.path, args.batch, args.profile_queries, folder)
                                  for name, e in exported.items()}
    emit("member-speed", result, time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
