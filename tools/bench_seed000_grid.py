"""Seed 000's grid: m-parent synthesis (m = 1, 2, 3, 5) in populations of 3, 5 and 8 networks
per generation, on a 10 % subset of MNIST, with one PNG per panel of the paper's Fig. 2
(accuracy, synaptic efficiency and cluster efficiency vs generation, one line per m).

Prints one JSON object: per (m, population), seed and generation the population's mean test
accuracy and geometric-mean efficiencies, and the most efficient member whose *validation*
accuracy is within --drop of the ancestor's (chosen on validation, its test accuracy reported);
per cell over the seeds, mean ± spread of that member's figures and of the population at
--report-generation (the paper's generation 9), and whether the target (≥ 150× synaptic,
≥ 49× cluster efficiency, test accuracy at most 2 points under the ancestor's) holds; how many
offspring per run had to be mated from fewer parents; the wall time and peak memory.
Runs already in --out are resumed, not redone.

    python tools/bench_seed000_grid.py --out runs/seed000 [--parallel 2]
    python tools/bench_seed000_grid.py --ms 5 --populations 5 --seeds 0,1,2 --out runs/seed000-cell

Cluster efficiency is the paper's: the ancestor's kernels (and fully-connected neurons) over the
member's, whatever unit --cluster makes the synthesis drop.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

from common import (
    add_population_arguments,
    best_within,
    emit,
    generation_rows,
    mean_spread,
    mnist_missing,
    population_config,
    run_all,
    settings,
)

from jetsynth.core.records import MemberRecord
from jetsynth.storage import read_jsonl


def plot(out: Path, results: dict, populations: list[int], ms: list[int]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    panels = [("mean_accuracy", "test accuracy (population mean)", False),
              ("mean_synaptic_efficiency", "synaptic efficiency (×, geometric mean)", True),
              ("mean_cluster_efficiency", "cluster efficiency (×, geometric mean)", True)]
    for population in populations:
        for key, label, log in panels:
            fig, ax = plt.subplots(figsize=(5, 3.6))
            for m in ms:
                rows = results[(m, population)]
                ax.plot([r["generation"] for r in rows], [r[key] for r in rows], marker="o",
                        markersize=3, label=f"m = {m}")
            if log:
                ax.set_yscale("log")
            ax.set_xlabel("generation")
            ax.set_ylabel(label)
            ax.set_title(f"population {population}", fontsize=10)
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=8)
            fig.tight_layout()
            path = out / f"fig2_population{population}_{key.removeprefix('mean_')}.png"
            fig.savefig(path, dpi=120)
            plt.close(fig)
            written.append(str(path))
    return written


def fewer_parents(run_dir: Path) -> int:
    """How many offspring of a run were mated from fewer than m parents because no m parents
    drawn for them left a viable offspring."""
    events = read_jsonl(run_dir / "events.jsonl")
    return sum(1 for event in events if event["event"] == "fewer_parents")


TARGET_SYNAPTIC = 150.0
TARGET_CLUSTER = 49.0
"""The paper's efficiencies for m = 5 at generation 9 (populations of 5 and 8): ×, kernels."""


def conv_kernel_efficiency(record: MemberRecord, ancestor: MemberRecord) -> float:
    """The ancestor's convolution kernels over the member's, fully-connected neurons left out
    (the paper's "kernels" read literally; `common.kernel_efficiency` counts neurons too)."""
    def conv(r: MemberRecord) -> int:
        return sum(layer.kernels for layer in r.layers if layer.kind == "conv")

    return round(conv(ancestor) / max(conv(record), 1), 2)


def with_conv_kernels(rows: list[dict], records: list[MemberRecord]) -> list[dict]:
    """`rows` (`common.generation_rows`) with each generation's geometric-mean conv-kernel
    efficiency (`conv_kernel_efficiency`)."""
    ancestor = records[0]
    out = []
    for row in rows:
        members = [r for r in records if r.generation == row["generation"]]
        logs = [math.log(conv_kernel_efficiency(r, ancestor)) for r in members]
        out.append({**row, "mean_conv_kernel_efficiency": round(math.exp(sum(logs) / len(logs)), 2)})
    return out


def chosen_member(records: list[MemberRecord], drop: float) -> dict | None:
    """The run's most efficient member whose validation accuracy is at most `drop` (a fraction)
    under the ancestor's, with its test accuracy's drop from the ancestor's test accuracy in
    points and whether it meets the paper's target at `drop`. None when no member qualifies."""
    ancestor = records[0]
    best = best_within(records, ancestor.val_accuracy - drop, ancestor, on="val_accuracy")
    if best is None:
        return None
    test_drop = round(100 * (ancestor.accuracy - best["accuracy"]), 2)
    member = next(r for r in records if r.id == best["id"])
    return {**best, "conv_kernel_efficiency": conv_kernel_efficiency(member, ancestor),
            "test_drop_points": test_drop,
            "meets_target": (best["synaptic_efficiency"] >= TARGET_SYNAPTIC
                             and best["cluster_efficiency"] >= TARGET_CLUSTER
                             and test_drop <= 100 * drop)}


