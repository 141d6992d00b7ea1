import threading

import numpy as np
import pytest
import torch

from jetsynth.data import stream
from jetsynth.data.dataset import Dataset, MappedImages
from jetsynth.data.load import DataSpec, load_dataset, training_batch
from jetsynth.data.stream import TrainingStream, _prefetched, batch_rows, photo_augment


def _photos(n=6, size=80, channels=3, augment=True) -> Dataset:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (n, channels, size, size), dtype=np.uint8)
    split = MappedImages(pixels, np.arange(n), [0.5] * channels, [0.25] * channels)
    labels = torch.arange(n) % 2
    return Dataset("photos", split, labels, split, labels, 2,
                   {"mean": [0.5] * channels, "std": [0.25] * channels}, augment=augment)


def test_batches_come_in_order_from_the_background_thread():
    reader = []

    def read(item):
        reader.append(threading.current_thread().name)
        return item * 2

    assert list(_prefetched(list(range(10)), read)) == [2 * i for i in range(10)]
    assert all(name.startswith("jetsynth-batches") for name in reader)
    assert [r.tolist() for r in batch_rows(torch.tensor([4, 2, 0, 1, 3]), 2)] == [[4, 2], [0, 1], [3]]


def test_an_error_while_reading_reaches_the_trainer_in_its_place():
    def read(item):
        if item == 2:
            raise OSError("disk gone")
        return item

    got = []
    with pytest.raises(OSError, match="disk gone"):
        for value in _prefetched(list(range(5)), read):
            got.append(value)
    assert got == [0, 1]


def test_the_stream_gives_what_indexing_and_training_batch_give(digits):
    permutation = torch.randperm(len(digits.train_x), generator=torch.Generator().manual_seed(1))
    batches = list(TrainingStream(digits).batches(permutation, 100, torch.Generator()))
    assert len(batches) == -(-len(permutation) // 100)
    images, labels = batches[1]
    assert torch.equal(images, digits.train_x[permutation[100:200]])
    assert torch.equal(labels, digits.train_y[permutation[100:200]])
    again, _ = training_batch(digits, permutation[100:200], torch.Generator())
    assert torch.equal(again, images)


def test_small_images_keep_crop_and_flip_photos_get_resized_crops_flips_and_jitter(monkeypatch):
    calls = []
    monkeypatch.setattr(stream, "photo_augment", lambda unit, g: calls.append(unit.shape) or unit)
    small = _photos(size=stream.SMALL_IMAGES)
    TrainingStream(small).inputs(small.train_x.raw(slice(None)), torch.Generator())
    assert calls == []
    big = _photos(size=stream.SMALL_IMAGES + 1)
    TrainingStream(big).inputs(big.train_x.raw(slice(None)), torch.Generator())
    assert calls == [(6, 3, 65, 65)]


def test_photo_augment_scales_a_flat_image_by_its_brightness_draw():
    flat = torch.full((4, 3, 16, 16), 0.5)
    out = photo_augment(flat, torch.Generator().manual_seed(7))
    draws = torch.rand((4, 8), generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    brightness = 1 + stream.JITTER * (2 * draws[:, 5] - 1)  # contrast and saturation keep it flat
    expected = (0.5 * brightness).float().view(4, 1, 1, 1).expand(4, 3, 16, 16)
    assert torch.allclose(out, expected, atol=1e-6)


def test_photo_augment_crop_of_everything_is_the_image_or_its_mirror(monkeypatch):
    monkeypatch.setattr(stream, "CROP_SCALE", (1.0, 1.0))
    monkeypatch.setattr(stream, "CROP_RATIO", (1.0, 1.0))
    monkeypatch.setattr(stream, "JITTER", 0.0)
    image = torch.rand((8, 3, 12, 12), generator=torch.Generator().manual_seed(0))
    out = photo_augment(image, torch.Generator().manual_seed(3))
    draws = torch.rand((8, 8), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    for i in range(8):
        expected = image[i].flip(-1) if draws[i, 4] < 0.5 else image[i]
        assert torch.allclose(out[i], expected, atol=1e-5)
    assert {bool(d < 0.5) for d in draws[:, 4]} == {True, False}


def test_photo_augment_is_seeded_and_stays_in_range():
    image = torch.rand((5, 3, 96, 96), generator=torch.Generator().manual_seed(0))
    a = photo_augment(image, torch.Generator().manual_seed(1))
    b = photo_augment(image, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == image.shape and not torch.equal(a, image)
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0


def test_resize_happens_per_batch_on_the_stored_uint8(tmp_path):
    data = load_dataset(DataSpec.parse("digits", input_size=40))
    assert data.train_x.pixels.dtype == np.uint8 and data.train_x.pixels.shape[2:] == (28, 28)
    images, _ = next(TrainingStream(data).batches(torch.arange(8), 8, torch.Generator()))
    assert images.shape == (8, 1, 40, 40)
