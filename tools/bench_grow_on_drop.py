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

from common import (
    add_population_arguments,
    best_within,
    by_generation,
    emit,
    mnist_missing,
    population_config,
    run_all,
    validation_floor,
)

from jetsynth.core.records import MemberRecord
from jetsynth.storage import read_jsonl


def summary(records: list[MemberRecord], run_dir: Path) -> dict:
    """One run: its most efficient offspring within 2 points of the ancestor on validation
    (`common.best_within`, test accuracy reported) and whether a repair made it; per generation
    how many members are within 2 points on test and their mean test accuracy (reported, never
    used to choose); the repairs `events.jsonl` records."""
    ancestor = records[0]
    floor_test = ancestor.accuracy - 0.02
    best = best_within(records[1:], validation_floor(ancestor, 0.02), ancestor, on="val_accuracy")
    member = None if best is None else next(r for r in records if r.id == best["id"])
    events = [e for e in read_jsonl(run_dir / "events.jsonl") if e["event"] == "repair"]
    return {
        "ancestor_accuracy": ancestor.accuracy,
        "ancestor_val_accuracy": ancestor.val_accuracy,
        "best_within_2_points": None if best is None else {
            **best, "repaired": bool((member.repair or {}).get("kept"))},
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
