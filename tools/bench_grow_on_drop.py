"""`evolve --grow-on-drop` in seed 000's grid cell m = 5, population 8 (10 % of MNIST, LeNet-5,
the grid's pressure), with and without repair, printed as JSON: per run the best member within
2 points of the ancestor (test accuracy; the member itself is chosen on validation: the most
efficient at or above the ancestor's validation accuracy − 0.02), how many members are within
2 points per generation, and how many repairs were tried and kept. Both runs share seeds, so the
ancestor and the first draws are the same. Runs already in --out are resumed, not redone.

    OMP_NUM_THREADS=1 nice -n 10 python tools/bench_grow_on_drop.py --generations 3 --epochs 2
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

from common import add_population_arguments, by_generation, emit, mnist_missing, population_config, run_all

from jetsynth.core.records import MemberRecord
from jetsynth.storage import read_jsonl


def summary(records: list[MemberRecord], run_dir: Path) -> dict:
    ancestor = records[0]
    floor_val = ancestor.val_accuracy - 0.02
    floor_test = ancestor.accuracy - 0.02
    chosen = [r for r in records[1:] if r.val_accuracy >= floor_val]
    best = max(chosen, key=lambda r: r.synaptic_efficiency, default=None)
    events = [e for e in read_jsonl(run_dir / "events.jsonl") if e["event"] == "repair"]
    return {
        "ancestor_accuracy": ancestor.accuracy,
        "best_within_2_points": None if best is None else {
            "id": best.id, "accuracy": best.accuracy, "val_accuracy": best.val_accuracy,
            "synaptic_efficiency": round(best.synaptic_efficiency, 2),
            "repaired": bool((best.repair or {}).get("kept"))},
        "within_2_points_per_generation": {
            g: sum(r.accuracy >= floor_test for r in members)
            for g, members in by_generation(records).items() if g > 1},
        "mean_accuracy_per_generation": {
            g: round(sum(r.accuracy for r in members) / len(members), 4)
            for g, members in by_generation(records).items()},
        "repairs_tried": len(events), "repairs_kept": sum(e["kept"] for e in events),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_population_arguments(parser, "/tmp/bench_grow_on_drop", generations=10, population=8, parents=5)
    parser.add_argument("--drop", type=float, default=0.01, help="--grow-on-drop of the repaired run")
    args = parser.parse_args()
    if mnist_missing(args.mnist):
        return 2
    out = Path(args.out)
    base = population_config(args, "seed000", population=args.population, parents=args.parents, val_split=0.1)
    jobs = [(base, out / "plain"), (replace(base, grow_on_drop=args.drop), out / "repair")]
    started = time.perf_counter()
    runs = run_all(jobs, args.parallel, args.threads)
    emit("grow-on-drop", {
        "settings": {**vars(args)},
        "plain": summary(runs[str(out / "plain")], out / "plain"),
        "repair": summary(runs[str(out / "repair")], out / "repair"),
    }, time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
