"""Shared helpers of the benchmark scripts: run several evolutions side by side (one torch
thread each, so two runs use the two cores better than one run with two threads), resume runs
already on disk, and summarise records."""

from __future__ import annotations

import json
import math
import os
import resource
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

from jetsynth.core import frontier
from jetsynth.core.records import MemberRecord

DEFAULT_MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "mnist"


def _run_one(args):
    config, run_dir, threads = args
    import torch

    from jetsynth.run.evolve import evolve

    torch.set_num_threads(threads)
    config = replace(config, threads=threads)
    records = evolve(config, run_dir, resume=(Path(run_dir) / "config.json").exists())
    return str(run_dir), records


def run_all(jobs: list[tuple], parallel: int, threads: int = 0) -> dict[str, list[MemberRecord]]:
    """Run (config, run_dir) pairs, `parallel` at a time, each with `threads` torch threads
    (0: the cores shared out); return records by run directory."""
    threads = threads or max(1, (os.cpu_count() or 1) // parallel)
    tasks = [(config, str(run_dir), threads) for config, run_dir in jobs]
    if parallel == 1:
        return dict(_run_one(task) for task in tasks)
    with ProcessPoolExecutor(max_workers=parallel) as pool:
        return dict(pool.map(_run_one, tasks))


def peak_rss_mib() -> float:
    """Peak resident memory of this process and its finished children, MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(max(own, children) / 1024, 1)


def by_generation(records: list[MemberRecord]) -> dict[int, list[MemberRecord]]:
    out: dict[int, list[MemberRecord]] = {}
    for record in records:
        out.setdefault(record.generation, []).append(record)
    return dict(sorted(out.items()))


def kernel_efficiency(record: MemberRecord, ancestor: MemberRecord) -> float:
    """Seed 000's cluster efficiency: the ancestor's kernels (conv kernels and fully-connected
    neurons) over the member's, whatever unit the run's synthesis clustered by."""
    return ancestor.kernels / max(record.kernels, 1)


def validation_floor(ancestor: MemberRecord, drop: float) -> float | None:
    """The validation accuracy a member needs to be at most `drop` (a fraction) under the
    ancestor's; None for a run that held no validation split out (written before there was
    one), where no member can be chosen without looking at test."""
    value = ancestor.val_accuracy
    return None if value is None else value - drop


def best_within(records: list[MemberRecord], floor: float | None, ancestor: MemberRecord,
                on: str = "accuracy") -> dict | None:
    """The most efficient member whose `on` accuracy ('accuracy': test, 'val_accuracy':
    validation, the one to choose by) is at least `floor` (None when no member is, or when
    `floor` is None: see `validation_floor`); its test accuracy is what is reported."""
    if floor is None:
        return None
    viable = [r for r in records if getattr(r, on) is not None and getattr(r, on) >= floor]
    if not viable:
        return None
    best = max(viable, key=lambda r: (r.synaptic_efficiency, getattr(r, on)))
    return {"id": best.id, "accuracy": best.accuracy, "val_accuracy": best.val_accuracy,
            "synaptic_efficiency": round(best.synaptic_efficiency, 2),
            "cluster_efficiency": round(kernel_efficiency(best, ancestor), 2)}


def _geometric_mean(values: list[float]) -> float:
    return round(math.exp(sum(math.log(v) for v in values) / len(values)), 2)


def generation_rows(records: list[MemberRecord], floor: float | None, on: str = "accuracy") -> list[dict]:
    """Per generation: population means (geometric for efficiencies; cluster efficiency in
    kernels, see `kernel_efficiency`), and the most efficient member whose `on` accuracy is at
    least `floor` (None when no member is; see `best_within`)."""
    generations = by_generation(records)
    ancestor = generations[min(generations)][0]
    rows = []
    for generation, members in generations.items():
        rows.append({
            "generation": generation,
            "mean_accuracy": round(sum(r.accuracy for r in members) / len(members), 4),
            "mean_synaptic_efficiency": _geometric_mean([r.synaptic_efficiency for r in members]),
            "mean_cluster_efficiency": _geometric_mean([kernel_efficiency(r, ancestor)
                                                        for r in members]),
            "best": best_within(members, floor, ancestor, on),
        })
    return rows


def pareto_front(records: list[MemberRecord], on: str = "accuracy") -> list[dict]:
    """Members no other member beats on both `on` accuracy ('val_accuracy' to choose the members
    a table reports; members without one left out) and synaptic efficiency, with their test
    and validation accuracies."""
    front = frontier.pareto_front([r for r in records if getattr(r, on) is not None],
                                  gain=lambda r: r.synaptic_efficiency, accuracy=lambda r: getattr(r, on))
    return [{"id": r.id, "accuracy": r.accuracy, "val_accuracy": r.val_accuracy,
             "synaptic_efficiency": round(r.synaptic_efficiency, 2)} for r in front]


def add_population_arguments(parser, out: str, generations: int, population: int | None = None,
                             parents: int | None = None) -> None:
    """The options every population benchmark shares (seed 000's 10 % MNIST setting), with
    --population and --parents where the benchmark has one of each. The default pressure is
    the one seed 000's grid on docs/benchmarks.md was measured under: R = 0.5 per generation,
    all of it on whole kernels, equal rates in every layer, 15 epochs of retraining per
    offspring (3 epochs lose 2–4 points more at the same efficiency)."""
    if population is not None:
        parser.add_argument("--population", type=int, default=population)
        parser.add_argument("--parents", type=int, default=parents)
    parser.add_argument("--mnist", default=str(DEFAULT_MNIST))
    parser.add_argument("--out", default=out)
    parser.add_argument("--generations", type=int, default=generations)
    parser.add_argument("--subset", type=float, default=0.1)
    parser.add_argument("--keep", type=float, default=0.5)
    parser.add_argument("--cluster", default="kernel")
    parser.add_argument("--cluster-pressure", type=float, default=1.0)
    parser.add_argument("--balance", type=float, default=0.0,
                        help="share of the pressure big layers carry (0: equal rates)")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--ancestor-epochs", type=int, default=8)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="torch threads per run (0: auto)")
    parser.add_argument("--seed", type=int, default=0)


SHARED_SETTINGS = ("generations", "subset", "keep", "cluster", "cluster_pressure", "balance", "epochs",
                   "ancestor_epochs", "seed")


def population_config(args, preset: str, **fields):
    """An EvolveConfig from the shared options plus the benchmark's own `fields`, under the seed
    paper's `preset` (its settings exactly, whatever the user-first defaults are)."""
    from jetsynth import EvolveConfig

    return EvolveConfig(
        data=f"mnist:{args.mnist}", arch="lenet5", preset=preset,
        **{name: getattr(args, name) for name in SHARED_SETTINGS}, **fields,
    )


def settings(args, *extra: str) -> dict:
    return {name: getattr(args, name) for name in SHARED_SETTINGS + extra}


def mean_spread(values: list[float], digits: int = 4) -> dict:
    """Mean, sample standard deviation (0 for one value), min and max of repeated runs."""
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return {"mean": round(mean, digits), "sd": round(sd, digits), "min": round(min(values), digits),
            "max": round(max(values), digits), "n": len(values)}


def emit(benchmark: str, body: dict, wall: float) -> None:
    """Print the benchmark's one JSON object, with its wall time and peak memory."""
    print(json.dumps({"benchmark": benchmark, **body, "wall_seconds": round(wall, 1),
                      "peak_rss_mib": peak_rss_mib()}, indent=1))


def mnist_missing(path: str) -> bool:
    """Print the benchmark's JSON error and say so when the MNIST folder is absent."""
    if Path(path).is_dir():
        return False
    print(json.dumps({"error": f"MNIST folder not found: {path}"}))
    return True
