"""Random vs directed parent selection at equal generations: the accuracy/efficiency frontier
each policy reaches (MNIST subset, m-parent populations).

Prints one JSON object: per policy the Pareto front over all members (accuracy vs synaptic
efficiency), the most efficient member within 1 and 2 points of the ancestor, and wall time.

    python tools/bench_selection.py --out runs/selection [--parallel 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from common import DEFAULT_MNIST, pareto_front, peak_rss_mib, run_all

from jetsynth import EvolveConfig

POLICIES = ("random", "fitness", "similarity")


def best_within(records: list[dict], floor: float) -> dict | None:
    viable = [r for r in records if r["accuracy"] >= floor]
    if not viable:
        return None
    best = max(viable, key=lambda r: r["synaptic_efficiency"])
    return {"id": best["id"], "accuracy": best["accuracy"],
            "synaptic_efficiency": round(best["synaptic_efficiency"], 2),
            "cluster_efficiency": round(best["cluster_efficiency"], 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", default=str(DEFAULT_MNIST))
    parser.add_argument("--out", default="runs/selection")
    parser.add_argument("--generations", type=int, default=8)
    parser.add_argument("--population", type=int, default=5)
    parser.add_argument("--parents", type=int, default=2)
    parser.add_argument("--subset", type=float, default=0.1)
    parser.add_argument("--keep", type=float, default=0.55)
    parser.add_argument("--cluster", default="filter")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--ancestor-epochs", type=int, default=10)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not Path(args.mnist).is_dir():
        print(json.dumps({"error": f"MNIST folder not found: {args.mnist}"}))
        return 2
    out = Path(args.out)
    jobs = [
        (EvolveConfig(data=f"mnist:{args.mnist}", subset=args.subset, generations=args.generations,
                      population=args.population, parents=args.parents, cluster=args.cluster,
                      keep=args.keep, epochs=args.epochs, ancestor_epochs=args.ancestor_epochs,
                      selection=policy, seed=args.seed),
         out / policy)
        for policy in POLICIES
    ]
    started = time.perf_counter()
    runs = run_all(jobs, args.parallel)
    wall = time.perf_counter() - started
    result = {}
    for config, run_dir in jobs:
        records = runs[str(run_dir)]
        ancestor = records[0]["accuracy"]
        result[config.selection] = {
            "best_within_1_point": best_within(records, ancestor - 0.01),
            "best_within_2_points": best_within(records, ancestor - 0.02),
            "pareto_front": pareto_front(records),
        }
    print(json.dumps({
        "benchmark": "parent-selection",
        "settings": {k: getattr(args, k) for k in ("generations", "population", "parents",
                                                   "subset", "keep", "cluster", "epochs")},
        "ancestor_accuracy": runs[str(jobs[0][1])][0]["accuracy"],
        "policies": result,
        "wall_seconds": round(wall, 1),
        "peak_rss_mib": peak_rss_mib(),
    }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
