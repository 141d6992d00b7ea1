import os

import numpy as np
import pytest
import torch
from conftest import write_image_tree
from PIL import Image

from jetsynth.data import imagefolder
from jetsynth.data.load import DataSpec, load_dataset
from jetsynth.errors import JetsynthError


def _load(root, **options):
    return load_dataset(DataSpec.parse(f"folder:{root}", **options))


@pytest.fixture
def decodes(monkeypatch):
    """Counts the images decoded (the cache spares the later loads)."""
    calls = []
    real = imagefolder.decode_image

    def spy(path, mode, size):
        calls.append(path)
        return real(path, mode, size)

    monkeypatch.setattr(imagefolder, "decode_image", spy)
    return calls


def _rows(images):
    return {bytes(np.round(row.numpy() * 1000).astype(np.int64)) for row in images}


def test_gray_pool_is_split_stratified(tmp_path):
    root = write_image_tree(tmp_path / "pets", classes=("cat", "dog", "owl"), per_class=10)
    data = _load(root)
    assert data.input_shape == (1, 8, 8) and data.classes == 3
    assert data.preprocessing["class_names"] == ["cat", "dog", "owl"]
    assert data.preprocessing["color"] == "L" and data.preprocessing["resize"] == [8, 8]
    # 20 % of each class tests (2), a tenth of the other 8 validates (1), 7 train
    for split, count in ((data.test_y, 2), (data.val_y, 1), (data.train_y, 7)):
        assert np.bincount(split.numpy(), minlength=3).tolist() == [count] * 3
    assert not _rows(data.val_x) & _rows(data.train_x)
    assert not _rows(data.test_x) & _rows(data.train_x)
    assert abs(float(data.train_x[:].mean())) < 1e-5  # normalised with the training split's figures
    assert float(data.train_x[:].std()) == pytest.approx(1.0, abs=0.01)
    assert data.train_x[3].shape == (1, 8, 8) and torch.equal(data.train_x[3], data.train_x[[3]][0])


def test_rgb_when_any_image_has_colour_and_32_when_sizes_differ(tmp_path):
    root = write_image_tree(tmp_path / "pics", per_class=4, size=(10, 6))
    Image.fromarray(np.zeros((12, 12, 3), np.uint8), "RGB").save(root / "dog" / "colour.png")
    data = _load(root)
    assert data.input_shape == (3, 32, 32)
    assert data.preprocessing["color"] == "RGB" and len(data.preprocessing["mean"]) == 3
    assert _load(root, input_size=12).input_shape == (3, 12, 12)


def test_jpeg_and_nested_files_count_hidden_and_other_files_do_not(tmp_path):
    root = write_image_tree(tmp_path / "pics", per_class=3)
    (root / "cat" / "more").mkdir()
    Image.fromarray(np.full((8, 8), 50, np.uint8)).save(root / "cat" / "more" / "x.JPG")
    (root / "cat" / "notes.txt").write_text("not an image")
    (root / ".hidden").mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / ".hidden" / "x.png")
    index = imagefolder.scan_folder(root)
    assert index.classes == ["cat", "dog"] and len(index.files) == 7


def test_split_sub_trees_are_used_as_given(tmp_path):
    root = tmp_path / "pets"
    write_image_tree(root / "train", per_class=6)
    write_image_tree(root / "val", per_class=2, seed=1)
    write_image_tree(root / "test", per_class=3, seed=2)
    data = _load(root, val_split=0.5)  # DIR/val wins over --val-split
    assert (len(data.train_x), len(data.val_x), len(data.test_x)) == (12, 4, 6)
    assert data.preprocessing["class_names"] == ["cat", "dog"]


def test_missing_splits_are_drawn_from_train(tmp_path):
    root = tmp_path / "pets"
    write_image_tree(root / "train", per_class=10, mode="RGB")
    write_image_tree(root / "test", per_class=3, mode="RGB", seed=2)
    data = _load(root)
    assert data.input_shape == (3, 8, 8)
    assert (len(data.train_x), len(data.val_x), len(data.test_x)) == (18, 2, 6)
    only_train = tmp_path / "only"
    write_image_tree(only_train / "train", per_class=10)
    data = _load(only_train)
    assert (len(data.train_x), len(data.val_x), len(data.test_x)) == (14, 2, 4)


