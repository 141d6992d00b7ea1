"""Seed 003's experiments at the paper's settings, over several seeds, printed as JSON.

Data: MNIST's full training split downsampled to 14×14 (--input-size): the hardest image data
this machine has without a download (no CIFAR-10 here). Halving the side keeps the base
network (small-cnn) below saturation while costing a quarter of 28×28's time, which is what
lets three seeds of the whole experiment run in 45 minutes on two cores. --val-split 1/6 holds
10,000 training images out for selection (standard error ≈ 0.1 points at 99 %), 50,000 train,
MNIST's 10,000 test images are looked at only for the report.

1. The neuroevolution table, (N_i, N_j, K, M) = (5000, 5000, 3, 10) and one iteration, so that
   Algorithm 1 spends N_i + N_j = 10,000 updates, the 10,000 the paper trains its base for:
   - control: small-cnn alone for the same number of updates, evaluated every --eval-every
     (1,000) updates on validation and test. Reported three ways: its final test accuracy, its
     test accuracy at the checkpoint best on validation (the project's rule), and its best test
     accuracy (the paper's deliberately unfair choice, which selects on the test split);
   - neuroevolution: the member best on validation after `jetsynth grow`;
   - coevolution: the same with coevolutionary selection (gamma 0.5);
   - coevolution ensemble: the stacked ensemble of coevolution's final K, its combiner trained on
     the training split (the members' own images; `ship.ensemble`).
   Diagnostics per run: every final member's validation and test accuracy, h_i's, and the
   validation split's standard error, to tell selection noise from real differences.
2. The widening experiment: a half-width small-cnn (8, 16, 32 filters) widened by R2WiderR at
   every layer after t updates (t in --widen-at) by 8, 16, 32 filters (the full width's count),
   --widen-steps updates in all, against the full-width network (the control above). Final test
   accuracy and training FLOPs (6 × forward multiply-accumulates per image × batch per update:
   a multiply-add is 2 FLOPs, the backward pass costs twice the forward).

Every (seed, experiment) pair runs as its own task, --jobs at a time with one torch thread each,
and leaves its result in OUT/seedS/EXPERIMENT.json: a killed benchmark resumes (grow runs resume
from their run directories), and seeds can be added later (`--seeds 1 2` after `--seeds 0`).
The JSON gives mean, sample standard deviation and range over the seeds found for each figure.

    OMP_NUM_THREADS=1 python tools/bench_grow.py --seeds 0 1 2 --jobs 2 --out /tmp/bench_grow
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DEFAULT_MNIST, emit, mean_spread, mnist_missing  # noqa: E402

from jetsynth.data.load import load_dataset  # noqa: E402
from jetsynth.nn.growth import Transform, apply_transform  # noqa: E402
from jetsynth.nn.models import small_cnn  # noqa: E402
from jetsynth.nn.norm_stats import with_own_statistics  # noqa: E402
from jetsynth.run.grow import (  # noqa: E402
    GrowConfig,
    Member,
    calibration_batches,
    grow,
    joint_train,
    predictions,
)
from jetsynth.run.rundir import RunDirectory  # noqa: E402

PAPER = {"base_best_test": 0.70, "neuroevolution": 0.74, "coevolution": 0.72,
         "coevolution_ensemble": 0.75, "widening": "widened at 4,500 of 10,000 updates: 25 % fewer "
         "training FLOPs, the same final accuracy (CIFAR-10)"}
HALF = (8, 16, 32)
WIDENING = (("0", 4), ("4", 8), ("8", 16))  # (layer, filter pairs): half width + 2·pairs = full


def half_cnn(input_shape, num_classes):
    """small-cnn with half its filters: the widening experiment's start."""
    layers, cin = [], input_shape[0]
    for index, width in enumerate(HALF):
        layers += [nn.Conv2d(cin, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
        if index < 2:
            layers.append(nn.MaxPool2d(2))
        cin = width
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes))


def grow_config(args, seed: int, coevolve: bool) -> GrowConfig:
    return GrowConfig(data=f"mnist:{args.mnist}", subset=args.subset, val_split=args.val_split,
                      input_size=args.input_size, iterations=args.iterations,
                      keep_best=args.keep_best, population=args.population,
                      initial_steps=args.initial_steps, steps=args.steps, batch_size=args.batch,
                      lr=args.lr, coevolve=coevolve, ensemble=coevolve, seed=seed)


