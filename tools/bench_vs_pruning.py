"""jetsynth against Torch-Pruning, side by side, from the same trained ancestor on the same data.

The ancestor is trained once (jetsynth's trainer: Adam, cosine learning rate). Then

- Torch-Pruning's `MetaPruner` (global, iterative: `--steps` steps to `--tp-ratio` of the
  channels, L1 magnitude (also with `round_to=8`) and Taylor importance, the classifier left
  whole), with `--epochs` of fine-tuning after every step by the same trainer (Adam, the same
  learning rate, batch size and cosine schedule, per step);
- jetsynth's evolution (`--steps` generations after the ancestor, `--population` offspring each,
  `--epochs` of training per offspring, so the same fine-tuning epochs in total at population 1),
  started from the same weights (`--ancestor-weights`, no further ancestor training), by default
  with the setting that measured best against the pruner: pressure on MACs, whole filters,
  `--keep 0.7 --balance 0.5 --truncation 0 --screen 8`.

Every point (each pruning step, each member) is measured alike: test accuracy (validation
accuracy shown beside it; nothing here is chosen on test), multiply-accumulates per image and
parameters of the compacted dense network (one counter for both, conv and linear layers), and the
ONNX Runtime CPU throughput of its fp32 ONNX (one thread, batch `--fps-batch`, median of
`--repeats` trials with their spread; every model is timed at report time, round-robin, so the
methods share whatever else the machine is doing). Wall and CPU seconds (this process; one torch
thread, so CPU seconds are the work done, robust to a busy machine) count pruning/synthesis,
training and evaluation, not the FPS timing. Prints one JSON object and writes OUT/frontiers.png. Run again
with the same `--out` to reuse the ancestor, the finished jetsynth run and the Torch-Pruning
points (OUT/tp-*.json and their ONNX files). Usage:

    OMP_NUM_THREADS=1 nice -n 10 python tools/bench_vs_pruning.py [--data mnist:DIR]
        [--arch lenet5] [--input-size S] [--out DIR] [--steps 12] [--epochs 2]
        [--ancestor-epochs 5] [--tp-ratio 0.95] [--keep 0.7] [--pressure-on macs]
        [--truncation 0] [--screen 8] [--seed 0]

    # the residual model, on a folder tree of images
    python tools/bench_vs_pruning.py --arch resnet18 --data folder:/tmp/bench/own/mnist-png \\
        --input-size 32
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import DEFAULT_MNIST, emit
from safetensors.torch import load_file
from torch import nn

from jetsynth import EvolveConfig
from jetsynth.core.genome import ancestor_genome
from jetsynth.data.dataset import VAL_SPLIT, DataSpec
from jetsynth.data.load import load_dataset, training_batch
from jetsynth.errors import JetsynthError
from jetsynth.run.evolve import evolve
from jetsynth.run.rundir import RunDirectory
from jetsynth.run.train import TrainConfig, evaluate, fit, train_genome
from jetsynth.ship.export import compact_genome

IMPORTANCES = ("l1", "l1-round8", "taylor")
"""Torch-Pruning's variants: L1 magnitude, the same with every layer's channels rounded to a
multiple of 8 (`round_to=8`, what Jetson users ask pruning tools for), Taylor importance."""
TAYLOR_BATCHES = 8


def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates per image of the conv and linear layers (the project's MAC figure,
    counted on the module itself so a pruned Torch-Pruning model is counted alike)."""
    total = 0

    def conv_hook(module, _inputs, output):
        nonlocal total
        per_output = module.in_channels // module.groups * math.prod(module.kernel_size)
        total += output[0].numel() * per_output

    def linear_hook(module, _inputs, output):
        nonlocal total
        total += output[0].numel() * module.in_features

    handles = [m.register_forward_hook(conv_hook if isinstance(m, nn.Conv2d) else linear_hook)
               for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, *input_shape))
    for handle in handles:
        handle.remove()
    return int(total)


def params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def fine_tune(model: nn.Module, dataset, config: TrainConfig, seed: int) -> None:
    """`config.epochs` of jetsynth's own training loop (`run.train.fit`: Adam, cosine learning
    rate to 5 %) on `model`."""
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    fit(model, dataset, config, optimizer, torch.Generator().manual_seed(seed))


def accuracies(model: nn.Module, dataset) -> dict:
    return {"accuracy": evaluate(model, dataset.test_x, dataset.test_y),
            "val_accuracy": evaluate(model, dataset.val_x, dataset.val_y)}


