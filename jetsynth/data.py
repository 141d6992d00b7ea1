"""Datasets behind one interface: images as normalised float tensors (N, C, H, W) plus labels.

A spec string names the source (`digits`, `mnist:DIR`, `fashion-mnist:DIR`, `cifar10:DIR`,
`stl10:DIR`); `subset` draws a stratified, seeded fraction of the *training* split (the test split
always stays whole, so accuracies of runs on different subsets stay comparable). Every malformed
input raises :class:`JetsynthError` with one line that names the file and what to do.
"""

from __future__ import annotations

import gzip
import io
import pickle
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .errors import JetsynthError

KINDS = ("digits", "mnist", "fashion-mnist", "cifar10", "stl10")

IDX_IMAGES_MAGIC = 0x00000803
IDX_LABELS_MAGIC = 0x00000801


@dataclass(frozen=True)
class DataSpec:
    """Where a dataset comes from; small and serialisable so a remote worker can load it too."""

    kind: str = "digits"
    path: str | None = None
    subset: float = 1.0
    seed: int = 0

    @classmethod
    def parse(cls, text: str, subset: float = 1.0, seed: int = 0) -> DataSpec:
        kind, _, path = text.partition(":")
        kind = kind.strip().lower()
        if kind not in KINDS:
            raise JetsynthError(
                f"unknown dataset '{text}': use one of digits, mnist:DIR, fashion-mnist:DIR, "
                "cifar10:DIR, stl10:DIR"
            )
        if kind == "digits" and path:
            raise JetsynthError("the built-in 'digits' dataset takes no path: use --data digits")
        if kind != "digits" and not path:
            raise JetsynthError(f"--data {kind} needs a folder: use --data {kind}:DIR")
        if not 0.0 < subset <= 1.0:
            raise JetsynthError(f"--subset must lie in (0, 1], got {subset}")
        return cls(kind=kind, path=path or None, subset=float(subset), seed=int(seed))

    def __str__(self) -> str:
        return self.kind if self.path is None else f"{self.kind}:{self.path}"


@dataclass
class Dataset:
    """Normalised images and labels; `preprocessing` says how raw pixels map to inputs
    (x = (pixel * scale - mean) / std per channel, layout NCHW) so a deployed model can be fed
    without jetsynth."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: int
    preprocessing: dict = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c, h, w = self.train_x.shape[1:]
        return int(c), int(h), int(w)


def load_dataset(spec: DataSpec) -> Dataset:
    """Load, check and normalise the dataset a spec names (its seed drives the subset draw)."""
    loaders = {
        "digits": _load_digits,
        "mnist": _load_idx_folder,
        "fashion-mnist": _load_idx_folder,
        "cifar10": _load_cifar10,
        "stl10": _load_stl10,
    }
    if spec.path is not None and not Path(spec.path).is_dir():
        raise JetsynthError(f"dataset folder not found: {spec.path} (check the path in --data)")
    train_x, train_y, test_x, test_y = loaders[spec.kind](spec.path)
    _check_pair(train_x, train_y, f"{spec} training split")
    _check_pair(test_x, test_y, f"{spec} test split")
    if spec.subset < 1.0:
        keep = stratified_subset(train_y, spec.subset, spec.seed)
        train_x, train_y = train_x[keep], train_y[keep]
    return _normalise(str(spec), train_x, train_y, test_x, test_y)


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


def _check_pair(images: np.ndarray, labels: np.ndarray, what: str) -> None:
    if images.ndim != 4:
        raise JetsynthError(f"{what}: images have shape {images.shape}, expected (N, C, H, W)")
    if len(images) != len(labels):
        raise JetsynthError(
            f"{what}: {len(images)} images but {len(labels)} labels; the files do not belong "
            "together, re-download them"
        )
    if len(images) == 0:
        raise JetsynthError(f"{what}: no examples")


def _normalise(name, train_x, train_y, test_x, test_y) -> Dataset:
    scale = 1.0 / 255.0
    train = torch.from_numpy(np.array(train_x)).float() * scale
    mean = train.mean(dim=(0, 2, 3))
    std = train.std(dim=(0, 2, 3)).clamp_min(1e-6)
    view = (1, -1, 1, 1)
    test = torch.from_numpy(np.array(test_x)).float() * scale
    return Dataset(
        name=name,
        train_x=(train - mean.view(view)) / std.view(view),
        train_y=torch.from_numpy(np.asarray(train_y, dtype=np.int64)),
        test_x=(test - mean.view(view)) / std.view(view),
        test_y=torch.from_numpy(np.asarray(test_y, dtype=np.int64)),
        classes=int(max(train_y.max(), test_y.max())) + 1,
        preprocessing={
            "layout": "NCHW",
            "pixel_scale": scale,
            "mean": [round(float(v), 6) for v in mean],
            "std": [round(float(v), 6) for v in std],
        },
    )


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
    expected = int(np.prod(dims))
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
