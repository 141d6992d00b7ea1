"""Seed 000's grid: m-parent synthesis (m = 1, 2, 3, 5) in populations of 3, 5 and 8 networks
per generation, on a 10 % subset of MNIST, with one PNG per panel of the paper's Fig. 2
(accuracy, synaptic efficiency and cluster efficiency vs generation, one line per m).

Prints one JSON object: per (m, population) and generation the population's mean accuracy and
geometric-mean efficiencies, and the most efficient member within 2 points of the ancestor;
how many offspring per run had to be mated from fewer parents; the wall time and peak memory.
Runs already in --out are resumed, not redone.

    python tools/bench_seed000_grid.py --out runs/seed000 [--parallel 2]

Cluster efficiency is the paper's: the ancestor's kernels (and fully-connected neurons) over the
member's, whatever unit --cluster makes the synthesis drop.
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
)

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_population_arguments(parser, "runs/seed000-grid", generations=10)
    parser.add_argument("--ms", default="1,2,3,5")
    parser.add_argument("--populations", default="3,5,8")
    args = parser.parse_args()
    if mnist_missing(args.mnist):
        return 2
    ms = [int(v) for v in args.ms.split(",")]
    populations = [int(v) for v in args.populations.split(",")]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = []
    for population in populations:
        for m in ms:
            config = population_config(args, "seed000", population=population, parents=m)
            jobs.append((config, out / f"m{m}-n{population}"))
    # biggest runs first so the two workers finish together
    jobs.sort(key=lambda job: -job[0].population * job[0].parents)
    started = time.perf_counter()
    runs = run_all(jobs, args.parallel, args.threads)
    wall = time.perf_counter() - started
    results = {}
    for config, run_dir in jobs:
        records = runs[str(run_dir)]
        floor = records[0].accuracy - 0.02
        results[(config.parents, config.population)] = generation_rows(records, floor)
    pngs = plot(out, results, populations, ms)
    emit("seed000-grid", {
        "settings": settings(args),
        "ancestor_accuracy": runs[str(jobs[0][1])][0]["accuracy"],
        "runs": [{"m": m, "population": n, "generations": results[(m, n)],
                  "fewer_parents": fewer_parents(out / f"m{m}-n{n}")}
                 for n in populations for m in ms],
        "plots": pngs,
    }, wall)
    return 0


if __name__ == "__main__":
    sys.exit(main())
