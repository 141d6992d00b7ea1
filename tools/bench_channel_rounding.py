"""Which way should a channel space reach a multiple of `--channel-multiple`: revive its
strongest dead channels to fill the last group ('fill'), or remove its weakest live ones down to
the group below ('trim')? From one trained parent (a run's member), the same draws (same seeds,
same pressure) are rounded both ways, each offspring is trained briefly, and its validation
accuracy and MACs are compared. Prints one JSON object. Usage:

    python tools/bench_channel_rounding.py RUN_DIR [--member g01-m00] [--draws 6] [--epochs 2]
        [--keep 0.5] [--multiple 8]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
from common import emit

from jetsynth.core.genome import Lineage
from jetsynth.core.synthesis import synthesize
from jetsynth.data.load import load_dataset
from jetsynth.nn.structure import macs
from jetsynth.run.rundir import RunDirectory, load_records
from jetsynth.run.train import TrainConfig, train_genome


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--member", default="g01-m00")
    parser.add_argument("--draws", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--keep", type=float, default=0.5)
    parser.add_argument("--multiple", type=int, default=8)
    args = parser.parse_args()
    started = time.perf_counter()
    stored, _ = load_records(Path(args.run_dir))
    config = replace(stored, preset=None, channel_multiple=args.multiple).resolved()
    dataset = load_dataset(config.data_spec())
    parent = RunDirectory(Path(args.run_dir)).genome(args.member)
    base = sum(macs(parent.topology, parent.masks).values())
    settings = config.synthesis(1, args.keep)
    rows = {}
    for rounding in ("fill", "trim"):
        draws = []
        for draw in range(args.draws):
            child = synthesize(parent, replace(settings, channel_rounding=rounding),
                               torch.Generator().manual_seed(draw), Lineage(f"d{draw}", 2, draw, ()))
            trained = train_genome(child, dataset, TrainConfig(epochs=args.epochs), draw)
            draws.append({"val_accuracy": trained.metrics.get("val_accuracy"),
                          "mac_reduction": base / sum(macs(child.topology, child.masks).values())})
        accuracy = statistics.mean(d["val_accuracy"] for d in draws)
        reduction = statistics.mean(d["mac_reduction"] for d in draws)
        rows[rounding] = {"mean_val_accuracy": round(accuracy, 4),
                          "mean_mac_reduction": round(reduction, 3), "draws": draws}
    emit("channel-rounding", {"run_dir": args.run_dir, "member": args.member, "keep": args.keep,
                              "multiple": args.multiple, "epochs": args.epochs, **rows},
         time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
