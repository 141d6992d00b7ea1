"""Shrink until the floor: a run with the defaults (fixed pressure, --keep 0.8) against one with
`--max-drop 0.01` and no other tuning (adaptive pressure from --keep 0.5), on real MNIST with
LeNet-5 and the same number of generations, side by side (one torch thread each).

For each: the smallest member within one point of the ancestor (chosen on validation; its test
accuracy reported), its synaptic efficiency and MAC reduction, the keep share per generation,
where the run stopped, and how many generations in a row the best member stood below the floor.
Prints one JSON object. Usage:

    python tools/bench_max_drop.py [--mnist ../shared/datasets/mnist] [--out DIR]
        [--generations 15] [--patience N] [--arch lenet5] [--data mnist:DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from common import DEFAULT_MNIST, by_generation, emit, mnist_missing, run_all

from jetsynth import EvolveConfig
from jetsynth.core.records import MemberRecord
from jetsynth.core.selection import pick_member, selection_accuracy
from jetsynth.report.run_report import pressure_rows
from jetsynth.storage import read_jsonl


def outcome(name: str, config: EvolveConfig, run_dir: Path, records: list[MemberRecord]) -> dict:
    ancestor = records[0]
    floor = selection_accuracy(ancestor) - 0.01
    ship = pick_member(records, floor=floor)
    rows = pressure_rows(records, floor)
    below = longest = 0
    for row in rows:
        below = below + 1 if row.best_val_accuracy < floor else 0
        longest = max(longest, below)
    events = [e["event"] for e in read_jsonl(run_dir / "events.jsonl")]
    return {
        "run": name, "run_dir": str(run_dir),
        "settings": {"keep": config.keep, "max_drop": config.max_drop, "patience": config.patience},
        "generations_run": max(by_generation(records)),
        "stopped_by_patience": "patience_stop" in events,
        "ancestor": {"val_accuracy": selection_accuracy(ancestor), "test_accuracy": ancestor.accuracy},
        "ship": {"id": ship.id, "synaptic_efficiency": round(ship.synaptic_efficiency, 1),
                 "mac_reduction": round(ship.mac_reduction, 2),
                 "val_accuracy": selection_accuracy(ship), "test_accuracy": ship.accuracy,
                 "test_drop_points": round(100 * (ancestor.accuracy - ship.accuracy), 2)},
        "keep_per_generation": [round(r.keep, 3) for r in rows],
        "best_val_accuracy_per_generation": [round(r.best_val_accuracy, 4) for r in rows],
        "longest_run_below_floor": longest,
        "train_seconds": round(sum(r.train_seconds for r in records), 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", default=str(DEFAULT_MNIST))
    parser.add_argument("--data", default=None, help="another dataset spec instead of MNIST")
    parser.add_argument("--arch", default="lenet5")
    parser.add_argument("--input-size", type=int, default=None)
    parser.add_argument("--out", default=None)
    parser.add_argument("--generations", type=int, default=15)
    parser.add_argument("--patience", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run", action="append", choices=["defaults", "max_drop_0.01"], default=None,
                        help="run only these (default: both)")
    args = parser.parse_args()
    if args.data is None and mnist_missing(args.mnist):
        return 2
    data = args.data or f"mnist:{args.mnist}"
    out = Path(args.out or tempfile.mkdtemp(prefix="max-drop-"))
    common = {"data": data, "arch": args.arch, "generations": args.generations, "seed": args.seed,
              "preset": "seed001",
              "input_size": args.input_size}
    configs = {
        "defaults": EvolveConfig(**common),
        "max_drop_0.01": EvolveConfig(**common, max_drop=0.01, patience=args.patience),
    }
    configs = {name: configs[name] for name in (args.run or configs)}
    jobs = [(config, out / name) for name, config in configs.items()]
    started = time.perf_counter()
    results = run_all(jobs, parallel=len(jobs), threads=1)
    emit("max-drop", {
        "arch": args.arch, "data": data, "generations": args.generations,
        "runs": [outcome(name, config.with_policies(), out / name, results[str(out / name)])
                 for name, config in configs.items()],
    }, time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