def test_given_mean_and_std(tmp_path):
    root = write_image_tree(tmp_path / "pics", per_class=4, mode="RGB")
    data = _load(root, mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5])
    assert data.preprocessing["mean"] == [0.5] * 3
    assert float(data.train_x[:].min()) >= -1.0 and float(data.train_x[:].max()) <= 1.0
    with pytest.raises(JetsynthError, match="give 1 value.* but the images have 3 channel"):
        _load(root, mean=[0.5], std=[0.5])


def test_decoded_once_then_read_from_the_cache(tmp_path, decodes):
    root = write_image_tree(tmp_path / "pets", per_class=5)
    first = _load(root)
    assert len(decodes) == 10
    second = _load(root)
    assert len(decodes) == 10  # mapped from the cache, nothing decoded
    assert torch.equal(first.test_x[:], second.test_x[:])
    assert isinstance(second.train_x.pixels, imagefolder.StoredPixels)
    entries = list(imagefolder.cache_root().glob("*"))
    changed = root / "cat" / "000.png"
    Image.fromarray(np.full((8, 8), 255, np.uint8)).save(changed)
    os.utime(changed, ns=(1, 1))
    _load(root)
    assert len(decodes) == 20  # the folder changed: decoded again, the stale entry dropped
    assert len(list(imagefolder.cache_root().glob("*"))) == len(entries)
    _load(root, input_size=4)
    assert len(decodes) == 30  # another size is another entry