def _classifier(model: nn.Module) -> nn.Module:
    return [m for m in model.modules() if isinstance(m, nn.Linear)][-1]


def torch_pruning_run(ancestor: nn.Module, dataset, importance: str, args, config: TrainConfig,
                      input_shape) -> tuple[list[dict], list[nn.Module], dict]:
    """Iterative global MetaPruner with fine-tuning after each step: the points, the pruned
    models and the wall and CPU seconds."""
    import torch_pruning as tp

    model = copy.deepcopy(ancestor)
    scorer = (tp.importance.TaylorImportance() if importance == "taylor"
              else tp.importance.MagnitudeImportance(p=1))
    started, cpu = time.perf_counter(), time.process_time()
    pruner = tp.pruner.MetaPruner(model, torch.zeros(1, *input_shape), importance=scorer,
                                  global_pruning=True, pruning_ratio=args.tp_ratio,
                                  iterative_steps=args.steps, ignored_layers=[_classifier(model)],
                                  round_to=8 if importance.endswith("round8") else None)
    points, models = [], []
    for step in range(1, args.steps + 1):
        if importance == "taylor":
            model.train()
            model.zero_grad()
            order = torch.Generator().manual_seed(args.seed + step)
            rows = torch.randperm(len(dataset.train_x), generator=order)[:TAYLOR_BATCHES * 128]
            for start in range(0, len(rows), 128):
                images, labels = training_batch(dataset, rows[start:start + 128], order)
                nn.functional.cross_entropy(model(images), labels).backward()
        pruner.step()
        fine_tune(model, dataset, config, args.seed + step)
        points.append({"step": step, **accuracies(model, dataset),
                       "macs": count_macs(model, input_shape), "params": params(model),
                       "seconds": round(time.perf_counter() - started, 1),
                       "cpu_seconds": round(time.process_time() - cpu, 1)})
        models.append(copy.deepcopy(model).eval())
    return points, models, {"wall_seconds": round(time.perf_counter() - started, 1),
                            "cpu_seconds": round(time.process_time() - cpu, 1)}


def tp_cache(out: Path, importance: str, args) -> Path:
    return out / f"tp-{importance}-s{args.steps}-e{args.epochs}-r{args.tp_ratio:g}-seed{args.seed}.json"


def torch_pruning_points(ancestor: nn.Module, dataset, importance: str, args, config: TrainConfig,
                         input_shape, out: Path) -> tuple[list[dict], dict]:
    """`torch_pruning_run` with every point's ONNX written, cached in OUT/tp-*.json."""
    kept = tp_cache(out, importance, args)
    if kept.is_file():
        stored = json.loads(kept.read_text())
        return stored["points"], stored["timing"]
    points, models, timing = torch_pruning_run(ancestor, dataset, importance, args, config,
                                               input_shape)
    for point, model in zip(points, models, strict=True):
        folder = out / "onnx" / f"tp-{importance}-seed{args.seed}-{point['step']}"
        point["onnx"] = str(write_onnx(model, input_shape, folder).relative_to(out))
    kept.write_text(json.dumps({"points": points, "timing": timing}))
    return points, timing


def write_onnx(model: nn.Module, input_shape, folder: Path) -> Path:
    """The model's fp32 ONNX as FOLDER/model.onnx."""
    from jetsynth.ship.export import to_onnx

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.onnx"
    path.write_bytes(to_onnx(model, input_shape, precision="fp32").SerializeToString())
    return path


def time_all(entries: list[dict], out: Path, args) -> None:
    """Set `fps` (median) and `fps_spread` of every entry from ORT CPU trials of its ONNX (one
    thread). The trials go round-robin, one per entry per round, so that whatever else the
    machine does at the time weighs on every method alike."""
    from jetsynth.ship.bench import measure, onnx_runner

    runners = [onnx_runner(out / entry["onnx"], "ort-cpu", threads=1) for entry in entries]
    trials: list[list[float]] = [[] for _ in entries]
    for _ in range(args.repeats):
        for runner, values in zip(runners, trials, strict=True):
            values.append(measure(runner, args.fps_batch, 0.1, args.fps_seconds).fps)
    for entry, values in zip(entries, trials, strict=True):
        entry["fps"] = round(statistics.median(values), 1)
        entry["fps_spread"] = [round(min(values), 1), round(max(values), 1)]


def frontier(points: list[dict]) -> list[dict]:
    """Points no other point beats on both MAC reduction and test accuracy, fewest MACs last."""
    front = []
    for p in sorted(points, key=lambda p: (p["macs"], -p["accuracy"])):
        if not front or p["accuracy"] > front[-1]["accuracy"]:
            front.append(p)
    return list(reversed(front))


