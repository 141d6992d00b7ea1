"""Your own images (`--data folder:DIR`): one sub-folder of PNG/JPEG files per class.

Layouts: `DIR/CLASS/*.png` (a pool: a stratified 20 % makes the test split, seeded by 0 so runs
of every seed test on the same images, and `--val-split` of the rest the validation split), or
`DIR/train/CLASS/…` with `DIR/val/CLASS/…` and/or `DIR/test/CLASS/…` beside it, used as given
(a missing one is drawn from `train` as above). Class names are the sorted sub-folder names;
folders and files whose names start with a dot are skipped.

Images are stretched to S×S (`--input-size S`; default: their own size when all of them are
square and of one size, else 32) and read as grayscale (one channel) when every image is
grayscale, else as RGB. They are decoded once into a uint8 cache file
(`$JETSYNTH_CACHE_DIR`, default the user cache folder, e.g. `~/.cache/jetsynth/folders`), keyed
by the folder's path, every image's relative path, size and modification time and S: later
loads (other generations, resumed runs, `export`) map it instead of decoding, and a changed
folder is decoded again. Batches are normalised when used, so a folder larger than memory works.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from jetsynth.data.dataset import (
    PIXEL_SCALE,
    Dataset,
    DataSpec,
    MappedImages,
    normalisation,
    preprocessing,
    stratified_split,
    training_rows,
)
from jetsynth.errors import JetsynthError
from jetsynth.storage import confine

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")
SPLITS = ("train", "val", "test")
DEFAULT_SIZE = 32
TEST_FRACTION = 0.2
TEST_SEED = 0
CACHE_ENV = "JETSYNTH_CACHE_DIR"
CACHE_FORMAT = 1
PIXELS_FILE = "pixels.npy"
META_FILE = "meta.json"


@dataclass
class FolderIndex:
    """What a folder holds: its classes, every image (split by split, class by class, sorted)
    with its label, and the rows of each split present as a sub-tree (`None`: a pool)."""

    root: Path
    classes: list[str]
    files: list[Path]
    labels: np.ndarray
    splits: dict[str, np.ndarray] | None


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def _class_images(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
        and all(_visible(Path(part)) for part in p.relative_to(folder).parts)
    )


def scan_folder(root: Path) -> FolderIndex:
    """The folder's classes and images, checked: every split has the same two or more class
    folders, none of them empty."""
    root = Path(root)
    if not root.is_dir():
        raise JetsynthError(f"dataset folder not found: {root} (check the path in --data)")
    present = [s for s in SPLITS if (root / s).is_dir()] if (root / "train").is_dir() else [None]
    if present == [None] and any((root / s).is_dir() for s in SPLITS[1:]):
        raise JetsynthError(f"{root} has val/ or test/ but no train/: put the training images in "
                            f"{root / 'train'}/CLASS/, or make every sub-folder a class")
    classes = None
    files, labels, rows = [], [], {}
    for split in present:
        base = root if split is None else root / split
        names = sorted(p.name for p in base.iterdir() if p.is_dir() and _visible(p))
        if not names:
            raise JetsynthError(f"{base}: no class sub-folders; put each class's PNG/JPEG images in "
                                f"a folder of its own ({base}/CLASS/IMAGE.png)")
        if classes is None:
            classes = names
            if len(classes) < 2:
                raise JetsynthError(f"{base}: only one class folder ({classes[0]}); a classifier "
                                    "needs at least two: add a sub-folder per class")
        elif names != classes:
            missing, extra = sorted(set(classes) - set(names)), sorted(set(names) - set(classes))
            detail = "; ".join(part for part in (f"missing {', '.join(missing)}" if missing else "",
                                                 f"extra {', '.join(extra)}" if extra else "") if part)
            raise JetsynthError(f"{base}: class folders differ from {root / 'train'} ({detail}); "
                                "every split needs the same class sub-folders")
        start = len(files)
        for label, name in enumerate(classes):
            found = _class_images(base / name)
            if not found:
                raise JetsynthError(f"{base / name}: empty class folder (no .png/.jpg/.jpeg images); "
                                    "add images or remove the folder")
            files += found
            labels += [label] * len(found)
        rows[split] = np.arange(start, len(files))
    return FolderIndex(root, classes, files, np.asarray(labels, dtype=np.int64),
                       None if present == [None] else rows)


def cache_root() -> Path:
    """Where decoded folders are kept: $JETSYNTH_CACHE_DIR, else the user cache folder."""
    given = os.environ.get(CACHE_ENV)
    if given:
        return Path(given)
    import platformdirs

    return Path(platformdirs.user_cache_dir("jetsynth")) / "folders"


def cache_name(index: FolderIndex, size: int | None) -> tuple[str, str]:
    """(prefix, name) of the folder's cache entry: the prefix names the folder and size, the
    name adds a hash of every image's relative path, byte size and modification time."""
    where = hashlib.sha256(str(index.root.resolve()).encode()).hexdigest()[:12]
    prefix = f"{where}-{size or 'auto'}-"
    content = hashlib.sha256(json.dumps([CACHE_FORMAT, size]).encode())
    for path in index.files:
        st = path.stat()
        content.update(f"{path.relative_to(index.root).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n"
                       .encode())
    return prefix, prefix + content.hexdigest()[:20]


