"""The dataset record every part of jetsynth reads, the spec that names one, and how its
training split is divided: a seeded, stratified validation split held out, then `subset` of the
rest. The loaders (`load`, `imagefolder`, `items`) fill it in."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np
import torch

from jetsynth.errors import JetsynthError

IN_PROCESS = "python"
"""The kind of data given to the Python API as an object (`python:TYPE`): it lives in the
caller's memory, so only that caller can load it again."""
KINDS = ("digits", "mnist", "fashion-mnist", "cifar10", "stl10", "folder", IN_PROCESS)
VAL_SPLIT = 0.1
PIXEL_SCALE = 1.0 / 255.0
MEAN_RANGE = (-1.0, 2.0)
"""Sensible normalisation means for pixels in [0, 1]."""
STD_RANGE = (1e-3, 100.0)
"""Sensible normalisation standard deviations for pixels in [0, 1]: outside it inputs are
scaled by more than a thousand or less than a hundredth, and a network trains at chance."""
CLASS_NAMES = {
    "digits": [str(i) for i in range(10)],
    "mnist": [str(i) for i in range(10)],
    "fashion-mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                      "Sneaker", "Bag", "Ankle boot"],
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                "truck"],
    "stl10": ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"],
}


@dataclass(frozen=True)
class DataSpec:
    """Where a dataset comes from and how it is prepared; small and serialisable so a remote
    worker can load it too."""

    kind: str = "digits"
    path: str | None = None
    subset: float = 1.0
    seed: int = 0
    val_split: float = VAL_SPLIT
    input_size: int | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    augment: bool = False

    @classmethod
    def parse(cls, text: str, subset: float = 1.0, seed: int = 0, val_split: float = VAL_SPLIT,
              input_size: int | None = None, mean=None, std=None, augment: bool = False) -> DataSpec:
        kind, _, path = text.partition(":")
        kind = kind.strip().lower()
        if kind not in KINDS:
            raise JetsynthError(
                f"unknown dataset '{text}': use one of digits, mnist:DIR, fashion-mnist:DIR, "
                "cifar10:DIR, stl10:DIR, folder:DIR"
            )
        if kind == "digits" and path:
            raise JetsynthError("the built-in 'digits' dataset takes no path: use --data digits")
        if kind != "digits" and not path:
            raise JetsynthError(f"--data {kind} needs a folder: use --data {kind}:DIR")
        if not 0.0 < subset <= 1.0:
            raise JetsynthError(f"--subset must lie in (0, 1], got {subset}")
        if not 0.0 <= val_split < 1.0:
            raise JetsynthError(f"--val-split must lie in [0, 1) (0.1 holds a tenth of the training "
                                f"split out for validation; 0: none), got {val_split}")
        if input_size is not None and input_size < 1:
            raise JetsynthError(f"--input-size must be a positive number of pixels, got {input_size}")
        mean = tuple(float(v) for v in mean) if mean else None
        std = tuple(float(v) for v in std) if std else None
        if (mean is None) != (std is None) or (mean and len(mean) != len(std)):
            raise JetsynthError("give --mean and --std together, one value of each per channel "
                                "(e.g. --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225)")
        if std is not None and min(std) <= 0:
            raise JetsynthError("--std values must be positive")
        if mean is not None and not all(_within(v, MEAN_RANGE) for v in mean):
            raise JetsynthError(f"--mean values must lie in [{MEAN_RANGE[0]:g}, {MEAN_RANGE[1]:g}] "
                                f"(pixels are scaled to [0, 1] first), got {_numbers(mean)}")
        if std is not None and not all(_within(v, STD_RANGE) for v in std):
            raise JetsynthError(f"--std values must lie in [{STD_RANGE[0]:g}, {STD_RANGE[1]:g}] "
                                f"(pixels are scaled to [0, 1] first; outside it a network trains "
                                f"at chance), got {_numbers(std)}")
        path = os.path.expanduser(path) if path else None  # the shell leaves ~ after ':' as it is
        return cls(kind=kind, path=path or None, subset=float(subset), seed=int(seed),
                   val_split=float(val_split), input_size=None if input_size is None else int(input_size),
                   mean=mean, std=std, augment=bool(augment))

    def __str__(self) -> str:
        return self.kind if self.path is None else f"{self.kind}:{self.path}"


