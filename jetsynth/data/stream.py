"""Training batches as the trainer consumes them: uint8 rows read in a background thread (pinned
when they go to a GPU) while the device trains on the batch before, then copied without blocking,
converted, resized, augmented and normalised on the training device. A dataset's images never
exist as floats whole, so memory stays flat however large the dataset is.

Every random draw (the batch order, each augmentation's parameters) is taken from the trainer's
generator in the trainer's thread, in batch order: the background thread only reads, so a seeded
run draws the same whatever the timing, and a checkpoint of the generator resumes the same draws.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import islice

import torch

from jetsynth.data.dataset import Dataset, MappedImages

PREFETCH = 4
"""Batches read ahead of the one training: enough to hide a slow disk read behind a step."""
READERS = max(2, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                     else os.cpu_count() or 2))
"""Threads reading batches: one copy of 128 photos (19 MB) at a time does not keep a GPU busy;
one per core up to 4 (the page cache's copy bandwidth, not the core count, limits more)."""
SMALL_IMAGES = 64
"""Images up to this side are augmented by padded crop and flip (CIFAR-style); larger ones
(photos) by random resized crop, flip and colour jitter."""
RESIDENT_BYTES = 1 << 30
"""A training split of uint8 images up to this size is copied to a GPU whole, once (MNIST,
CIFAR-10), instead of being read batch by batch."""
CROP_SCALE = (0.25, 1.0)
"""Random resized crop: the share of the image's area a crop covers (short trainings keep more of
the image than ImageNet's 0.08)."""
CROP_RATIO = (3 / 4, 4 / 3)
JITTER = 0.2
"""Colour jitter: brightness, contrast and saturation each scaled by a factor in 1 ± JITTER."""


def batch_rows(permutation: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """The epoch's batches: consecutive `batch_size` slices of `permutation` (the last shorter)."""
    return [permutation[start : start + batch_size] for start in range(0, len(permutation), batch_size)]


def _prefetched(items: list, read, depth: int = PREFETCH, workers: int = READERS) -> Iterator:
    """read(item) for every item, in order, computed up to `depth` items ahead by `workers`
    background threads (reading a file releases the GIL, so they read side by side); an
    exception in a read is raised here, in its place. Stopping early (a break, an error in the
    consumer) cancels the reads not started and waits for those running."""
    source = iter(items)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="jetsynth-batches") as pool:
        pending = deque(pool.submit(read, item) for item in islice(source, depth))
        try:
            while pending:
                value = pending.popleft().result()
                for item in islice(source, 1):
                    pending.append(pool.submit(read, item))
                yield value
        finally:
            for future in pending:
                future.cancel()


class TrainingStream:
    """The training split of `dataset` as batches on `device` (see the module doc). With a GPU
    and a small enough split, the uint8 images go to the GPU once and batches are gathered
    there."""

    def __init__(self, dataset: Dataset, device: torch.device | str = "cpu"):
        self.dataset = dataset
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        images = dataset.train_x
        self.mapped = images if isinstance(images, MappedImages) else None
        self.resident = None
        if self.mapped is not None and self.cuda:
            size = len(self.mapped) * int(torch.tensor(self.mapped.pixels.shape[1:]).prod())
            if size <= RESIDENT_BYTES:
                self.resident = self.mapped.raw(slice(None)).to(self.device)
        self.labels = dataset.train_y.to(self.device) if self.resident is not None else dataset.train_y

    def read(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What the background thread does: the rows' stored images and labels, pinned for a
        GPU."""
        if self.mapped is not None:
            images = self.mapped.raw(rows, pin=self.cuda)
        else:
            images = self.dataset.train_x[rows]
        labels = self.dataset.train_y[rows]
        if self.cuda:
            labels = labels.pin_memory()
            if not images.is_pinned():
                images = images.pin_memory()
        return images, labels

    def batches(self, permutation: torch.Tensor, batch_size: int, generator: torch.Generator
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(inputs, labels) on the device for each batch of `permutation`, augmented with draws
        from `generator` when the dataset asks for it."""
        rows = batch_rows(permutation, batch_size)
        if self.resident is not None:
            for chosen in rows:
                on_device = chosen.to(self.device)
                yield self.inputs(self.resident[on_device], generator), self.labels[on_device]
            return
        for images, labels in _prefetched(rows, self.read):
            images = images.to(self.device, non_blocking=True)
            labels = labels.to(self.device, non_blocking=True)
            yield self.inputs(images, generator), labels

    def batch(self, rows: torch.Tensor, generator: torch.Generator
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """One batch (inputs, labels) of `rows` on the device, read in this thread: for trainers
        whose next rows depend on draws made after this batch (grow picks the member first)."""
        if self.resident is not None:
            on_device = rows.to(self.device)
            return self.inputs(self.resident[on_device], generator), self.labels[on_device]
        images, labels = self.read(rows)
        images = images.to(self.device, non_blocking=True)
        return self.inputs(images, generator), labels.to(self.device, non_blocking=True)

    def inputs(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """A batch as the network takes it: stored uint8 → (augmented) normalised floats."""
        augment = self.dataset.augment
        if self.mapped is None:  # already normalised floats (a Dataset built in memory)
            return _small_augment(self.dataset, images, generator) if augment else images
        unit = self.mapped.unit(images)
        if augment and unit.shape[-1] > SMALL_IMAGES:
            unit = photo_augment(unit, generator)
        inputs = self.mapped.normalise(unit)
        if augment and unit.shape[-1] <= SMALL_IMAGES:
            inputs = _small_augment(self.dataset, inputs, generator)
        return inputs


def _small_augment(dataset: Dataset, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    mean = torch.tensor(dataset.preprocessing["mean"])
    std = torch.tensor(dataset.preprocessing["std"])
    return augment_batch(images, generator, fill=(-mean / std).to(images.device))


def augment_batch(images: torch.Tensor, generator: torch.Generator, padding: int | None = None,
                  fill: torch.Tensor | None = None) -> torch.Tensor:
    """Random crop with padding and horizontal flip: each image (N, C, H, W) is padded by
    `padding` pixels (default H/8, at least 1) of `fill` per channel (default 0; the trainer
    passes black in normalised units), cropped back to H×W at a random offset and, with
    probability 1/2, mirrored left-right."""
    n, c, h, w = images.shape
    pad = max(1, round(min(h, w) / 8)) if padding is None else padding
    canvas = images.new_zeros((n, c, h + 2 * pad, w + 2 * pad))
    if fill is not None:
        canvas += fill.to(images.dtype).view(1, -1, 1, 1)
    canvas[:, :, pad : pad + h, pad : pad + w] = images
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    rows = dy[:, None] + torch.arange(h)
    cols = dx[:, None] + torch.arange(w)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    return canvas[torch.arange(n)[:, None, None, None], torch.arange(c)[None, :, None, None],
                  rows[:, None, :, None], cols[:, None, None, :]]


def photo_augment(unit: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random resized crop (CROP_SCALE of the area, aspect ratio in CROP_RATIO, resized back to
    the batch's size), horizontal flip with probability 1/2 and colour jitter (brightness,
    contrast, saturation × U(1 ± JITTER)) of pixels in [0, 1] (N, C, H, W), on their device; the
    parameters are drawn on the CPU from `generator`, so every device draws the same."""
    n, channels = unit.shape[:2]
    draws = torch.rand((n, 8), generator=generator, dtype=torch.float64)
    area = CROP_SCALE[0] + (CROP_SCALE[1] - CROP_SCALE[0]) * draws[:, 0]
    log_ratio = torch.log(torch.tensor(CROP_RATIO, dtype=torch.float64))
    ratio = torch.exp(log_ratio[0] + (log_ratio[1] - log_ratio[0]) * draws[:, 1])
    width = torch.sqrt(area * ratio).clamp(max=1.0)  # of the image's width, 1 = all of it
    height = torch.sqrt(area / ratio).clamp(max=1.0)
    centre_x = (1 - width) * (2 * draws[:, 2] - 1)  # in grid units (−1 … 1), crop inside
    centre_y = (1 - height) * (2 * draws[:, 3] - 1)
    flip = torch.where(draws[:, 4] < 0.5, -1.0, 1.0)
    theta = torch.zeros((n, 2, 3), dtype=torch.float64)
    theta[:, 0, 0] = width * flip
    theta[:, 0, 2] = centre_x
    theta[:, 1, 1] = height
    theta[:, 1, 2] = centre_y
    theta = theta.to(device=unit.device, dtype=unit.dtype)
    grid = torch.nn.functional.affine_grid(theta, list(unit.shape), align_corners=False)
    out = torch.nn.functional.grid_sample(unit, grid, mode="bilinear", padding_mode="border",
                                          align_corners=False)
    factors = (1 + JITTER * (2 * draws[:, 5:8] - 1)).to(device=unit.device, dtype=unit.dtype)
    brightness, contrast, saturation = (factors[:, i].view(n, 1, 1, 1) for i in range(3))
    out = out * brightness
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    out = (out - mean) * contrast + mean
    if channels == 3:
        gray = 0.299 * out[:, 0:1] + 0.587 * out[:, 1:2] + 0.114 * out[:, 2:3]
        out = (out - gray) * saturation + gray
    return out.clamp(0.0, 1.0)
