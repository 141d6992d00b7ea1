"""Seed 003's experiments on data where the base network is clearly below saturation (2 % of
MNIST's training split by default), printed as JSON.

1. The neuroevolution table: the base network (small-cnn) trained for as many updates as
   Algorithm 1 spends in all, its test accuracy checked every --eval-every updates and the best
   kept (unfair to neuroevolution, as in the paper); the best member by validation with plain
   selection; the best with coevolution; the stacked ensemble of coevolution's final K. Test
   accuracy and wall time of each.
2. The widening experiment: a half-width small-cnn widened by R2WiderR at every layer after
   t updates (t in --widen-at) to the full width's filter count, against the full-width network,
   both trained for --widen-steps updates: final test accuracy and training multiply-accumulates
   (3 × forward MACs per image × batch per update).

    OMP_NUM_THREADS=1 nice -n 10 python tools/bench_grow.py --out /tmp/bench_grow

The validation split is drawn from MNIST's whole training split before --subset thins the rest
(jetsynth's rule), so --val-split 0.2 selects on 12,000 images while 2 % of the remainder (960)
train; every member is evaluated on it at every iteration, which dominates the time.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DEFAULT_MNIST, emit, mnist_missing  # noqa: E402

from jetsynth.data.dataset import DataSpec  # noqa: E402
from jetsynth.data.load import load_dataset, training_batch  # noqa: E402
from jetsynth.nn.growth import Transform, apply_transform  # noqa: E402
from jetsynth.run.grow import GrowConfig, grow, predictions  # noqa: E402


def cnn(widths):
    def factory(input_shape, num_classes):
        layers, cin = [], input_shape[0]
        for index, width in enumerate(widths):
            layers += [nn.Conv2d(cin, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
            if index < 2:
                layers.append(nn.MaxPool2d(2))
            cin = width
        return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes))
    return factory


def accuracy(model, x, y) -> float:
    return float((predictions(model, x) == y).float().mean())


def forward_macs(model, input_shape) -> int:
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            total += output.numel() * module.in_channels // module.groups * kh * kw
        elif isinstance(module, nn.Linear):
            total += module.in_features * module.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, *input_shape))
    for h in handles:
        h.remove()
    return total


def train(model, dataset, steps, batch, lr, generator, eval_every=None, optimizer=None):
    optimizer = optimizer or torch.optim.Adam(model.parameters(), lr=lr)
    n = len(dataset.train_x)
    best = 0.0
    for step in range(1, steps + 1):
        idx = torch.randint(n, (batch,), generator=generator)
        x, y = training_batch(dataset, idx, generator)
        model.train()
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        if eval_every and step % eval_every == 0:
            best = max(best, accuracy(model, dataset.test_x, dataset.test_y))
    return best


def table(args, dataset) -> dict:
    rows = {}
    budget = args.initial_steps + args.iterations * args.steps
    torch.manual_seed(args.seed)
    started = time.perf_counter()
    base = cnn((16, 32, 64))(dataset.input_shape, dataset.classes)
    best = train(base, dataset, budget, args.batch, 1e-3, torch.Generator().manual_seed(args.seed),
                 eval_every=args.eval_every)
    rows["base_best"] = {"accuracy": best, "updates": budget,
                         "seconds": round(time.perf_counter() - started, 1)}
    for coevolve in (False, True):
        started = time.perf_counter()
        config = GrowConfig(data=f"mnist:{args.mnist}", subset=args.subset, val_split=args.val_split,
                            iterations=args.iterations, keep_best=args.keep_best,
                            population=args.population, initial_steps=args.initial_steps,
                            steps=args.steps, coevolve=coevolve, ensemble=coevolve, seed=args.seed)
        run_dir = Path(args.out) / ("coevolution" if coevolve else "neuroevolution")
        summary = grow(config, run_dir, resume=(run_dir / "config.json").exists(), notice=lambda _t: None)
        seconds = round(time.perf_counter() - started, 1)
        name = "coevolution" if coevolve else "neuroevolution"
        best_member = summary["final"][0]
        rows[f"{name}_best"] = {"accuracy": best_member["accuracy"],
                                "val_accuracy": best_member["val_accuracy"],
                                "arch": best_member["arch"], "seconds": seconds}
        if coevolve:
            e = summary["ensemble"]
            rows["coevolution_ensemble"] = {"accuracy": e["accuracy"],
                                            "average_accuracy": e["average_accuracy"],
                                            "val_accuracy": e["val_accuracy"], "seconds": seconds}
    return rows


def widening(args, dataset) -> dict:
    out = {}
    shape, classes = dataset.input_shape, dataset.classes
    for label, widen_at in [("full", None)] + [(f"widen_at_{t}", t) for t in args.widen_at]:
        torch.manual_seed(args.seed)
        generator = torch.Generator().manual_seed(args.seed)
        started = time.perf_counter()
        if widen_at is None:
            model = cnn((16, 32, 64))(shape, classes)
            train(model, dataset, args.widen_steps, args.batch, 1e-3, generator)
            macs = 3 * args.batch * args.widen_steps * forward_macs(model, shape)
        else:
            model = cnn((8, 16, 32))(shape, classes)
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
            train(model, dataset, widen_at, args.batch, 1e-3, generator, optimizer=optimizer)
            macs = 3 * args.batch * widen_at * forward_macs(model, shape)
            before = copy.deepcopy(model)
            for uid, (layer, pairs) in enumerate((("0", 4), ("4", 8), ("8", 16)), start=1):
                apply_transform(model, Transform("wide", layer, 3, pairs, uid))
            x = dataset.test_x[:256]
            preserved = float((before.eval()(x) - model.eval()(x)).abs().max())
            new = [p for n, p in model.named_parameters() if "wide" in n]
            optimizer.add_param_group({"params": new})
            rest = args.widen_steps - widen_at
            train(model, dataset, rest, args.batch, 1e-3, generator, optimizer=optimizer)
            macs += 3 * args.batch * rest * forward_macs(model, shape)
        out[label] = {"accuracy": accuracy(model, dataset.test_x, dataset.test_y),
                      "training_macs": macs, "seconds": round(time.perf_counter() - started, 1)}
        if widen_at is not None:
            out[label]["max_abs_change_at_widening"] = preserved
    full = out["full"]["training_macs"]
    for entry in out.values():
        entry["macs_vs_full"] = round(entry["training_macs"] / full, 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mnist", default=str(DEFAULT_MNIST))
    parser.add_argument("--subset", type=float, default=0.02)
    parser.add_argument("--val-split", type=float, default=0.2)
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--keep-best", type=int, default=3)
    parser.add_argument("--population", type=int, default=6)
    parser.add_argument("--initial-steps", type=int, default=600)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--eval-every", type=int, default=200)
    parser.add_argument("--widen-steps", type=int, default=1200)
    parser.add_argument("--widen-at", type=int, nargs="*", default=[0, 400, 800])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip", choices=["table", "widening"], default=None)
    parser.add_argument("--out", default="/tmp/bench_grow")
    args = parser.parse_args()
    if mnist_missing(args.mnist):
        print(json.dumps({"skipped": f"no MNIST at {args.mnist}"}))
        return
    started = time.perf_counter()
    dataset = load_dataset(DataSpec.parse(f"mnist:{args.mnist}", args.subset, args.seed, args.val_split))
    body = {"settings": vars(args), "train_images": len(dataset.train_x), "val_images": len(dataset.val_x)}
    if args.skip != "table":
        body["table"] = table(args, dataset)
    if args.skip != "widening":
        body["widening"] = widening(args, dataset)
    emit("grow", body, time.perf_counter() - started)


if __name__ == "__main__":
    main()
