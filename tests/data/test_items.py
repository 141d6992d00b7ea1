import re

import numpy as np
import pytest
import torch
from conftest import write_image_tree
from PIL import Image

from jetsynth.data.dataset import DataSpec
from jetsynth.data.items import items_dataset
from jetsynth.data.load import load_dataset
from jetsynth.errors import JetsynthError


def _spec(**options):
    return DataSpec.parse("python:List", **options)


def _folder_items(root, classes):
    """The folder's images as (uint8 CHW tensor, label) items, in the folder loader's order."""
    items = []
    for label, name in enumerate(classes):
        for path in sorted((root / name).iterdir()):
            items.append((torch.from_numpy(np.array(Image.open(path)))[None], label))
    return items


def test_items_are_split_and_normalised_as_the_same_images_in_a_folder(tmp_path):
    classes = ("cat", "dog", "owl")
    root = write_image_tree(tmp_path / "pets", classes=classes, per_class=10)
    folder = load_dataset(DataSpec.parse(f"folder:{root}", seed=3))
    items = items_dataset(_folder_items(root, classes), _spec(seed=3), list(classes))
    for split in ("train", "val", "test"):
        assert torch.equal(getattr(items, f"{split}_y"), getattr(folder, f"{split}_y"))
        assert torch.allclose(getattr(items, f"{split}_x")[:], getattr(folder, f"{split}_x")[:])
    assert items.preprocessing["class_names"] == list(classes)
    assert items.preprocessing["mean"] == folder.preprocessing["mean"]
    assert items.input_shape == (1, 8, 8) and items.classes == 3


def test_float_images_in_0_1_equal_their_uint8_pixels():
    generator = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (20, 3, 6, 6), dtype=torch.uint8, generator=generator)
    labels = [i % 2 for i in range(20)]
    pairs = list(zip(pixels, labels, strict=True))
    as_bytes = items_dataset(pairs, _spec())
    as_floats = items_dataset([(p.float() / 255, torch.tensor(y)) for p, y in pairs], _spec())
    assert torch.equal(as_bytes.train_x[:], as_floats.train_x[:])
    assert as_bytes.preprocessing["color"] == "RGB"
    assert as_bytes.name == as_floats.name and re.fullmatch("python:List@[0-9a-f]{12}", as_bytes.name)
    relabelled = items_dataset([(p, 1 - y) for p, y in pairs], DataSpec.parse(as_bytes.name))
    assert relabelled.name.startswith("python:List@") and relabelled.name != as_bytes.name
    assert as_bytes.preprocessing["class_names"] == ["0", "1"]
    resized = items_dataset(pairs, _spec(input_size=12))
    assert resized.input_shape == (3, 12, 12) and resized.preprocessing["resize"] == [12, 12]


@pytest.mark.parametrize("items, message", [
    (5, "has no len"),
    ([], "no items"),
    ([torch.zeros(1, 4, 4)], "not an \\(image, label\\) pair"),
    ([(Image.new("L", (4, 4)), 0)], "PIL image converts with torchvision's ToTensor"),
    ([(torch.zeros(2, 4, 4), 0)], "1 or 3 channels"),
    ([(torch.full((1, 4, 4), 2.0), 0)], "float pixels must lie in \\[0, 1\\]"),
    ([(torch.zeros(1, 4, 4, dtype=torch.int32), 0)], "pixels of type torch.int32"),
    ([(torch.zeros(1, 4, 4), 0.5)], "label 0.5 is not an integer"),
    ([(torch.zeros(1, 4, 4), 0), (torch.zeros(1, 5, 5), 1)], "give input_size=S"),
    ([(torch.zeros(1, 4, 4), 0), (torch.zeros(1, 4, 4), 0)], "one class only"),
])
def test_bad_items_end_with_one_clear_error(items, message):
    with pytest.raises(JetsynthError, match=message):
        items_dataset(items, _spec())


def test_a_spec_naming_a_dataset_object_does_not_load_from_disk():
    with pytest.raises(JetsynthError, match="dataset object given to jetsynth.evolve.*open_run"):
        load_dataset(_spec())