def _unreadable(path: Path, exc: Exception) -> JetsynthError:
    return JetsynthError(f"{path}: cannot read this image ({exc}); replace or remove the file")


def _header(path: Path) -> tuple[str, tuple[int, int]]:
    """(mode, (width, height) as displayed) without decoding the pixels."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            width, height = image.size
            if image.getexif().get(0x0112) in (5, 6, 7, 8):  # EXIF orientation: a quarter turn
                width, height = height, width
            return image.mode, (width, height)
    except Exception as exc:  # Pillow raises many types for a bad file
        raise _unreadable(path, exc) from None


def decode_image(path: Path, mode: str, size: int) -> np.ndarray:
    """One image as uint8 (C, size, size): upright per its EXIF orientation, in `mode` ('L' or
    'RGB'), stretched to size×size (bilinear)."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image).convert(mode)
            image = image.resize((size, size), Image.Resampling.BILINEAR)
            pixels = np.asarray(image, dtype=np.uint8)
    except Exception as exc:
        raise _unreadable(path, exc) from None
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


PARALLEL_MIN = 256
"""Folders of at least this many images are decoded by a pool of processes, one per core;
smaller ones in this process (starting the pool would cost more than it saves)."""
CHUNK = 64
"""Images a decoding process takes at a time."""


def _decode_rows(cache: str, paths: list[Path], start: int, mode: str, size: int) -> int:
    """Decode `paths` into rows start… of the cache file being written (a pool process's job);
    returns how many."""
    pixels = np.load(cache, mmap_mode="r+")
    for offset, path in enumerate(paths):
        pixels[start + offset] = decode_image(path, mode, size)
    pixels.flush()
    return len(paths)


def _workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _fill(cache: Path, files: list[Path], mode: str, size: int, progress) -> None:
    """Decode every file into the cache file: in this process for a small folder, else chunk
    by chunk in a pool of processes, one per core; `progress(done, total)` after each chunk."""
    total = len(files)
    workers = _workers()
    if total < PARALLEL_MIN or workers < 2:
        for start in range(0, total, CHUNK):
            _decode_rows(str(cache), files[start : start + CHUNK], start, mode, size)
            if progress is not None:
                progress(min(start + CHUNK, total), total)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods()
                                          else None)
    done = 0
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        jobs = [pool.submit(_decode_rows, str(cache), files[start : start + CHUNK], start, mode, size)
                for start in range(0, total, CHUNK)]
        try:
            for job in as_completed(jobs):
                done += job.result()
                if progress is not None:
                    progress(done, total)
        except BaseException:
            for job in jobs:
                job.cancel()
            raise


def _check_room(where: Path, needed: int) -> None:
    """One line when the cache's disk cannot hold `needed` more bytes."""
    free = shutil.disk_usage(where).free
    if needed > free:
        raise JetsynthError(
            f"the decoded images need {needed / 1e9:.2f} GB in {where}, which has {free / 1e9:.2f} GB "
            f"free: free some space there or point ${CACHE_ENV} at a larger disk (or give a smaller "
            "--input-size)")