def best_within(points: list[dict], ancestor: dict, drop: float) -> dict | None:
    """The point with the largest MAC reduction within `drop` (fraction) of the ancestor's test
    accuracy."""
    within = [p for p in points if p["accuracy"] >= ancestor["accuracy"] - drop]
    return max(within, key=lambda p: p["mac_reduction"]) if within else None


def dominance(ours: list[dict], theirs: list[dict], ancestor: dict, drop: float = 0.02) -> list[dict]:
    """For every point of theirs within `drop` of the ancestor: our most accurate point with at
    least its MAC reduction, and whether it is at least as accurate."""
    rows = []
    for point in theirs:
        if point["accuracy"] < ancestor["accuracy"] - drop:
            continue
        rivals = [p for p in ours if p["mac_reduction"] >= point["mac_reduction"]]
        best = max(rivals, key=lambda p: p["accuracy"]) if rivals else None
        rows.append({"mac_reduction": point["mac_reduction"], "accuracy": point["accuracy"],
                     "jetsynth_accuracy": best["accuracy"] if best else None,
                     "jetsynth_mac_reduction": best["mac_reduction"] if best else None,
                     "jetsynth_wins": bool(best and best["accuracy"] >= point["accuracy"])})
    return rows


def fps_dominance(ours: list[dict], theirs: list[dict], ancestor: dict,
                  drop: float = 0.02) -> list[dict]:
    """For every point of theirs within `drop` of the ancestor's test accuracy: our fastest
    point (measured FPS) at least as accurate, and whether it is at least as fast: speed at
    equal accuracy, not only MACs."""
    rows = []
    for point in theirs:
        if point["accuracy"] < ancestor["accuracy"] - drop:
            continue
        rivals = [p for p in ours if p["accuracy"] >= point["accuracy"]]
        best = max(rivals, key=lambda p: p["fps"]) if rivals else None
        rows.append({"accuracy": point["accuracy"], "fps": point["fps"],
                     "jetsynth_fps": best["fps"] if best else None,
                     "jetsynth_accuracy": best["accuracy"] if best else None,
                     "jetsynth_faster": bool(best and best["fps"] >= point["fps"])})
    return rows


