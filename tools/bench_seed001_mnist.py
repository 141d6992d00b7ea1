"""Seed 001's MNIST column: LeNet-5 on the real MNIST, one offspring per generation.

Prints one JSON object: the per-generation table (synaptic/cluster efficiency, accuracy), the
wall time and the peak resident memory. Usage:

    python tools/bench_seed001_mnist.py [--mnist ../shared/datasets/mnist] [--run-dir DIR]
        [--generations 13] [--keep 0.645] [--epochs 4] [--ancestor-epochs 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from common import DEFAULT_MNIST, emit, mnist_missing

from jetsynth import EvolveConfig
from jetsynth.run.evolve import evolve

SETTINGS = ("generations", "keep", "balance", "cluster", "cluster_pressure", "epochs", "ancestor_epochs",
            "seed", "threads")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", default=str(DEFAULT_MNIST))
    parser.add_argument("--run-dir", default=None)
    parser.add_argument("--generations", type=int, default=13)
    parser.add_argument("--keep", type=float, default=0.645)
    parser.add_argument("--balance", type=float, default=0.5)
    parser.add_argument("--cluster", default="kernel")
    parser.add_argument("--cluster-pressure", type=float, default=0.5)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--ancestor-epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads while training (0: one per core)")
    args = parser.parse_args()
    if mnist_missing(args.mnist):
        return 2
    run_dir = Path(args.run_dir or tempfile.mkdtemp(prefix="seed001-mnist-"))
    config = EvolveConfig(data=f"mnist:{args.mnist}", arch="lenet5", preset="seed001",
                          **{name: getattr(args, name) for name in SETTINGS})
    started = time.perf_counter()
    records = evolve(config, run_dir, resume=(run_dir / "config.json").exists())
    wall = time.perf_counter() - started
    ancestor = records[0]
    last = records[-1]
    emit("seed001-mnist-lenet5", {
        "config": {name: getattr(config, name) for name in SETTINGS},
        "run_dir": str(run_dir),
        "table": [
            {
                "generation": r.generation,
                "synaptic_efficiency": round(r.synaptic_efficiency, 2),
                "cluster_efficiency": round(r.cluster_efficiency, 2),
                "mac_reduction": round(r.mac_reduction, 2),
                "accuracy": r.accuracy,
                "synapses": r.synapses,
                "layer_cluster_efficiency": [round(e, 2) for e in r.layer_cluster_efficiency],
                "train_seconds": r.train_seconds,
            }
            for r in records
        ],
        "final": {
            "synaptic_efficiency": round(last.synaptic_efficiency, 2),
            "accuracy_drop_points": round(100 * (ancestor.accuracy - last.accuracy), 2),
        },
    }, wall)
    return 0


if __name__ == "__main__":
    sys.exit(main())