def _decode(index: FolderIndex, size: int | None, entry: Path, prefix: str, progress=None) -> None:
    """Decode every image into `entry` (written under a temporary name, then renamed, so a
    killed decode leaves no entry that looks complete), and drop older entries of the folder.
    A folder whose files change while it is decoded, or a disk too small, ends with one line."""
    requested = size
    headers = [_header(path) for path in index.files]
    channels = 1 if all(mode in GRAY_MODES for mode, _ in headers) else 3
    if size is None:
        shapes = {shape for _, shape in headers}
        width, height = next(iter(shapes))
        size = width if len(shapes) == 1 and width == height else DEFAULT_SIZE
    entry.parent.mkdir(parents=True, exist_ok=True)
    _check_room(entry.parent, len(index.files) * channels * size * size + (1 << 20))
    partial = Path(tempfile.mkdtemp(prefix=entry.name + ".partial-", dir=entry.parent))
    try:
        pixels = np.lib.format.open_memmap(partial / PIXELS_FILE, mode="w+", dtype=np.uint8,
                                           shape=(len(index.files), channels, size, size))
        del pixels
        mode = "L" if channels == 1 else "RGB"
        try:
            _fill(partial / PIXELS_FILE, index.files, mode, size, progress)
        except JetsynthError:
            _check_unchanged(index, requested, entry)
            raise
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise JetsynthError(
                    f"the disk holding {entry.parent} filled up while decoding {index.root}: free "
                    f"some space there or point ${CACHE_ENV} at a larger disk") from None
            raise
        _check_unchanged(index, requested, entry)
        (partial / META_FILE).write_text(json.dumps({
            "format": CACHE_FORMAT, "folder": str(index.root.resolve()), "images": len(index.files),
            "channels": channels, "size": size, "classes": index.classes}))
        try:
            partial.rename(entry)
        except OSError:  # another process finished the same entry first
            shutil.rmtree(partial, ignore_errors=True)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    for stale in entry.parent.glob(prefix + "*"):
        if stale.name != entry.name and ".partial-" not in stale.name:
            shutil.rmtree(stale, ignore_errors=True)


def _check_unchanged(index: FolderIndex, size: int | None, entry: Path) -> None:
    """One line when the folder's images changed since it was scanned (added, removed,
    rewritten): what was decoded would no longer be what the cache entry's name promises."""
    try:
        now = cache_name(scan_folder(index.root), size)[1]
    except (OSError, JetsynthError):
        now = None
    if now != entry.name:
        raise JetsynthError(f"{index.root} changed while its images were decoded (files added, "
                            "removed or rewritten); run again once nothing writes to it")


PREADV_BUFFERS = 1024
"""Rows one `preadv` fills at most (Linux's IOV_MAX)."""


