"""Datasets behind one interface: images as normalised float tensors (N, C, H, W) plus labels.

A spec string names the source (`digits`, `mnist:DIR`, `fashion-mnist:DIR`, `cifar10:DIR`,
`stl10:DIR`, `folder:DIR`: your own images in class sub-folders, see `imagefolder`). Every dataset
has three splits: training, validation and test. The validation split (`val_split`, seeded and
stratified) is held out of the training split; evolution chooses on it and reports on the test
split. `subset` then draws a stratified, seeded fraction of what is left for training (the
validation and test splits always stay whole, so accuracies of runs on different subsets stay
comparable). `input_size` resizes every image to S×S; `mean`/`std` replace the normalisation
computed from the training split. Every malformed input raises :class:`JetsynthError` with one
line that names the file and what to do.
"""

from __future__ import annotations

import gzip
import io
import math
import pickle
import struct
from pathlib import Path

import numpy as np
import torch

from jetsynth.data.dataset import (
    CLASS_NAMES,
    IN_PROCESS,
    Dataset,
    DataSpec,
    MappedImages,
    normalisation,
    preprocessing,
    stratified_subset,
    training_rows,
)
from jetsynth.data.stream import TrainingStream, augment_batch
from jetsynth.errors import JetsynthError

__all__ = ["augment_batch", "load_dataset", "read_idx", "training_batch"]

IDX_IMAGES_MAGIC = 0x00000803
IDX_LABELS_MAGIC = 0x00000801


def load_dataset(spec: DataSpec, progress=None) -> Dataset:
    """Load, check, split and normalise the dataset a spec names (its seed drives the validation
    and subset draws); `progress(done, total)`: images decoded, for a folder not yet cached."""
    loaders = {
        "digits": _load_digits,
        "mnist": _load_idx_folder,
        "fashion-mnist": _load_idx_folder,
        "cifar10": _load_cifar10,
        "stl10": _load_stl10,
    }
    if spec.kind == IN_PROCESS:
        raise JetsynthError(f"the data {spec} is a dataset object given to jetsynth.evolve in "
                            "Python, which only that program holds: give it again, "
                            "jetsynth.open_run(RUN, data=the_same_dataset)")
    if spec.path is not None and not Path(spec.path).is_dir():
        raise JetsynthError(f"dataset folder not found: {spec.path} (check the path in --data)")
    if spec.kind == "folder":
        from jetsynth.data.imagefolder import load_image_folder

        return load_image_folder(spec, progress)
    train_x, train_y, test_x, test_y = loaders[spec.kind](spec.path)
    classes = len(CLASS_NAMES[spec.kind])
    _check_pair(train_x, train_y, f"{spec} training split", classes)
    _check_pair(test_x, test_y, f"{spec} test split", classes)
    if train_x.shape[1:] != test_x.shape[1:]:
        raise JetsynthError(
            f"{spec}: training images are {'×'.join(map(str, train_x.shape[1:]))} but test images "
            f"{'×'.join(map(str, test_x.shape[1:]))} (channels×height×width); the files do not "
            "belong together, re-download them"
        )
    train_rows, val_rows = training_rows(train_y, spec)
    check_memory(spec, len(train_rows) + len(val_rows) + len(test_x), train_x.shape[1],
                 spec.input_size or max(train_x.shape[2:]))
    return _normalise(spec, (train_x[train_rows], train_y[train_rows]), (test_x, test_y),
                      (train_x[val_rows], train_y[val_rows]), CLASS_NAMES[spec.kind])


FLOAT_COPIES = 2
"""Float copies of the images alive at once while they are prepared (resized, then normalised)."""


