"""The path a user takes with their own model and images: MNIST written out as a `folder:` tree of
PNG files (a stratified share of the training split, the whole test split), then `resnet18` and
`mobilenet-v2` evolved on it at 32×32 with filter clusters.

Per generation: the member chosen on validation (the most MAC-efficient one within one point of
the ancestor's validation accuracy, else the most accurate), its test accuracy, MAC reduction,
parameters, the ONNX Runtime CPU batch-32 throughput gain of its compacted fp32 ONNX over the
ancestor's (FPS_member / FPS_ancestor, timed in this process, median of `--repeats` trials with
their spread), the same with channels padded to multiples of 8, wall time and peak memory. Run
again with the same `--out` to re-time finished runs without training them again. Prints one
JSON object. Usage:

    python tools/bench_own_model.py [--mnist ../shared/datasets/mnist] [--out DIR]
        [--arch resnet18 --arch mobilenet-v2] [--generations 8] [--population 2] [--share 0.1]
        [--max-drop 0.01] [--defaults]

`--defaults` evolves with the user-first defaults (issue 27's benchmark: shrink until one point,
filter clusters, MAC pressure, channel groups of 8); otherwise the earlier tuned settings under
the seed preset with exact widths, as their figures were measured.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import DEFAULT_MNIST, by_generation, emit, mnist_missing

from jetsynth import EvolveConfig
from jetsynth.core.records import MemberRecord
from jetsynth.core.selection import selection_accuracy
from jetsynth.data.dataset import stratified_subset
from jetsynth.data.load import read_idx
from jetsynth.run.evolve import evolve
from jetsynth.run.rundir import RunDirectory
from jetsynth.ship.bench import measure, onnx_runner
from jetsynth.ship.export import export_genome

FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def _read(folder: Path, name: str, magic: int) -> np.ndarray:
    path = folder / name
    return read_idx(path if path.is_file() else folder / f"{name}.gz", magic)


def write_png_tree(mnist: Path, out: Path, share: float, seed: int, test_share: float = 1.0) -> dict:
    """`out`/train/<digit>/*.png (a stratified `share` of the training split) and
    `out`/test/<digit>/*.png (a stratified `test_share` of the test split, by default all of it);
    reused when already written."""
    from PIL import Image

    done = out / ".complete"
    counts = {}
    for split, (images_name, labels_name) in FILES.items():
        images = _read(mnist, images_name, 2051)
        labels = _read(mnist, labels_name, 2049)
        fraction = share if split == "train" else test_share
        keep = stratified_subset(labels, fraction, seed) if fraction < 1 else np.arange(len(labels))
        counts[split] = int(len(keep))
        if done.is_file():
            continue
        for index in keep:
            folder = out / split / str(int(labels[index]))
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(images[index]).save(folder / f"{index:05d}.png")
    done.touch()
    return counts


def pick(members: list[MemberRecord], floor: float) -> MemberRecord:
    """The member to ship, chosen on validation: the most MAC-efficient within the floor, else
    the most accurate."""
    within = [r for r in members if selection_accuracy(r) >= floor]
    if within:
        return max(within, key=lambda r: r.mac_reduction)
    return max(members, key=selection_accuracy)


def fps(run: RunDirectory, record: MemberRecord, folder: Path, repeats: int, seconds: float) -> dict:
    """Batch-32 ORT-CPU throughput (one thread) of the compacted fp32 ONNX, as exported and with
    every layer's channels padded to a multiple of 8 (`export --channel-multiple 8`); trials of
    the two alternate so a busy moment hits both alike."""
    genome = run.genome(record.id)
    out: dict = {}
    runners = {}
    for suffix, multiple in (("", 1), ("_x8", 8)):
        exported = export_genome(genome, folder / f"{record.id}{suffix}.onnx", "fp32",
                                 channel_multiple=multiple)
        runners[suffix] = onnx_runner(exported.path, "ort-cpu", 1)
        out[f"params{suffix}"], out[f"macs{suffix}"] = exported.params, exported.macs
    trials: dict[str, list[float]] = {suffix: [] for suffix in runners}
    for _ in range(repeats):
        for suffix, runner in runners.items():
            trials[suffix].append(measure(runner, 32, warmup_seconds=0.3, min_seconds=seconds).fps)
    for suffix, values in trials.items():
        values.sort()
        out[f"fps{suffix}"] = values[len(values) // 2]
        out[f"fps{suffix}_spread"] = [round(values[0], 1), round(values[-1], 1)]
    return out


def hidden_widths(run: RunDirectory, record: MemberRecord) -> list[int]:
    """The output widths of the member's compacted hidden convs and linears (the class layer
    aside), at the widths evolution kept (no padding)."""
    from torch import nn

    from jetsynth.ship.export import compact_genome

    model = compact_genome(run.genome(record.id)).model
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    return [m.out_channels if isinstance(m, nn.Conv2d) else m.out_features for m in layers[:-1]]


def bench_arch(arch: str, data: str, run_dir: Path, args) -> dict:
    if args.defaults:  # the user-first defaults: no tuning flag, only the budget of this machine
        config = EvolveConfig(
            data=data, arch=arch, input_size=32, generations=args.generations,
            population=args.population, epochs=args.epochs, ancestor_epochs=args.ancestor_epochs,
            seed=args.seed,
        )
    else:
        config = EvolveConfig(
            data=data, arch=arch, input_size=32, generations=args.generations,
            population=args.population, parents=args.parents, cluster="filter", keep=args.keep,
            balance=0.0, cluster_pressure=0.9, epochs=args.epochs,
            ancestor_epochs=args.ancestor_epochs, seed=args.seed, max_drop=args.max_drop,
            preset="seed001", channel_multiple=1,
        )
    started = time.perf_counter()
    records = evolve(config, run_dir, resume=(run_dir / "config.json").exists())
    wall = time.perf_counter() - started
    run = RunDirectory(run_dir)
    generations = by_generation(records)
    ancestor = generations[1][0]
    floor = selection_accuracy(ancestor) - 0.01
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = fps(run, ancestor, Path(tmp), args.repeats, args.seconds)
        for generation, members in generations.items():
            chosen = pick(members, floor)
            timed = base if chosen is ancestor else fps(run, chosen, Path(tmp), args.repeats, args.seconds)
            mac = chosen.mac_reduction
            gain = timed["fps"] / base["fps"]
            rows.append({
                "generation": generation, "id": chosen.id,
                "val_accuracy": selection_accuracy(chosen), "test_accuracy": chosen.accuracy,
                "within_floor": selection_accuracy(chosen) >= floor,
                "mac_reduction": round(mac, 2), "params": timed["params"], "macs": timed["macs"],
                "fps_b32": round(timed["fps"], 1), "fps_b32_spread": timed["fps_spread"],
                "fps_gain": round(gain, 2), "fps_gain_over_mac": round(gain / mac, 2),
                "x8_macs": timed["macs_x8"], "x8_fps_b32": round(timed["fps_x8"], 1),
                "x8_fps_b32_spread": timed["fps_x8_spread"],
                "x8_fps_gain": round(timed["fps_x8"] / base["fps_x8"], 2),
                "x8_fps_gain_over_mac": round(timed["fps_x8"] / base["fps_x8"] / mac, 2),
                "train_seconds": sum(r.train_seconds for r in members),
                "widths_off_8": [w for w in hidden_widths(run, chosen) if w % 8],
            })
    best = max((r for r in rows if r["within_floor"]), key=lambda r: r["mac_reduction"])
    return {
        "arch": arch, "run_dir": str(run_dir), "wall_seconds": round(wall, 1),
        "ancestor": {"val_accuracy": selection_accuracy(ancestor), "test_accuracy": ancestor.accuracy,
                     "macs": ancestor.macs},
        "rows": rows,
        "best_within_one_point": {
            "id": best["id"], "mac_reduction": best["mac_reduction"], "fps_gain": best["fps_gain"],
            "x8_fps_gain": best["x8_fps_gain"],
            "test_accuracy_drop_points": round(100 * (ancestor.accuracy - best["test_accuracy"]), 2),
            "val_accuracy_drop_points": round(100 * (selection_accuracy(ancestor)
                                                     - best["val_accuracy"]), 2),
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", default=str(DEFAULT_MNIST))
    parser.add_argument("--out", default=None, help="where the PNG tree and the runs go")
    parser.add_argument("--arch", action="append", default=None)
    parser.add_argument("--share", type=float, default=0.1, help="share of MNIST's training split")
    parser.add_argument("--test-share", type=float, default=1.0,
                        help="share of MNIST's test split (less: faster evaluation on few cores)")
    parser.add_argument("--generations", type=int, default=8)
    parser.add_argument("--population", type=int, default=2)
    parser.add_argument("--parents", type=int, default=2)
    parser.add_argument("--keep", type=float, default=None,
                        help="[default: 0.7, or with --max-drop the adaptive pressure's 0.5]")
    parser.add_argument("--max-drop", type=float, default=None,
                        help="shrink until this floor with adaptive pressure instead of a fixed --keep")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--ancestor-epochs", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=5, help="FPS trials per model")
    parser.add_argument("--seconds", type=float, default=1.0, help="seconds per FPS trial")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--defaults", action="store_true",
                        help="evolve with the user-first defaults (no tuning flag; --keep, "
                             "--max-drop and --parents are ignored)")
    args = parser.parse_args()
    if args.keep is None and args.max_drop is None and not args.defaults:
        args.keep = 0.7
    if mnist_missing(args.mnist):
        return 2
    out = Path(args.out or tempfile.mkdtemp(prefix="own-model-"))
    started = time.perf_counter()
    counts = write_png_tree(Path(args.mnist), out / "mnist-png", args.share, args.seed, args.test_share)
    png_seconds = round(time.perf_counter() - started, 1)
    tag = "-defaults" if args.defaults else "" if args.max_drop is None else f"-max-drop-{args.max_drop:g}"
    results = [bench_arch(arch, f"folder:{out / 'mnist-png'}", out / f"run-{arch}{tag}", args)
               for arch in (args.arch or ["resnet18", "mobilenet-v2"])]
    emit("own-model", {
        "images": counts, "png_seconds": png_seconds,
        "settings": {k: getattr(args, k) for k in ("share", "generations", "population", "parents",
                                                  "keep", "max_drop", "epochs", "ancestor_epochs",
                                                  "test_share", "seed", "defaults")},
        "runs": results,
    }, time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
