"""Seed 002's Table 1: 5-parent synthesis with and without gene tagging (alignment by tag vs by
position in the compacted networks), and the average pairwise cluster overlap per generation.

Prints one JSON object: per alignment and generation the average overlap, mean test accuracy,
geometric-mean synaptic efficiency and the most efficient member whose validation accuracy is
within 2 points of the ancestor's (chosen on validation, its test accuracy reported beside it),
plus wall time and peak memory; writes the accuracy vs storage plot of each run under its run
directory.

    python tools/bench_seed002_tagging.py --out runs/seed002 [--parallel 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from common import (
    add_population_arguments,
    emit,
    generation_rows,
    mnist_missing,
    population_config,
    run_all,
    settings,
    validation_floor,
)

from jetsynth.core.records import MemberRecord
from jetsynth.report.plots import write_population_plots
from jetsynth.report.run_report import overlap_by_generation


def table_rows(records: list[MemberRecord], overlaps: dict[int, float]) -> list[dict]:
    """One run's rows of the table: `common.generation_rows` with each generation's best member
    chosen on validation (within 2 points of the ancestor's validation accuracy) and its
    average pairwise overlap from `overlaps` (by generation)."""
    rows = generation_rows(records, validation_floor(records[0], 0.02), on="val_accuracy")
    return [{**row, "average_overlap": round(overlaps[row["generation"]], 4)} for row in rows]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_population_arguments(parser, "runs/seed002-tagging", generations=7, population=8,
                             parents=5)
    args = parser.parse_args()
    if mnist_missing(args.mnist):
        return 2
    out = Path(args.out)
    jobs = [
        (population_config(args, "seed002", population=args.population, parents=args.parents,
                           alignment=alignment), out / alignment)
        for alignment in ("tag", "position")
    ]
    started = time.perf_counter()
    runs = run_all(jobs, args.parallel, args.threads)
    wall = time.perf_counter() - started
    table = {}
    for config, run_dir in jobs:
        records = runs[str(run_dir)]
        overlaps = {row.generation: row.average_overlap
                    for row in overlap_by_generation(run_dir, records, config.cluster)}
        write_population_plots(run_dir, records, config.precision)
        table[config.alignment] = table_rows(records, overlaps)
    emit("seed002-table1", {
        "settings": settings(args, "population", "parents"),
        "with_tagging": table["tag"],
        "without_tagging": table["position"],
    }, wall)
    return 0


if __name__ == "__main__":
    sys.exit(main())
