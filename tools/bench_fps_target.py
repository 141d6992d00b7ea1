"""Does measured speed steer evolution? LeNet-5 on MNIST with onnxruntime CPU as the device,
three runs with the same budget (generations × population × epochs):

- `targeted`: --target-fps and --accuracy-floor, so the closed loop's defaults apply (filter
  clusters, cluster pressure 0.9, balance 0, fps selection above the floor, adaptive pressure);
  it stops once a member reaches the target;
- `plain`: the same run without a target (seed 001's kernel clusters, balance 0.5, cluster
  pressure 0.5, random mates, fixed --keep), timed only to be compared;
- `plain-filter`: the plain run with the targeted run's clusters, balance and cluster pressure,
  which separates the effect of fps selection and adaptive pressure from that of the structure.

The runs go one after another so that no training competes with a timing.

Reported per run: the highest measured FPS at or above the accuracy floor (on validation, as the
run holds it; the member's test accuracy reported beside it), the member and generation that has
it, whether and when the target was reached, members trained and wall seconds; how far the run's
own latency model (fitted on its measurements) predicted the members it then measured. Usage:

    python tools/bench_fps_target.py [--mnist DIR] [--target-fps 40000] [--accuracy-floor 0.98]
        [--generations 8] [--population 2] [--epochs 1] [--ancestor-epochs 3] [--subset 1.0]
        [--run-dir DIR]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from common import DEFAULT_MNIST, emit, mnist_missing, run_all

from jetsynth import EvolveConfig
from jetsynth.core.records import MemberRecord
from jetsynth.core.selection import selection_accuracy


def prediction_error(records: list[MemberRecord]) -> dict | None:
    """|predicted − measured| / measured over members that have both (the run's own latency
    model predicts once it has 8 measurements)."""
    errors = sorted(abs(r.fps_predicted - r.fps) / r.fps for r in records
                    if r.fps and r.fps_predicted)
    if not errors:
        return None
    return {"median": round(statistics.median(errors), 4), "max": round(errors[-1], 4), "count": len(errors)}


def outcome(records: list[MemberRecord], floor: float, target: float) -> dict:
    """One run's figures at the accuracy `floor` (a fraction), held on validation accuracy as the
    run's own floor is (`selection_accuracy`), with the chosen member's test accuracy reported;
    `target` in images per second."""
    kept = [r for r in records if selection_accuracy(r) >= floor and r.fps]
    best = max(kept, key=lambda r: r.fps, default=None)
    reached = [r for r in kept if r.fps >= target]
    return {
        "members_trained": len(records),
        "generations": max(r.generation for r in records),
        "ancestor": {"accuracy": records[0].accuracy, "val_accuracy": records[0].val_accuracy,
                     "fps": round(records[0].fps, 1)},
        "fps_at_floor": round(best.fps, 1) if best else None,
        "speedup_at_floor": round(best.fps / records[0].fps, 2) if best else None,
        "member": best.id if best else None,
        "accuracy": best.accuracy if best else None,
        "val_accuracy": best.val_accuracy if best else None,
        "mac_reduction": round(best.mac_reduction, 2) if best else None,
        "target_reached_in_generation": min((r.generation for r in reached), default=None),
        "measured_members": sum(1 for r in records if r.bench.source in ("measured", "cached")),
        "online_prediction_error": prediction_error(records),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", default=str(DEFAULT_MNIST))
    parser.add_argument("--subset", type=float, default=1.0)
    parser.add_argument("--target-fps", type=float, default=40_000.0)
    parser.add_argument("--accuracy-floor", type=float, default=0.98)
    parser.add_argument("--generations", type=int, default=8)
    parser.add_argument("--population", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--ancestor-epochs", type=int, default=3)
    parser.add_argument("--measure-every", type=int, default=1)
    parser.add_argument("--run-dir", default=None)
    args = parser.parse_args()
    if mnist_missing(args.mnist):
        return 2
    root = Path(args.run_dir or tempfile.mkdtemp(prefix="fps-target-"))
    plain = EvolveConfig(data=f"mnist:{args.mnist}", subset=args.subset, arch="lenet5",
                         generations=args.generations, population=args.population,
                         epochs=args.epochs, ancestor_epochs=args.ancestor_epochs, precision="fp16",
                         bench="ort", bench_seconds=0.3, measure_every=args.measure_every,
                         preset="seed001")
    configs = {
        "targeted": replace(plain, target_fps=args.target_fps, accuracy_floor=args.accuracy_floor),
        "plain": plain,
        "plain-filter": replace(plain, cluster="filter", balance=0.0, cluster_pressure=0.9),
    }
    started = time.perf_counter()
    results = run_all([(config, root / name) for name, config in configs.items()], parallel=1)
    emit("fps-target-mnist-lenet5", {
        "settings": {**vars(args), "bench": "ort-cpu, fp16, batch 1, 1 thread"},
        "run_dir": str(root),
        "runs": {name: outcome(results[str(root / name)], args.accuracy_floor, args.target_fps)
                 for name in configs},
    }, time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
