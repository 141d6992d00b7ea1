"""How far is a member from trained? Follows a member of a run while it trains: every time its
epoch checkpoint (members/ID/checkpoint.safetensors) moves on, its weights are evaluated on the
run's validation split (never on test: what this tells decides a default), until the member's
record appears or `--epochs` checkpoints were seen. Costs one validation pass per epoch, no
training of its own. The checkpoint follows the member's own schedule (cosine over its epochs),
so the curve says how validation accuracy grows under that schedule, not what a shorter one
would reach at the same epoch.

    python tools/bench_training_curve.py RUN_DIR [--member g01-m00] [--poll 10]

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from common import emit
from safetensors.torch import load_file

from jetsynth.core.genome import ancestor_genome
from jetsynth.data.load import load_dataset
from jetsynth.nn.checkpoint import META_FILE, TENSORS_FILE
from jetsynth.run.rundir import RunDirectory
from jetsynth.run.train import evaluate
from jetsynth.storage import read_json


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--member", default="g01-m00", help="an ancestor (g01-m00) being trained")
    parser.add_argument("--poll", type=float, default=10.0, help="seconds between looks")
    parser.add_argument("--epochs", type=int, default=None, help="stop after this epoch")
    args = parser.parse_args()
    started = time.perf_counter()
    run = RunDirectory(Path(args.run_dir))
    config = run.stored_config()
    if config is None or args.member != "g01-m00":
        print(f"error: {args.run_dir} is no run directory, or {args.member} is no ancestor; name a "
              "run whose ancestor (g01-m00) is training", file=sys.stderr)
        return 2
    dataset = load_dataset(config.data_spec())
    net = ancestor_genome(config.arch, dataset.input_shape, dataset.classes, config.seed).build()
    folder = run.member_dir(args.member)
    curve: list[dict] = []
    while run.record(args.member) is None and (args.epochs is None or not curve
                                                or curve[-1]["epoch"] < args.epochs):
        meta = folder / META_FILE
        epoch = read_json(meta).get("epoch") if meta.is_file() else None
        if isinstance(epoch, int) and (not curve or epoch > curve[-1]["epoch"]):
            try:
                tensors = load_file(str(folder / TENSORS_FILE))
            except (OSError, ValueError):  # caught mid-write: the next look reads it whole
                time.sleep(args.poll)
                continue
            net.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model/")})
            accuracy = evaluate(net, dataset.val_x, dataset.val_y)
            curve.append({"epoch": epoch, "val_accuracy": round(accuracy, 4)})
            print(curve[-1], file=sys.stderr, flush=True)
        time.sleep(args.poll)
    record = run.record(args.member)
    emit("training-curve", {"run_dir": args.run_dir, "member": args.member, "arch": config.arch,
                            "curve": curve,
                            "final_val_accuracy": record.get("val_accuracy") if record else None},
         time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