def accuracy(model: nn.Module, x, y) -> float:
    return float((predictions(model, x) == y).float().mean())


def forward_macs(model: nn.Module, input_shape) -> int:
    """Multiply-accumulates of one image's forward pass through the conv and linear layers."""
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            total += output[0].numel() * module.in_channels // module.groups * kh * kw
        elif isinstance(module, nn.Linear):
            total += module.in_features * module.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, *input_shape))
    for handle in handles:
        handle.remove()
    return total


def train_checked(member: Member, dataset, steps: int, optimizer, generator, args,
                  start: int = 0, seed: int | None = None) -> list[dict]:
    """`steps` updates of one network (jointTrain of a set of one), its validation and test
    accuracy every --eval-every updates counted from `start`; with `seed`, also with batch-norm
    statistics re-estimated as `grow` evaluates its members (`val_own`, `test_own`), so the
    control is measured the way the grown members are."""
    curve = []
    done = 0
    while done < steps:
        chunk = min(args.eval_every - (start + done) % args.eval_every, steps - done)
        joint_train([member], chunk, dataset, optimizer, generator, args.batch)
        done += chunk
        if (start + done) % args.eval_every == 0:
            point = {"updates": start + done,
                     "val": accuracy(member.model, dataset.val_x, dataset.val_y),
                     "test": accuracy(member.model, dataset.test_x, dataset.test_y)}
            if seed is not None:
                own = with_own_statistics(member.model, calibration_batches(dataset, seed, args.batch))
                point["val_own"] = accuracy(own, dataset.val_x, dataset.val_y)
                point["test_own"] = accuracy(own, dataset.test_x, dataset.test_y)
            curve.append(point)
    return curve


def control(args, seed: int, dataset) -> dict:
    torch.manual_seed(seed)
    member = Member("", "small-cnn", small_cnn(dataset.input_shape, dataset.classes))
    optimizer = torch.optim.Adam(member.model.parameters(), lr=args.lr)
    budget = args.initial_steps + args.iterations * args.steps
    curve = train_checked(member, dataset, budget, optimizer, torch.Generator().manual_seed(seed), args,
                          seed=seed)
    best_val = max(curve, key=lambda c: (c["val"], -c["updates"]))
    best_val_own = max(curve, key=lambda c: (c["val_own"], -c["updates"]))
    macs = forward_macs(member.model, dataset.input_shape)
    return {"updates": budget, "final_test": curve[-1]["test"], "final_val": curve[-1]["val"],
            "test_at_best_val": best_val["test"], "best_val_updates": best_val["updates"],
            "best_test": max(c["test"] for c in curve),
            "final_test_own": curve[-1]["test_own"], "final_val_own": curve[-1]["val_own"],
            "test_own_at_best_val_own": best_val_own["test_own"],
            "best_test_own": max(c["test_own"] for c in curve), "curve": curve,
            "training_flops": 6 * macs * args.batch * budget}


def _final_members(run_dir: Path, generation: int, arch: str | None = None) -> list[dict]:
    """The members of `generation` (those of architecture `arch` only, when given)."""
    records = sorted((r for r in RunDirectory(run_dir).records() if r.generation == generation
                      and arch in (None, r.extra["arch"])), key=lambda r: r.id)
    return [{"id": r.id, "arch": r.extra["arch"], "val": r.val_accuracy, "test": r.accuracy}
            for r in records]


def evolution(args, seed: int, coevolve: bool, out: Path) -> dict:
    config = grow_config(args, seed, coevolve)
    run_dir = out / f"seed{seed}" / ("coevolution" if coevolve else "neuroevolution")
    summary = grow(config, run_dir, resume=(run_dir / "config.json").exists(), notice=lambda _t: None)
    best = summary["final"][0]
    members = _final_members(run_dir, config.iterations + 1)
    base = _final_members(run_dir, config.iterations + 1, config.arch)
    result = {"test": best["accuracy"], "val": best["val_accuracy"], "arch": best["arch"],
              "final_k": summary["final"], "members": members,
              "h_i_after_n_i": _final_members(run_dir, 1)[0],
              "h_i_final": base[0] if base else None}
    if coevolve:
        ensemble = summary["ensemble"]
        result["ensemble"] = {k: ensemble[k] for k in ("accuracy", "val_accuracy", "average_accuracy",
                                                       "combiner_images")}
    return result


