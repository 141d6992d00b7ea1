"""Seed 000's structure without training: how fast cluster (kernel) efficiency grows against
synaptic efficiency under each pressure setting, from one trained ancestor.

Each setting synthesises --generations − 1 generations of --population members from m random
parents of the previous generation, as the grid does, but no offspring is trained: the parents'
weights are the ancestor's, mated. That isolates what the pressure settings do to the network's
shape (which layers lose kernels, how many kernels are left at a given synaptic efficiency) from
what training does; trained runs sparsify faster, since trained siblings disagree more and their
intersection is smaller. Seconds per setting.

Prints one JSON object: per setting (cluster:cluster_pressure:keep:balance) and generation, the
geometric-mean synaptic and cluster efficiency of the population (mean ± spread over --seeds),
and the last generation's kernels per layer for the first seed.

    python tools/bench_seed000_structure.py --ancestor runs/seed000/m5-n5/members/g01-m00
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from pathlib import Path

from common import emit, mean_spread

DEFAULT_SETTINGS = "kernel:1.0:0.5:0,kernel:0.5:0.5:0,filter:1.0:0.5:0,filter:0.5:0.5:0,kernel:1.0:0.5:0.5"


def _geometric_mean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def _offspring(parents: list, config, generator, generation: int, member: int):
    """An untrained offspring of `parents`; the first parent itself when every draw loses a
    layer or a class (the grid's runs then mate from fewer parents; here the count stays)."""
    from jetsynth.core.genome import Lineage
    from jetsynth.core.grow_genome import harmonize
    from jetsynth.core.synthesis import synthesize
    from jetsynth.errors import JetsynthError

    try:
        return synthesize(harmonize(parents), config, generator,
                          Lineage(f"g{generation:02d}-m{member:02d}", generation, member))
    except JetsynthError:
        return parents[0]


def simulate(ancestor, setting: str, population: int, parents: int, generations: int,
             seed: int) -> list[dict]:
    """Per generation 2..`generations`: the population's geometric-mean synaptic and cluster
    (kernel) efficiency and its members' kernels per layer, untrained offspring throughout."""
    import torch

    from jetsynth.core.metrics import size_metrics
    from jetsynth.core.synthesis import SynthesisConfig

    cluster, cluster_pressure, keep, balance = setting.split(":")
    config = SynthesisConfig(cluster=cluster, cluster_pressure=float(cluster_pressure), keep=float(keep),
                             balance=float(balance), mates=min(parents, population))
    base = size_metrics(ancestor)
    generator = torch.Generator().manual_seed(seed)
    pick = random.Random(seed)
    previous, rows = [ancestor], []
    for generation in range(2, generations + 1):
        current = []
        for member in range(population):
            chosen = pick.sample(previous, min(parents, len(previous)))
            current.append(_offspring(chosen, config, generator, generation, member))
        previous = current
        sizes = [size_metrics(genome) for genome in current]
        rows.append({
            "generation": generation,
            "synaptic_efficiency": _geometric_mean([base["synapses"] / s["synapses"] for s in sizes]),
            "cluster_efficiency": _geometric_mean([base["kernels"] / s["kernels"] for s in sizes]),
            "layer_kernels": [[layer["kernels"] for layer in s["layers"]] for s in sizes],
        })
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ancestor", required=True, help="a trained member's folder (genome.json, ...)")
    parser.add_argument("--settings", default=DEFAULT_SETTINGS,
                        help="comma-separated cluster:cluster_pressure:keep:balance")
    parser.add_argument("--population", type=int, default=5)
    parser.add_argument("--parents", type=int, default=5)
    parser.add_argument("--generations", type=int, default=10)
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args()
    import torch

    from jetsynth.core.genome import load_genome

    torch.set_num_threads(1)
    folder = Path(args.ancestor)
    if not (folder / "genome.json").is_file():
        print(f"error: {folder} is not a member folder (no genome.json): name a run's "
              "members/g01-m00", file=sys.stderr)
        return 2
    ancestor = load_genome(folder)
    seeds = [int(v) for v in args.seeds.split(",")]
    started = time.perf_counter()
    results = {}
    for setting in args.settings.split(","):
        runs = [simulate(ancestor, setting, args.population, args.parents, args.generations, seed)
                for seed in seeds]
        results[setting] = {
            "generations": [{
                "generation": rows[0]["generation"],
                **{key: mean_spread([row[key] for row in rows], 2)
                   for key in ("synaptic_efficiency", "cluster_efficiency")},
            } for rows in zip(*runs, strict=True)],
            "last_layer_kernels_seed0": runs[0][-1]["layer_kernels"],
        }
    emit("seed000-structure", {"ancestor": str(folder), "population": args.population,
                               "parents": args.parents, "seeds": seeds, "settings": results},
         time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