def _within(value: float, bounds: tuple[float, float]) -> bool:
    """Whether `value` lies in `bounds`; NaN and infinities pass, for the check that names them."""
    return not math.isfinite(value) or bounds[0] <= value <= bounds[1]


def _numbers(values: tuple[float, ...]) -> str:
    return ",".join(f"{v:g}" for v in values)


@dataclass
class Dataset:
    """Normalised images and labels; `preprocessing` says how raw pixels map to inputs
    (x = (pixel * pixel_scale - mean) / std per channel, after resizing to `resize` when given,
    layout NCHW, channels `color`) and names the classes, so a deployed model can be fed without
    jetsynth. `val_x`/`val_y` (possibly empty) are the validation split, held out of training;
    `augment` asks the trainer for `training_batch`'s random crops and flips."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: int
    preprocessing: dict = field(default_factory=dict)
    val_x: torch.Tensor | None = None
    val_y: torch.Tensor | None = None
    augment: bool = False

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c, h, w = self.train_x.shape[1:]
        return int(c), int(h), int(w)


class MappedImages:
    """A split of uint8 images kept as they are (a memory-mapped decode cache, or the uint8 arrays
    a dataset's files hold) and normalised and resized only when used, so memory stays flat
    however many images there are: only the batch in use is ever held as floats. Indexing (an
    integer, a slice, an index array or tensor) returns a float tensor, as indexing a tensor of
    normalised images would; the trainer instead reads `raw` rows (in a background thread) and
    turns them into inputs with `unit` and `normalise` on its own device (`data.stream`).
    `size`: the side images are resized to when used (None: as stored)."""

    def __init__(self, pixels: np.ndarray, rows: np.ndarray, mean, std, size: int | None = None):
        self.pixels = pixels
        self.rows = np.asarray(rows, dtype=np.int64)
        view = (1, -1, 1, 1)
        self.mean = torch.as_tensor(mean, dtype=torch.float32).view(view)
        self.std = torch.as_tensor(std, dtype=torch.float32).view(view)
        self.size = None if size is None or tuple(pixels.shape[2:]) == (size, size) else int(size)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def shape(self) -> torch.Size:
        c, h, w = self.pixels.shape[1:]
        if self.size is not None:
            h = w = self.size
        return torch.Size((len(self.rows), c, h, w))

    def subset(self, index) -> MappedImages:
        """The images at `index` (an index array or tensor), still stored, not yet floats."""
        if isinstance(index, torch.Tensor):
            index = index.numpy()
        chosen = MappedImages(self.pixels, self.rows[index], self.mean, self.std)
        chosen.size = self.size
        return chosen

    def raw(self, index, pin: bool = False) -> torch.Tensor:
        """The stored uint8 images (N, C, H, W) at `index` (an index array or tensor, or a
        slice), read from the file in row order; with `pin`, into page-locked memory (torch's
        caching host allocator reuses it) that a GPU copies from without blocking."""
        if isinstance(index, torch.Tensor):
            index = index.numpy()
        rows = self.rows[index]
        block = torch.empty((len(rows), *self.pixels.shape[1:]), dtype=torch.uint8, pin_memory=pin)
        if hasattr(self.pixels, "read_into"):  # a decode cache: read straight into the block
            self.pixels.read_into(rows, block.numpy())
            return block
        order = np.argsort(rows, kind="stable")  # read in row order, give back as asked
        block.numpy()[order] = self.pixels[rows[order]]
        return block

    def unit(self, raw: torch.Tensor) -> torch.Tensor:
        """uint8 images → float pixels in [0, 1], resized to `size`, on raw's device."""
        images = raw.float() * PIXEL_SCALE
        if self.size is None:
            return images
        return torch.nn.functional.interpolate(images, size=(self.size, self.size), mode="bilinear",
                                               align_corners=False, antialias=True)

    def normalise(self, unit: torch.Tensor) -> torch.Tensor:
        """Pixels in [0, 1] → the network's inputs: (x − mean) / std per channel."""
        return (unit - self.mean.to(unit.device)) / self.std.to(unit.device)

    def __getitem__(self, index) -> torch.Tensor:
        if isinstance(index, tuple):  # images[i, c]: the rows first, then within them
            return self[index[0]][(slice(None), *index[1:]) if not isinstance(
                index[0], (int, np.integer)) else index[1:]]
        single = isinstance(index, (int, np.integer))
        images = self.normalise(self.unit(self.raw([index] if single else index)))
        return images[0] if single else images


def training_rows(labels: np.ndarray, spec: DataSpec, validation: bool = True
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Rows of a training split (labels `labels`) that train and that validate: the validation
    split is a stratified draw of `spec.val_split` seeded by `spec.seed` (none when
    `validation` is False: the dataset brings its own), then `spec.subset` of the rest."""
    fraction = spec.val_split if validation else 0.0
    train, val = stratified_split(labels, fraction, (spec.seed, 1))
    if spec.subset < 1.0:
        check_subset(labels[train], spec.subset)
        train = train[stratified_subset(labels[train], spec.subset, spec.seed)]
    return train, val


def check_subset(labels: np.ndarray, fraction: float) -> None:
    """Refuse a --subset that keeps less than one training image of some class (the draw would
    still take one of each, and the run would train on a handful of images without a word)."""
    values, counts = np.unique(labels, return_counts=True)
    short = [(int(v), int(c)) for v, c in zip(values, counts, strict=True) if fraction * c < 0.5]
    if short:
        label, count = min(short, key=lambda pair: pair[1])
        raise JetsynthError(
            f"--subset {fraction:g} keeps less than one training image of {len(short)} of the "
            f"{len(values)} classes (class {label} has {count}: {fraction * count:.3g} images); "
            f"raise --subset to at least {0.5 / count:.2g}")


def stratified_subset(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Indices of a seeded draw of `fraction` of each class (at least one example per class),
    sorted so the subset keeps the original order."""
    rng = np.random.default_rng(seed)
    chosen = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        count = max(1, int(round(fraction * len(members))))
        chosen.append(rng.choice(members, size=count, replace=False))
    return np.sort(np.concatenate(chosen))


def stratified_split(labels: np.ndarray, fraction: float, seed) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held): a seeded draw of `fraction` of each class is held out (at least one example
    of every class with two or more, never a class's last one), both sorted; fraction 0 holds
    nothing out (and draws nothing, so the rest of a seeded run is unchanged)."""
    labels = np.asarray(labels)
    everything = np.arange(len(labels))
    if fraction <= 0.0:
        return everything, everything[:0]
    rng = np.random.default_rng(seed)
    held = [everything[:0]]
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        count = min(max(1, int(round(fraction * len(members)))), len(members) - 1)
        held.append(rng.choice(members, size=count, replace=False))
    held = np.sort(np.concatenate(held))
    return np.setdiff1d(everything, held), held


def normalisation(spec: DataSpec, channels: int, computed) -> tuple[list[float], list[float]]:
    """(mean, std) per channel: --mean/--std when given (checked against the channel count),
    else `computed()` from the training split."""
    if spec.mean is None:
        return computed()
    if len(spec.mean) != channels:
        raise JetsynthError(
            f"--mean/--std give {len(spec.mean)} value(s) but the images have {channels} "
            f"channel(s): give one --mean and one --std per channel"
        )
    return list(spec.mean), list(spec.std)


def preprocessing(spec: DataSpec, mean, std, channels: int, size: int | None,
                  class_names: list[str]) -> dict:
    """The preprocessing metadata genomes and exported models carry."""
    out = {
        "layout": "NCHW",
        "color": "RGB" if channels == 3 else "L",
        "pixel_scale": PIXEL_SCALE,
        "mean": [round(float(v), 6) for v in mean],
        "std": [round(float(v), 6) for v in std],
        "class_names": list(class_names),
    }
    if size is not None:
        out["resize"] = [int(size), int(size)]
    return out