def widening(args, seed: int, dataset, widen_at: int) -> dict:
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    member = Member("", "half-cnn", half_cnn(dataset.input_shape, dataset.classes))
    optimizer = torch.optim.Adam(member.model.parameters(), lr=args.lr)
    curve = train_checked(member, dataset, widen_at, optimizer, generator, args)
    flops = 6 * forward_macs(member.model, dataset.input_shape) * args.batch * widen_at
    before = copy.deepcopy(member.model).eval()
    for uid, (layer, pairs) in enumerate(WIDENING, start=1):
        apply_transform(member.model, Transform("wide", layer, 3, pairs, uid))
    x = dataset.val_x[:256]
    with torch.no_grad():
        preserved = float((before(x) - member.model.eval()(x)).abs().max())
    optimizer.add_param_group({"params": [p for n, p in member.model.named_parameters() if "wide" in n]})
    rest = args.widen_steps - widen_at
    curve += train_checked(member, dataset, rest, optimizer, generator, args, start=widen_at)
    flops += 6 * forward_macs(member.model, dataset.input_shape) * args.batch * rest
    return {"widen_at": widen_at, "final_test": curve[-1]["test"], "final_val": curve[-1]["val"],
            "training_flops": flops, "max_abs_change_at_widening": preserved, "curve": curve}


def run_task(task: tuple) -> tuple[int, str, dict]:
    """One (seed, experiment) in a worker of one torch thread; its result saved to disk."""
    args, seed, name = task
    torch.set_num_threads(1)
    out = Path(args.out)
    started = time.perf_counter()
    dataset = load_dataset(grow_config(args, seed, False).evolve_config().data_spec())
    if name == "control":
        result = control(args, seed, dataset)
    elif name in ("neuroevolution", "coevolution"):
        result = evolution(args, seed, name == "coevolution", out)
    else:
        result = widening(args, seed, dataset, int(name.removeprefix("widen_at_")))
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["images"] = {"train": len(dataset.train_x), "val": len(dataset.val_x),
                        "test": len(dataset.test_x), "side": dataset.input_shape[1]}
    path = out / f"seed{seed}" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"settings": _settings(args), "result": result}, indent=1))
    return seed, name, result


def _settings(args) -> dict:
    return {k: v for k, v in vars(args).items() if k not in ("seeds", "jobs", "out", "only")}


def _cached(args, seed: int, name: str) -> dict | None:
    path = Path(args.out) / f"seed{seed}" / f"{name}.json"
    if not path.is_file():
        return None
    stored = json.loads(path.read_text())
    return stored["result"] if stored["settings"] == _settings(args) else None


