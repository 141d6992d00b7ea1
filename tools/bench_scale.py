"""Training at 224 px: memory, the training loop's overhead and the data path's speed. Prints one
JSON object.

- memory: peak resident memory (the largest process of the run) and wall time of
  `evolve --arch mobilenet-v2 --data folder:DIR --input-size 224 --generations 1
  --ancestor-epochs 0` on generated folders of RGB 224×224 JPEGs of each --images count, each
  decoded into a fresh cache (so the time includes decoding); it must not grow with the count.
- loop: CPU images/s of jetsynth's training loop (`run.train.fit`: masks re-applied, progress,
  checkpoints, the background batch stream) against a plain 20-line torch loop, on the same
  MobileNetV2 and the same 224-pixel batches, alternated, best of --repeats each.
- data: the data path alone (read rows from the decoded cache, batch; then with --augment's
  random resized crop, flip and colour jitter, here on the CPU, on a GPU done there) in images/s
  at 224 px, against REFERENCE_IMAGES_PER_S (see below) times 3.

    python tools/bench_scale.py --images 1000 6600 --work /tmp/bench_scale
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

REFERENCE_IMAGES_PER_S = 1200 * 4.1 / 1.8
"""What one GPU trains ResNet-18 at, 224 px, mixed precision: NVIDIA's published ResNet-50 v1.5
PyTorch training throughput on one V100 16 GB with mixed precision, 1,200 images/s
(github.com/NVIDIA/DeepLearningExamples, PyTorch/Classification/ConvNets/resnet50v1.5/README.md,
"Training performance: NVIDIA DGX-1 16GB"), scaled by the multiply-accumulates per image of
ResNet-50 over ResNet-18 (4.1 / 1.8 GMACs): about 2,700 images/s. An estimate: the same card's
ResNet-18 figure is not published there; an A100 (2,470 ResNet-50 images/s) would double it."""

CHILD = """
import json, resource, subprocess, sys, time
started = time.perf_counter()
code = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL)
print(json.dumps({"rc": code, "seconds": round(time.perf_counter() - started, 1),
                  "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)}))
"""


def make_folder(root: Path, count: int, classes: int = 10, size: int = 224, seed: int = 0) -> Path:
    """`count` RGB size×size JPEGs (quality 90) in `classes` class folders: smooth colour fields
    with noise, about the byte size of photos; kept when already there."""
    from PIL import Image

    done = root / f".complete-{count}"
    if done.is_file():
        return root
    shutil.rmtree(root, ignore_errors=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        label = i % classes
        folder = root / f"class{label:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        coarse = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        image = np.asarray(Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC),
                           dtype=np.int16)
        image = np.clip(image + rng.integers(-20, 21, image.shape), 0, 255).astype(np.uint8)
        Image.fromarray(image).save(folder / f"{i:05d}.jpg", quality=90)
    done.write_text("")
    return root


def memory(work: Path, counts: list[int]) -> dict:
    out = {}
    for count in counts:
        folder = make_folder(work / f"photos-{count}", count)
        cache = work / f"cache-{count}"
        run = work / f"run-{count}"
        shutil.rmtree(cache, ignore_errors=True)
        shutil.rmtree(run, ignore_errors=True)
        env = {**os.environ, "JETSYNTH_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}
        command = [sys.executable, "-c", CHILD, sys.executable, "-m", "jetsynth", "evolve",
                   "--arch", "mobilenet-v2", "--data", f"folder:{folder}", "--input-size", "224",
                   "--generations", "1", "--ancestor-epochs", "0", "--device", "cpu",
                   "--run-dir", str(run)]
        result = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        figures = json.loads(result.stdout.strip().splitlines()[-1])
        from jetsynth.core.records import MemberRecord

        record = MemberRecord.read(run / "members" / "g01-m00" / "member.json")
        out[str(count)] = {**figures, "cache_mib": round(
            sum(f.stat().st_size for f in cache.rglob("*") if f.is_file()) / 2**20, 1),
            "accuracy": record.accuracy}
    return out


def _dataset(folder: Path, augment: bool = False):
    from jetsynth.data.load import DataSpec, load_dataset

    return load_dataset(DataSpec.parse(f"folder:{folder}", input_size=224, augment=augment))


def loop(folder: Path, batch: int, steps: int, repeats: int) -> dict:
    """Images/s of `fit` against a plain loop on the same network and batches."""
    import tempfile
    from dataclasses import replace

    import torch
    from torch import nn

    from jetsynth.core.genome import ancestor_genome, topology_for
    from jetsynth.nn.checkpoint import save_checkpoint
    from jetsynth.nn.compact import compact
    from jetsynth.nn.models import resolve_factory
    from jetsynth.run.train import TrainConfig, fit

    data = _dataset(folder)
    rows = np.arange(batch * steps)
    data = replace(data, train_x=data.train_x.subset(rows), train_y=data.train_y[rows])
    factory = resolve_factory("mobilenet-v2", True)
    topology = topology_for("mobilenet-v2", data.input_shape, data.classes, factory)
    genome = ancestor_genome("mobilenet-v2", data.input_shape, data.classes, 0, topology)

    def network():
        compacted = compact(genome.build(), genome.topology, genome.masks)
        return compacted.model, compacted.masks

    def jetsynth_loop() -> float:
        net, masks = network()
        masked = [(net.get_submodule(name).weight, mask) for name, mask in masks.items()]
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
        order = torch.Generator().manual_seed(0)
        steps_seen = []

        def remask():
            with torch.no_grad():
                for weight, mask in masked:
                    weight.mul_(mask)

        with tempfile.TemporaryDirectory() as where:
            started = time.perf_counter()
            fit(net, data, TrainConfig(epochs=1, batch_size=batch), optimizer, order,
                after_step=remask, on_step=lambda d, t: steps_seen.append(d),
                after_epoch=lambda e: save_checkpoint(Path(where), {}, e, net, optimizer, order))
            return len(rows) / (time.perf_counter() - started)

    def plain_loop() -> float:
        net, _ = network()
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
        order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(0))
        net.train()
        started = time.perf_counter()
        for start in range(0, len(rows), batch):
            chosen = order[start : start + batch]
            images, labels = data.train_x[chosen], data.train_y[chosen]
            optimizer.zero_grad()
            loss = nn.functional.cross_entropy(net(images), labels)
            loss.backward()
            optimizer.step()
        return len(rows) / (time.perf_counter() - started)

    jetsynth_loop(), plain_loop()  # warm both up (oneDNN picks its kernels)
    ours, plain = [], []
    for _ in range(repeats):
        ours.append(jetsynth_loop())
        plain.append(plain_loop())
    return {"model": "mobilenet-v2", "input": 224, "batch": batch, "steps": steps,
            "torch_threads": torch.get_num_threads(),
            "jetsynth_images_per_s": round(max(ours), 2), "plain_images_per_s": round(max(plain), 2),
            "plain_over_jetsynth": round(max(plain) / max(ours), 3)}


def _previous_read(images, rows):
    """The batch read as `MappedImages.raw` did before batches were read straight into their
    buffer: one `pread` per run of consecutive rows into a new bytes object, copied into a row
    array, then copied again into the order asked for. Kept here as the data path's baseline."""
    import torch

    stored, wanted = images.pixels, images.rows[rows.numpy()]
    order = np.argsort(wanted, kind="stable")
    ranked = wanted[order]
    rows_read = np.empty((len(ranked), *stored.shape[1:]), dtype=np.uint8)
    flat = rows_read.reshape(len(ranked), stored.row_bytes)
    start = 0
    while start < len(ranked):
        end = start + 1
        while end < len(ranked) and ranked[end] == ranked[end - 1] + 1:
            end += 1
        data = os.pread(stored.fd, (end - start) * stored.row_bytes,
                        stored.offset + int(ranked[start]) * stored.row_bytes)
        flat[start:end] = np.frombuffer(data, dtype=np.uint8).reshape(end - start, stored.row_bytes)
        start = end
    block = np.empty_like(rows_read)
    block[order] = rows_read
    return torch.from_numpy(block)


def _spread(values: list[float]) -> dict:
    return {"median": round(float(np.median(values)), 1), "min": round(min(values), 1),
            "max": round(max(values), 1)}


AUGMENTED_BATCHES = 2
"""Batches the augmented CPU path is timed on: at about 20 images/s here, more only costs time."""


def data_path(folder: Path, batch: int, batches: int, repeats: int = 5) -> dict:
    """Images/s of reading batches from the cache (the previous read and today's, alternated in
    this process, `repeats` times each, with the stream's READERS background readers), then of
    `AUGMENTED_BATCHES` whole augmented batches on the CPU."""
    import torch

    from jetsynth.data.stream import READERS, TrainingStream, _prefetched

    data = _dataset(folder, augment=True)
    n, count = len(data.train_x), batch * batches
    generator = torch.Generator().manual_seed(0)
    epochs = torch.cat([torch.randperm(n, generator=generator) for _ in range(-(-count // n))])
    stream = TrainingStream(data)
    batches_rows = list(epochs[:count].split(batch))  # epoch after epoch, as training reads

    def rate(read) -> float:
        started = time.perf_counter()
        for _ in _prefetched(batches_rows, read, workers=READERS):
            pass
        return count / (time.perf_counter() - started)

    previous = lambda rows: _previous_read(data.train_x, rows)  # noqa: E731
    rate(previous), rate(stream.read)  # the cache file into the page cache, both paths warm
    before, after = [], []
    for _ in range(repeats):
        before.append(rate(previous))
        after.append(rate(stream.read))
    ratios = [a / b for a, b in zip(after, before, strict=True)]
    augmented = epochs[:AUGMENTED_BATCHES * batch]
    started = time.perf_counter()
    for _ in stream.batches(augmented, batch, torch.Generator().manual_seed(0)):
        pass
    whole = len(augmented) / (time.perf_counter() - started)
    read = float(np.median(after))
    target = 3 * REFERENCE_IMAGES_PER_S
    return {"images": count, "batch": batch, "torch_threads": torch.get_num_threads(),
            "readers": READERS, "repeats": repeats,
            "previous_read_images_per_s": _spread(before), "read_images_per_s": _spread(after),
            "read_over_previous": {"median": round(float(np.median(ratios)), 2),
                                   "min": round(min(ratios), 2), "max": round(max(ratios), 2)},
            "augmented_cpu_images_per_s": round(whole, 1),
            "reference_gpu_resnet18_images_per_s": round(REFERENCE_IMAGES_PER_S),
            "target_images_per_s": round(target),
            "read_over_reference": round(read / REFERENCE_IMAGES_PER_S, 2),
            "augmented_cpu_over_reference": round(whole / REFERENCE_IMAGES_PER_S, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, nargs="+", default=[1000, 6600])
    parser.add_argument("--work", type=Path, default=Path("/tmp/jetsynth-bench-scale"))
    parser.add_argument("--skip", nargs="*", default=[], choices=["memory", "loop", "data"])
    parser.add_argument("--loop-batch", type=int, default=16)
    parser.add_argument("--loop-steps", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of loop and data")
    parser.add_argument("--data-batches", type=int, default=40,
                        help="batches of 128 the data path reads per repeat (epochs repeat)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    out: dict = {"settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                 "cpus": len(os.sched_getaffinity(0)), "load_1min": round(os.getloadavg()[0], 2)}
    if "memory" not in args.skip:
        out["memory"] = memory(args.work, args.images)
    small = make_folder(args.work / f"photos-{min(args.images)}", min(args.images))
    os.environ["JETSYNTH_CACHE_DIR"] = str(args.work / f"cache-{min(args.images)}")
    if "loop" not in args.skip:
        out["loop"] = loop(small, args.loop_batch, args.loop_steps, args.repeats)
    if "data" not in args.skip:
        out["data"] = data_path(small, 128, args.data_batches, args.repeats)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
