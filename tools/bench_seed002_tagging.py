"""Seed 002's Table 1: 5-parent synthesis with and without gene tagging (alignment by tag vs by
position in the compacted networks), and the average pairwise cluster overlap per generation.

Prints one JSON object: per alignment and generation the average overlap, mean accuracy and
geometric-mean synaptic efficiency, plus wall time and peak memory; writes the accuracy vs
storage plot of each run under its run directory.

    python tools/bench_seed002_tagging.py --out runs/seed002 [--parallel 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from common import DEFAULT_MNIST, generation_rows, peak_rss_mib, run_all

from jetsynth import EvolveConfig
from jetsynth.report import overlap_by_generation, write_population_plots


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", default=str(DEFAULT_MNIST))
    parser.add_argument("--out", default="runs/seed002-tagging")
    parser.add_argument("--generations", type=int, default=7)
    parser.add_argument("--population", type=int, default=8)
    parser.add_argument("--parents", type=int, default=5)
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
                      alignment=alignment, seed=args.seed),
         out / alignment)
        for alignment in ("tag", "position")
    ]
    started = time.perf_counter()
    runs = run_all(jobs, args.parallel)
    wall = time.perf_counter() - started
    table = {}
    for config, run_dir in jobs:
        records = runs[str(run_dir)]
        overlaps = {row["generation"]: row["average_overlap"]
                    for row in overlap_by_generation(run_dir, records, config.cluster)}
        rows = generation_rows(records, records[0]["accuracy"] - 0.02)
        for row in rows:
            row["average_overlap"] = round(overlaps[row["generation"]], 4)
        write_population_plots(run_dir, records, config.precision)
        table[config.alignment] = rows
    print(json.dumps({
        "benchmark": "seed002-table1",
        "settings": {k: getattr(args, k) for k in ("generations", "population", "parents",
                                                   "subset", "keep", "cluster", "epochs")},
        "with_tagging": table["tag"],
        "without_tagging": table["position"],
        "wall_seconds": round(wall, 1),
        "peak_rss_mib": peak_rss_mib(),
    }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