def summarise(args, results: dict[int, dict[str, dict]]) -> dict:
    """Mean ± spread over the seeds that finished each experiment."""
    def over(name, pick):
        values = [pick(r[name]) for r in results.values() if name in r]
        return mean_spread(values) if values else None

    table = {
        "base_final": over("control", lambda r: r["final_test"]),
        "base_at_best_val_checkpoint": over("control", lambda r: r["test_at_best_val"]),
        "base_best_test_paper_protocol": over("control", lambda r: r["best_test"]),
        "base_final_own_statistics": over("control", lambda r: r["final_test_own"]),
        "base_at_best_val_checkpoint_own_statistics": over("control",
                                                           lambda r: r["test_own_at_best_val_own"]),
        "base_best_test_paper_protocol_own_statistics": over("control", lambda r: r["best_test_own"]),
        "neuroevolution": over("neuroevolution", lambda r: r["test"]),
        "coevolution": over("coevolution", lambda r: r["test"]),
        "coevolution_ensemble": over("coevolution", lambda r: r["ensemble"]["accuracy"]),
        "coevolution_plain_average": over("coevolution", lambda r: r["ensemble"]["average_accuracy"]),
    }
    diagnostics = {}
    for name in ("neuroevolution", "coevolution"):
        diagnostics[name] = {
            "best_val": over(name, lambda r: r["val"]),
            "h_i_final_val": over(name, lambda r: r["h_i_final"]["val"] if r["h_i_final"] else 0.0),
            "h_i_final_test": over(name, lambda r: r["h_i_final"]["test"] if r["h_i_final"] else 0.0),
            "h_i_after_n_i_test": over(name, lambda r: r["h_i_after_n_i"]["test"]),
            "members_val_range": over(name, lambda r: max(m["val"] for m in r["members"])
                                      - min(m["val"] for m in r["members"])),
            "best_is_h_i": over(name, lambda r: float(r["arch"] == "small-cnn")),
        }
    diagnostics["control_final_val"] = over("control", lambda r: r["final_val"])
    diagnostics["control_final_val_own_statistics"] = over("control", lambda r: r["final_val_own"])
    diagnostics["updates_per_grown_member"] = args.steps * args.iterations / args.population
    widen = {"full_width": {"final_test": table["base_final"],
                            "training_flops": over("control", lambda r: r["training_flops"])}}
    full = {seed: r["control"]["training_flops"] for seed, r in results.items() if "control" in r}
    for t in args.widen_at:
        name = f"widen_at_{t}"
        ratios = [r[name]["training_flops"] / full[s] for s, r in results.items() if name in r and s in full]
        widen[name] = {
            "final_test": over(name, lambda r: r["final_test"]),
            "training_flops": over(name, lambda r: r["training_flops"]),
            "flops_vs_full": mean_spread(ratios) if ratios else None,
            "max_abs_change_at_widening": over(name, lambda r: r["max_abs_change_at_widening"]),
        }
    seconds = {name: over(name, lambda r: r["seconds"]) for name in _experiments(args)}
    return {"table": table, "paper": PAPER, "diagnostics": diagnostics, "widening": widen,
            "task_seconds": seconds, "seeds": sorted(results)}


def _experiments(args) -> list[str]:
    return ["control", "neuroevolution", "coevolution", *(f"widen_at_{t}" for t in args.widen_at)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mnist", default=str(DEFAULT_MNIST))
    parser.add_argument("--subset", type=float, default=1.0)
    parser.add_argument("--val-split", type=float, default=1 / 6)
    parser.add_argument("--input-size", type=int, default=14)
    parser.add_argument("--iterations", type=int, default=1)
    parser.add_argument("--keep-best", type=int, default=3)
    parser.add_argument("--population", type=int, default=10)
    parser.add_argument("--initial-steps", type=int, default=5000)
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--eval-every", type=int, default=1000)
    parser.add_argument("--widen-steps", type=int, default=10000)
    parser.add_argument("--widen-at", type=int, nargs="*", default=[0, 1500, 3000, 4500])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=2, help="experiments run side by side")
    parser.add_argument("--only", nargs="+", default=None,
                        help="run just these experiments (control, neuroevolution, coevolution, "
                             "widen_at_T); the JSON summarises every one found on disk")
    parser.add_argument("--out", default="/tmp/bench_grow")
    args = parser.parse_args()
    if mnist_missing(args.mnist):
        return
    started = time.perf_counter()
    results: dict[int, dict[str, dict]] = {seed: {} for seed in args.seeds}
    tasks = []
    for seed in args.seeds:
        for name in _experiments(args):
            cached = _cached(args, seed, name)
            if cached is not None:
                results[seed][name] = cached
            elif args.only is None or name in args.only:
                tasks.append((args, seed, name))
    first = ("neuroevolution", "coevolution")  # the longest tasks first, so the two cores end together
    tasks.sort(key=lambda t: (t[2] not in first, t[1]))
    if args.jobs > 1 and len(tasks) > 1:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            done = list(pool.map(run_task, tasks))
    else:
        done = [run_task(task) for task in tasks]
    for seed, name, result in done:
        results[seed][name] = result
    emit("grow", {"settings": _settings(args), **summarise(args, results), "per_seed": results},
         time.perf_counter() - started)


if __name__ == "__main__":
    main()