def test_unreadable_image_names_the_file(tmp_path):
    root = write_image_tree(tmp_path / "pets", per_class=3)
    (root / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(JetsynthError, match=r"dog/broken\.png: cannot read this image .*replace or remove"):
        _load(root)
    assert not list(imagefolder.cache_root().glob("*.partial-*"))


def test_bad_folders_each_get_one_clear_line(tmp_path):
    with pytest.raises(JetsynthError, match="dataset folder not found"):
        _load(tmp_path / "nowhere")
    empty = write_image_tree(tmp_path / "a", per_class=3)
    (empty / "owl").mkdir()
    with pytest.raises(JetsynthError, match=r"a/owl: empty class folder .*add images or remove"):
        _load(empty)
    single = write_image_tree(tmp_path / "b", classes=("cat",), per_class=3)
    with pytest.raises(JetsynthError, match=r"only one class folder \(cat\); .*at least two"):
        _load(single)
    mismatch = tmp_path / "c"
    write_image_tree(mismatch / "train", classes=("cat", "dog"), per_class=3)
    write_image_tree(mismatch / "val", classes=("cat", "owl"), per_class=1)
    with pytest.raises(JetsynthError, match=r"c/val: class folders differ .*missing dog; extra owl"):
        _load(mismatch)
    (tmp_path / "d").mkdir()
    with pytest.raises(JetsynthError, match="no class sub-folders"):
        _load(tmp_path / "d")
    write_image_tree(tmp_path / "f" / "test", per_class=2)
    with pytest.raises(JetsynthError, match="has val/ or test/ but no train/"):
        _load(tmp_path / "f")
    lonely = write_image_tree(tmp_path / "e", per_class=1)
    with pytest.raises(JetsynthError, match="too few images to hold a test split out"):
        _load(lonely)


def test_augmented_training_on_a_folder(tmp_path):
    from jetsynth.core.genome import ancestor_genome
    from jetsynth.run.train import TrainConfig, train_genome

    root = write_image_tree(tmp_path / "pets", per_class=12, size=(28, 28))
    data = _load(root, augment=True)
    genome = ancestor_genome("lenet5", data.input_shape, data.classes, seed=0)
    a = train_genome(genome, data, TrainConfig(epochs=2, batch_size=8), seed=1)
    b = train_genome(genome, data, TrainConfig(epochs=2, batch_size=8), seed=1)
    assert a.metrics == {**b.metrics, "train_seconds": a.metrics["train_seconds"]}
    assert 0.0 <= a.metrics["val_accuracy"] <= 1.0 and 0.0 <= a.metrics["accuracy"] <= 1.0


def test_a_pool_of_processes_decodes_what_one_process_does(tmp_path, monkeypatch):
    root = write_image_tree(tmp_path / "pets", per_class=70, size=(12, 10), mode="RGB")
    monkeypatch.setenv("JETSYNTH_CACHE_DIR", str(tmp_path / "one"))
    monkeypatch.setattr(imagefolder, "_workers", lambda: 1)
    alone = _load(root).train_x.pixels
    monkeypatch.setenv("JETSYNTH_CACHE_DIR", str(tmp_path / "pool"))
    monkeypatch.setattr(imagefolder, "_workers", lambda: 3)
    monkeypatch.setattr(imagefolder, "PARALLEL_MIN", 2)
    monkeypatch.setattr(imagefolder, "CHUNK", 16)
    seen = []
    pooled = load_dataset(DataSpec.parse(f"folder:{root}"), progress=lambda d, t: seen.append((d, t)))
    assert np.array_equal(np.asarray(pooled.train_x.pixels), np.asarray(alone))
    assert seen[-1] == (140, 140) and len(seen) == 9  # ceil(140 / 16) chunks
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_a_folder_that_changes_while_decoded_is_one_line(tmp_path, monkeypatch):
    root = write_image_tree(tmp_path / "pets", per_class=4)
    real = imagefolder.decode_image

    def meanwhile(path, mode, size):
        (root / "cat" / "new.png").write_bytes((root / "cat" / "000.png").read_bytes())
        return real(path, mode, size)

    monkeypatch.setattr(imagefolder, "decode_image", meanwhile)
    with pytest.raises(JetsynthError, match="pets changed while its images were decoded") as caught:
        _load(root)
    assert "\n" not in str(caught.value)
    assert not [p for p in imagefolder.cache_root().glob("*") if "partial" in p.name]
    monkeypatch.setattr(imagefolder, "decode_image", real)
    assert len(_load(root).train_y) > 0  # still now: decoded


def test_a_disk_too_small_for_the_cache_is_one_line(tmp_path, monkeypatch):
    root = write_image_tree(tmp_path / "pets", per_class=4)

    class Usage:
        free = 1000

    monkeypatch.setattr(imagefolder.shutil, "disk_usage", lambda where: Usage)
    with pytest.raises(JetsynthError, match=r"need 0\.00 GB in .*0\.00 GB free: free some space .*"
                                            r"JETSYNTH_CACHE_DIR") as caught:
        _load(root)
    assert "\n" not in str(caught.value)


def test_rows_are_read_into_their_places_in_one_buffer(tmp_path, monkeypatch):
    """read_into fills row rows[i] into out[i] whatever the order, repeats and runs, one preadv
    per run of consecutive rows (at most PREADV_BUFFERS rows each), and a non-contiguous
    buffer is refused rather than left unwritten."""
    import os

    array = np.random.default_rng(0).integers(0, 256, (40, 3, 4, 4), dtype=np.uint8)
    np.save(tmp_path / "p.npy", array)
    stored = imagefolder.StoredPixels(tmp_path / "p.npy")
    reads = []
    real = os.preadv
    monkeypatch.setattr(imagefolder.os, "preadv", lambda fd, buffers, offset: (
        reads.append(len(buffers)), real(fd, buffers, offset))[1])
    rows = np.array([7, 5, 6, 5, 39, 0, 1, 2, 3])
    out = np.empty((len(rows), 3, 4, 4), dtype=np.uint8)
    stored.read_into(rows, out)
    assert np.array_equal(out, array[rows])
    assert sorted(reads) == [1, 1, 3, 4]  # 0-3, 5, 5-7 (the repeated 5 starts a run), 39
    monkeypatch.setattr(imagefolder, "PREADV_BUFFERS", 2)
    reads.clear()
    stored.read_into(np.arange(5), out[:5])
    assert reads == [2, 2, 1] and np.array_equal(out[:5], array[:5])
    with pytest.raises(ValueError, match="C-contiguous"):
        stored.read_into(np.arange(3), np.empty((3, 4, 4, 3), dtype=np.uint8).transpose(0, 3, 1, 2))


def test_stored_pixels_read_rows_as_the_array_has_them(tmp_path):
    import pickle

    array = np.arange(7 * 2 * 3 * 3, dtype=np.uint8).reshape(7, 2, 3, 3)
    np.save(tmp_path / "p.npy", array)
    stored = imagefolder.StoredPixels(tmp_path / "p.npy")
    assert stored.shape == (7, 2, 3, 3) and len(stored) == 7
    for index in (3, slice(None), slice(2, 5), np.array([6, 0, 1, 2, 5]), np.array([], dtype=int)):
        assert np.array_equal(stored[index], array[index])
    assert np.array_equal(pickle.loads(pickle.dumps(stored)), array)
