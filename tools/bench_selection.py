"""Random vs directed parent selection at equal generations: the accuracy/efficiency frontier
each policy reaches (MNIST subset, m-parent populations).

Prints one JSON object: per policy the Pareto front over all members (validation accuracy vs
synaptic efficiency), the most efficient member whose validation accuracy is within 1 and 2
points of the ancestor's (members chosen on validation, their test accuracy reported beside
it), and wall time.

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
    validation_floor,
)

POLICIES = ("random", "fitness", "similarity")


def policy_summary(records: list[dict]) -> dict:
    """One policy's run: its most efficient members within 1 and 2 points of the ancestor and
    its Pareto front, all chosen on validation accuracy (test accuracy is reported, never
    looked at)."""
    ancestor = records[0]
    return {
        "best_within_1_point": best_within(records, validation_floor(ancestor, 0.01), ancestor,
                                           on="val_accuracy"),
        "best_within_2_points": best_within(records, validation_floor(ancestor, 0.02), ancestor,
                                            on="val_accuracy"),
        "pareto_front": pareto_front(records, on="val_accuracy"),
    }


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
    ancestor = runs[str(jobs[0][1])][0]
    emit("parent-selection", {
        "settings": settings(args, "population", "parents"),
        "ancestor_accuracy": ancestor.accuracy,
        "ancestor_val_accuracy": ancestor.val_accuracy,
        "policies": {config.selection: policy_summary(runs[str(run_dir)]) for config, run_dir in jobs},
    }, wall)
    return 0


if __name__ == "__main__":
    sys.exit(main())
