"""Does compaction turn fewer MACs into speed? For each generation of an evolved run: the MAC
reduction of its most accurate member (on validation; test for runs without a validation split)
vs the measured throughput gain of its compacted fp32 and
fp16 ONNX models on onnxruntime CPU at batch 1 and batch 32, and the ONNX file sizes.

The gain is this member's FPS over the ancestor's at the same precision and batch; the target is
gain ≥ 0.7 × MAC reduction at batch 32 for every generation up to 20× MAC reduction.

    python tools/bench_export_speed.py RUN_DIR [--threads 1] [--seconds 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from common import by_generation, emit

from jetsynth.core.genome import PRECISIONS
from jetsynth.core.records import MemberRecord
from jetsynth.core.selection import selection_accuracy
from jetsynth.run.rundir import RunDirectory, load_records
from jetsynth.ship.bench import measure, onnx_runner
from jetsynth.ship.export import export_genome

BATCHES = (1, 32)


def timings(run: RunDirectory, record: MemberRecord, folder: Path, threads: int, seconds: float) -> dict:
    genome = run.genome(record.id)
    out = {"id": record.id, "generation": record.generation, "accuracy": record.accuracy,
           "val_accuracy": record.val_accuracy,
           "synaptic_efficiency": round(record.synaptic_efficiency, 2),
           "mac_reduction": round(record.mac_reduction, 3), "macs": record.macs}
    for precision in PRECISIONS:
        exported = export_genome(genome, folder / f"{record.id}-{precision}.onnx", precision)
        out[f"{precision}_bytes"] = exported.bytes
        runner = onnx_runner(exported.path, "ort-cpu", threads)
        for batch in BATCHES:
            result = measure(runner, batch, warmup_seconds=0.3, min_seconds=seconds, min_queries=20)
            out[f"{precision}_b{batch}_fps"] = round(result.fps, 1)
            out[f"{precision}_b{batch}_p50_ms"] = round(result.latency_ms["p50"], 4)
    return out


def most_accurate(records: list[MemberRecord]) -> list[MemberRecord]:
    """Each generation's most accurate member by `selection_accuracy` (validation), the one
    timed: choosing by test accuracy would report a test figure the choice has seen."""
    return [max(members, key=selection_accuracy) for members in by_generation(records).values()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    parser.add_argument("--seconds", type=float, default=2.0, help="timed seconds per measurement")
    parser.add_argument("--max-mac-reduction", type=float, default=20.0)
    args = parser.parse_args()
    started = time.perf_counter()
    _, records = load_records(Path(args.run_dir))
    run = RunDirectory(Path(args.run_dir))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for record in most_accurate(records):
            rows.append(timings(run, record, Path(tmp), args.threads, args.seconds))
            print(f"timed {record.id}", file=sys.stderr)
    base = rows[0]
    for row in rows:
        for precision in PRECISIONS:
            for batch in BATCHES:
                key = f"{precision}_b{batch}"
                row[f"{key}_gain"] = round(row[f"{key}_fps"] / base[f"{key}_fps"], 3)
        row["fp32_b32_gain_over_mac"] = round(row["fp32_b32_gain"] / row["mac_reduction"], 3)
        row["fp16_b32_gain_over_mac"] = round(row["fp16_b32_gain"] / row["mac_reduction"], 3)
    in_range = [r for r in rows if r["mac_reduction"] <= args.max_mac_reduction]
    target = {
        precision: all(r[f"{precision}_b32_gain_over_mac"] >= 0.7 for r in in_range)
        for precision in PRECISIONS
    }
    emit("export_speed", {"run_dir": args.run_dir, "threads": args.threads, "rows": rows,
                          "target_gain_ge_0.7_mac_reduction": target}, time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
