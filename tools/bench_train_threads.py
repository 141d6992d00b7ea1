"""How many torch threads train fastest on a busy machine: the ancestor (lenet5) trained with
1, 2 and torch's default number of intra-op threads, each in a fresh process, repeated and
interleaved, while `--load` busy processes compete for the CPU (as other jobs do on a shared
host). Prints JSON: per setting the median seconds, the interquartile range and the ratio to
the fastest setting; this chose `evolve --threads`'s default.

    OMP_NUM_THREADS= nice -n 10 python tools/bench_train_threads.py --repeats 3 --load 1
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

TRAIN_ONCE = """
import sys, time, torch
threads = int(sys.argv[1])
if threads:
    torch.set_num_threads(threads)
from jetsynth.data.load import DataSpec, load_dataset
from jetsynth.core.genome import ancestor_genome, topology_for
from jetsynth.nn.models import resolve_factory
from jetsynth.run.train import TrainConfig, train_genome
data = load_dataset(DataSpec.parse(sys.argv[2]))
factory = resolve_factory("lenet5", True)
genome = ancestor_genome("lenet5", data.input_shape, data.classes, 0,
                         topology_for("lenet5", data.input_shape, data.classes, factory))
started = time.perf_counter()
train_genome(genome, data, TrainConfig(epochs=int(sys.argv[3])), 0)
print(time.perf_counter() - started, torch.get_num_threads())
"""

BUSY = "import time\nwhile True:\n    sum(i * i for i in range(10000))\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="digits")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--load", type=int, default=1, help="busy processes running meanwhile")
    parser.add_argument("--settings", default="1,2,0", help="thread counts; 0 is torch's default")
    args = parser.parse_args()
    settings = [int(v) for v in args.settings.split(",")]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    load = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(args.load)]
    seconds: dict[int, list[float]] = {s: [] for s in settings}
    actual: dict[int, int] = {}
    started = time.perf_counter()
    try:
        for _ in range(args.repeats):
            for setting in settings:
                done = subprocess.run([sys.executable, "-c", TRAIN_ONCE, str(setting), args.data,
                                       str(args.epochs)], capture_output=True, text=True, env=env,
                                      check=True)
                value, threads = done.stdout.split()
                seconds[setting].append(float(value))
                actual[setting] = int(threads)
    finally:
        for process in load:
            process.kill()
            process.wait()
    medians = {s: float(np.median(v)) for s, v in seconds.items()}
    fastest = min(medians.values())
    print(json.dumps({
        "data": args.data, "epochs": args.epochs, "repeats": args.repeats, "load_processes": args.load,
        "cpus": os.cpu_count(), "wall_seconds": round(time.perf_counter() - started, 1),
        "settings": [{
            "threads_asked": s, "threads": actual[s],
            "median_seconds": round(medians[s], 3),
            "iqr_seconds": [round(float(q), 3) for q in np.percentile(seconds[s], [25, 75])],
            "runs": [round(v, 3) for v in seconds[s]],
            "slower_than_fastest": round(medians[s] / fastest, 3),
        } for s in settings],
    }, indent=2))


if __name__ == "__main__":
    main()
