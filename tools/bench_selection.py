"""Random vs directed parent selection at equal generations: the accuracy/efficiency frontier
each policy reaches (MNIST subset, m-parent populations).

Prints one JSON object: per policy the Pareto front over all members (accuracy vs synaptic
efficiency), the most efficient member within 1 and 2 points of the ancestor, and wall time.

    python tools/bench_selection.py --out runs/selection [--parallel 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from common import (
    add_population_arguments,
    best_within,
    emit,
    mnist_missing,
    pareto_front,
    population_config,
    run_all,
    settings,
)

POLICIES = ("random", "fitness", "similarity")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_population_arguments(parser, "runs/selection", generations=8, population=8, parents=5)
    args = parser.parse_args()
    if mnist_missing(args.mnist):
        return 2
    out = Path(args.out)
    jobs = [
        (population_config(args, "seed000", population=args.population, parents=args.parents,
                           selection=policy), out / policy)
        for policy in POLICIES
    ]
    started = time.perf_counter()
    runs = run_all(jobs, args.parallel, args.threads)
    wall = time.perf_counter() - started
    result = {}
    for config, run_dir in jobs:
        records = runs[str(run_dir)]
        ancestor = records[0]
        result[config.selection] = {
            "best_within_1_point": best_within(records, ancestor.accuracy - 0.01, ancestor),
            "best_within_2_points": best_within(records, ancestor.accuracy - 0.02, ancestor),
            "pareto_front": pareto_front(records),
        }
    emit("parent-selection", {
        "settings": settings(args, "population", "parents"),
        "ancestor_accuracy": runs[str(jobs[0][1])][0]["accuracy"],
        "policies": result,
    }, wall)
    return 0


if __name__ == "__main__":
    sys.exit(main())