class StoredPixels:
    """The cache's uint8 images (N, C, S, S) read from the file row by row when indexed
    (`os.pread`, consecutive rows in one read), never mapped: pages of a memory map that a
    training has touched count in the process's resident memory, which would then grow with
    the folder (6,600 photos: 1 GB); read this way they stay in the kernel's page cache only.
    Pickled (a Ray worker) it travels as the plain array."""

    def __init__(self, path: Path):
        self.path = Path(path)
        with open(self.path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                    else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = read(f)
            self.offset = f.tell()
        if fortran or dtype != np.uint8 or len(shape) != 4:
            raise JetsynthError(f"{self.path}: damaged cache entry; delete its folder and run again")
        self.shape = tuple(int(n) for n in shape)
        self.dtype = np.dtype(np.uint8)
        self.ndim = 4
        self.row_bytes = int(np.prod(self.shape[1:]))
        self.fd = os.open(self.path, os.O_RDONLY)

    def __len__(self) -> int:
        return self.shape[0]

    def __del__(self) -> None:
        fd = getattr(self, "fd", None)
        if fd is not None:
            os.close(fd)
            self.fd = None

    def __getitem__(self, index) -> np.ndarray:
        single = isinstance(index, (int, np.integer))
        rows = np.arange(len(self))[[index] if single else index]
        out = np.empty((len(rows), *self.shape[1:]), dtype=np.uint8)
        self.read_into(rows, out)
        return out[0] if single else out

    def read_into(self, rows: np.ndarray, out: np.ndarray) -> None:
        """Row `rows[i]` into `out[i]` (a C-contiguous uint8 array shaped (len(rows), C, S, S),
        e.g. a batch's pinned buffer): the file is read in row order, each run of consecutive
        rows with one `preadv` straight into the rows' places in `out`, so a batch costs one
        copy from the page cache and no reordering afterwards."""
        if not out.flags.c_contiguous:
            raise ValueError("read_into needs a C-contiguous output array")
        flat = out.reshape(len(rows), self.row_bytes)
        order = np.argsort(rows, kind="stable")
        ranked = rows[order]
        start = 0
        while start < len(rows):
            end = start + 1
            while end < len(rows) and end - start < PREADV_BUFFERS and ranked[end] == ranked[end - 1] + 1:
                end += 1
            wanted = (end - start) * self.row_bytes
            got = os.preadv(self.fd, [flat[k] for k in order[start:end]],
                            self.offset + int(ranked[start]) * self.row_bytes)
            if got != wanted:
                raise JetsynthError(f"{self.path}: truncated cache entry; delete its folder and "
                                    "run again")
            start = end

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        whole = self[:]
        return whole if dtype is None else whole.astype(dtype)

    def __reduce__(self):
        return (np.asarray, (self[:],))


def decoded_folder(index: FolderIndex, size: int | None, progress=None) -> StoredPixels:
    """Every image of the folder as uint8 (N, C, S, S) read from the cache file when used
    (`StoredPixels`), from the cache when it holds this folder as it is now, else decoded into it
    first (`progress(done, total)` in images while decoding)."""
    prefix, name = cache_name(index, size)
    root = cache_root()
    entry = confine(root / name, root, folder=True)  # a planted link is refused, never written through
    if not (entry / META_FILE).is_file():
        _decode(index, size, entry, prefix, progress)
    pixels = StoredPixels(entry / PIXELS_FILE)
    if len(pixels) != len(index.files):
        raise JetsynthError(f"{entry}: damaged cache entry; delete the folder and run again")
    return pixels


def channel_stats(pixels, rows: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and (sample) standard deviation of pixel·scale over `rows`, read in
    blocks of about 64 MiB so a folder larger than memory is fine."""
    rows = np.sort(rows)
    channels = pixels.shape[1]
    total = np.zeros(channels)
    squares = np.zeros(channels)
    block = max(1, (64 << 20) // (8 * int(np.prod(pixels.shape[1:]))))
    for start in range(0, len(rows), block):
        values = pixels[rows[start : start + block]].astype(np.float64) * PIXEL_SCALE
        total += values.sum(axis=(0, 2, 3))
        squares += np.square(values).sum(axis=(0, 2, 3))
    count = len(rows) * pixels.shape[2] * pixels.shape[3]
    mean = total / count
    var = np.maximum(squares - count * mean**2, 0.0) / max(count - 1, 1)
    return mean.tolist(), np.maximum(np.sqrt(var), 1e-6).tolist()


def _split_rows(index: FolderIndex, spec: DataSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows that train, validate and test: the sub-trees given, the rest drawn (module doc)."""
    given = index.splits or {}
    pool = given.get("train", np.arange(len(index.files)))
    test = given.get("test")
    if test is None:
        kept, held = stratified_split(index.labels[pool], TEST_FRACTION, TEST_SEED)
        pool, test = pool[kept], pool[held]
    train, val = training_rows(index.labels[pool], spec, validation="val" not in given)
    val = given["val"] if "val" in given else pool[val]
    return pool[train], val, test


def load_image_folder(spec: DataSpec, progress=None) -> Dataset:
    """The `folder:DIR` dataset a spec names (see the module doc); `progress(done, total)`
    reports decoded images when the folder is not in the cache yet."""
    index = scan_folder(Path(spec.path))
    pixels = decoded_folder(index, spec.input_size, progress)
    train, val, test = _split_rows(index, spec)
    if len(test) == 0:
        raise JetsynthError(f"{index.root}: too few images to hold a test split out; give every "
                            "class at least two images (or a test/ sub-tree)")
    channels, size = pixels.shape[1], pixels.shape[2]
    mean, std = normalisation(spec, channels, lambda: channel_stats(pixels, train))

    def split(rows):
        return MappedImages(pixels, rows, mean, std), torch.from_numpy(index.labels[rows])

    (train_x, train_y), (val_x, val_y), (test_x, test_y) = split(train), split(val), split(test)
    return Dataset(
        name=str(spec), train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y,
        classes=len(index.classes),
        preprocessing=preprocessing(spec, mean, std, channels, size, index.classes),
        val_x=val_x, val_y=val_y, augment=spec.augment,
    )