def plot(methods: dict[str, list[dict]], ancestor: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axes_spec = [("mac_reduction", "MAC reduction (log)"),
                 ("param_reduction", "parameter reduction (log)"),
                 ("fps_gain", "ORT CPU FPS gain over the ancestor (log)")]
    fig, axes = plt.subplots(1, 3, figsize=(16, 5.2))
    styles = {"jetsynth": ("tab:red", "o"), "tp-l1": ("tab:blue", "s"), "tp-taylor": ("tab:green", "^")}
    for ax, (key, label) in zip(axes, axes_spec, strict=True):
        for name, points in methods.items():
            shown = sorted((p for p in points if p.get(key)), key=lambda p: p[key])
            if not shown:
                continue
            color, marker = styles.get(name, ("black", "x"))
            xs = [1.0] + [p[key] for p in shown]
            ys = [100 * ancestor["accuracy"]] + [100 * p["accuracy"] for p in shown]
            ax.plot(xs, ys, marker=marker, color=color, label=name, alpha=0.85)
        ax.axhline(100 * ancestor["accuracy"] - 0.3, color="grey", ls="--", lw=0.8,
                   label="ancestor − 0.3 points")
        ax.axhline(100 * ancestor["accuracy"] - 2.0, color="grey", ls=":", lw=0.8,
                   label="ancestor − 2 points")
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}×"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(label)
        ax.set_ylabel("test accuracy (%)")
        values = [100 * p["accuracy"] for points in methods.values() for p in points]
        top = max([100 * ancestor["accuracy"], *values]) + 0.3
        ax.set_ylim(max(min([100 * ancestor["accuracy"] - 2.3, *values]) - 0.3,
                        100 * ancestor["accuracy"] - 5.0), top)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(loc="lower left", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def train_ancestor(dataset, args, out: Path, config: TrainConfig) -> tuple[Path, float]:
    """The shared ancestor's weights (safetensors; reused from `out`) and its training seconds."""
    from safetensors.torch import save_file

    path = out / "ancestor.safetensors"
    if path.is_file():
        return path, 0.0
    started = time.perf_counter()
    genome = ancestor_genome(args.arch, dataset.input_shape, dataset.classes, args.seed)
    trained = train_genome(genome, dataset, replace_epochs(config, args.ancestor_epochs), args.seed)
    save_file({k: v.contiguous() for k, v in trained.genome.build().state_dict().items()}, str(path))
    return path, time.perf_counter() - started


def replace_epochs(config: TrainConfig, epochs: int) -> TrainConfig:
    from dataclasses import replace

    return replace(config, epochs=epochs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=f"mnist:{DEFAULT_MNIST}")
    parser.add_argument("--arch", default="lenet5")
    parser.add_argument("--input-size", type=int, default=None)
    parser.add_argument("--out", default=None)
    parser.add_argument("--steps", type=int, default=12,
                        help="pruning steps = jetsynth generations after the ancestor")
    parser.add_argument("--epochs", type=int, default=2, help="fine-tuning epochs per step/offspring")
    parser.add_argument("--ancestor-epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--tp-ratio", type=float, default=0.95)
    parser.add_argument("--importance", action="append", choices=IMPORTANCES)
    parser.add_argument("--only-torch-pruning", action="store_true",
                        help="run (and cache in OUT) the Torch-Pruning side only, e.g. beside a "
                             "jetsynth run in another process")
    parser.add_argument("--cached-only", action="store_true",
                        help="report with the Torch-Pruning points already cached in OUT, leaving "
                             "out those still missing")
    parser.add_argument("--only-jetsynth", action="store_true",
                        help="run jetsynth's evolution only (resumable in OUT); a later call "
                             "without it reports")
    parser.add_argument("--population", type=int, default=1)
    parser.add_argument("--keep", type=float, default=0.7)
    parser.add_argument("--pressure-on", default="macs")
    parser.add_argument("--balance", type=float, default=0.5)
    parser.add_argument("--cluster", default="filter")
    parser.add_argument("--cluster-pressure", type=float, default=1.0)
    parser.add_argument("--truncation", type=float, default=0.0,
                        help="jetsynth's ⌊w⌋ threshold; 0: no synapse dies inside a surviving "
                             "filter, where it would cost accuracy and save no multiply-accumulate")
    parser.add_argument("--screen", type=int, default=8, help="jetsynth's draws per offspring")
    parser.add_argument("--max-drop", type=float, default=None,
                        help="jetsynth's adaptive pressure towards this validation floor (from --keep)")
    parser.add_argument("--channel-multiple", type=int, default=8,
                        help="jetsynth's channel groups (1: exact widths, as before)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fps-batch", type=int, default=1)
    parser.add_argument("--fps-seconds", type=float, default=0.3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-onednn", action="store_true",
                        help="train without torch's oneDNN CPU kernels: with torch 2.13 the fine-tuning "
                             "of ResNet-18 after Torch-Pruning's L1 step (widths not a multiple of 8) "
                             "aborted in backward ('double free or corruption'); torch's native "
                             "convolutions instead, slower")
    args = parser.parse_args()
    importances = args.importance or list(IMPORTANCES)
    torch.set_num_threads(1)
    if args.no_onednn:
        torch.backends.mkldnn.enabled = False
    out = Path(args.out or tempfile.mkdtemp(prefix="vs-pruning-"))
    out.mkdir(parents=True, exist_ok=True)
    try:
        dataset = load_dataset(DataSpec.parse(args.data, 1.0, args.seed, VAL_SPLIT, args.input_size))
    except JetsynthError as exc:
        print(json.dumps({"error": str(exc)}))
        return 2
    input_shape = dataset.input_shape
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr)
    weights, ancestor_seconds = train_ancestor(dataset, args, out, config)

    if args.only_torch_pruning:
        ancestor_net = ancestor_genome(args.arch, input_shape, dataset.classes, args.seed).build()
        ancestor_net.load_state_dict(load_file(str(weights)))
        for importance in importances:
            torch_pruning_points(ancestor_net, dataset, importance, args, config, input_shape, out)
        return 0
    evolve_config = EvolveConfig(
        data=args.data, arch=args.arch, input_size=args.input_size, generations=args.steps + 1,
        population=args.population, epochs=args.epochs, ancestor_epochs=0,
        ancestor_weights=str(weights), cluster=args.cluster, keep=args.keep, balance=args.balance,
        cluster_pressure=args.cluster_pressure, truncation=args.truncation, screen=args.screen,
        max_drop=args.max_drop, preset="seed001", channel_multiple=args.channel_multiple,
        pressure_on=args.pressure_on, seed=args.seed,
        batch_size=args.batch_size, lr=args.lr)
    run_dir = out / (f"jetsynth-{args.pressure_on}-keep{args.keep:g}-b{args.balance:g}"
                     f"-t{args.truncation:g}-p{args.population}-s{args.screen}-seed{args.seed}"
                     + ("" if args.max_drop is None else f"-d{args.max_drop:g}")
                     + ("" if args.channel_multiple == 1 else f"-x{args.channel_multiple}"))
    timing = run_dir / "timing.json"
    started, cpu = time.perf_counter(), time.process_time()
    records = evolve(evolve_config, run_dir, resume=(run_dir / "config.json").exists())
    if not timing.is_file():  # a run resumed here counts only what this call did
        timing.write_text(json.dumps({"wall_seconds": round(time.perf_counter() - started, 1),
                                      "cpu_seconds": round(time.process_time() - cpu, 1)}))
    if args.only_jetsynth:
        return 0
    run = RunDirectory(run_dir)

    ancestor_genome_ = run.genome(records[0].id)
    ancestor_model = compact_genome(ancestor_genome_).model
    ancestor = {**accuracies(ancestor_model, dataset), "macs": count_macs(ancestor_model, input_shape),
                "params": params(ancestor_model),
                "onnx": str(write_onnx(ancestor_model, input_shape, out / "onnx" / "ancestor")
                            .relative_to(out))}
    methods: dict[str, list[dict]] = {}
    walls = {"jetsynth": json.loads(timing.read_text())}
    measured = run_dir / "points.json"
    jet_points = json.loads(measured.read_text()) if measured.is_file() else []
    for record in records[1 + len(jet_points):]:
        model = compact_genome(run.genome(record.id)).model
        jet_points.append({"id": record.id, "accuracy": record.accuracy,
                           "val_accuracy": record.val_accuracy,
                           "macs": count_macs(model, input_shape), "params": params(model),
                           "onnx": str(write_onnx(model, input_shape, run_dir / "onnx" / record.id)
                                       .relative_to(out))})
    measured.write_text(json.dumps(jet_points))
    methods["jetsynth"] = jet_points
    for importance in importances:
        if args.cached_only and not tp_cache(out, importance, args).is_file():
            continue
        points, wall = torch_pruning_points(compact_genome(ancestor_genome_).model, dataset,
                                            importance, args, config, input_shape, out)
        methods[f"tp-{importance}"] = points
        walls[f"tp-{importance}"] = wall
    time_all([ancestor, *(p for points in methods.values() for p in points)], out, args)
    for points in methods.values():
        for p in points:
            p["mac_reduction"] = round(ancestor["macs"] / p["macs"], 2)
            p["param_reduction"] = round(ancestor["params"] / p["params"], 2)
            p["fps_gain"] = round(p["fps"] / ancestor["fps"], 2)
    title = (f"{args.arch} on {args.data.split(':')[0]}: jetsynth (pressure on {args.pressure_on}, "
             f"keep {args.keep:g}, screen {args.screen}) vs Torch-Pruning, {args.steps} steps × "
             f"{args.epochs} epoch(s), seed {args.seed}; below the axis: more than 5 points lost")
    plot(methods, ancestor, out / "frontiers.png", title)
    summary = {}
    for name, points in methods.items():
        summary[name] = {
            **walls[name],
            "best_within_0.3_points": best_within(points, ancestor, 0.003),
            "best_within_1_point": best_within(points, ancestor, 0.01),
            "best_within_2_points": best_within(points, ancestor, 0.02),
        }
    emit("jetsynth-vs-torch-pruning", {
        "settings": {k: v for k, v in vars(args).items()},
        "out": str(out),
        "ancestor": {**ancestor, "train_seconds": round(ancestor_seconds, 1)},
        "points": methods,
        "frontiers": {name: frontier(points) for name, points in methods.items()},
        "summary": summary,
        "dominance": {name: dominance(methods["jetsynth"], points, ancestor)
                      for name, points in methods.items() if name != "jetsynth"},
        "fps_dominance": {name: fps_dominance(methods["jetsynth"], points, ancestor)
                          for name, points in methods.items() if name != "jetsynth"},
        "time_ratio_jetsynth_over": {
            name: {"wall": round(walls["jetsynth"]["wall_seconds"] / walls[name]["wall_seconds"], 2),
                   "cpu": round(walls["jetsynth"]["cpu_seconds"] / walls[name]["cpu_seconds"], 2)}
            for name in walls if name != "jetsynth"},
        "plot": str(out / "frontiers.png"),
    }, ancestor_seconds + sum(w["wall_seconds"] for w in walls.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
