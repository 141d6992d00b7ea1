"""What longer retraining buys the networks evolution found: every member of one generation of a
run is trained further, its structure (masks) fixed, and its test accuracy compared with what
it had after the run's per-generation retraining.

Evolution retrains each offspring for a few epochs so that a generation is cheap; a network
pressed to a few dozen kernels has lost capacity the short retraining does not recover, and
longer training of the one network a user ships often does. The training is the one
`jetsynth export --finetune-epochs` gives, with the run's settings and seed; the run itself is
not touched.

Prints one JSON object: per member its synaptic and cluster efficiency (kernels, seed 000's
count), accuracy before and after, and the drop from the ancestor; wall time and peak memory.

    python tools/bench_finetune.py RUN_DIR --generation 9 [--epochs 60]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from common import emit, kernel_efficiency

from jetsynth.data.load import load_dataset
from jetsynth.errors import JetsynthError
from jetsynth.run.export_run import ShippedMember, finetune_member
from jetsynth.run.rundir import RunDirectory, load_records


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--generation", type=int, required=True)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        config, records = load_records(args.run_dir)
    except JetsynthError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    ancestor = records[0]
    chosen = [r for r in records if r.generation == args.generation]
    if not chosen:
        print(f"error: {args.run_dir} has no generation {args.generation}", file=sys.stderr)
        return 2
    dataset = load_dataset(config.data_spec())
    run = RunDirectory(args.run_dir)
    started = time.perf_counter()
    members = []
    for record in chosen:
        _, shipped = finetune_member(run.genome(record.id), ShippedMember(record), dataset, config,
                                     args.epochs)
        tuned = shipped.record
        members.append({
            "id": record.id,
            "synaptic_efficiency": round(record.synaptic_efficiency, 1),
            "cluster_efficiency": round(kernel_efficiency(record, ancestor), 1),
            "accuracy_before": record.accuracy,
            "accuracy_after": round(tuned.accuracy, 4),
            "drop_after_points": round(100 * (ancestor.accuracy - tuned.accuracy), 2),
        })
    emit("finetune", {
        "run": str(args.run_dir), "generation": args.generation, "epochs": args.epochs,
        "ancestor_accuracy": ancestor.accuracy, "members": members,
    }, time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
