"""What the Ray executor costs and gains: one generation of population 4 on the built-in digits,
trained by the local executor (one member at a time) and by Ray with 2 workers of 1 CPU each on
this machine; the overhead Ray adds to one member; and the generation time to expect on N
workers (one member per GPU or per CPU slot) from the measured per-member times.

Prints one JSON object. Every generation starts from the same trained ancestor (a copy of one
run directory, resumed with --generations 2), so all of them train the same four offspring.

    nice -n 10 python tools/bench_ray.py --out runs/bench-ray [--repeats 3]
"""

from __future__ import annotations

import argparse
import logging
import shutil
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

from common import emit

from jetsynth.core.records import MemberRecord


def spread(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3), "runs": [round(v, 3) for v in values]}


def timed_generation(config, ancestor_dir: Path, run_dir: Path) -> tuple[float, list[MemberRecord]]:
    from jetsynth.run.evolve import evolve

    shutil.rmtree(run_dir, ignore_errors=True)
    shutil.copytree(ancestor_dir, run_dir)
    started = time.perf_counter()
    records = evolve(config, run_dir, resume=True)
    return time.perf_counter() - started, records


def round_trips(executor, tasks) -> list[dict]:
    """Each task alone through `executor`: wall time from submission to the trained genome back
    in this process, and the training time the trainer measured (the first task on a fresh Ray
    also pays for starting a worker that imports torch and jetsynth and traces the network)."""
    out = []
    for task in tasks:
        started = time.perf_counter()
        ((_, trained),) = executor.train([task], None)
        wall = time.perf_counter() - started
        out.append({"wall": wall, "train": trained.metrics["train_seconds"]})
    return out


def makespan(times: list[float], workers: int) -> float:
    """Greedy list scheduling in submission order (what Ray does with equal requests): each
    member starts on the first worker that frees up."""
    free = [0.0] * workers
    for t in times:
        slot = free.index(min(free))
        free[slot] += t
    return max(free)


def scaling(per_member: list[float], overhead: float, record: float, population: int) -> list[dict]:
    """Expected generation wall time on N workers for `population` members whose training times
    cycle through `per_member`, each with Ray's `overhead`, plus the driver's recording of the
    last member (`record`; the others are recorded while later ones train)."""
    times = [per_member[i % len(per_member)] + overhead for i in range(population)]
    serial = sum(per_member[i % len(per_member)] for i in range(population)) + record * population
    rows = []
    for workers in (1, 2, 4, 8, 16):
        wall = makespan(times, workers) + record
        rows.append({"workers": workers, "population": population, "seconds": round(wall, 2),
                     "speedup_vs_local": round(serial / wall, 2)})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench-ray")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--population", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=5, help="per offspring (the digits default)")
    parser.add_argument("--ancestor-epochs", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2, help="Ray CPUs (1 per member)")
    parser.add_argument("--local-threads", type=int, default=1,
                        help="torch threads of the local executor (Ray members get 1 each)")
    args = parser.parse_args()

    import ray
    import torch

    from jetsynth import EvolveConfig
    from jetsynth.data.load import load_dataset
    from jetsynth.run.evolve import evolve
    from jetsynth.run.executors import LocalExecutor
    from jetsynth.run.member import MemberTask
    from jetsynth.run.ray_executor import RayExecutor
    from jetsynth.run.rundir import RunDirectory

    wall_started = time.perf_counter()
    torch.set_num_threads(args.local_threads)
    out = Path(args.out)
    base = EvolveConfig(data="digits", generations=1, population=args.population, parents=1,
                        epochs=args.epochs, ancestor_epochs=args.ancestor_epochs, seed=0)
    ancestor_dir = out / "ancestor"
    if not (ancestor_dir / "members" / "g01-m00" / "member.json").is_file():
        shutil.rmtree(ancestor_dir, ignore_errors=True)
        evolve(base, ancestor_dir)
    generation = replace(base, generations=2)

    started = time.perf_counter()
    ray.init(num_cpus=args.workers, logging_level=logging.WARNING, log_to_driver=False)
    ray_start = time.perf_counter() - started

    config = generation.resolved()
    dataset = load_dataset(config.data_spec())
    ancestor = RunDirectory(ancestor_dir).genome("g01-m00")
    one_epoch = replace(config.training(False), epochs=1)  # the overhead does not grow with epochs
    tasks = [MemberTask(ancestor, seed, one_epoch) for seed in range(6)]
    ray_executor = RayExecutor(dataset, None, 1, 0)  # the Ray just started: its workers are fresh
    try:
        remote = round_trips(ray_executor, tasks)
    finally:
        ray_executor.close()
    local = round_trips(LocalExecutor(dataset), tasks[:2])

    walls = {"local": [], "ray": []}
    members = {"local": [], "ray": []}
    accuracies = {}
    for repeat in range(args.repeats):
        for mode in ("local", "ray"):
            config = replace(generation, executor=mode)
            wall, records = timed_generation(config, ancestor_dir, out / f"{mode}-{repeat}")
            walls[mode].append(wall)
            members[mode].append([r.train_seconds for r in records[1:]])
            accuracies[mode] = [(r.accuracy, r.val_accuracy, r.synapses) for r in records[1:]]

    ray.shutdown()

    overheads = [t["wall"] - t["train"] for t in remote]
    steady = statistics.median(overheads[2:])  # both workers have started and imported by then
    per_member = [statistics.median(column) for column in zip(*members["ray"], strict=True)]
    record_seconds = statistics.median(  # breed + record: a local member's wall beyond training
        max(0.0, w / args.population - statistics.mean(m))
        for w, m in zip(walls["local"], members["local"], strict=True))
    emit("ray-executor", {
        "settings": {**vars(args), "data": "digits", "arch": "lenet5", "cpus": _cpus()},
        "ray_start_seconds": round(ray_start, 2),
        "generation_seconds": {mode: spread(values) for mode, values in walls.items()},
        "speedup_ray_over_local": round(statistics.median(walls["local"])
                                        / statistics.median(walls["ray"]), 2),
        "member_train_seconds": {mode: spread([t for run in runs for t in run])
                                 for mode, runs in members.items()},
        "ray_overhead_per_member_seconds": {
            "first_two_on_fresh_ray": [round(v, 3) for v in overheads[:2]],
            "steady": spread(overheads[2:]),
            "local_for_comparison": spread([t["wall"] - t["train"] for t in local]),
        },
        "driver_seconds_per_member": round(record_seconds, 3),
        "expected_scaling": {
            "basis": "makespan of (median per-member training time on one Ray CPU worker + steady "
                     "overhead) over N workers, plus one member's driver time (breed + record); a GPU "
                     "would shorten the training times, not the overhead",
            "population_4": scaling(per_member, steady, record_seconds, 4),
            "population_16": scaling(per_member, steady, record_seconds, 16),
        },
        "offspring_ray_equals_local": accuracies["ray"] == accuracies["local"],
        "offspring_accuracy_val_synapses": accuracies["ray"],
    }, time.perf_counter() - wall_started)
    return 0


def _cpus() -> int:
    import os

    return os.cpu_count() or 1


if __name__ == "__main__":
    sys.exit(main())
