"""Data given as an object (the Python API's `data=`): anything with `len()` and `[i]` giving
(image, label), such as a torch Dataset, turned into the record every part of jetsynth reads.

Images are CHW tensors or arrays (HW for one channel), float in [0, 1] or uint8, of one or three
channels; labels are integers from 0. They are kept as uint8 pixels, as a folder of images is
(`imagefolder`), and split the same way: a seeded, stratified 20 % tests (seed 0, so runs of
every seed test on the same images), `val_split` of the rest validates, `subset` of what is left
trains. `input_size` S stretches every image to S×S; without it all images must share one size.
"""

from __future__ import annotations

import hashlib

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
from jetsynth.data.imagefolder import TEST_FRACTION, TEST_SEED, channel_stats
from jetsynth.data.load import resize
from jetsynth.errors import JetsynthError


def items_dataset(items, spec: DataSpec, class_names: list[str] | None = None) -> Dataset:
    """The dataset of `items` prepared as `spec` says; `class_names`: one per label (default:
    the labels as text). Its name is the spec's with the fingerprint of the items (`KIND:NAME@
    DIGEST`, see `fingerprint`), so a run records which data it evolved on."""
    pixels, labels = _pixels(items, spec.input_size)
    name = f"{spec.kind}:{(spec.path or '').partition('@')[0]}@{fingerprint(pixels, labels)}"
    classes = int(labels.max()) + 1
    if len(np.unique(labels)) < 2:
        raise JetsynthError("the data has one class only; a classifier needs at least two")
    if class_names is None or len(class_names) != classes:
        class_names = [str(label) for label in range(classes)]
    kept, test = stratified_split(labels, TEST_FRACTION, TEST_SEED)
    if len(test) == 0:
        raise JetsynthError("too few images to hold a test split out: give every class at "
                            "least two images")
    train, val = training_rows(labels[kept], spec)
    train, val = kept[train], kept[val]
    channels = pixels.shape[1]
    mean, std = normalisation(spec, channels, lambda: channel_stats(pixels, train))

    def split(rows):
        return MappedImages(pixels, rows, mean, std), torch.from_numpy(labels[rows])

    (train_x, train_y), (val_x, val_y), (test_x, test_y) = split(train), split(val), split(test)
    return Dataset(
        name=name, train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y,
        classes=classes,
        preprocessing=preprocessing(spec, mean, std, channels, spec.input_size, class_names),
        val_x=val_x, val_y=val_y, augment=spec.augment,
    )


def fingerprint(pixels: np.ndarray, labels: np.ndarray) -> str:
    """The first 12 hex digits of the SHA-256 of the pixels, their shape and the labels."""
    digest = hashlib.sha256(str(pixels.shape).encode())
    digest.update(np.ascontiguousarray(pixels).tobytes())
    digest.update(np.ascontiguousarray(labels).tobytes())
    return digest.hexdigest()[:12]


def _pixels(items, size: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Every item's image as uint8 (N, C, H, W) and its label as int64 (N,), checked."""
    try:
        count = len(items)
    except TypeError:
        raise JetsynthError(f"data of type {type(items).__name__} has no len(): give a spec "
                            "string or a dataset of (image, label) items") from None
    if count == 0:
        raise JetsynthError("the data holds no items")
    pixels = None
    labels = np.empty(count, dtype=np.int64)
    for index in range(count):
        try:
            image, label = items[index]
        except (TypeError, ValueError):
            raise JetsynthError(f"data item {index} is not an (image, label) pair") from None
        image = _image(image, index, size)
        if pixels is None:
            pixels = np.empty((count, *image.shape), dtype=np.uint8)
        elif image.shape != pixels.shape[1:]:
            raise JetsynthError(
                f"data item {index} is {'×'.join(map(str, image.shape))} (channels×height×width) "
                f"but item 0 is {'×'.join(map(str, pixels.shape[1:]))}: give input_size=S to "
                "stretch every image to S×S")
        pixels[index] = image
        labels[index] = _label(label, index)
    return pixels, labels


def _image(image, index: int, size: int | None) -> np.ndarray:
    """One image as uint8 (C, H, W), stretched to size×size when `size` is given."""
    if not isinstance(image, (torch.Tensor, np.ndarray)):
        raise JetsynthError(f"data item {index}: the image is a {type(image).__name__}, not a "
                            "tensor (a PIL image converts with torchvision's ToTensor())")
    image = torch.as_tensor(image).detach().cpu()
    if image.ndim == 2:
        image = image[None]
    if image.ndim != 3 or image.shape[0] not in (1, 3):
        raise JetsynthError(f"data item {index}: an image of shape {tuple(image.shape)}; "
                            "expected channels×height×width with 1 or 3 channels")
    if image.dtype == torch.uint8:
        values = image.float() * PIXEL_SCALE
    elif image.is_floating_point():
        values = image.float()
        if not torch.isfinite(values).all() or values.min() < 0.0 or values.max() > 1.0:
            raise JetsynthError(f"data item {index}: float pixels must lie in [0, 1] (uint8 "
                                "images may hold 0-255); leave normalising to jetsynth (it "
                                "computes mean and std, or takes the mean and std settings)")
    else:
        raise JetsynthError(f"data item {index}: pixels of type {image.dtype}; give float in "
                            "[0, 1] or uint8")
    if size is not None:
        values = resize(values[None], size)[0].clamp(0.0, 1.0)
    elif image.dtype == torch.uint8:
        return image.numpy()
    return (values / PIXEL_SCALE).round().to(torch.uint8).numpy()


def _label(label, index: int) -> int:
    if isinstance(label, torch.Tensor) and label.numel() == 1 and not label.is_floating_point():
        label = label.item()
    if isinstance(label, (int, np.integer)) and not isinstance(label, bool) and label >= 0:
        return int(label)
    raise JetsynthError(f"data item {index}: the label {label!r} is not an integer 0 or more")