def available_memory() -> int | None:
    """Bytes of memory the system can still give (MemAvailable), or None where it is unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def images_bytes(images: int, channels: int, side: int) -> int:
    """Bytes the prepared images take in memory: fp32 pixels, `FLOAT_COPIES` copies at the peak."""
    return FLOAT_COPIES * images * channels * side * side * 4


def check_memory(spec: DataSpec, images: int, channels: int, side: int,
                 available: int | None = None) -> None:
    """Refuse an --input-size whose images cannot fit in memory (estimated by `images_bytes`)
    before any is resized, rather than die in the allocator; `available`: bytes (default:
    the system's available memory)."""
    available = available_memory() if available is None else available
    need = images_bytes(images, channels, side)
    if available is not None and need > available:
        raise JetsynthError(
            f"{spec} at {side}×{side} pixels needs about {need / 1e9:,.1f} GB of memory for its "
            f"{images:,} images ({FLOAT_COPIES} × {images:,} × {channels} × {side} × {side} × 4 "
            f"bytes), more than the {available / 1e9:,.1f} GB available: choose a smaller "
            "--input-size")


def _check_pair(images: np.ndarray, labels: np.ndarray, what: str, classes: int) -> None:
    if images.ndim != 4:
        raise JetsynthError(f"{what}: images have shape {images.shape}, expected (N, C, H, W)")
    if len(images) != len(labels):
        raise JetsynthError(
            f"{what}: {len(images)} images but {len(labels)} labels; the files do not belong "
            "together, re-download them"
        )
    if len(images) == 0:
        raise JetsynthError(f"{what}: no examples")
    if labels.min() < 0 or labels.max() >= classes:
        raise JetsynthError(f"{what}: labels run from {labels.min()} to {labels.max()}, but the "
                            f"dataset has classes 0..{classes - 1}; the label files are damaged, "
                            "re-download them")


def resize(images: torch.Tensor, size: int | None) -> torch.Tensor:
    """Images (N, C, H, W) resized to size×size (bilinear, antialiased when shrinking);
    unchanged when `size` is None or already theirs."""
    if size is None or tuple(images.shape[2:]) == (size, size):
        return images
    if len(images) == 0:
        return images.new_zeros((0, images.shape[1], size, size))
    return torch.nn.functional.interpolate(images, size=(size, size), mode="bilinear",
                                           align_corners=False, antialias=True)


def _normalise(spec: DataSpec, train, test, val, class_names) -> Dataset:
    """The splits as uint8 `MappedImages` (normalised and resized per batch, never whole), with
    the normalisation computed from the training split's stored pixels unless given."""
    from jetsynth.data.imagefolder import channel_stats

    train_pixels = np.ascontiguousarray(train[0], dtype=np.uint8)
    channels = train_pixels.shape[1]
    every = np.arange(len(train_pixels))
    mean, std = normalisation(spec, channels, lambda: channel_stats(train_pixels, every))

    def split(images, y):
        pixels = np.ascontiguousarray(images, dtype=np.uint8)
        return (MappedImages(pixels, np.arange(len(pixels)), mean, std, spec.input_size),
                torch.from_numpy(np.asarray(y, dtype=np.int64)))

    (train_x, train_y), (test_x, test_y), (val_x, val_y) = (
        (MappedImages(train_pixels, every, mean, std, spec.input_size),
         torch.from_numpy(np.asarray(train[1], dtype=np.int64))),
        split(*test), split(*val))
    size = train_x.shape[2] if spec.input_size is not None else None
    return Dataset(
        name=str(spec),
        train_x=train_x,
        train_y=train_y,
        test_x=test_x,
        test_y=test_y,
        classes=int(max(train[1].max(), test[1].max())) + 1,
        preprocessing=preprocessing(spec, mean, std, channels, size, class_names),
        val_x=val_x,
        val_y=val_y,
        augment=spec.augment,
    )


def training_batch(dataset: Dataset, indices: torch.Tensor, generator: torch.Generator
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """The training images and labels at `indices`, as the trainer feeds them (on the CPU): with
    `dataset.augment` (--augment), augmented by `data.stream` (padded crop and flip for small
    images, random resized crop, flip and colour jitter for photos), drawn from `generator` (the
    trainer's batch-order generator, whose state its checkpoints keep, so a resumed training
    draws the same)."""
    return TrainingStream(dataset).batch(indices, generator)


def _load_digits(_path):
    """scikit-learn's bundled 8×8 handwritten digits (1,797 images, no download), upsampled to
    28×28 so that MNIST architectures apply unchanged; a fixed stratified 80/20 split."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    small = torch.from_numpy(bunch.images).float().unsqueeze(1) * (255.0 / 16.0)
    big = torch.nn.functional.interpolate(small, size=(28, 28), mode="bilinear", align_corners=False)
    images = big.round().clamp(0, 255).to(torch.uint8).numpy()
    labels = bunch.target.astype(np.int64)
    test = stratified_subset(labels, 0.2, seed=0)
    train = np.setdiff1d(np.arange(len(labels)), test)
    return images[train], labels[train], images[test], labels[test]


def read_idx(path: Path, magic: int) -> np.ndarray:
    """Parse an IDX file (optionally gzipped) whose magic number must be `magic`."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise JetsynthError(f"{path}: damaged gzip data ({exc}); re-download the file") from None
    if len(raw) < 4:
        raise JetsynthError(f"{path}: truncated IDX file (no header); re-download the file")
    found = struct.unpack(">I", raw[:4])[0]
    if found != magic:
        raise JetsynthError(
            f"{path}: wrong magic number 0x{found:08x} (expected 0x{magic:08x}); "
            "this is not an IDX file of that kind"
        )
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise JetsynthError(f"{path}: truncated IDX header; re-download the file")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected = math.prod(dims)  # Python integers: a damaged header must not overflow
    if len(raw) - header < expected:
        raise JetsynthError(
            f"{path}: truncated: header promises {expected} bytes of data, file has "
            f"{len(raw) - header}; re-download the file"
        )
    return np.frombuffer(raw, dtype=np.uint8, count=expected, offset=header).reshape(dims)


def _find(folder: Path, names: list[str]) -> Path:
    for name in names:
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    raise JetsynthError(f"{folder}: missing {names[0]}[.gz] (standard IDX file names expected)")


def _load_idx_folder(path):
    folder = Path(path)
    out = []
    for split in ("train", "t10k"):
        images = read_idx(
            _find(folder, [f"{split}-images-idx3-ubyte", f"{split}-images.idx3-ubyte"]),
            IDX_IMAGES_MAGIC,
        )
        labels = read_idx(
            _find(folder, [f"{split}-labels-idx1-ubyte", f"{split}-labels.idx1-ubyte"]),
            IDX_LABELS_MAGIC,
        )
        out += [images[:, None, :, :], labels.astype(np.int64)]
    return tuple(out)


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Reads CIFAR-10's python batches without executing anything: only plain containers and
    numpy arrays may be rebuilt."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _read_cifar_pickle(path: Path):
    try:
        batch = _ArrayOnlyUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as exc:
        raise JetsynthError(
            f"{path}: not a CIFAR-10 python batch ({exc}); use the files from "
            "cifar-10-python.tar.gz or the binary version"
        ) from None
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise JetsynthError(f"{path}: data has shape {data.shape}, expected (N, 3072)")
    return data.reshape(-1, 3, 32, 32), labels


def _read_cifar_binary(path: Path):
    raw = np.frombuffer(path.read_bytes(), dtype=np.uint8)
    record = 1 + 3 * 32 * 32
    if raw.size == 0 or raw.size % record:
        raise JetsynthError(
            f"{path}: {raw.size} bytes is not a whole number of {record}-byte CIFAR-10 records; "
            "the file is truncated, re-download it"
        )
    rows = raw.reshape(-1, record)
    return rows[:, 1:].reshape(-1, 3, 32, 32), rows[:, 0].astype(np.int64)


def _load_cifar10(path):
    folder = Path(path)
    for sub in ("cifar-10-batches-py", "cifar-10-batches-bin"):
        if (folder / sub).is_dir():
            folder = folder / sub
    if (folder / "data_batch_1.bin").is_file():
        reader, train_names, test_name = _read_cifar_binary, "data_batch_{}.bin", "test_batch.bin"
    else:
        reader, train_names, test_name = _read_cifar_pickle, "data_batch_{}", "test_batch"
    parts = []
    for name in [train_names.format(i) for i in range(1, 6)] + [test_name]:
        if not (folder / name).is_file():
            raise JetsynthError(f"{folder}: missing CIFAR-10 file {name}")
        parts.append(reader(folder / name))
    train_x = np.concatenate([p[0] for p in parts[:5]])
    train_y = np.concatenate([p[1] for p in parts[:5]])
    return train_x, train_y, parts[5][0], parts[5][1]


def _load_stl10(path):
    """STL-10's binary files: images stored column-major (N, 3, 96, 96), labels 1..10."""
    folder = Path(path)
    if (folder / "stl10_binary").is_dir():
        folder = folder / "stl10_binary"
    out = []
    size = 3 * 96 * 96
    for split in ("train", "test"):
        xs, ys = folder / f"{split}_X.bin", folder / f"{split}_y.bin"
        for f in (xs, ys):
            if not f.is_file():
                raise JetsynthError(f"{folder}: missing STL-10 file {f.name}")
        raw = np.fromfile(xs, dtype=np.uint8)
        if raw.size == 0 or raw.size % size:
            raise JetsynthError(f"{xs}: truncated (not a whole number of 96×96×3 images)")
        images = raw.reshape(-1, 3, 96, 96).transpose(0, 1, 3, 2)
        labels = np.fromfile(ys, dtype=np.uint8).astype(np.int64) - 1
        if labels.size and (labels.min() < 0 or labels.max() > 9):
            raise JetsynthError(f"{ys}: labels outside 1..10; not an STL-10 label file")
        out += [images, labels]
    return tuple(out)