def cell_summary(seed_records: list[list[MemberRecord]], drop: float, generation: int) -> dict:
    """Over the seeds of one (m, population) cell: mean ± spread of the chosen members' figures
    (`chosen_member`) and of the population's mean test accuracy and geometric-mean
    efficiencies at `generation`; how many seeds met the target."""
    chosen = [chosen_member(records, drop) for records in seed_records]
    found = [c for c in chosen if c is not None]
    at = [row for records in seed_records for row in generation_rows(records, 0.0)
          if row["generation"] == generation]
    summary = {"seeds": len(seed_records), "seeds_meeting_target": sum(c["meets_target"] for c in found)}
    if found:
        summary["chosen"] = {key: mean_spread([c[key] for c in found]) for key in
                             ("accuracy", "test_drop_points", "synaptic_efficiency", "cluster_efficiency",
                              "conv_kernel_efficiency")}
    if at:
        summary[f"population_at_generation_{generation}"] = {
            key: mean_spread([row[key] for row in at]) for key in
            ("mean_accuracy", "mean_synaptic_efficiency", "mean_cluster_efficiency")}
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_population_arguments(parser, "runs/seed000-grid", generations=10)
    parser.add_argument("--ms", default="1,2,3,5")
    parser.add_argument("--populations", default="3,5,8")
    parser.add_argument("--seeds", default=None,
                        help="comma-separated seeds, one run per cell each (default: --seed)")
    parser.add_argument("--drop", type=float, default=0.02,
                        help="accuracy drop allowed, a fraction (0.02: 2 points)")
    parser.add_argument("--report-generation", type=int, default=9,
                        help="the generation whose population is summarised (the paper's: 9)")
    args = parser.parse_args()
    if mnist_missing(args.mnist):
        return 2
    ms = [int(v) for v in args.ms.split(",")]
    populations = [int(v) for v in args.populations.split(",")]
    seeds = [int(v) for v in args.seeds.split(",")] if args.seeds else [args.seed]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = []
    for seed in seeds:
        for population in populations:
            for m in ms:
                config = population_config(args, "seed000", population=population, parents=m)
                jobs.append((replace(config, seed=seed), run_path(out, seed, m, population, seeds)))
    # biggest runs first so the two workers finish together
    jobs.sort(key=lambda job: -job[0].population * job[0].parents)
    started = time.perf_counter()
    runs = run_all(jobs, args.parallel, args.threads)
    wall = time.perf_counter() - started
    cells = []
    first = {}
    for population in populations:
        for m in ms:
            seed_records = [runs[str(run_path(out, seed, m, population, seeds))] for seed in seeds]
            per_seed = []
            for seed, records in zip(seeds, seed_records, strict=True):
                floor = records[0].val_accuracy - args.drop
                per_seed.append({
                    "seed": seed, "ancestor_accuracy": records[0].accuracy,
                    "ancestor_val_accuracy": records[0].val_accuracy,
                    "chosen": chosen_member(records, args.drop),
                    "generations": with_conv_kernels(generation_rows(records, floor, on="val_accuracy"),
                                                     records),
                    "fewer_parents": fewer_parents(run_path(out, seed, m, population, seeds)),
                })
            first[(m, population)] = per_seed[0]["generations"]
            cells.append({"m": m, "population": population,
                          "summary": cell_summary(seed_records, args.drop, args.report_generation),
                          "runs": per_seed})
    pngs = plot(out, first, populations, ms)
    emit("seed000-grid", {
        "settings": {**settings(args), "seeds": seeds, "drop": args.drop},
        "target": {"synaptic_efficiency": TARGET_SYNAPTIC, "cluster_efficiency": TARGET_CLUSTER,
                   "test_drop_points": round(100 * args.drop, 2)},
        "cells": cells,
        "plots": pngs,
    }, wall)
    return 0


def run_path(out: Path, seed: int, m: int, population: int, seeds: list[int]) -> Path:
    """A cell's run directory: out/mM-nN for a single seed (as before seeds were repeated),
    out/seedS/mM-nN for several."""
    cell = f"m{m}-n{population}"
    return out / cell if len(seeds) == 1 else out / f"seed{seed}" / cell


if __name__ == "__main__":
    sys.exit(main())
